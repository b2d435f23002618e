// The worker entry must be reachable inside a `bun build --compile` binary: built from the
// repository root with wasm/vm-worker.ts as an extra entrypoint it is; without it, start() fails
// with a message that says what to add.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pluginModule } from "./testdata/wat.ts";

const REPO = new URL("..", import.meta.url).pathname;
let dir = "";
let hex = "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "mesh-wasm-compile-"));
  const bytes = await pluginModule(
    `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
       (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-compiled"}} {{"1"}})) (i32.const 0))`,
  );
  hex = Buffer.from(bytes).toString("hex");
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function build(out: string, entries: string[]): Promise<void> {
  const p = Bun.spawn([process.execPath, "build", "--compile", "--root", ".", ...entries, "--outfile", out], {
    cwd: REPO,
    stdout: "pipe",
    stderr: "pipe",
  });
  if ((await p.exited) !== 0) throw new Error(`bun build failed: ${await new Response(p.stderr).text()}`);
}

async function run(bin: string): Promise<{ code: number; out: string }> {
  const p = Bun.spawn([bin, hex], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  const code = await p.exited;
  return { code, out: await new Response(p.stdout).text() };
}

test("a compiled binary with the worker entrypoint runs plugins in workers", async () => {
  const bin = join(dir, "with-worker");
  await build(bin, ["wasm/bench/compiled-check.ts", "wasm/vm-worker.ts"]);
  const r = await run(bin);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.out.trim().split("\n").at(-1)!)).toEqual({ action: "continue", headers: [[":path", "/"], ["x-compiled", "1"]] });
}, 60_000);

test("without the worker entrypoint, start() fails and names the missing entrypoint", async () => {
  const bin = join(dir, "without-worker");
  await build(bin, ["wasm/bench/compiled-check.ts"]);
  const r = await run(bin);
  expect(r.code).toBe(1);
  expect(r.out).toContain("wasm/vm-worker.ts as an extra entrypoint");
}, 60_000);
