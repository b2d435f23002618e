// The build helper itself: the AssemblyScript compile path (cache, invalidation, errors) and WAT.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCodes, MeshError } from "../../core/errors/index.ts";
import { EXAMPLES, compileAssemblyScript, compileWat, sha256Hex, sourceCacheKey } from "./index.ts";

let dir = "";
let cacheDir = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mesh-plugin-build-"));
  cacheDir = join(dir, "cache");
});

afterAll(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

const TINY_FILTER = `
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";
import { HEADER } from "./helper";
class Tiny extends Context {
  onResponseHeaders(a: u32, eos: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add(HEADER, "1");
    return FilterHeadersStatusValues.Continue;
  }
}
class TinyRoot extends RootContext {
  createContext(id: u32): Context { return new Tiny(id, this); }
}
registerRootContext((id: u32): RootContext => new TinyRoot(id), "tiny");
`;

async function rejection(p: Promise<unknown>): Promise<MeshError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MeshError) return e;
    throw e;
  }
  throw new Error("expected a MeshError");
}

describe("compileAssemblyScript", () => {
  test(
    "compiles once, then serves the cached module; writes outFile",
    async () => {
      const entry = join(dir, "tiny.ts");
      await writeFile(entry, TINY_FILTER);
      await writeFile(join(dir, "helper.ts"), `export const HEADER = "x-tiny";\n`);
      const outFile = join(dir, "out", "nested", "tiny.wasm");

      const first = await compileAssemblyScript(entry, outFile, { cacheDir });
      expect(first.fromCache).toBe(false);
      expect(WebAssembly.validate(first.wasm)).toBe(true);
      expect(first.sha256).toBe(sha256Hex(first.wasm));
      expect(first.wasm).toEqual(new Uint8Array(await readFile(outFile)));
      const exports = WebAssembly.Module.exports(new WebAssembly.Module(first.wasm)).map((e) => e.name);
      expect(exports).toContain("proxy_abi_version_0_2_0");
      expect(exports).toContain("malloc");
      const imports = WebAssembly.Module.imports(new WebAssembly.Module(first.wasm)).map((i) => `${i.module}.${i.name}`);
      expect(imports).not.toContain("env.abort"); // --use abort=abort_proc_exit took effect

      const second = await compileAssemblyScript(entry, null, { cacheDir });
      expect(second.fromCache).toBe(true);
      expect(second.sha256).toBe(first.sha256);
      expect((await readdir(cacheDir)).filter((f) => f.startsWith("tmp-"))).toEqual([]);
    },
    120_000,
  );

  test("the cache key follows the entry and the files it imports, not file times", async () => {
    const entry = join(dir, "keyed.ts");
    await writeFile(entry, TINY_FILTER);
    await writeFile(join(dir, "helper.ts"), `export const HEADER = "x-tiny";\n`);
    const k1 = await sourceCacheKey(entry);
    await writeFile(entry, TINY_FILTER); // same content rewritten
    expect(await sourceCacheKey(entry)).toBe(k1);
    await writeFile(join(dir, "helper.ts"), `export const HEADER = "x-other";\n`);
    const k2 = await sourceCacheKey(entry);
    expect(k2).not.toBe(k1);
    await writeFile(entry, `${TINY_FILTER}\n// comment\n`);
    expect(await sourceCacheKey(entry)).not.toBe(k2);
  });

  test("examples get distinct keys that cover the shared helper module", async () => {
    const keys = await Promise.all(EXAMPLES.map((e) => sourceCacheKey(e.entry)));
    expect(new Set(keys).size).toBe(EXAMPLES.length);
  });

  test("a missing entry file is CONFIG_FILE_MISSING", async () => {
    const e = await rejection(compileAssemblyScript(join(dir, "nope.ts"), null, { cacheDir }));
    expect(e.code).toBe(ErrorCodes.CONFIG_FILE_MISSING);
    expect(e.message).toContain("nope.ts");
  });

  test(
    "a compile error is CONFIG_INVALID naming the file and the compiler's message; nothing is cached",
    async () => {
      const entry = join(dir, "broken.ts");
      await writeFile(entry, `export * from "@solo-io/proxy-runtime/proxy";\nexport function f(): i32 { return nope; }\n`);
      const outFile = join(dir, "broken.wasm");
      const e = await rejection(compileAssemblyScript(entry, outFile, { cacheDir }));
      expect(e.code).toBe(ErrorCodes.CONFIG_INVALID);
      expect(e.message).toContain("broken.ts");
      expect(e.message).toContain("TS2304: Cannot find name 'nope'");
      expect(e.message).toContain("(2,35)");
      expect(await Bun.file(outFile).exists()).toBe(false);
      const cached = await readdir(cacheDir).catch(() => [] as string[]);
      expect(cached).not.toContain(`${await sourceCacheKey(entry)}.wasm`);
    },
    120_000,
  );

  test(
    "an entry that does not use the SDK gets a clear message",
    async () => {
      const entry = join(dir, "plain.ts");
      await writeFile(entry, `export function f(): i32 { return 1; }\n`);
      const e = await rejection(compileAssemblyScript(entry, null, { cacheDir: null }));
      expect(e.code).toBe(ErrorCodes.CONFIG_INVALID);
      expect(e.message).toContain("does not import @solo-io/proxy-runtime");
    },
    120_000,
  );
});

describe("compileWat", () => {
  test("assembles and validates text into a binary module", () => {
    const wasm = compileWat(`(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))`);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(wasm));
    expect((instance.exports.add as (a: number, b: number) => number)(2, 3)).toBe(5);
  });

  test("syntax and validation errors are CONFIG_INVALID with file:line:col", () => {
    const cases: [string, string][] = [
      [`(module (fun))`, "bad.wat:1:10: error: unexpected token"],
      [`(module\n (func (export "f") (i32.add)))`, "bad.wat:2:22: error: type mismatch in i32.add"],
    ];
    for (const [text, expected] of cases) {
      let caught: unknown;
      try {
        compileWat(text, "bad.wat");
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(MeshError);
      expect((caught as MeshError).code).toBe(ErrorCodes.CONFIG_INVALID);
      expect((caught as MeshError).message).toContain(expected);
    }
  });
});
