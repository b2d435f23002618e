// The one place environment variables are read. Callers pass `process.env`; everything else in
// the mesh takes these values as parameters. Names and defaults follow istio/ztunnel
// (src/config.rs) where it defines them.

import { ErrorCodes, MeshError } from "../errors/index.ts";

export type LogFormat = "json" | "text";
export type LogLevel = "debug" | "info" | "warn" | "error";

export interface RuntimeEnv {
  readonly logFormat: LogFormat;
  readonly logLevel: LogLevel;
  /** Hard stop after a drain starts (CONNECTION_TERMINATION_DEADLINE). */
  readonly drainDeadlineMs: number;
  readonly poolMaxStreamsPerConnection: number;
  readonly poolUnusedReleaseTimeoutMs: number;
  /** HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE, bytes. */
  readonly streamWindowSize: number;
  /** HTTP/2 connection-level window, bytes. */
  readonly connectionWindowSize: number;
  /** HTTP/2 SETTINGS_MAX_FRAME_SIZE, bytes. */
  readonly frameSize: number;
  /** Requested certificate validity (SECRET_TTL). */
  readonly certLifetimeMs: number;
  readonly clusterId: string;
  /** Trust domain of the mesh's own identity. */
  readonly trustDomain: string;
  /** Waypoint: a request head must arrive within this (MESH_HTTP_HEADER_TIMEOUT; 408 after). */
  readonly httpHeaderTimeoutMs: number;
  /** Waypoint: a client connection with no request in flight closes after this (MESH_HTTP_IDLE_TIMEOUT). */
  readonly httpIdleTimeoutMs: number;
  /** Waypoint: bytes of request header fields (MESH_HTTP_MAX_HEADER_BYTES; Envoy's 60 KiB). */
  readonly httpMaxHeaderBytes: number;
  /** Waypoint: number of request header fields (MESH_HTTP_MAX_HEADERS; Envoy's 100). */
  readonly httpMaxHeaders: number;
}

export const ENV_DEFAULTS: RuntimeEnv = Object.freeze({
  logFormat: "json",
  logLevel: "info",
  drainDeadlineMs: 5_000,
  poolMaxStreamsPerConnection: 100,
  poolUnusedReleaseTimeoutMs: 5 * 60_000,
  streamWindowSize: 4 * 1024 * 1024,
  connectionWindowSize: 16 * 1024 * 1024,
  frameSize: 1024 * 1024,
  certLifetimeMs: 24 * 3_600_000,
  clusterId: "Kubernetes",
  trustDomain: "cluster.local",
  httpHeaderTimeoutMs: 10_000,
  httpIdleTimeoutMs: 300_000,
  httpMaxHeaderBytes: 60 * 1024,
  httpMaxHeaders: 100,
});

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const DURATION = /^((\d+(\.\d+)?)(ns|us|µs|ms|s|m|h))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;

