// The three example filters: they compile with the pinned toolchain, have exactly the expected
// ABI surface, and do what their header comments promise when driven at the ABI level by the
// test fixture in ./test-driver.ts (not the product host).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildExamples, sha256Hex, type BuiltExample } from "./index.ts";
import { ABI_SIGNATURES, AbiDriver, MapType, ProcExit, Status, type HeaderList } from "./test-driver.ts";

const BASELINE_IMPORTS = [
  "env.proxy_log",
  "env.proxy_get_property",
  "env.proxy_get_buffer_bytes",
  "env.proxy_set_effective_context",
  "wasi_unstable.proc_exit",
];

const EXPECTED_IMPORTS: Record<string, string[]> = {
  "add-header": [...BASELINE_IMPORTS, "env.proxy_add_header_map_value"],
  "deny-by-header": [
    ...BASELINE_IMPORTS,
    "env.proxy_get_header_map_value",
    "env.proxy_send_local_response",
    "env.proxy_define_metric",
    "env.proxy_increment_metric",
  ],
  "http-callout": [
    ...BASELINE_IMPORTS,
    "env.proxy_get_header_map_value",
    "env.proxy_replace_header_map_value",
    "env.proxy_remove_header_map_value",
    "env.proxy_send_local_response",
    "env.proxy_continue_stream",
    "env.proxy_http_call",
  ],
};

// Exports come from plugins/examples/common/assembly/proxy.ts (the SDK's routing, leak-free) plus
// what AssemblyScript 0.14's runtime always exports.
const EXPORTS = [
  "memory",
  "__alloc",
  "__retain",
  "__release",
  "__collect",
  "__rtti_base",
  "malloc",
  "free",
  "proxy_abi_version_0_2_0",
  "proxy_on_vm_start",
  "proxy_validate_configuration",
  "proxy_on_configure",
  "proxy_on_tick",
  "proxy_on_queue_ready",
  "proxy_on_http_call_response",
  "proxy_on_context_create",
  "proxy_on_done",
  "proxy_on_log",
  "proxy_on_delete",
  "proxy_on_request_headers",
  "proxy_on_request_body",
  "proxy_on_request_trailers",
  "proxy_on_request_metadata",
  "proxy_on_response_headers",
  "proxy_on_response_body",
  "proxy_on_response_trailers",
  "proxy_on_response_metadata",
];

// Callbacks a host drives for these filters, with their ABI signatures checked.
const CHECKED_EXPORTS = [
  "malloc",
  "proxy_abi_version_0_2_0",
  "proxy_on_context_create",
  "proxy_on_vm_start",
  "proxy_on_configure",
  "proxy_on_tick",
  "proxy_on_request_headers",
  "proxy_on_request_body",
  "proxy_on_request_trailers",
  "proxy_on_response_headers",
  "proxy_on_response_body",
  "proxy_on_response_trailers",
  "proxy_on_http_call_response",
  "proxy_on_done",
  "proxy_on_log",
  "proxy_on_delete",
];

let outDir = "";
const built = new Map<string, BuiltExample>();

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), "mesh-plugin-examples-"));
  for (const b of await buildExamples(outDir)) built.set(b.example.name, b);
}, 600_000);

afterAll(async () => {
  if (outDir !== "") await rm(outDir, { recursive: true, force: true });
});

function wasmOf(name: string): Uint8Array {
  const b = built.get(name);
  if (b === undefined) throw new Error(`example ${name} was not built`);
  return b.wasm;
}

function driver(name: string, rootId = name, opts: { metricsStatus?: number } = {}): AbiDriver {
  return AbiDriver.create(wasmOf(name), { rootId, ...opts });
}

/**
 * Runs many full streams through one VM (create → request headers → [callout] → response headers
 * → done/log/delete, reconfiguring now and then) and reports the module's memory size after 100
 * and after 3000. The 0.1.8 SDK's own exports leak every stream context under AssemblyScript 0.14,
 * which grows memory by a page every few hundred streams here.
 */
