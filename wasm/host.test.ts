// Conformance of every host function (env and WASI), called through trampolines exported by a
// test module, against an inline VM core. Statuses are the spec's (reference/waypoint.md §A.5).

import { beforeAll, describe, expect, test } from "bun:test";
import { inflateSync } from "node:zlib";
import { Errno, LogLevel, Status } from "./abi.ts";
import { ENV_IMPORTS } from "./imports.ts";
import { Op } from "./protocol.ts";
import { decodePairs, encodePairs, pairsByteSize } from "./serialization.ts";
import { SharedState } from "./shared.ts";
import { inlineVm, logsOf, Scratch, trampolines } from "./testdata/harness.ts";
import { pluginModule } from "./testdata/wat.ts";
import { ModuleAbort, ProcExit } from "./traps.ts";
import type { VmCore } from "./vm.ts";

const BODY = `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 1))
`;
const REQUEST = [":method", "GET", ":path", "/a?b=1", ":authority", "svc", "x-multi", "1", "x-multi", "2"];
const OOB = 0x7ffffff0;

let bytes: Uint8Array;
beforeAll(async () => {
  bytes = await pluginModule(trampolines() + BODY);
});

interface Fixture {
  vm: VmCore;
  mem: Scratch;
  call: (name: string, ...args: (number | bigint)[]) => number;
  root: (name: string, ...args: (number | bigint)[]) => number;
}

function fixture(opts: Parameters<typeof inlineVm>[1] = {}, b: Uint8Array = bytes): Fixture {
  const { vm, start } = inlineVm(b, { configuration: '{"k":"v"}', vmConfiguration: "vmcfg", ...opts });
  expect(start.ok).toBe(true);
  vm.execute([
    {
      op: Op.HEADERS,
      stream: 2,
      dir: 0,
      headers: REQUEST.slice(),
      eos: false,
      create: { source: { address: "10.1.1.1", port: 5000, principal: "spiffe://td/ns/a/sa/b" } },
    },
  ]);
  vm.execute([{ op: Op.BODY, stream: 2, dir: 0, body: new TextEncoder().encode("hello"), eos: false }]);
  vm.drainEffects();
  return {
    vm,
    mem: new Scratch(vm),
    call: (name, ...args) => vm.callExport(`t.${name}`, args, 2) as number,
    root: (name, ...args) => vm.callExport(`t.${name}`, args) as number,
  };
}

describe("logging and clocks", () => {
  test("proxy_log forwards, filters by level, checks level and pointers", () => {
    const f = fixture({ logLevel: LogLevel.INFO });
    expect(f.call("proxy_log", LogLevel.WARN, ...f.mem.put("hi there"))).toBe(Status.OK);
    expect(f.call("proxy_log", LogLevel.DEBUG, ...f.mem.put("dropped"))).toBe(Status.OK);
    expect(f.call("proxy_log", 6, ...f.mem.put("x"))).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_log", LogLevel.ERROR, OOB, 100)).toBe(Status.INVALID_MEMORY_ACCESS);
    const e = f.vm.drainEffects();
    expect(e.logs).toEqual([{ level: LogLevel.WARN, message: "hi there" }]);
  });

  test("proxy_get_log_level and proxy_get_current_time_nanoseconds", () => {
    const f = fixture({ logLevel: LogLevel.WARN });
    const s = f.mem.slot();
    expect(f.call("proxy_get_log_level", s)).toBe(Status.OK);
    expect(f.mem.u32(s)).toBe(LogLevel.WARN);
    expect(f.call("proxy_get_log_level", OOB)).toBe(Status.INVALID_MEMORY_ACCESS);
    expect(f.call("proxy_get_current_time_nanoseconds", s)).toBe(Status.OK);
    const ns = f.mem.u64(s);
    expect(Math.abs(Number(ns / 1_000_000n) - Date.now())).toBeLessThan(60_000);
    expect(f.call("proxy_get_current_time_nanoseconds", OOB)).toBe(Status.INVALID_MEMORY_ACCESS);
  });
});

