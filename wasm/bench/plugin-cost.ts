// What a Proxy-Wasm plugin adds per request, per isolation mode. Not a test: run it on a quiet
// machine and read medians of several runs.
//
//   ./node_modules/.bin/bun wasm/bench/plugin-cost.ts [--requests 5000] [--rounds 3] [--as]
//
// The plugin adds one request header and one response header (the `addheader` shape). A request
// is: stream(), requestHeaders(eos), responseHeaders(eos), done() — two VM round trips in worker
// mode (done is batched onto the next request's round trip).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WasmPlugin, type WasmPluginOptions } from "../index.ts";
import { pluginModule } from "../testdata/wat.ts";

const args = process.argv.slice(2);
const arg = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const REQUESTS = arg("requests", 5000);
const ROUNDS = arg("rounds", 3);

const REQ: [string, string][] = [
  [":method", "GET"],
  [":path", "/productpage?u=normal"],
  [":authority", "productpage.default.svc.cluster.local:9080"],
  [":scheme", "http"],
  ["user-agent", "curl/8.5.0"],
  ["accept", "*/*"],
  ["x-request-id", "6f7a9e2c-3b1d-4c55-9a1e-0b6a2c1d9e77"],
];
const RESP: [string, string][] = [
  [":status", "200"],
  ["content-type", "text/html; charset=utf-8"],
  ["content-length", "5293"],
  ["server", "istio-envoy"],
];

const WAT_ADDHEADER = `
(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
  (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-wasm"}} {{"1"}})) (i32.const 0))
(func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
  (drop (call $proxy_add_header_map_value (i32.const 2) {{"hello"}} {{"world"}})) (i32.const 0))`;

const AS_ADDHEADER = `
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";
class R extends RootContext { createContext(id: u32): Context { return new C(id, this); } }
class C extends Context {
  constructor(id: u32, root: R) { super(id, root); }
  onResponseHeaders(a: u32, eos: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("hello", (this.root_context as R).getConfiguration());
    return FilterHeadersStatusValues.Continue;
  }
}
registerRootContext((id: u32) => { return new R(id); }, "add_header");`;

async function compileAs(): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), "mesh-bench-as-"));
  try {
    writeFileSync(join(dir, "f.ts"), AS_ADDHEADER);
    const repo = new URL("../..", import.meta.url).pathname;
    const p = Bun.spawn([process.execPath, "node_modules/assemblyscript/bin/asc", join(dir, "f.ts"), "-b", join(dir, "f.wasm"), "--use", "abort=abort_proc_exit", "-O3"], {
      cwd: repo,
      stdout: "ignore",
      stderr: "ignore",
    });
    if ((await p.exited) !== 0) throw new Error("asc failed");
    return new Uint8Array(await Bun.file(join(dir, "f.wasm")).arrayBuffer());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function oneRequest(p: WasmPlugin): Promise<void> {
  const s = p.stream();
  await s.requestHeaders(REQ, true);
  await s.responseHeaders(RESP, true);
  s.done();
}

async function sequential(p: WasmPlugin, gapMs: number): Promise<number[]> {
  for (let i = 0; i < 500; i++) await oneRequest(p);
  const times: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    if (gapMs > 0 && i % 1 === 0) await Bun.sleep(gapMs);
    const t = Bun.nanoseconds();
    await oneRequest(p);
    times.push((Bun.nanoseconds() - t) / 1000);
  }
  return times.sort((a, b) => a - b);
}

async function concurrent(p: WasmPlugin, workers: number): Promise<{ rps: number; p50: number }> {
  const times: number[] = [];
  const t0 = Bun.nanoseconds();
  const per = Math.ceil(REQUESTS / workers);
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let i = 0; i < per; i++) {
        const t = Bun.nanoseconds();
        await oneRequest(p);
        times.push((Bun.nanoseconds() - t) / 1000);
      }
    }),
  );
  const secs = (Bun.nanoseconds() - t0) / 1e9;
  times.sort((a, b) => a - b);
  return { rps: (per * workers) / secs, p50: pct(times, 0.5) };
}

interface Row {
  start: number[];
  seq: number[];
  seq90: number[];
  idle: number[];
  rps: number[];
}

async function measureOnce(bytes: Uint8Array, o: Partial<WasmPluginOptions>, row: Row): Promise<void> {
  const t = Bun.nanoseconds();
  const p = new WasmPlugin({ name: "bench", rootId: o.rootId ?? "add_header", bytes, configuration: "world", ...o });
  await p.start();
  row.start.push((Bun.nanoseconds() - t) / 1e6);
  const seq = await sequential(p, 0);
  row.seq.push(pct(seq, 0.5));
  row.seq90.push(pct(seq, 0.9));
  row.idle.push(pct(await sequential(p, 1), 0.5));
  row.rps.push((await concurrent(p, 16)).rps);
  await p.stop();
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

const wat = await pluginModule(WAT_ADDHEADER);
const modules: [string, Uint8Array][] = [["WAT", wat]];
if (args.includes("--as")) modules.push(["AS", await compileAs()]);
const configs: [string, Partial<WasmPluginOptions>][] = [
  ["inline", { isolation: "inline" }],
  ["worker", { isolation: "worker" }],
  ["worker, waitAsync wake", { isolation: "worker", wakeMain: "atomics" }],
  ["worker, spin 20/50 µs", { isolation: "worker", spinMicros: 20, workerSpinMicros: 50 }],
];
const rows = new Map<string, Row>();
console.log(`requests per measurement: ${REQUESTS}; rounds: ${ROUNDS} (interleaved); a request = requestHeaders + responseHeaders + done`);
for (let round = 0; round < ROUNDS; round++) {
  for (const [m, bytes] of modules) {
    for (const [c, o] of configs) {
      const key = `${m} addheader, ${c}`;
      if (!rows.has(key)) rows.set(key, { start: [], seq: [], seq90: [], idle: [], rps: [] });
      await measureOnce(bytes, o, rows.get(key)!);
    }
  }
}
console.log("medians over rounds (µs per request unless noted)");
console.log("config                                | start ms | back-to-back p50 | p90   | after 1 ms idle p50 | 16 concurrent req/s");
for (const [k, r] of rows) {
  console.log(
    `${k.padEnd(37)} | ${median(r.start).toFixed(1).padStart(8)} | ${median(r.seq).toFixed(1).padStart(16)} | ${median(r.seq90).toFixed(1).padStart(5)} | ${median(r.idle).toFixed(1).padStart(19)} | ${median(r.rps).toFixed(0).padStart(10)}`,
  );
}