function memoryAfterStreams(name: string, config: string, afterRequest: (d: AbiDriver, i: number) => void): {
  after100: number;
  after3000: number;
} {
  const d = driver(name);
  expect(d.startRoot(1, config)).toBe(true);
  const memory = d.instance.exports.memory as WebAssembly.Memory;
  let after100 = 0;
  for (let i = 0; i < 3000; i++) {
    const stream = i + 2;
    if (i % 100 === 0) {
      expect(d.configure(1, `{"nonsense": true}`)).toBe(false);
      expect(d.configure(1, config)).toBe(true);
    }
    d.call("proxy_on_context_create", stream, 1);
    d.requestHeaders(stream, [...REQUEST, ["x-deny", i % 2 === 0 ? "1" : ""], ["authorization", "a"]]);
    afterRequest(d, i);
    d.responseHeaders(stream, [[":status", "200"]]);
    d.finishStream(stream);
    // Keep the fixture's own records from growing; only the module's memory is measured.
    d.logs.length = 0;
    d.hostcalls.length = 0;
    d.localResponses.length = 0;
    d.continued.length = 0;
    d.effectiveContexts.length = 0;
    if (i === 99) after100 = memory.buffer.byteLength;
  }
  return { after100, after3000: memory.buffer.byteLength };
}

const REQUEST: HeaderList = [
  [":method", "GET"],
  [":path", "/orders"],
  [":authority", "shop.default.svc.cluster.local"],
  [":scheme", "http"],
];

describe("example build", () => {
  test("buildExamples writes each module and reports its sha256", async () => {
    expect([...built.keys()].sort()).toEqual(["add-header", "deny-by-header", "http-callout"]);
    for (const b of built.values()) {
      const onDisk = new Uint8Array(await readFile(b.outFile));
      expect(b.wasm).toEqual(onDisk);
      expect(b.sha256).toBe(sha256Hex(onDisk));
      expect(b.outFile).toBe(join(outDir, `${b.example.name}.wasm`));
      expect(WebAssembly.validate(b.wasm)).toBe(true);
    }
  });

  for (const name of ["add-header", "deny-by-header", "http-callout"]) {
    test(`${name}: imports exactly the expected host functions with ABI signatures`, () => {
      const shape = AbiDriver.create(wasmOf(name), { rootId: name }).shape;
      expect([...shape.imports.keys()].sort()).toEqual([...(EXPECTED_IMPORTS[name] ?? [])].sort());
      for (const [imp, signature] of shape.imports) expect({ imp, signature }).toEqual({ imp, signature: ABI_SIGNATURES[imp] as never });
    });

    test(`${name}: exports the ABI marker, malloc and the callbacks with ABI signatures`, () => {
      const shape = AbiDriver.create(wasmOf(name), { rootId: name }).shape;
      expect([...shape.exports.keys()].sort()).toEqual([...EXPORTS].sort());
      expect(shape.exports.get("memory")).toBe("memory");
      for (const exp of CHECKED_EXPORTS) {
        expect({ exp, signature: shape.exports.get(exp) }).toEqual({ exp, signature: ABI_SIGNATURES[exp] as never });
      }
      expect([...shape.exports.keys()].filter((e) => e.startsWith("proxy_abi_version_"))).toEqual(["proxy_abi_version_0_2_0"]);
      // Top-level registerRootContext runs from the start section (no _initialize/_start).
      expect(shape.hasStartSection).toBe(true);
    });
  }
});

