// Module inspection (ABI detection, imports, memory) and the rewrite instrument.ts makes.

import { describe, expect, test } from "bun:test";
import wabtInit from "wabt";
import { ErrorCodes, isMeshError } from "../core/errors/index.ts";
import { instrumentModule } from "./instrument.ts";
import { checkModule, describeModule, missingImports, providedImports, UNSUPPORTED_HOST_FUNCTIONS, WasmPlugin } from "./index.ts";
import { ENV_IMPORTS, WASI_IMPORTS } from "./imports.ts";
import { pluginModule, watToWasm } from "./testdata/wat.ts";

const wabt = await wabtInit();
function validates(bytes: Uint8Array): boolean {
  const m = wabt.readWasm(bytes, { readDebugNames: false });
  try {
    m.validate();
    return true;
  } finally {
    m.destroy();
  }
}

describe("ABI detection", () => {
  for (const abi of ["0.2.1", "0.2.0", "0.1.0"] as const) {
    test(`marker proxy_abi_version_${abi.replace(/\./g, "_")} -> ${abi}`, async () => {
      const r = describeModule(await pluginModule("", { abi }));
      expect(r.abiVersion).toBe(abi);
      expect(r.allocator).toBe("malloc");
    });
  }

  test("the newest marker wins when a module exports several", async () => {
    const bytes = await pluginModule(`(func (export "proxy_abi_version_0_1_0"))`, { abi: "0.2.0" });
    expect(describeModule(bytes).abiVersion).toBe("0.2.0");
  });

  test("a module without a marker is refused, naming what was expected", async () => {
    const bytes = await pluginModule("", { abi: "none" });
    expect(describeModule(bytes).abiVersion).toBeUndefined();
    const plugin = new WasmPlugin({ name: "p", rootId: "r", bytes });
    const err = await plugin.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isMeshError(err, ErrorCodes.WASM_ABI_UNSUPPORTED)).toBe(true);
    expect(String((err as Error).message)).toContain("proxy_abi_version_0_2_1");
  });

  test("bytes that are not WebAssembly are WASM_MODULE_INVALID", () => {
    for (const bad of [new Uint8Array([1, 2, 3]), new TextEncoder().encode("not wasm at all"), new Uint8Array([0, 0x61, 0x73, 0x6d, 2, 0, 0, 0])]) {
      let err: unknown;
      try {
        describeModule(bad);
      } catch (e) {
        err = e;
      }
      expect(isMeshError(err, ErrorCodes.WASM_MODULE_INVALID)).toBe(true);
    }
  });

  test("a module without malloc or proxy_on_memory_allocate is refused", async () => {
    const bytes = await watToWasm("m.wat", `(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))`);
    expect(() => checkModule(describeModule(bytes), 16)).toThrow(/malloc/);
  });
});

describe("imports", () => {
  test("the test prelude imports everything and nothing is missing", async () => {
    const bytes = await pluginModule("");
    expect(missingImports(bytes)).toEqual([]);
    expect(describeModule(bytes).imports.length).toBe(Object.keys(ENV_IMPORTS).length + Object.keys(WASI_IMPORTS).length);
  });

  test("unknown imports and wrong signatures are reported", async () => {
    const bytes = await watToWasm(
      "m.wat",
      `(module
        (import "env" "proxy_log" (func (param i32 i32) (result i32)))
        (import "env" "not_a_host_function" (func))
        (import "other" "x" (func))
        (import "wasi_unstable" "proc_exit" (func (param i32)))
        (memory (export "memory") 1)
        (func (export "malloc") (param i32) (result i32) (i32.const 0))
        (func (export "proxy_abi_version_0_2_1")))`,
    );
    const problems = missingImports(bytes);
    expect(problems).toContainEqual({
      module: "env",
      name: "proxy_log",
      problem: "signature",
      expected: "(i32,i32,i32)->(i32)",
      actual: "(i32,i32)->(i32)",
    });
    expect(problems).toContainEqual({ module: "env", name: "not_a_host_function", problem: "missing" });
    expect(problems).toContainEqual({ module: "other", name: "x", problem: "missing" });
    expect(problems.length).toBe(3);
    const plugin = new WasmPlugin({ name: "p", rootId: "r", bytes });
    await expect(plugin.start()).rejects.toThrow(/imports functions this host does not provide/);
  });

  test("providedImports lists env and both WASI namespaces; unsupported ones carry a reason", () => {
    const all = providedImports();
    expect(all).toContain("env.proxy_http_call");
    expect(all).toContain("wasi_unstable.proc_exit");
    expect(all).toContain("wasi_snapshot_preview1.fd_write");
    for (const [name, reason] of Object.entries(UNSUPPORTED_HOST_FUNCTIONS)) {
      expect(all).toContain(`env.${name}`);
      expect(reason.length).toBeGreaterThan(10);
    }
  });
});