describe("context", () => {
  test("proxy_set_effective_context, proxy_done, proxy_call_foreign_function", () => {
    const f = fixture();
    expect(f.call("proxy_set_effective_context", 2)).toBe(Status.OK);
    expect(f.call("proxy_set_effective_context", 1)).toBe(Status.OK);
    expect(f.call("proxy_set_effective_context", 999)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_done")).toBe(Status.NOT_FOUND); // only while the root context is finishing
    // foreign functions: zlib compress/uncompress round trip, as Envoy registers them
    const data = new TextEncoder().encode("hello hello hello hello");
    const out = [f.mem.slot(), f.mem.slot()] as const;
    expect(f.call("proxy_call_foreign_function", ...f.mem.put("compress"), ...f.mem.put(data), ...out)).toBe(Status.OK);
    const zipped = f.mem.out(...out);
    expect([...inflateSync(zipped)]).toEqual([...data]);
    const back = [f.mem.slot(), f.mem.slot()] as const;
    expect(f.call("proxy_call_foreign_function", ...f.mem.put("uncompress"), ...f.mem.put(zipped), ...back)).toBe(Status.OK);
    expect([...f.mem.out(...back)]).toEqual([...data]);
    expect(f.call("proxy_call_foreign_function", ...f.mem.put("uncompress"), ...f.mem.put("not zlib"), ...back)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_call_foreign_function", ...f.mem.put("clear_route_cache"), 0, 0, ...back)).toBe(Status.OK);
    const [np, nl] = f.mem.put("expr_create");
    expect(f.call("proxy_call_foreign_function", np, nl, 0, 0, f.mem.slot(), f.mem.slot())).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_call_foreign_function", OOB, 9, 0, 0, f.mem.slot(), f.mem.slot())).toBe(
      Status.INVALID_MEMORY_ACCESS,
    );
  });
});

describe("buffers", () => {
  test("proxy_get_buffer_bytes: configuration, slices, clamping, availability", () => {
    const f = fixture();
    const p = f.mem.slot();
    const n = f.mem.slot();
    expect(f.call("proxy_get_buffer_bytes", 7, 0, 1000, p, n)).toBe(Status.OK);
    expect(f.mem.text(p, n)).toBe('{"k":"v"}');
    expect(f.call("proxy_get_buffer_bytes", 7, 2, 3, p, n)).toBe(Status.OK);
    expect(f.mem.text(p, n)).toBe('k":');
    expect(f.call("proxy_get_buffer_bytes", 7, 100, 10, p, n)).toBe(Status.OK);
    expect([f.mem.u32(p), f.mem.u32(n)]).toEqual([0, 0]); // empty: no allocation
    expect(f.call("proxy_get_buffer_bytes", 7, 0xffffffff, 2, p, n)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_get_buffer_bytes", 9, 0, 1, p, n)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_get_buffer_bytes", 6, 0, 100, p, n)).toBe(Status.OK);
    expect(f.mem.text(p, n)).toBe("vmcfg");
    expect(f.call("proxy_get_buffer_bytes", 0, 0, 100, p, n)).toBe(Status.OK);
    expect(f.mem.text(p, n)).toBe("hello");
    expect(f.call("proxy_get_buffer_bytes", 1, 0, 100, p, n)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_get_buffer_bytes", 4, 0, 100, p, n)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_get_buffer_bytes", 8, 0, 100, p, n)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_get_buffer_bytes", 7, 0, 100, OOB, n)).toBe(Status.INVALID_MEMORY_ACCESS);
    expect(f.call("proxy_get_buffer_bytes", 7, 0, 100, p, -1)).toBe(Status.INVALID_MEMORY_ACCESS);
  });

  test("proxy_get_buffer_status", () => {
    const f = fixture();
    const size = f.mem.slot();
    const flags = f.mem.slot();
    expect(f.call("proxy_get_buffer_status", 0, size, flags)).toBe(Status.OK);
    expect([f.mem.u32(size), f.mem.u32(flags)]).toEqual([5, 0]);
    expect(f.call("proxy_get_buffer_status", 1, size, flags)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_get_buffer_status", 12, size, flags)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_get_buffer_status", 0, OOB, flags)).toBe(Status.INVALID_MEMORY_ACCESS);
  });

  test("proxy_set_buffer_bytes: prepend, append, replace; the middle and immutable buffers are refused", () => {
    const f = fixture();
    const p = f.mem.slot();
    const n = f.mem.slot();
    const body = () => (f.call("proxy_get_buffer_bytes", 0, 0, 1000, p, n), f.mem.text(p, n));
    expect(f.call("proxy_set_buffer_bytes", 0, 0, 0, ...f.mem.put("pre-"))).toBe(Status.OK);
    expect(body()).toBe("pre-hello");
    expect(f.call("proxy_set_buffer_bytes", 0, 0xffffffff, 0, ...f.mem.put("-post"))).toBe(Status.OK);
    expect(body()).toBe("pre-hello-post");
    expect(f.call("proxy_set_buffer_bytes", 0, 3, 2, ...f.mem.put("x"))).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_set_buffer_bytes", 0, 0, 4, ...f.mem.put("PRE:"))).toBe(Status.OK);
    expect(body()).toBe("PRE:hello-post");
    expect(f.call("proxy_set_buffer_bytes", 0, 0, 14, ...f.mem.put("all new"))).toBe(Status.OK);
    expect(body()).toBe("all new");
    expect(f.call("proxy_set_buffer_bytes", 7, 0, 0, ...f.mem.put("x"))).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_set_buffer_bytes", 0, 0, 0, OOB, 4)).toBe(Status.INVALID_MEMORY_ACCESS);
  });

  test("sizes the host copies in are capped", () => {
    const f = fixture({ maxBufferBytes: 16 });
    expect(f.call("proxy_set_buffer_bytes", 0, 0, 0, ...f.mem.put("x".repeat(17)))).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_set_buffer_bytes", 0, 0, 0, ...f.mem.put("x".repeat(12)))).toBe(Status.BAD_ARGUMENT); // 17 total
    expect(f.call("proxy_set_buffer_bytes", 0, 0, 0, ...f.mem.put("x".repeat(11)))).toBe(Status.OK); // 16 total
  });
});

