// The conformance / misbehaving plugins in plugins/testdata: they build, have the shape the host
// tests rely on, and (where safe to run here) behave as their header comments say, driven by the
// fixture in ./test-driver.ts (not the product host).

import { beforeAll, describe, expect, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { REPO_ROOT, TESTDATA_PLUGINS, loadTestdataPlugin, sha256Hex, type CompiledPlugin, type TestdataPluginName } from "./index.ts";
import { ABI_SIGNATURES, AbiDriver, BufferType, readModuleShape } from "./test-driver.ts";

const plugins = new Map<TestdataPluginName, CompiledPlugin>();

beforeAll(async () => {
  for (const name of Object.keys(TESTDATA_PLUGINS) as TestdataPluginName[]) plugins.set(name, await loadTestdataPlugin(name));
}, 600_000);

function wasmOf(name: TestdataPluginName): Uint8Array {
  const p = plugins.get(name);
  if (p === undefined) throw new Error(`${name} was not built`);
  return p.wasm;
}

const WAT_CALLBACKS = [
  "malloc",
  "proxy_on_context_create",
  "proxy_on_vm_start",
  "proxy_on_configure",
  "proxy_on_request_headers",
  "proxy_on_response_headers",
  "proxy_on_done",
  "proxy_on_log",
  "proxy_on_delete",
];

const SDK_BASELINE_IMPORTS = [
  "env.proxy_log",
  "env.proxy_get_property",
  "env.proxy_get_buffer_bytes",
  "env.proxy_set_effective_context",
  "wasi_unstable.proc_exit",
];

describe("WAT test plugins", () => {
  for (const name of ["trap", "loop", "memory-hog", "no-abi"] as const) {
    test(`${name}: valid module, no imports, plugin callbacks with ABI signatures`, async () => {
      const p = plugins.get(name) as CompiledPlugin;
      expect(WebAssembly.validate(p.wasm)).toBe(true);
      expect(p.sha256).toBe(sha256Hex(p.wasm));
      const shape = readModuleShape(p.wasm);
      expect(shape.imports.size).toBe(0);
      expect(shape.exports.get("memory")).toBe("memory");
      for (const exp of WAT_CALLBACKS) expect({ exp, sig: shape.exports.get(exp) }).toEqual({ exp, sig: ABI_SIGNATURES[exp] as never });
      const markers = [...shape.exports.keys()].filter((e) => e.startsWith("proxy_abi_version_"));
      expect(markers).toEqual(name === "no-abi" ? [] : ["proxy_abi_version_0_2_1"]);
      // The source file is what the build read.
      expect(await readFile(join(REPO_ROOT, TESTDATA_PLUGINS[name]), "utf8")).toContain("TEST DATA");
    });
  }

  test("trap: lifecycle up to configure works, then proxy_on_request_headers traps", () => {
    const d = AbiDriver.create(wasmOf("trap"), { rootId: "" });
    expect(d.startRoot(1, "")).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    expect(() => d.requestHeaders(2, [[":method", "GET"]])).toThrow(WebAssembly.RuntimeError);
  });

  test("memory-hog: memory has no declared maximum (growth is bounded only by the host)", () => {
    // Not executed here: it grows until the engine refuses (up to 4 GiB of address space).
    expect(readModuleShape(wasmOf("memory-hog")).memory).toEqual({ initialPages: 1, maximumPages: undefined });
  });

  test("the bump allocator the WAT plugins export hands out distinct, growing blocks", () => {
    const d = AbiDriver.create(wasmOf("no-abi"), { rootId: "" });
    const malloc = d.instance.exports.malloc as (n: number) => number;
    const memory = d.instance.exports.memory as WebAssembly.Memory;
    const a = malloc(10);
    const b = malloc(100_000); // forces memory.grow
    const c = malloc(1);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThanOrEqual(a + 10);
    expect(c).toBeGreaterThanOrEqual(b + 100_000);
    expect(memory.buffer.byteLength).toBeGreaterThanOrEqual(c + 1);
    expect(malloc(0x7000_0000)).toBe(0);
  });
});

describe("lifecycle-recorder", () => {
  test("SDK-shaped: baseline imports only, SDK exports", () => {
    const shape = readModuleShape(wasmOf("lifecycle-recorder"));
    expect([...shape.imports.keys()].sort()).toEqual([...SDK_BASELINE_IMPORTS].sort());
    for (const [imp, signature] of shape.imports) expect({ imp, signature }).toEqual({ imp, signature: ABI_SIGNATURES[imp] as never });
    for (const exp of ["malloc", "proxy_abi_version_0_2_0", "proxy_on_context_create", "proxy_on_request_headers", "proxy_on_done", "proxy_on_log", "proxy_on_delete"]) {
      expect({ exp, sig: shape.exports.get(exp) }).toEqual({ exp, sig: ABI_SIGNATURES[exp] as never });
    }
  });

  test("logs one line per callback, in call order", () => {
    const d = AbiDriver.create(wasmOf("lifecycle-recorder"), { rootId: "lifecycle-recorder" });
    expect(d.startRoot(1, "hello")).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    expect(d.requestHeaders(2, [[":method", "POST"], [":path", "/"], [":authority", "a"], [":scheme", "http"]], false)).toBe(0);
    expect(d.call("proxy_on_request_body", 2, 5, 1)).toBe(0);
    expect(d.responseHeaders(2, [[":status", "200"]], false)).toBe(0);
    expect(d.call("proxy_on_response_body", 2, 7, 0)).toBe(0);
    expect(d.call("proxy_on_response_trailers", 2, 1)).toBe(0);
    d.finishStream(2);
    d.call("proxy_on_tick", 1);
    d.httpCallResponse(1, 8, [[":status", "200"], ["x", "y"]], "abc");
    expect(d.call("proxy_on_done", 1)).toBe(1);
    d.call("proxy_on_delete", 1);
    expect(d.infoLogs("lifecycle ")).toEqual([
      "lifecycle proxy_on_context_create 1 0",
      "lifecycle proxy_on_vm_start 1 0",
      "lifecycle proxy_on_configure 1 5 hello",
      "lifecycle proxy_on_context_create 2 1",
      "lifecycle proxy_on_request_headers 2 4 0",
      "lifecycle proxy_on_request_body 2 5 1",
      "lifecycle proxy_on_response_headers 2 1 0",
      "lifecycle proxy_on_response_body 2 7 0",
      "lifecycle proxy_on_response_trailers 2 1",
      "lifecycle proxy_on_done 2",
      "lifecycle proxy_on_log 2",
      "lifecycle proxy_on_delete 2",
      "lifecycle proxy_on_tick 1",
      "lifecycle proxy_on_http_call_response 1 8 2 3 0",
      "lifecycle proxy_on_done 1",
      "lifecycle proxy_on_delete 1",
    ]);
  });

  test("runs with an empty configuration and under the empty root id", () => {
    const d = AbiDriver.create(wasmOf("lifecycle-recorder"), { rootId: "" });
    expect(d.startRoot(1, "")).toBe(true);
    expect(d.infoLogs("lifecycle ")).toEqual([
      "lifecycle proxy_on_context_create 1 0",
      "lifecycle proxy_on_vm_start 1 0",
      "lifecycle proxy_on_configure 1 0",
    ]);
  });
});

describe("body-buffer", () => {
  test("imports the SDK baseline plus proxy_set_buffer_bytes with the ABI signature", () => {
    const shape = readModuleShape(wasmOf("body-buffer"));
    expect([...shape.imports.keys()].sort()).toEqual([...SDK_BASELINE_IMPORTS, "env.proxy_set_buffer_bytes"].sort());
    for (const [imp, signature] of shape.imports) expect({ imp, signature }).toEqual({ imp, signature: ABI_SIGNATURES[imp] as never });
    expect(shape.exports.get("proxy_on_request_body")).toEqual(ABI_SIGNATURES.proxy_on_request_body as never);
  });

  test("buffers until end of stream, then replaces the body with an upper-case copy", () => {
    const d = AbiDriver.create(wasmOf("body-buffer"), { rootId: "body-buffer" });
    expect(d.startRoot(1, "")).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    expect(d.requestHeaders(2, [[":method", "POST"]], false)).toBe(0);
    const enc = new TextEncoder();
    d.buffers.set(BufferType.HTTP_REQUEST_BODY, enc.encode("hello, "));
    expect(d.call("proxy_on_request_body", 2, 7, 0)).toBe(1); // StopIterationAndBuffer
    // While buffered, the host accumulates chunks: the next call sees the whole body so far.
    const full = enc.encode("hello, w\u00f6rld {x}"); // 17 bytes; non-ASCII bytes are left alone
    d.buffers.set(BufferType.HTTP_REQUEST_BODY, full);
    expect(d.call("proxy_on_request_body", 2, full.length, 1)).toBe(0);
    expect(new TextDecoder().decode(d.buffers.get(BufferType.HTTP_REQUEST_BODY))).toBe("HELLO, W\u00f6RLD {X}");
    expect(d.infoLogs("body-buffer ")).toEqual([
      "body-buffer proxy_on_request_body 2 7 0",
      "body-buffer proxy_on_request_body 2 17 1",
      "body-buffer replaced 2 17 status 0",
    ]);
    d.finishStream(2);
  });

  test("an empty body at end of stream is passed through", () => {
    const d = AbiDriver.create(wasmOf("body-buffer"), { rootId: "" });
    expect(d.startRoot(1, "")).toBe(true);
    d.call("proxy_on_context_create", 2, 1);
    d.buffers.set(BufferType.HTTP_REQUEST_BODY, new Uint8Array(0));
    expect(d.call("proxy_on_request_body", 2, 0, 1)).toBe(0);
    expect(d.buffers.get(BufferType.HTTP_REQUEST_BODY)?.length).toBe(0);
  });
});