describe("memory limits at load", () => {
  test("a module whose minimum memory exceeds the limit is refused with WASM_MEMORY_LIMIT", async () => {
    const bytes = await watToWasm(
      "m.wat",
      `(module (memory (export "memory") 40)
        (func (export "malloc") (param i32) (result i32) (i32.const 0))
        (func (export "proxy_abi_version_0_2_1")))`,
    );
    const plugin = new WasmPlugin({ name: "p", rootId: "r", bytes, maxMemoryPages: 16 });
    const err = await plugin.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isMeshError(err, ErrorCodes.WASM_MEMORY_LIMIT)).toBe(true);
  });
});

describe("instrumentation", () => {
  test("the rewritten module validates, imports its memory with the limit, keeps exports", async () => {
    const bytes = await pluginModule(`
      (table 2 funcref) (elem (i32.const 0) $malloc $utoa)
      (global $g (mut i32) (i32.const 1))
      (func $loop (export "spin") (param $n i32) (result i32)
        (loop $l (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br_if $l (local.get $n)))
        (call $malloc (i32.const 8)))
      (func $start (global.set $g (i32.const 2)))
      (start $start)`);
    const out = instrumentModule(bytes, 8);
    expect(validates(out.bytes)).toBe(true);
    expect(out.memory).toEqual({ initialPages: 2, maximumPages: 8 });
    const r = describeModule(out.bytes);
    expect(r.imports.filter((i) => i.module === "mesh_host").map((i) => `${i.name}:${i.kind}`)).toEqual([
      "budget:func",
      "grow:func",
      "memory:memory",
    ]);
    expect(r.exports.map((e) => e.name)).toEqual(describeModule(bytes).exports.map((e) => e.name));
    expect(r.exports.map((e) => e.name)).toContain("spin");
  });

  test("calls, the start function and table entries still reach the same functions", async () => {
    const bytes = await watToWasm(
      "m.wat",
      `(module
        (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
        (memory 1)
        (global $g (mut i32) (i32.const 0))
        (table 2 funcref) (elem (i32.const 0) $a $b)
        (type $t (func (result i32)))
        (func $a (result i32) (i32.const 11))
        (func $b (result i32) (i32.const 22))
        (func (export "direct") (result i32) (call $b))
        (func (export "indirect") (param i32) (result i32) (call_indirect (type $t) (local.get 0)))
        (func (export "started") (result i32) (global.get $g))
        (func (export "ref") (result i32) (call_indirect (type $t) (i32.const 0)))
        (func $init (global.set $g (i32.const 7)))
        (start $init))`,
    );
    const out = instrumentModule(bytes, 4);
    let checks = 0;
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(out.bytes), {
      env: { proxy_log: () => 0 },
      mesh_host: { memory: mem, budget: () => (checks++, 1000), grow: (d: number) => mem.grow(d) },
    });
    const e = inst.exports as Record<string, (...a: number[]) => number>;
    expect(e.direct!()).toBe(22);
    expect(e.indirect!(0)).toBe(11);
    expect(e.indirect!(1)).toBe(22);
    expect(e.started!()).toBe(7);
    expect(checks).toBeGreaterThan(0);
  });

  test("memory.grow past the limit fails inside the module", async () => {
    const bytes = await watToWasm(
      "m.wat",
      `(module (memory 1) (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`,
    );
    const out = instrumentModule(bytes, 3);
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 3 });
    let failed = 0;
    const inst = new WebAssembly.Instance(new WebAssembly.Module(out.bytes), {
      mesh_host: {
        memory: mem,
        budget: () => 1000,
        grow: (d: number) => {
          try {
            return mem.grow(d);
          } catch {
            failed++;
            return -1;
          }
        },
      },
    });
    const grow = inst.exports.grow as (n: number) => number;
    expect(grow(1)).toBe(1);
    expect(grow(5)).toBe(-1);
    expect(grow(1)).toBe(2);
    expect(failed).toBe(1);
  });

  test("a module using the reserved import namespace is refused", async () => {
    const bytes = await watToWasm("m.wat", `(module (import "mesh_host" "budget" (func (result i32))))`);
    expect(() => instrumentModule(bytes, 4)).toThrow(/reserved/);
  });
});
