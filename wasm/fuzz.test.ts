// Fuzz of the host ABI (reliability checklist item 45): every env and WASI host function called
// with random pointers, lengths and values, from a stream context and from the root context.
// A host function must never throw into the module (except the deliberate aborts), must answer
// with a status of its ABI, and the VM must keep working afterwards.

import { beforeAll, expect, test } from "bun:test";
import fc from "fast-check";
import { Errno, Status } from "./abi.ts";
import { ENV_IMPORTS, WASI_IMPORTS } from "./imports.ts";
import { EmissionKind, Op } from "./protocol.ts";
import { encodePairs } from "./serialization.ts";
import { inlineVm, trampolines } from "./testdata/harness.ts";
import { pluginModule } from "./testdata/wat.ts";
import { VmAbort } from "./traps.ts";

const ABORTING = new Set(["abort", "wasi_proc_exit"]);
const STATUSES = new Set<number>(Object.values(Status));
const ERRNOS = new Set<number>(Object.values(Errno));

let bytes: Uint8Array;
beforeAll(async () => {
  bytes = await pluginModule(
    trampolines() +
      `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
         (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-after-fuzz"}} {{"1"}})) (i32.const 0))
       (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 1))`,
  );
});

const functions = [
  ...Object.entries(ENV_IMPORTS).map(([name, t]) => ({ name, export: `t.${name}`, t, wasi: false })),
  ...Object.entries(WASI_IMPORTS).map(([name, t]) => ({ name: `wasi_${name}`, export: `t.wasi_${name}`, t, wasi: true })),
].filter((f) => !ABORTING.has(f.name));

test("every host function survives random pointers and lengths", () => {
  const { vm, start } = inlineVm(bytes, { configuration: "{}", maxMemoryPages: 8, maxBufferBytes: 4096, maxHeaderBytes: 2048 });
  expect(start.ok).toBe(true);
  vm.execute([{ op: Op.HEADERS, stream: 2, dir: 0, headers: [":path", "/", ":method", "GET", ":authority", "a"], eos: false, create: {} }]);
  vm.execute([{ op: Op.BODY, stream: 2, dir: 0, body: new Uint8Array([1, 2, 3]), eos: false }]);
  // some valid serialized maps and strings for the generator to point at
  const seeded: [number, number][] = [];
  let at = 20000;
  for (const b of [encodePairs([":method", "GET", ":path", "/", ":authority", "x"]), new TextEncoder().encode("plugin_root_id"), new Uint8Array([3, 0, 0, 0, 1])]) {
    vm.mem.write(at, b);
    seeded.push([at, b.length]);
    at += 64;
  }
  const memEnd = () => vm.mem.byteLength;
  const i32 = fc.oneof(
    fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    fc.integer({ min: 0, max: 16 }),
    fc.integer({ min: 0, max: 128 }).map((k) => memEnd() - k),
    fc.integer({ min: 0, max: 70000 }),
    fc.constantFrom(...seeded.flatMap(([p, n]) => [p, n])),
    fc.constant(-1),
  );
  const i64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
  const f64 = fc.double();
  const arb = fc.constantFrom(...functions).chain((f) =>
    fc.tuple(
      fc.constant(f),
      fc.tuple(...f.t.params.map((p) => (p === "i64" ? i64 : p === "f64" ? f64 : i32)) as [fc.Arbitrary<unknown>]),
      fc.boolean(),
    ),
  );
  fc.assert(
    fc.property(arb, ([f, args, inStream]) => {
      let result: unknown;
      try {
        result = vm.callExport(f.export, args as (number | bigint)[], inStream ? 2 : undefined);
      } catch (e) {
        // only a deliberate abort may unwind, and none of the fuzzed functions aborts
        throw new Error(`${f.name}(${(args as unknown[]).join(", ")}) threw ${e instanceof VmAbort ? "an abort" : String(e)}`);
      }
      if (f.t.results.length === 1 && f.t.results[0] === "i32") {
        const ok = f.wasi ? ERRNOS.has(result as number) : STATUSES.has(result as number) || f.name === "pthread_equal";
        if (!ok) throw new Error(`${f.name} returned ${String(result)}`);
      }
    }),
    { numRuns: 4000 },
  );
  vm.drainEffects();
  // the host still works: a new stream runs and the plugin's header edit comes back (the random
  // out-pointers may have overwritten the module's own string constants, so only the shape is checked)
  const r = vm.execute([{ op: Op.HEADERS, stream: 4, dir: 0, headers: [":path", "/x"], eos: true, create: {} }]);
  expect(r.vmFailure).toBeUndefined();
  const em = r.outcomes[0]!.emissions[0]!;
  expect(em.kind).toBe(EmissionKind.CONTINUE);
  expect(em.headersKeep).toBe(1); // [":path", "/x"] unchanged
  expect((em.headers as string[]).length).toBe(2); // one added pair
});

test("pointers at and past the end of memory are INVALID_MEMORY_ACCESS, exactly at the boundary", () => {
  const { vm } = inlineVm(bytes, { configuration: "{}" });
  vm.execute([{ op: Op.HEADERS, stream: 2, dir: 0, headers: [":path", "/"], eos: false, create: {} }]);
  const end = vm.mem.byteLength;
  const call = (name: string, ...a: number[]) => vm.callExport(`t.${name}`, a, 2);
  vm.mem.write(end - 5, new TextEncoder().encode(":path"));
  // the key ends exactly at the last byte: fine; one byte further: not
  expect(call("proxy_get_header_map_value", 0, end - 5, 5, 300, 304)).toBe(Status.OK);
  expect(call("proxy_get_header_map_value", 0, end - 4, 5, 300, 304)).toBe(Status.INVALID_MEMORY_ACCESS);
  expect(call("proxy_get_log_level", end - 4)).toBe(Status.OK);
  expect(call("proxy_get_log_level", end - 3)).toBe(Status.INVALID_MEMORY_ACCESS);
  expect(call("proxy_get_log_level", -1)).toBe(Status.INVALID_MEMORY_ACCESS);
  expect(call("proxy_log", 2, end, 0)).toBe(Status.OK);
  expect(call("proxy_log", 2, end, 1)).toBe(Status.INVALID_MEMORY_ACCESS);
  expect(call("proxy_log", 2, 1, -1)).toBe(Status.INVALID_MEMORY_ACCESS);
});
