// House rules the type checker cannot see: only core/config reads the environment, only core/os
// loads bun:ffi (the native seam), and no production module imports another folder's internals
// past its index.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = join(import.meta.dir, "..");
const SOURCES = [...new Bun.Glob("{cmd,core,plugins,wasm}/**/*.ts").scanSync(ROOT)].filter(
  (f) =>
    !f.endsWith(".test.ts") &&
    !f.endsWith("test-fixtures.ts") &&
    !f.includes("/bench/") &&
    !f.includes("/testdata/") &&
    !f.startsWith("plugins/examples/") && // AssemblyScript, compiled to Wasm
    !f.includes("node_modules"),
);
const code = (f: string) =>
  readFileSync(join(ROOT, f), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`])\/\/.*$/gm, "$1");

describe("house rules over the production sources", () => {
  test("there are sources to check", () => {
    expect(SOURCES.length).toBeGreaterThan(50);
  });

  test("only core/config reads the environment", () => {
    const readers = SOURCES.filter((f) => /\b(process\.env|Bun\.env)\b/.test(code(f)) && !f.startsWith("core/config/"));
    expect(readers).toEqual([]);
  });

  test("only core/os loads bun:ffi", () => {
    const loaders = SOURCES.filter((f) => /["']bun:ffi["']/.test(code(f)) && !f.startsWith("core/os/"));
    expect(loaders).toEqual([]);
  });

  test("a folder is entered through its index.ts only", () => {
    const breaches: string[] = [];
    for (const f of SOURCES) {
      for (const m of code(f).matchAll(/from\s+["'](\.\.?\/[^"']+\.ts)["']/g)) {
        const target = relative(ROOT, join(ROOT, f, "..", m[1]!));
        const fromDir = join(f, "..");
        const toDir = join(target, "..");
        if (toDir !== fromDir && !target.endsWith("/index.ts") && !fromDir.startsWith(`${toDir}/`)) breaches.push(`${f} -> ${target}`);
      }
    }
    expect(breaches).toEqual([]);
  });
});
