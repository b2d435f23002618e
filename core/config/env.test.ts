import { describe, expect, test } from "bun:test";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { ENV_DEFAULTS, parseDuration, readRuntimeEnv } from "./index.ts";

function envError(env: Record<string, string>): MeshError {
  try {
    readRuntimeEnv(env);
  } catch (e) {
    if (e instanceof MeshError) return e;
    throw e;
  }
  throw new Error("expected a FLAG_INVALID error");
}

describe("parseDuration", () => {
  test.each([
    ["5s", 5_000],
    ["500ms", 500],
    ["5m", 300_000],
    ["24h", 86_400_000],
    ["1h30m", 5_400_000],
    ["1.5s", 1_500],
    ["2m3s4ms", 123_004],
    ["0s", 0],
    ["1500us", 2],
  ])("%s = %d ms", (s, ms) => expect(parseDuration(s)).toBe(ms));

  test.each(["", "5", "-5s", "5 s", "s", "5d", "1h 30m", "5S", "five seconds"])("rejects %p", (s) => {
    expect(() => parseDuration(s)).toThrow(MeshError);
  });
});

describe("readRuntimeEnv", () => {
  test("defaults (istio/ztunnel's)", () => {
    const env = readRuntimeEnv({});
    expect(env).toEqual(ENV_DEFAULTS);
    expect(env).toEqual({
      logFormat: "json",
      logLevel: "info",
      drainDeadlineMs: 5_000,
      poolMaxStreamsPerConnection: 100,
      poolUnusedReleaseTimeoutMs: 300_000,
      streamWindowSize: 4_194_304,
      connectionWindowSize: 16_777_216,
      frameSize: 1_048_576,
      certLifetimeMs: 86_400_000,
      clusterId: "Kubernetes",
      trustDomain: "cluster.local",
      httpHeaderTimeoutMs: 10_000,
      httpIdleTimeoutMs: 300_000,
      httpMaxHeaderBytes: 61_440,
      httpMaxHeaders: 100,
    });
    expect(Object.isFrozen(env)).toBe(true);
  });

  test("reads every variable", () => {
    const env = readRuntimeEnv({
      MESH_LOG_FORMAT: "TEXT",
      MESH_LOG_LEVEL: "debug",
      CONNECTION_TERMINATION_DEADLINE: "500ms",
      POOL_MAX_STREAMS_PER_CONNECTION: "50",
      POOL_UNUSED_RELEASE_TIMEOUT: "1m",
      HTTP2_STREAM_WINDOW_SIZE: "1Mi",
      HTTP2_CONNECTION_WINDOW_SIZE: "8388608",
      HTTP2_FRAME_SIZE: "16384",
      SECRET_TTL: "1h",
      CLUSTER_ID: "c1",
      TRUST_DOMAIN: "example.org",
      MESH_HTTP_HEADER_TIMEOUT: "2s",
      MESH_HTTP_IDLE_TIMEOUT: "30s",
      MESH_HTTP_MAX_HEADER_BYTES: "8Ki",
      MESH_HTTP_MAX_HEADERS: "20",
      UNRELATED: "x",
    });
    expect(env).toEqual({
      logFormat: "text",
      logLevel: "debug",
      drainDeadlineMs: 500,
      poolMaxStreamsPerConnection: 50,
      poolUnusedReleaseTimeoutMs: 60_000,
      streamWindowSize: 1_048_576,
      connectionWindowSize: 8_388_608,
      frameSize: 16_384,
      certLifetimeMs: 3_600_000,
      clusterId: "c1",
      trustDomain: "example.org",
      httpHeaderTimeoutMs: 2_000,
      httpIdleTimeoutMs: 30_000,
      httpMaxHeaderBytes: 8_192,
      httpMaxHeaders: 20,
    });
  });

  test("empty values mean unset; Istio's precedence rules", () => {
    expect(readRuntimeEnv({ MESH_LOG_FORMAT: "", CLUSTER_ID: " " }).logFormat).toBe("json");
    expect(readRuntimeEnv({ CLUSTER_ID: "a", ISTIO_META_CLUSTER_ID: "b" }).clusterId).toBe("b");
    expect(readRuntimeEnv({ TERMINATION_GRACE_PERIOD_SECONDS: "30" }).drainDeadlineMs).toBe(25_000);
    expect(readRuntimeEnv({ TERMINATION_GRACE_PERIOD_SECONDS: "3" }).drainDeadlineMs).toBe(1_000);
    expect(
      readRuntimeEnv({ TERMINATION_GRACE_PERIOD_SECONDS: "30", CONNECTION_TERMINATION_DEADLINE: "2s" }).drainDeadlineMs,
    ).toBe(2_000);
  });

  test.each([
    ["MESH_LOG_FORMAT", { MESH_LOG_FORMAT: "yaml" }, `environment variable MESH_LOG_FORMAT="yaml": expected one of json, text`],
    ["MESH_LOG_LEVEL", { MESH_LOG_LEVEL: "verbose" }, `environment variable MESH_LOG_LEVEL="verbose": expected one of debug, info, warn, error`],
    [
      "CONNECTION_TERMINATION_DEADLINE",
      { CONNECTION_TERMINATION_DEADLINE: "5" },
      `environment variable CONNECTION_TERMINATION_DEADLINE="5": expected a duration such as "5s", "500ms" or "1h30m"`,
    ],
    ["POOL_MAX_STREAMS_PER_CONNECTION", { POOL_MAX_STREAMS_PER_CONNECTION: "0" }, `environment variable POOL_MAX_STREAMS_PER_CONNECTION="0": expected an integer 1..2147483647`],
    ["POOL_MAX_STREAMS_PER_CONNECTION", { POOL_MAX_STREAMS_PER_CONNECTION: "1e3" }, `environment variable POOL_MAX_STREAMS_PER_CONNECTION="1e3": expected an integer 1..2147483647`],
    ["POOL_UNUSED_RELEASE_TIMEOUT", { POOL_UNUSED_RELEASE_TIMEOUT: "0s" }, `environment variable POOL_UNUSED_RELEASE_TIMEOUT="0s": expected a duration of at least 1 ms`],
    [
      "HTTP2_STREAM_WINDOW_SIZE",
      { HTTP2_STREAM_WINDOW_SIZE: "4MB" },
      `environment variable HTTP2_STREAM_WINDOW_SIZE="4MB": expected a size in bytes 65535..2147483647 (e.g. 4194304 or 4Mi)`,
    ],
    [
      "HTTP2_FRAME_SIZE",
      { HTTP2_FRAME_SIZE: "1024" },
      `environment variable HTTP2_FRAME_SIZE="1024": expected a size in bytes 16384..16777215 (e.g. 4194304 or 4Mi)`,
    ],
    ["SECRET_TTL", { SECRET_TTL: "1s" }, `environment variable SECRET_TTL="1s": expected a duration of at least 2000 ms`],
    [
      "TRUST_DOMAIN",
      { TRUST_DOMAIN: "Bad Domain" },
      `environment variable TRUST_DOMAIN="Bad Domain": expected a trust domain (lowercase letters, digits, ".", "-", "_")`,
    ],
    ["TERMINATION_GRACE_PERIOD_SECONDS", { TERMINATION_GRACE_PERIOD_SECONDS: "soon" }, `environment variable TERMINATION_GRACE_PERIOD_SECONDS="soon": expected a whole number of seconds`],
  ] as [string, Record<string, string>, string][])("bad %s", (_name, env, message) => {
    const e = envError(env);
    expect(e.code).toBe(ErrorCodes.FLAG_INVALID);
    expect(e.message).toBe(message);
  });
});