describe("add-header", () => {
  test("defaults with an empty configuration (the 0.1.8 empty-config trap is worked around)", () => {
    const d = driver("add-header");
    expect(d.startRoot(1, "")).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    expect(d.requestHeaders(2, REQUEST)).toBe(0);
    expect(d.header(MapType.REQUEST_HEADERS, "x-wasm-filter")).toBe("add-header");
    expect(d.responseHeaders(2, [[":status", "200"]])).toBe(0);
    expect(d.header(MapType.RESPONSE_HEADERS, "x-hello")).toBe("world");
    d.finishStream(2);
    expect(d.logs.filter((l) => l.level >= 4)).toEqual([]);
  });

  test("uses the configured names and values, adding rather than replacing", () => {
    const d = driver("add-header");
    const config = { header: "x-hello", value: "mesh \"quoted\" \u00e9", request_header: "x-from", request_value: "waypoint" };
    expect(d.startRoot(1, JSON.stringify(config))).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    d.requestHeaders(2, [...REQUEST, ["x-from", "client"]]);
    expect(d.headerValues(MapType.REQUEST_HEADERS, "x-from")).toEqual(["client", "waypoint"]);
    d.responseHeaders(2, [[":status", "200"]]);
    expect(d.header(MapType.RESPONSE_HEADERS, "x-hello")).toBe("mesh \"quoted\" \u00e9");
  });

  test("a reconfiguration applies to later streams", () => {
    const d = driver("add-header");
    expect(d.startRoot(1, `{"value":"one"}`)).toBe(true);
    expect(d.configure(1, `{"value":"two"}`)).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    d.responseHeaders(2, [[":status", "200"]]);
    expect(d.header(MapType.RESPONSE_HEADERS, "x-hello")).toBe("two");
  });

  test("frees every stream: memory is the same after 100 and after 3000 streams", () => {
    expect(memoryAfterStreams("add-header", "", () => {})).toEqual({ after100: 65536, after3000: 65536 });
  });

  test("a stream logs nothing, not even at debug (StreamContext silences the SDK's per-stream messages)", () => {
    const d = driver("add-header");
    expect(d.startRoot(1, "")).toBe(true);
    d.logs.length = 0;
    for (const id of [2, 3]) {
      d.call("proxy_on_context_create", id, 1);
      d.requestHeaders(id, REQUEST);
      d.responseHeaders(id, [[":status", "200"]]);
      d.finishStream(id);
    }
    expect(d.logs).toEqual([]);
  });

  test("refuses invalid configurations from proxy_on_configure", () => {
    const bad = [
      `{"header":"X-Upper"}`,
      `{"header":":path"}`,
      `{"value":"a\\r\\nx-injected: 1"}`,
      `{"heder":"x-typo"}`,
      `{"header":5}`,
      `not json`,
      `["x-hello"]`,
      `{"header":"x-a",}`,
      `{"header":"x-a"} trailing`,
    ];
    for (const config of bad) {
      const d = driver("add-header");
      expect({ config, ok: d.startRoot(1, config) }).toEqual({ config, ok: false });
      expect(d.logs.some((l) => l.level === 4 && l.message.includes("configuration"))).toBe(true);
    }
  });

  test("callbacks for unknown contexts are logged and answered instead of trapping", () => {
    const d = driver("add-header");
    expect(d.requestHeaders(7, REQUEST)).toBe(0);
    expect(d.call("proxy_on_configure", 9, 0)).toBe(0);
    expect(d.call("proxy_on_done", 7)).toBe(1);
    d.call("proxy_on_delete", 7);
    expect(d.logs.filter((l) => l.level === 4).map((l) => l.message)).toEqual([
      "proxy_on_request_headers: unknown context 7",
      "proxy_on_configure: unknown context 9",
      "proxy_on_done: unknown context 7",
      "proxy_on_delete: unknown context 7",
    ]);
    // A stream whose root was never created gets it created on the fly (as the SDK does).
    d.call("proxy_on_context_create", 3, 1);
    expect(d.requestHeaders(3, REQUEST)).toBe(0);
    expect(d.header(MapType.REQUEST_HEADERS, "x-wasm-filter")).toBe("add-header");
  });

  test("registers under the empty root id too, and aborts on an unknown one", () => {
    expect(driver("add-header", "").startRoot(1, "")).toBe(true);
    const d = driver("add-header", "something-else");
    expect(() => d.call("proxy_on_context_create", 1, 0)).toThrow(ProcExit);
    expect(d.logs.some((l) => l.level === 5 && l.message.includes("Missing root context factory"))).toBe(true);
  });
});

describe("deny-by-header", () => {
  test("lets requests without the header through and counts nothing", () => {
    const d = driver("deny-by-header");
    expect(d.startRoot(1, "")).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    expect(d.requestHeaders(2, REQUEST)).toBe(0);
    expect(d.localResponses).toEqual([]);
    expect([...d.metrics.values()]).toEqual([{ type: 0, name: "deny_by_header_denied_total", value: 0n }]);
  });

  test("denies when the header is present (even empty) with a local 403 and counts it", () => {
    const d = driver("deny-by-header");
    expect(d.startRoot(1, "")).toBe(true);
    for (const [stream, value] of [[2, "yes"], [3, ""]] as const) {
      d.call("proxy_on_context_create", stream, 1);
      expect(d.requestHeaders(stream, [...REQUEST, ["x-deny", value]])).toBe(1);
    }
    expect(d.localResponses).toEqual([2, 3].map((context) => ({
      context,
      status: 403,
      details: "deny_by_header",
      body: "request denied by deny-by-header\n",
      headers: [["content-type", "text/plain; charset=utf-8"]],
      grpcStatus: -1,
    })));
    expect([...d.metrics.values()]).toEqual([{ type: 0, name: "deny_by_header_denied_total", value: 2n }]);
  });

  test("with a configured value, denies only on an exact match", () => {
    const d = driver("deny-by-header");
    const config = { header: "x-user", value: "mallory", status: 401, body: "no\n", metric: "denied" };
    expect(d.startRoot(1, JSON.stringify(config))).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    expect(d.requestHeaders(2, [...REQUEST, ["x-user", "alice"]])).toBe(0);
    d.call("proxy_on_context_create", 3, 1);
    expect(d.requestHeaders(3, [...REQUEST, ["x-user", "mallory"]])).toBe(1);
    expect(d.localResponses.map((r) => [r.context, r.status, r.body])).toEqual([[3, 401, "no\n"]]);
    expect([...d.metrics.values()]).toEqual([{ type: 0, name: "denied", value: 1n }]);
  });

  test("frees every stream: memory is the same after 100 and after 3000 streams", () => {
    expect(memoryAfterStreams("deny-by-header", "", () => {})).toEqual({ after100: 65536, after3000: 65536 });
  });

  test("still denies when the host has no metrics", () => {
    const d = driver("deny-by-header", "deny-by-header", { metricsStatus: Status.UNIMPLEMENTED });
    expect(d.startRoot(1, "")).toBe(true);
    expect(d.logs.some((l) => l.level === 3 && l.message.includes("cannot define metric"))).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    expect(d.requestHeaders(2, [...REQUEST, ["x-deny", "1"]])).toBe(1);
    expect(d.localResponses.map((r) => r.status)).toEqual([403]);
    expect(d.hostcalls).not.toContain("proxy_increment_metric");
  });

  test("refuses bad configurations", () => {
    for (const config of [`{"status":99}`, `{"status":403.5}`, `{"header":"X-Deny"}`, `{"metric":""}`, `{"value":1}`]) {
      expect({ config, ok: driver("deny-by-header").startRoot(1, config) }).toEqual({ config, ok: false });
    }
  });
});