/**
 * Parses a Go-style duration ("5s", "500ms", "5m", "24h", "1h30m", "1.5s") into whole
 * milliseconds (rounded). Throws FLAG_INVALID on anything else, including bare numbers.
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (!DURATION.test(s)) {
    throw new MeshError(ErrorCodes.FLAG_INVALID, `invalid duration ${JSON.stringify(text)}: expected e.g. "5s", "500ms", "1h30m"`);
  }
  let ms = 0;
  for (const m of s.matchAll(DURATION_PART)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  const out = Math.round(ms);
  if (!Number.isSafeInteger(out)) throw new MeshError(ErrorCodes.FLAG_INVALID, `invalid duration ${JSON.stringify(text)}: too large`);
  return out;
}

const SIZE = /^(\d+)(Ki|Mi|Gi)?$/;
const SIZE_UNIT: Record<string, number> = { Ki: 1024, Mi: 1024 * 1024, Gi: 1024 * 1024 * 1024 };

function bad(name: string, value: string, expected: string): MeshError {
  return new MeshError(ErrorCodes.FLAG_INVALID, `environment variable ${name}=${JSON.stringify(value)}: expected ${expected}`);
}

function get(env: Record<string, string | undefined>, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

function readSize(env: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number): number {
  const v = get(env, name);
  if (v === undefined) return fallback;
  const m = SIZE.exec(v);
  const n = m ? Number(m[1]) * (m[2] ? SIZE_UNIT[m[2]]! : 1) : NaN;
  if (!(n >= min && n <= max)) throw bad(name, v, `a size in bytes ${min}..${max} (e.g. 4194304 or 4Mi)`);
  return n;
}

function readInteger(env: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number): number {
  const v = get(env, name);
  if (v === undefined) return fallback;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw bad(name, v, `an integer ${min}..${max}`);
  return n;
}

function readDurationVar(env: Record<string, string | undefined>, name: string, fallback: number, minMs: number): number {
  const v = get(env, name);
  if (v === undefined) return fallback;
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch {
    throw bad(name, v, `a duration such as "5s", "500ms" or "1h30m"`);
  }
  if (ms < minMs) throw bad(name, v, `a duration of at least ${minMs} ms`);
  return ms;
}

function readChoice<T extends string>(env: Record<string, string | undefined>, name: string, fallback: T, choices: readonly T[]): T {
  const v = get(env, name);
  if (v === undefined) return fallback;
  const lower = v.toLowerCase();
  if (!(choices as readonly string[]).includes(lower)) throw bad(name, v, `one of ${choices.join(", ")}`);
  return lower as T;
}

const MAX_WINDOW = 2 ** 31 - 1; // RFC 9113 §6.9.1

/** Reads and validates the runtime environment. Throws FLAG_INVALID naming the bad variable. */
// The process environment is read here and nowhere else.
export function readRuntimeEnv(env: Record<string, string | undefined> = process.env): RuntimeEnv {
  const d = ENV_DEFAULTS;
  // ztunnel: without CONNECTION_TERMINATION_DEADLINE, the pod's grace period minus 5 s (min 1 s).
  let drainDefault = d.drainDeadlineMs;
  const grace = get(env, "TERMINATION_GRACE_PERIOD_SECONDS");
  if (grace !== undefined) {
    const g = /^\d+$/.test(grace) ? Number(grace) : NaN;
    if (!Number.isSafeInteger(g)) throw bad("TERMINATION_GRACE_PERIOD_SECONDS", grace, "a whole number of seconds");
    drainDefault = Math.max(g - 5, 1) * 1000;
  }
  const trustDomain = get(env, "TRUST_DOMAIN") ?? d.trustDomain;
  if (!/^[a-z0-9._-]+$/.test(trustDomain)) {
    throw bad("TRUST_DOMAIN", trustDomain, `a trust domain (lowercase letters, digits, ".", "-", "_")`);
  }
  const out: RuntimeEnv = {
    logFormat: readChoice(env, "MESH_LOG_FORMAT", d.logFormat, ["json", "text"] as const),
    logLevel: readChoice(env, "MESH_LOG_LEVEL", d.logLevel, ["debug", "info", "warn", "error"] as const),
    drainDeadlineMs: readDurationVar(env, "CONNECTION_TERMINATION_DEADLINE", drainDefault, 0),
    poolMaxStreamsPerConnection: readInteger(env, "POOL_MAX_STREAMS_PER_CONNECTION", d.poolMaxStreamsPerConnection, 1, MAX_WINDOW),
    poolUnusedReleaseTimeoutMs: readDurationVar(env, "POOL_UNUSED_RELEASE_TIMEOUT", d.poolUnusedReleaseTimeoutMs, 1),
    // Windows below the protocol default would mean lowering them, which Bun mishandles (bun.md §9, #41344).
    streamWindowSize: readSize(env, "HTTP2_STREAM_WINDOW_SIZE", d.streamWindowSize, 65_535, MAX_WINDOW),
    connectionWindowSize: readSize(env, "HTTP2_CONNECTION_WINDOW_SIZE", d.connectionWindowSize, 65_535, MAX_WINDOW),
    frameSize: readSize(env, "HTTP2_FRAME_SIZE", d.frameSize, 16_384, 16_777_215), // RFC 9113 §6.5.2
    certLifetimeMs: readDurationVar(env, "SECRET_TTL", d.certLifetimeMs, 2_000),
    // Istio: ISTIO_META_CLUSTER_ID wins over CLUSTER_ID.
    clusterId: get(env, "ISTIO_META_CLUSTER_ID") ?? get(env, "CLUSTER_ID") ?? d.clusterId,
    trustDomain,
    httpHeaderTimeoutMs: readDurationVar(env, "MESH_HTTP_HEADER_TIMEOUT", d.httpHeaderTimeoutMs, 10),
    httpIdleTimeoutMs: readDurationVar(env, "MESH_HTTP_IDLE_TIMEOUT", d.httpIdleTimeoutMs, 10),
    httpMaxHeaderBytes: readSize(env, "MESH_HTTP_MAX_HEADER_BYTES", d.httpMaxHeaderBytes, 1024, 1024 * 1024),
    httpMaxHeaders: readInteger(env, "MESH_HTTP_MAX_HEADERS", d.httpMaxHeaders, 8, 10_000),
  };
  return Object.freeze(out);
}