describe("header map bound", () => {
  test("edits that would grow a map past maxHeaderBytes are refused", () => {
    const f = fixture({ maxHeaderBytes: pairsByteSize(REQUEST) + 20 });
    expect(f.call("proxy_add_header_map_value", 0, ...f.mem.put("a"), ...f.mem.put("x".repeat(5)))).toBe(Status.OK);
    expect(f.call("proxy_add_header_map_value", 0, ...f.mem.put("b"), ...f.mem.put("x".repeat(5)))).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_replace_header_map_value", 0, ...f.mem.put(":path"), ...f.mem.put("y".repeat(30)))).toBe(Status.BAD_ARGUMENT);
  });
});

describe("header maps", () => {
  test("get size/pairs/value", () => {
    const f = fixture();
    const p = f.mem.slot();
    const n = f.mem.slot();
    expect(f.call("proxy_get_header_map_size", 0, p)).toBe(Status.OK);
    expect(f.mem.u32(p)).toBe(pairsByteSize(REQUEST));
    expect(f.call("proxy_get_header_map_pairs", 0, p, n)).toBe(Status.OK);
    expect(decodePairs(f.mem.out(p, n))).toEqual(REQUEST);
    expect(f.call("proxy_get_header_map_value", 0, ...f.mem.put(":path"), p, n)).toBe(Status.OK);
    expect(f.mem.text(p, n)).toBe("/a?b=1");
    expect(f.call("proxy_get_header_map_value", 0, ...f.mem.put("X-Multi"), p, n)).toBe(Status.OK);
    expect(f.mem.text(p, n)).toBe("1"); // keys are lower-cased; the first value wins
    expect(f.call("proxy_get_header_map_value", 0, ...f.mem.put("absent"), p, n)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_get_header_map_value", 0, OOB, 3, p, n)).toBe(Status.INVALID_MEMORY_ACCESS);
    expect(f.call("proxy_get_header_map_pairs", 0, OOB, n)).toBe(Status.INVALID_MEMORY_ACCESS);
  });

  test("add, replace, remove, set pairs", () => {
    const f = fixture();
    const p = f.mem.slot();
    const n = f.mem.slot();
    const pairs = () => (f.call("proxy_get_header_map_pairs", 0, p, n), decodePairs(f.mem.out(p, n)));
    expect(f.call("proxy_add_header_map_value", 0, ...f.mem.put("X-New"), ...f.mem.put("v"))).toBe(Status.OK);
    expect(pairs()).toEqual([...REQUEST, "x-new", "v"]);
    expect(f.call("proxy_replace_header_map_value", 0, ...f.mem.put("x-multi"), ...f.mem.put("3"))).toBe(Status.OK);
    expect(pairs()).toEqual([":method", "GET", ":path", "/a?b=1", ":authority", "svc", "x-multi", "3", "x-new", "v"]);
    expect(f.call("proxy_replace_header_map_value", 0, ...f.mem.put("x-added"), ...f.mem.put("4"))).toBe(Status.OK);
    expect(pairs()!.slice(-2)).toEqual(["x-added", "4"]);
    expect(f.call("proxy_remove_header_map_value", 0, ...f.mem.put("X-MULTI"))).toBe(Status.OK);
    expect(pairs()).not.toContain("x-multi");
    expect(f.call("proxy_remove_header_map_value", 0, ...f.mem.put("absent"))).toBe(Status.OK);
    expect(f.call("proxy_set_header_map_pairs", 0, ...f.mem.put(encodePairs(["A", "1", "b", "2"])))).toBe(Status.OK);
    expect(pairs()).toEqual(["a", "1", "b", "2"]);
    expect(f.call("proxy_set_header_map_pairs", 0, ...f.mem.put(new Uint8Array([5, 0, 0, 0, 1])))).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_add_header_map_value", 0, OOB, 1, ...f.mem.put("v"))).toBe(Status.INVALID_MEMORY_ACCESS);
  });

  test("unknown or unavailable maps are BAD_ARGUMENT", () => {
    const f = fixture();
    const p = f.mem.slot();
    const n = f.mem.slot();
    expect(f.call("proxy_get_header_map_pairs", 8, p, n)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_get_header_map_pairs", 2, p, n)).toBe(Status.BAD_ARGUMENT); // no response yet
    expect(f.call("proxy_add_header_map_value", 2, ...f.mem.put("a"), ...f.mem.put("b"))).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_get_header_map_pairs", 6, p, n)).toBe(Status.BAD_ARGUMENT); // no callout response
    expect(f.call("proxy_get_header_map_pairs", 4, p, n)).toBe(Status.BAD_ARGUMENT); // no gRPC
    expect(f.root("proxy_get_header_map_pairs", 0, p, n)).toBe(Status.BAD_ARGUMENT); // root context
  });

  test("ABI 0.1.0: a missing header is OK with an empty value", async () => {
    const old = await pluginModule(trampolines() + BODY, { abi: "0.1.0" });
    const f = fixture({}, old);
    const p = f.mem.slot();
    const n = f.mem.slot();
    expect(f.call("proxy_get_header_map_value", 0, ...f.mem.put("absent"), p, n)).toBe(Status.OK);
    expect(f.mem.u32(n)).toBe(0);
    expect(f.call("proxy_get_configuration", p, n)).toBe(Status.OK);
    expect(f.mem.text(p, n)).toBe('{"k":"v"}');
    expect(f.call("proxy_continue_request")).toBe(Status.OK);
    expect(f.call("proxy_continue_response")).toBe(Status.OK);
    expect(f.call("proxy_clear_route_cache")).toBe(Status.OK);
  });
});

describe("stream control", () => {
  test("proxy_continue_stream / proxy_close_stream", () => {
    const f = fixture();
    for (const fn of ["proxy_continue_stream", "proxy_close_stream"]) {
      expect(f.call(fn, 0)).toBe(Status.OK);
      expect(f.call(fn, 1)).toBe(Status.OK);
      expect(f.call(fn, 2)).toBe(Status.UNIMPLEMENTED);
      expect(f.call(fn, 3)).toBe(Status.UNIMPLEMENTED);
      expect(f.call(fn, 9999)).toBe(Status.BAD_ARGUMENT);
      expect(f.root(fn, 0)).toBe(Status.BAD_ARGUMENT);
    }
  });

  test("proxy_send_local_response checks status, headers and pointers", () => {
    const f = fixture();
    const headers = f.mem.put(encodePairs(["x-why", "denied"]));
    expect(f.call("proxy_send_local_response", 403, ...f.mem.put("no way"), ...f.mem.put("body"), ...headers, -1)).toBe(Status.OK);
    expect(f.call("proxy_send_local_response", 42, ...f.mem.put("d"), 0, 0, 0, 0, -1)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_send_local_response", 403, ...f.mem.put("d"), 0, 0, ...f.mem.put(new Uint8Array([9, 9])), -1)).toBe(
      Status.BAD_ARGUMENT,
    );
    expect(f.call("proxy_send_local_response", 403, OOB, 8, 0, 0, 0, 0, -1)).toBe(Status.INVALID_MEMORY_ACCESS);
    expect(f.root("proxy_send_local_response", 403, 0, 0, 0, 0, 0, 0, -1)).toBe(Status.BAD_ARGUMENT);
  });

  test("proxy_get_status outside a callout response is NOT_FOUND", () => {
    const f = fixture();
    expect(f.call("proxy_get_status", f.mem.slot(), f.mem.slot(), f.mem.slot())).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_get_status", OOB, f.mem.slot(), f.mem.slot())).toBe(Status.INVALID_MEMORY_ACCESS);
  });
});

describe("callouts", () => {
  test("proxy_http_call validates headers and upstream, returns a token, adds content-length", () => {
    const f = fixture({ httpCallUpstreams: ["auth"] });
    const tok = f.mem.slot();
    const good = f.mem.put(encodePairs([":method", "POST", ":path", "/check", ":authority", "auth"]));
    const bad = f.mem.put(encodePairs([":method", "GET", ":authority", "auth"]));
    const empty = f.mem.put(encodePairs([]));
    const body = f.mem.put("payload");
    expect(f.call("proxy_http_call", ...f.mem.put("auth"), ...bad, 0, 0, ...empty, 500, tok)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_http_call", ...f.mem.put("other"), ...good, 0, 0, ...empty, 500, tok)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_http_call", ...f.mem.put("auth"), ...good, ...body, ...empty, 500, OOB)).toBe(
      Status.INVALID_MEMORY_ACCESS,
    );
    expect(f.call("proxy_http_call", ...f.mem.put("auth"), ...good, ...body, ...empty, 500, tok)).toBe(Status.OK);
    expect(f.mem.u32(tok) % 4).toBe(0);
    const calls = f.vm.drainEffects().httpCalls;
    expect(calls.length).toBe(1);
    expect(calls[0]!.upstream).toBe("auth");
    expect(calls[0]!.headers).toEqual([":method", "POST", ":path", "/check", ":authority", "auth", "content-length", "7"]);
    expect(new TextDecoder().decode(calls[0]!.body)).toBe("payload");
    expect(calls[0]!.timeoutMs).toBe(500);
  });

  test("proxy_grpc_call: gRPC over HTTP/2 as a callout, ids ≡ 1 mod 4, cancel and close end a pending call", () => {
    const f = fixture({ httpCallUpstreams: ["authz:9000"] });
    const tok = f.mem.slot();
    const up = f.mem.put("authz:9000");
    const svc = f.mem.put("envoy.service.auth.v3.Authorization");
    const method = f.mem.put("Check");
    const md = f.mem.put(encodePairs(["X-Tenant", "t1", ":path", "/evil", "te", "x"]));
    const msg = f.mem.put(new Uint8Array([1, 2, 3]));
    expect(f.call("proxy_grpc_call", ...up, ...svc, ...method, ...md, ...msg, 250, tok)).toBe(Status.OK);
    const id = f.mem.u32(tok)!;
    expect(id % 4).toBe(1);
    const [c] = f.vm.drainEffects().httpCalls;
    expect(c!.token).toBe(id);
    expect(c!.upstream).toBe("authz:9000");
    // the framing is the host's; the plugin's metadata follows (pseudo-headers and te are not its to set)
    expect(c!.headers).toEqual([
      ":method", "POST", ":path", "/envoy.service.auth.v3.Authorization/Check", ":authority", "authz:9000",
      "content-type", "application/grpc", "te", "trailers", "grpc-timeout", "250m", "x-tenant", "t1",
    ]);
    expect([...c!.body]).toEqual([0, 0, 0, 0, 3, 1, 2, 3]);
    expect(f.call("proxy_grpc_cancel", id)).toBe(Status.OK);
    expect(f.call("proxy_grpc_cancel", id)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_grpc_call", ...up, ...svc, ...method, ...md, ...msg, 0, tok)).toBe(Status.OK);
    expect(f.call("proxy_grpc_close", f.mem.u32(tok)!)).toBe(Status.OK);
    // bad input
    expect(f.call("proxy_grpc_call", ...f.mem.put("other:1"), ...svc, ...method, ...md, ...msg, 0, tok)).toBe(Status.PARSE_FAILURE);
    expect(f.call("proxy_grpc_call", ...up, ...f.mem.put(""), ...method, ...md, ...msg, 0, tok)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_grpc_call", ...up, ...svc, ...f.mem.put("a/b"), ...md, ...msg, 0, tok)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_grpc_call", ...up, ...svc, ...method, ...md, ...msg, 0, OOB)).toBe(Status.INVALID_MEMORY_ACCESS);
    expect(f.call("proxy_grpc_call", OOB, 8, ...svc, ...method, ...md, ...msg, 0, tok)).toBe(Status.INVALID_MEMORY_ACCESS);
    // an HTTP call's id is not a gRPC call's
    expect(f.call("proxy_grpc_cancel", 4)).toBe(Status.NOT_FOUND);
    // no import has more parameters than the host's wrapper passes on
    expect(Math.max(...Object.values(ENV_IMPORTS).map((t) => t.params.length))).toBeLessThanOrEqual(12);
  });

  test("proxy_grpc_stream: ids ≡ 2 mod 4; send frames messages; close half-closes; cancel ends it", () => {
    const f = fixture({ httpCallUpstreams: ["authz:9000"] });
    f.vm.drainEffects();
    const tok = f.mem.slot();
    const up = f.mem.put("authz:9000");
    const svc = f.mem.put("pkg.Chat");
    const method = f.mem.put("Talk");
    const md = f.mem.put(encodePairs(["x-tenant", "t1"]));
    expect(f.call("proxy_grpc_stream", ...up, ...svc, ...method, ...md, tok)).toBe(Status.OK);
    const id = f.mem.u32(tok)!;
    expect(id % 4).toBe(2);
    expect(f.call("proxy_grpc_send", id, ...f.mem.put("hi"), 0)).toBe(Status.OK);
    expect(f.call("proxy_grpc_close", id)).toBe(Status.OK);
    expect(f.call("proxy_grpc_send", id, ...f.mem.put("late"), 0)).toBe(Status.BAD_ARGUMENT); // half-closed
    const ops = f.vm.drainEffects().grpcStreams;
    expect(ops.map((o) => o.op)).toEqual(["open", "send", "close"]);
    const open = ops[0] as Extract<(typeof ops)[number], { op: "open" }>;
    expect(open.headers).toEqual([":method", "POST", ":path", "/pkg.Chat/Talk", ":authority", "authz:9000", "content-type", "application/grpc", "te", "trailers", "x-tenant", "t1"]);
    expect([...(ops[1] as Extract<(typeof ops)[number], { op: "send" }>).message]).toEqual([0, 0, 0, 0, 2, 104, 105]);
    expect(f.call("proxy_grpc_cancel", id)).toBe(Status.OK);
    expect(f.call("proxy_grpc_cancel", id)).toBe(Status.NOT_FOUND);
    expect(f.vm.drainEffects().grpcStreams).toEqual([{ token: id, op: "cancel" }]);
    // bad ids and arguments
    expect(f.call("proxy_grpc_send", id + 4, ...f.mem.put("x"), 0)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_grpc_send", 5, ...f.mem.put("x"), 0)).toBe(Status.BAD_ARGUMENT); // a call's id
    expect(f.call("proxy_grpc_send", id, OOB, 8, 0)).toBe(Status.INVALID_MEMORY_ACCESS);
    expect(f.call("proxy_grpc_stream", ...f.mem.put("other:1"), ...svc, ...method, ...md, tok)).toBe(Status.PARSE_FAILURE);
    expect(f.call("proxy_grpc_stream", ...up, ...svc, ...f.mem.put(""), ...md, tok)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_grpc_stream", ...up, ...svc, ...method, ...md, OOB)).toBe(Status.INVALID_MEMORY_ACCESS);
  });
});

describe("shared data and queues", () => {
  test("get/set with compare-and-swap, scoped by VM id", () => {
    const shared = new SharedState();
    const f = fixture({ shared, vmId: "vm-a" });
    const g = fixture({ shared, vmId: "vm-b" });
    const p = f.mem.slot();
    const n = f.mem.slot();
    const cas = f.mem.slot();
    const key = f.mem.put("token");
    expect(f.call("proxy_get_shared_data", ...key, p, n, cas)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_set_shared_data", ...key, ...f.mem.put("v1"), 0)).toBe(Status.OK);
    expect(f.call("proxy_get_shared_data", ...key, p, n, cas)).toBe(Status.OK);
    expect(f.mem.text(p, n)).toBe("v1");
    const c1 = f.mem.u32(cas);
    expect(c1).not.toBe(0);
    expect(f.call("proxy_set_shared_data", ...key, ...f.mem.put("v2"), c1 + 1)).toBe(Status.CAS_MISMATCH);
    expect(f.call("proxy_set_shared_data", ...key, ...f.mem.put("v2"), c1)).toBe(Status.OK);
    expect(f.call("proxy_set_shared_data", ...key, ...f.mem.put("v3"), c1)).toBe(Status.CAS_MISMATCH); // token moved
    expect(f.call("proxy_get_shared_data", ...key, p, n, cas)).toBe(Status.OK);
    expect(f.mem.text(p, n)).toBe("v2");
    expect(f.mem.u32(cas)).not.toBe(c1);
    const gk = g.mem.put("token");
    expect(g.call("proxy_get_shared_data", ...gk, g.mem.slot(), g.mem.slot(), g.mem.slot())).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_get_shared_data", OOB, 4, p, n, cas)).toBe(Status.INVALID_MEMORY_ACCESS);
  });

  test("register, resolve, enqueue (wakes the owner), dequeue", async () => {
    const shared = new SharedState();
    const woken: number[] = [];
    const f = fixture({ shared, vmId: "vm-q", onQueueReady: (id) => woken.push(id) });
    const id = f.mem.slot();
    const id2 = f.mem.slot();
    const p = f.mem.slot();
    const n = f.mem.slot();
    expect(f.root("proxy_register_shared_queue", ...f.mem.put("jobs"), id)).toBe(Status.OK);
    const q = f.mem.u32(id);
    expect(f.call("proxy_resolve_shared_queue", 0, 0, ...f.mem.put("jobs"), id2)).toBe(Status.OK);
    expect(f.mem.u32(id2)).toBe(q);
    expect(f.call("proxy_resolve_shared_queue", ...f.mem.put("vm-q"), ...f.mem.put("jobs"), id2)).toBe(Status.OK);
    expect(f.call("proxy_resolve_shared_queue", ...f.mem.put("other"), ...f.mem.put("jobs"), id2)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_dequeue_shared_queue", q, p, n)).toBe(Status.EMPTY);
    expect(f.call("proxy_enqueue_shared_queue", q, ...f.mem.put("job-1"))).toBe(Status.OK);
    await Promise.resolve();
    expect(woken).toEqual([q]);
    expect(f.call("proxy_dequeue_shared_queue", q, p, n)).toBe(Status.OK);
    expect(f.mem.text(p, n)).toBe("job-1");
    expect(f.call("proxy_enqueue_shared_queue", 999, ...f.mem.put("x"))).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_dequeue_shared_queue", 999, p, n)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_dequeue_shared_queue", q, OOB, n)).toBe(Status.INVALID_MEMORY_ACCESS);
  });
});

describe("metrics", () => {
  test("define, increment, record, get for counters, gauges and histograms", () => {
    const f = fixture();
    const id = f.mem.slot();
    const v = f.mem.slot();
    expect(f.root("proxy_define_metric", 0, ...f.mem.put("requests"), id)).toBe(Status.OK);
    const counter = f.mem.u32(id);
    expect(f.call("proxy_increment_metric", counter, 5n)).toBe(Status.OK);
    expect(f.call("proxy_record_metric", counter, 2n)).toBe(Status.OK); // adds to a counter (Envoy)
    expect(f.call("proxy_get_metric", counter, v)).toBe(Status.OK);
    expect(f.mem.u64(v)).toBe(7n);
    expect(f.call("proxy_increment_metric", counter, -1n)).toBe(Status.BAD_ARGUMENT);
    expect(f.root("proxy_define_metric", 0, ...f.mem.put("requests"), id)).toBe(Status.OK);
    expect(f.mem.u32(id)).toBe(counter); // same name, same metric
    expect(f.root("proxy_define_metric", 1, ...f.mem.put("requests"), id)).toBe(Status.BAD_ARGUMENT); // other type
    expect(f.root("proxy_define_metric", 1, ...f.mem.put("inflight"), id)).toBe(Status.OK);
    const gauge = f.mem.u32(id);
    expect(f.call("proxy_record_metric", gauge, 7n)).toBe(Status.OK);
    expect(f.call("proxy_increment_metric", gauge, -2n)).toBe(Status.OK);
    expect(f.call("proxy_get_metric", gauge, v)).toBe(Status.OK);
    expect(f.mem.u64(v)).toBe(5n);
    expect(f.root("proxy_define_metric", 2, ...f.mem.put("latency_ms"), id)).toBe(Status.OK);
    const hist = f.mem.u32(id);
    expect(f.call("proxy_record_metric", hist, 12n)).toBe(Status.OK);
    expect(f.call("proxy_increment_metric", hist, 1n)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_get_metric", hist, v)).toBe(Status.BAD_ARGUMENT);
    expect(f.root("proxy_define_metric", 3, ...f.mem.put("bad"), id)).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_get_metric", 0xfff0, v)).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_get_metric", counter, OOB)).toBe(Status.INVALID_MEMORY_ACCESS);
    const updates = f.vm.drainEffects().metrics;
    expect(updates.map((u) => [u.name, u.value, u.samples])).toEqual([
      ["requests", 7, []],
      ["inflight", 5, []],
      ["latency_ms", 0, [12]],
    ]);
  });
});

describe("properties", () => {
  test("get from the stream and plugin, set and read back, NOT_FOUND", () => {
    const f = fixture();
    const p = f.mem.slot();
    const n = f.mem.slot();
    const get = (path: string, ctx: "stream" | "root" = "stream") => {
      const st = (ctx === "stream" ? f.call : f.root)("proxy_get_property", ...f.mem.put(path), p, n);
      return st === Status.OK ? f.mem.text(p, n) : st;
    };
    expect(get("plugin_root_id")).toBe("test-root");
    expect(get("plugin_root_id", "root")).toBe("test-root");
    expect(get("plugin_name")).toBe("test-plugin");
    expect(get("plugin_vm_id")).toBe("vm");
    expect(get("request\0path")).toBe("/a?b=1");
    expect(get("request\0path\0")).toBe("/a?b=1");
    expect(get("request\0path", "root")).toBe(Status.NOT_FOUND);
    expect(get("source\0address")).toBe("10.1.1.1:5000");
    expect(get("source\0principal")).toBe("spiffe://td/ns/a/sa/b");
    expect(get("node\0metadata\0WORKLOAD_NAME")).toBe("waypoint");
    expect(get("no\0such")).toBe(Status.NOT_FOUND);
    expect(f.call("proxy_set_property", ...f.mem.put("my\0flag"), ...f.mem.put("on"))).toBe(Status.OK);
    expect(get("my\0flag")).toBe("on");
    expect(get("my\0flag", "root")).toBe(Status.NOT_FOUND); // per context
    expect(f.call("proxy_set_property", 0, 0, ...f.mem.put("x"))).toBe(Status.BAD_ARGUMENT);
    expect(f.call("proxy_get_property", OOB, 5, p, n)).toBe(Status.INVALID_MEMORY_ACCESS);
  });
});

describe("toolchain extras", () => {
  test("emscripten and AssemblyScript helpers", () => {
    const f = fixture();
    expect(f.vm.callExport("t.emscripten_notify_memory_growth", [0])).toBeUndefined();
    expect(f.call("pthread_equal", 3, 3)).toBe(1);
    expect(f.call("pthread_equal", 3, 4)).toBe(0);
    expect(typeof f.vm.callExport("t.seed", [])).toBe("number");
    // AssemblyScript strings are UTF-16 with the byte length at ptr-4
    const text = "boom";
    const buf = new Uint8Array(4 + text.length * 2);
    new DataView(buf.buffer).setUint32(0, text.length * 2, true);
    for (let i = 0; i < text.length; i++) buf[4 + i * 2] = text.charCodeAt(i);
    const [ptr] = f.mem.put(buf);
    f.vm.callExport("t.trace", [ptr + 4, 1, 1.5, 0, 0, 0, 0]);
    expect(logsOf(f.vm.drainEffects())).toEqual(["trace: boom 1.5"]);
    expect(() => f.vm.callExport("t.abort", [ptr + 4, 0, 12, 3])).toThrow(ModuleAbort);
    expect(logsOf(f.vm.drainEffects())[0]).toContain("abort: boom");
  });
});

describe("WASI", () => {
  test("fd_write goes to the log (stdout INFO, stderr ERROR), other fds are BADF", () => {
    const f = fixture();
    const iov = (s: string) => {
      const [p, n] = f.mem.put(s);
      const v = new Uint8Array(8);
      new DataView(v.buffer).setUint32(0, p, true);
      new DataView(v.buffer).setUint32(4, n, true);
      return f.mem.put(v)[0];
    };
    const written = f.mem.slot();
    expect(f.call("wasi_fd_write", 1, iov("hello stdout\n"), 1, written)).toBe(Errno.SUCCESS);
    expect(f.mem.u32(written)).toBe(13);
    expect(f.call("wasi_fd_write", 2, iov("oops"), 1, written)).toBe(Errno.SUCCESS);
    expect(f.call("wasi_fd_write", 3, iov("x"), 1, written)).toBe(Errno.BADF);
    expect(f.call("wasi_fd_write", 1, OOB, 1, written)).toBe(Errno.FAULT);
    expect(f.vm.drainEffects().logs).toEqual([
      { level: LogLevel.INFO, message: "hello stdout" },
      { level: LogLevel.ERROR, message: "oops" },
    ]);
  });

  test("clocks, randomness, environment, args, stubs", () => {
    const f = fixture({ env: { A: "1", BB: "xy" } });
    const s = f.mem.slot();
    f.mem.slot();
    expect(f.call("wasi_clock_time_get", 0, 0n, s)).toBe(Errno.SUCCESS);
    expect(Math.abs(Number(f.mem.u64(s) / 1_000_000n) - Date.now())).toBeLessThan(60_000);
    expect(f.call("wasi_clock_time_get", 1, 0n, s)).toBe(Errno.SUCCESS);
    expect(f.call("wasi_clock_time_get", 7, 0n, s)).toBe(Errno.NOTSUP);
    expect(f.call("wasi_clock_res_get", 0, s)).toBe(Errno.SUCCESS);
    // the CPU-time clocks (Linux): the thread's advances with work done here, and not while it sleeps
    const cpuNs = (id: number) => (expect(f.call("wasi_clock_time_get", id, 0n, s)).toBe(Errno.SUCCESS), Number(f.mem.u64(s)));
    const thread0 = cpuNs(3);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    expect(cpuNs(3) - thread0).toBeLessThan(5e6);
    let used = 0;
    const giveUp = Date.now() + 5000;
    do used = cpuNs(3) - thread0;
    while (used < 3e6 && Date.now() < giveUp);
    expect(used).toBeGreaterThanOrEqual(3e6);
    expect(cpuNs(2)).toBeGreaterThanOrEqual(cpuNs(3));
    expect(f.call("wasi_clock_res_get", 3, s)).toBe(Errno.SUCCESS);
    const [rp] = f.mem.put(new Uint8Array(64));
    expect(f.call("wasi_random_get", rp, 64)).toBe(Errno.SUCCESS);
    expect(f.vm.mem.read(rp, 64)!.some((b) => b !== 0)).toBe(true);
    expect(f.call("wasi_random_get", rp, 70000)).toBe(Errno.INVAL);
    const count = f.mem.slot();
    const size = f.mem.slot();
    expect(f.call("wasi_environ_sizes_get", count, size)).toBe(Errno.SUCCESS);
    expect([f.mem.u32(count), f.mem.u32(size)]).toEqual([2, 4 + 6]);
    const [ptrs] = f.mem.put(new Uint8Array(8));
    const [buf] = f.mem.put(new Uint8Array(16));
    expect(f.call("wasi_environ_get", ptrs, buf)).toBe(Errno.SUCCESS);
    expect(new TextDecoder().decode(f.vm.mem.read(f.mem.u32(ptrs + 4), 5)!)).toBe("BB=xy");
    expect(f.call("wasi_args_sizes_get", count, size)).toBe(Errno.SUCCESS);
    expect([f.mem.u32(count), f.mem.u32(size)]).toEqual([0, 0]);
    expect(f.call("wasi_fd_prestat_get", 3, s)).toBe(Errno.BADF);
    expect(f.call("wasi_fd_fdstat_get", 1, f.mem.put(new Uint8Array(24))[0])).toBe(Errno.SUCCESS);
    expect(f.call("wasi_path_open", 3, 0, 0, 0, 0, 0n, 0n, 0, s)).toBe(Errno.NOSYS);
    expect(f.call("wasi_sched_yield")).toBe(Errno.SUCCESS);
    expect(f.call("wasi_poll_oneoff", 0, 0, 1, s)).toBe(Errno.SUCCESS);
    expect(f.mem.u32(s)).toBe(0);
    expect(() => f.vm.callExport("t.wasi_proc_exit", [3])).toThrow(ProcExit);
  });
});
