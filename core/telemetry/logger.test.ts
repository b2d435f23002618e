import { describe, expect, test } from "bun:test";
import { ErrorCodes, MeshError, isMeshError } from "../errors/index.ts";
import { createLogger, type LogFormat, type LogLevel } from "./index.ts";

function capture(format: LogFormat = "json", level: LogLevel = "debug") {
  const lines: string[] = [];
  const logger = createLogger({ format, level, component: "ztunnel", write: (l) => lines.push(l) });
  return { logger, lines, json: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("createLogger json", () => {
  test("one object per line: time, level, scope, msg, then fields", () => {
    const { logger, lines, json } = capture();
    logger.info("listener started", { port: 15008, address: "10.0.0.1" });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("\n");
    const [rec] = json();
    expect(Object.keys(rec!).slice(0, 4)).toEqual(["time", "level", "scope", "msg"]);
    expect(rec).toMatchObject({ level: "info", scope: "ztunnel", msg: "listener started", port: 15008, address: "10.0.0.1" });
    expect(new Date(String(rec!.time)).toISOString()).toBe(String(rec!.time));
  });

  test("level filtering, and the level is shared with children", () => {
    const { logger, json } = capture("json", "warn");
    const child = logger.child({ workload: "sleep" });
    logger.info("dropped");
    child.debug("dropped");
    child.warn("kept");
    expect(json().map((r) => r.msg)).toEqual(["kept"]);
    child.level = "debug";
    expect(logger.level).toBe("debug");
    logger.debug("now kept");
    expect(json().map((r) => r.msg)).toEqual(["kept", "now kept"]);
    expect(logger.enabled("debug")).toBe(true);
    logger.level = "error";
    expect(child.enabled("warn")).toBe(false);
  });

  test("setting an unknown level throws FLAG_INVALID and keeps the old level", () => {
    const { logger } = capture("json", "info");
    let err: unknown;
    try {
      logger.level = "trace" as LogLevel;
    } catch (e) {
      err = e;
    }
    expect(isMeshError(err, ErrorCodes.FLAG_INVALID)).toBe(true);
    expect(logger.level).toBe("info");
    expect(() => createLogger({ format: "json", level: "loud" as LogLevel, component: "x" })).toThrow(/debug, info, warn, error/);
  });

  test("child fields are merged; a scope field replaces the scope; reserved keys are kept aside", () => {
    const { logger, json } = capture();
    logger.child({ conn: 7 }).child({ scope: "hbone", peer: "a" }).error("boom", { msg: "inner", level: 3, conn: 8 });
    const [rec] = json();
    expect(rec).toMatchObject({ level: "error", scope: "hbone", msg: "boom", peer: "a", conn: 8, "fields.msg": "inner", "fields.level": 3 });
  });

  test("never throws on circular, BigInt, NaN, errors, maps, bytes, or throwing getters", () => {
    const { logger, json } = capture();
    const cyc: Record<string, unknown> = { name: "loop" };
    cyc.self = cyc;
    const nasty = {
      get boom(): never {
        throw new Error("getter");
      },
    };
    const err = new MeshError(ErrorCodes.AUTHZ_DENIED, "denied", { cause: new Error("root") });
    expect(() =>
      logger.warn("odd", {
        cyc,
        big: 2n ** 70n,
        nan: Number.NaN,
        err,
        map: new Map([["k", 1n]]),
        set: new Set([1, 2]),
        bytes: new Uint8Array(12),
        nasty,
        fn: function handler() {},
        sym: Symbol("s"),
        when: new Date(0),
        badToJson: { toJSON: () => { throw new Error("no"); } },
      }),
    ).not.toThrow();
    const [rec] = json();
    expect(rec).toMatchObject({
      cyc: { name: "loop", self: "[circular]" },
      big: "1180591620717411303424",
      nan: "NaN",
      err: { name: "MeshError", message: "denied", code: "AUTHZ_DENIED", cause: { message: "root" } },
      map: { k: "1" },
      set: [1, 2],
      bytes: "[12 bytes]",
      nasty: { boom: "[unreadable]" },
      fn: "[function handler]",
      sym: "Symbol(s)",
      when: "1970-01-01T00:00:00.000Z",
    });
    expect(String(rec!.badToJson)).toContain("toJSON failed");
  });

  test("a throwing writer does not reach the caller", () => {
    const logger = createLogger({
      format: "json",
      level: "info",
      component: "x",
      write: () => {
        throw new Error("EPIPE");
      },
    });
    expect(() => logger.info("hello")).not.toThrow();
  });
});

describe("createLogger text", () => {
  test("time LEVEL scope: msg key=value", () => {
    const { logger, lines } = capture("text", "info");
    logger.child({ scope: "access" }).info("connection complete", { "src.addr": "10.0.0.1:4000", bytes_sent: 67, ok: true });
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  access: connection complete src\.addr="10\.0\.0\.1:4000" bytes_sent=67 ok=true$/);
  });
});