describe("http-callout", () => {
  const CONFIG = JSON.stringify({ upstream: "authz.default.svc.cluster.local:8080", path: "/check" });

  function pausedRequest(extra: HeaderList = []): { d: AbiDriver; token: number } {
    const d = driver("http-callout");
    expect(d.startRoot(1, CONFIG)).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    expect(d.requestHeaders(2, [...REQUEST, ["authorization", "Bearer t0k"], ...extra], false)).toBe(1);
    expect(d.httpCalls).toHaveLength(1);
    return { d, token: d.httpCalls[0]?.token as number };
  }

  test("a configuration is required (empty configuration is refused)", () => {
    expect(driver("http-callout").startRoot(1, "")).toBe(false);
    expect(driver("http-callout").startRoot(1, `{"path":"/check"}`)).toBe(false);
  });

  test("pauses the request and calls the configured mesh service", () => {
    const { d } = pausedRequest([["x-auth-user", "spoofed"], ["cookie", "c=1"]]);
    expect(d.httpCalls[0]).toEqual({
      context: 2,
      token: 4,
      upstream: "authz.default.svc.cluster.local:8080",
      headers: [
        [":method", "GET"],
        [":path", "/check"],
        [":authority", "authz.default.svc.cluster.local:8080"],
        ["x-original-method", "GET"],
        ["x-original-path", "/orders"],
        ["authorization", "Bearer t0k"],
      ],
      body: "",
      trailers: [],
      timeoutMs: 1000,
    });
    // Body and trailers are held while the callout is pending.
    expect(d.call("proxy_on_request_body", 2, 10, 0)).toBe(2);
    expect(d.call("proxy_on_request_trailers", 2, 1)).toBe(1);
    expect(d.continued).toEqual([]);
  });

  test("on 200 copies x-auth-user into the request (replacing a client copy) and continues", () => {
    const { d, token } = pausedRequest([["x-auth-user", "spoofed"]]);
    d.httpCallResponse(1, token, [[":status", "200"], ["x-auth-user", "alice"]]);
    expect(d.effectiveContexts).toContain(2);
    expect(d.headerValues(MapType.REQUEST_HEADERS, "x-auth-user")).toEqual(["alice"]);
    expect(d.continued).toEqual([{ context: 2, stream: 0 }]);
    expect(d.localResponses).toEqual([]);
    expect(d.call("proxy_on_request_body", 2, 10, 1)).toBe(0);
  });

  test("on 200 without an identity removes the client's copy and continues", () => {
    const { d, token } = pausedRequest([["x-auth-user", "spoofed"]]);
    d.httpCallResponse(1, token, [[":status", "200"]]);
    expect(d.headerValues(MapType.REQUEST_HEADERS, "x-auth-user")).toEqual([]);
    expect(d.continued).toEqual([{ context: 2, stream: 0 }]);
  });

  test("a non-200 callout answer becomes a local 403", () => {
    const { d, token } = pausedRequest();
    d.httpCallResponse(1, token, [[":status", "401"], ["x-auth-user", "alice"]], "nope");
    expect(d.continued).toEqual([]);
    expect(d.localResponses.map((r) => [r.context, r.status, r.details, r.body])).toEqual([
      [2, 403, "http_callout_denied", "request denied by http-callout\n"],
    ]);
    expect(d.header(MapType.REQUEST_HEADERS, "x-auth-user")).toBeUndefined();
  });

  test("a failed or timed-out callout (no headers) becomes a local 403", () => {
    const { d, token } = pausedRequest();
    d.httpCallResponse(1, token, []);
    expect(d.continued).toEqual([]);
    expect(d.localResponses.map((r) => [r.context, r.status, r.details])).toEqual([[2, 403, "http_callout_failed"]]);
  });

  test("configured header names, timeout, forwarded headers and deny reply are used", () => {
    const d = driver("http-callout");
    const config = {
      upstream: "10.96.0.20:9000",
      authority: "authz",
      timeout_ms: 250,
      response_header: "x-user",
      request_header: "x-mesh-user",
      forward_headers: ["cookie"],
      deny_status: 401,
      deny_body: "who?",
    };
    expect(d.startRoot(1, JSON.stringify(config))).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    d.requestHeaders(2, [...REQUEST, ["cookie", "c=1"], ["authorization", "x"]]);
    const call = d.httpCalls[0];
    expect(call?.upstream).toBe("10.96.0.20:9000");
    expect(call?.timeoutMs).toBe(250);
    expect(call?.headers).toContainEqual([":authority", "authz"]);
    expect(call?.headers).toContainEqual(["cookie", "c=1"]);
    expect(call?.headers.map(([k]) => k)).not.toContain("authorization");
    d.httpCallResponse(1, call?.token as number, [[":status", "200"], ["x-user", "bob"]]);
    expect(d.header(MapType.REQUEST_HEADERS, "x-mesh-user")).toBe("bob");

    d.call("proxy_on_context_create", 3, 1);
    d.requestHeaders(3, REQUEST);
    d.httpCallResponse(1, d.httpCalls[1]?.token as number, [[":status", "500"]]);
    expect(d.localResponses.map((r) => [r.context, r.status, r.body])).toEqual([[3, 401, "who?"]]);
  });

  test("a response for a stream that is already gone is ignored", () => {
    const { d, token } = pausedRequest();
    d.finishStream(2);
    d.httpCallResponse(1, token, [[":status", "200"], ["x-auth-user", "alice"]]);
    expect(d.continued).toEqual([]);
    expect(d.localResponses).toEqual([]);
  });

  test("root shutdown with a callout pending does not reply on the root context", () => {
    const { d } = pausedRequest();
    expect(d.call("proxy_on_done", 1)).toBe(1);
    expect(d.localResponses).toEqual([]);
    expect(d.continued).toEqual([]);
  });

  test("frees every stream and callout: memory is the same after 100 and after 3000 streams", () => {
    const result = memoryAfterStreams("http-callout", CONFIG, (d, i) => {
      const call = d.httpCalls.pop();
      if (call === undefined) throw new Error("no callout issued");
      const answers: HeaderList[] = [[[":status", "200"], ["x-auth-user", "u"]], [[":status", "403"]], []];
      d.httpCallResponse(1, call.token, answers[i % 3] as HeaderList);
    });
    expect(result).toEqual({ after100: 65536, after3000: 65536 });
  });

  test("upstream must be a mesh service host:port", () => {
    const ok = ["authz.default.svc.cluster.local:8080", "10.96.0.20:80", "[fd00::20]:8080", "authz:1"];
    const bad = ["authz", "authz:", "authz:0", "authz:65536", ":80", "a b:80", "http://authz:80", "[fd00::20:80"];
    for (const upstream of ok) {
      expect({ upstream, ok: driver("http-callout").startRoot(1, JSON.stringify({ upstream })) }).toEqual({ upstream, ok: true });
    }
    for (const upstream of bad) {
      expect({ upstream, ok: driver("http-callout").startRoot(1, JSON.stringify({ upstream })) }).toEqual({ upstream, ok: false });
    }
    for (const extra of [{ path: "check" }, { path: "/a b" }, { timeout_ms: 0 }, { forward_headers: ["Authorization"] }, { forward_headers: "authorization" }]) {
      const config = JSON.stringify({ upstream: "authz:80", ...extra });
      expect({ config, ok: driver("http-callout").startRoot(1, config) }).toEqual({ config, ok: false });
    }
  });
});
