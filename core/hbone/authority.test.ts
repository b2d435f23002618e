import { describe, expect, test } from "bun:test";
import { isMeshError, ErrorCodes } from "../errors/index.ts";
import { parseAuthority, formatAuthority } from "./authority.ts";
import { formatBaggage, parseBaggage, formatForwarded, forwardedHost, newTraceparent } from "./headers.ts";

describe("CONNECT authority", () => {
  test.each([
    ["10.0.0.1:8080", { kind: "ip", ip: "10.0.0.1", port: 8080 }],
    ["[fd00::1]:80", { kind: "ip", ip: "fd00::1", port: 80 }],
    ["[FD00::A]:80", { kind: "ip", ip: "fd00::a", port: 80 }],
    ["echo.default.svc.cluster.local:80", { kind: "hostname", hostname: "echo.default.svc.cluster.local", port: 80 }],
  ])("accepts %s", (input, want) => {
    expect(parseAuthority(input)).toEqual(want as never);
  });

  test.each([
    [undefined, "missing"],
    ["", "missing"],
    ["10.0.0.1", "host:port"],
    ["10.0.0.1:0", "1-65535"],
    ["10.0.0.1:65536", "1-65535"],
    ["10.0.0.1:80a", "number"],
    ["fd00::1:80", "bracketed"],
    ["[10.0.0.1]:80", "not an IPv6"],
    ["[fd00::1]80", "[ipv6]:port"],
    [":80", "host:port"],
    ["bad_host!:80", "neither"],
    ["a..b:80", "neither"],
  ])("rejects %p", (input, why) => {
    let err: unknown;
    try {
      parseAuthority(input as string | undefined);
    } catch (e) {
      err = e;
    }
    expect(isMeshError(err, ErrorCodes.HBONE_BAD_AUTHORITY)).toBe(true);
    expect((err as Error).message).toContain(why);
  });

  test("formats v4 and v6", () => {
    expect(formatAuthority("10.0.0.1", 80)).toBe("10.0.0.1:80");
    expect(formatAuthority("fd00::1", 80)).toBe("[fd00::1]:80");
  });
});

describe("HBONE request headers", () => {
  test("baggage in ztunnel's key order, empty values omitted, round trip", () => {
    const b = formatBaggage({ clusterId: "Kubernetes", namespace: "default", workloadType: "deployment", workloadName: "sleep", canonicalName: "sleep", canonicalRevision: "v1" });
    expect(b).toBe("k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=sleep,service.name=sleep,service.version=v1");
    expect(parseBaggage(b)).toEqual({ clusterId: "Kubernetes", namespace: "default", workloadType: "deployment", workloadName: "sleep", canonicalName: "sleep", canonicalRevision: "v1" });
    expect(formatBaggage({ namespace: "x", workloadType: "statefulset", workloadName: "n" })).toBe("k8s.namespace.name=x");
  });
  test("forwarded with and without host", () => {
    expect(formatForwarded("10.0.0.5", 41234)).toBe('for="10.0.0.5:41234"');
    expect(formatForwarded("fd00::5", 1, "echo.default.svc.cluster.local")).toBe('for="[fd00::5]:1";host=echo.default.svc.cluster.local');
    expect(forwardedHost('for="10.0.0.5:41234";host=echo.default.svc.cluster.local')).toBe("echo.default.svc.cluster.local");
    expect(forwardedHost('for="10.0.0.5:41234"')).toBeUndefined();
  });
  test("traceparent is W3C version 00 with random ids", () => {
    const a = newTraceparent();
    expect(a).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    expect(newTraceparent()).not.toBe(a);
  });
});
