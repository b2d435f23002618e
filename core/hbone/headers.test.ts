import { describe, expect, test } from "bun:test";
import { formatForwarded, forwardedFor, forwardedHost } from "./headers.ts";

describe("forwarded header", () => {
  test("for= round-trips IPv4 and IPv6 client addresses", () => {
    expect(forwardedFor(formatForwarded("10.0.0.7", 43210, "echo.default.svc.cluster.local"))).toEqual({ ip: "10.0.0.7", port: 43210 });
    expect(forwardedFor(formatForwarded("fd00::7", 80))).toEqual({ ip: "fd00::7", port: 80 });
    expect(forwardedHost(formatForwarded("10.0.0.7", 1, "echo.default.svc.cluster.local"))).toBe("echo.default.svc.cluster.local");
  });

  test("for= that is not an address, or a port out of range, is ignored", () => {
    expect(forwardedFor(undefined)).toBeUndefined();
    expect(forwardedFor('for="_hidden"')).toBeUndefined();
    expect(forwardedFor('for="10.0.0.7:70000"')).toBeUndefined();
    expect(forwardedFor('for="10.0.0.7"')).toBeUndefined();
    expect(forwardedFor(`for="${"1".repeat(3000)}"`)).toBeUndefined();
  });
});
