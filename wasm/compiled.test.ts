// Plugins that load the same module share one compiled module, and nothing else.

import { describe, expect, test } from "bun:test";
import { compiledModule, compiledModuleCount } from "./compiled.ts";
import { WasmPlugin } from "./index.ts";
import { REQ } from "./testdata/plugins.ts";
import { pluginModule } from "./testdata/wat.ts";

// A request counter in a global, reported as one ASCII digit in header x-n: per-instance state.
const COUNTER = `
(global $n (mut i32) (i32.const 48))
(func (export "compiled_test_counter"))
(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
  (global.set $n (i32.add (global.get $n) (i32.const 1)))
  (i32.store8 (i32.const 60000) (global.get $n))
  (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-n"}} (i32.const 60000) (i32.const 1)))
  (i32.const 0))`;

async function count(p: WasmPlugin): Promise<string | undefined> {
  const s = p.stream();
  const r = await s.requestHeaders(REQ, true);
  s.done();
  return r.headers?.find(([k]) => k === "x-n")?.[1];
}

describe("compiled modules", () => {
  test("two plugins of one module compile it once and keep separate state", async () => {
    const bytes = await pluginModule(COUNTER);
    const before = compiledModuleCount();
    const a = new WasmPlugin({ name: "a", rootId: "", bytes, isolation: "inline" });
    const b = new WasmPlugin({ name: "b", rootId: "", bytes: bytes.slice(), isolation: "inline" });
    await a.start();
    await b.start();
    expect(compiledModuleCount()).toBe(before + 1);
    expect(compiledModule(bytes, 1024).module).toBe(compiledModule(bytes.slice(), 1024).module);
    // each instance counts its own requests
    expect([await count(a), await count(a), await count(a)]).toEqual(["1", "2", "3"]);
    expect(await count(b)).toBe("1");
    await a.stop();
    await b.stop();
  });

  test("a different memory limit is a different compiled module (the instrumentation depends on it)", async () => {
    const bytes = await pluginModule(`${COUNTER}\n(func (export "compiled_test_limits"))`);
    expect(compiledModule(bytes, 64).module).not.toBe(compiledModule(bytes, 128).module);
  });

  test("a module that does not compile is refused every time, and not kept", async () => {
    const bytes = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff]);
    const before = compiledModuleCount();
    for (let i = 0; i < 2; i++) expect(() => compiledModule(bytes, 64)).toThrow();
    expect(compiledModuleCount()).toBe(before);
  });
});
