// What the waypoint's plugin chain adds per request, without sockets: the add-header example
// through PluginChain (request headers, response headers, a 1 KiB response body, done), for 0, 1
// and 5 plugins and each isolation mode, and `1-novm` (a FAIL_OPEN plugin whose module is missing:
// the chain and the flow without a VM). Not a test; read medians on a quiet machine.
//
//   ./node_modules/.bin/bun plugins/bench/chain-cost.ts [--requests 4000] [--rounds 3] [--gap-us 0]
//     [--only 1-inline,5-worker] [--ballast MB] [--threads] [--busy-gap] [--evict MB]
// --threads prints CPU per request by thread (event loop, GC helpers, JIT), from /proc.
// --busy-gap spins through the gap instead of sleeping: the thread stays on its core, so the
// difference to a sleeping gap is what a cold core (caches, predictors) costs a request.
// --evict MB writes that much memory before each request, as a waypoint's other work does between
// two requests at a low rate: the request then runs with cold caches (L2 is 1 MiB per core here).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildExamples } from "../build/index.ts";
import { PluginChain } from "../index.ts";
import type { BodySink, BodySource, HeaderPairs, HookRequest, RequestOrigin } from "../../core/waypoint/index.ts";
import { createLogger } from "../../core/telemetry/index.ts";

const args = process.argv.slice(2);
const arg = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const REQUESTS = arg("requests", 4000);
const ROUNDS = arg("rounds", 3);
const GAP_US = arg("gap-us", 0);

const dir = mkdtempSync(join(tmpdir(), "mesh-chain-cost-"));
const built = await buildExamples(dir);
const wasm = built.find((b) => b.example.name === "add-header")!.outFile;

function configFor(n: number, isolation: string): string {
  const path = join(dir, `mesh-${n}-${isolation}.yaml`);
  const entries = Array.from({ length: n }, (_, k) =>
    [`  - name: p${k + 1}`, `    namespace: default`, `    pluginName: add-header`, `    pluginConfig: {header: x-p${k + 1}, value: "1"}`,
      ...(isolation === "novm" ? ["    url: /nonexistent/add-header.wasm", "    failStrategy: FAIL_OPEN"] : [`    url: ${wasm}`]),
      ...(isolation === "default" || isolation === "novm" ? [] : [`    limits: {isolation: ${isolation}}`])].join("\n"));
  writeFileSync(path, `plugins:\n${entries.join("\n")}\n`);
  return path;
}

const origin = { sourceIp: "10.0.0.1", sourcePort: 40000, targetIp: "10.0.0.2", targetPort: 8080, principal: "spiffe://cluster.local/ns/default/sa/client", workload: undefined, service: undefined } as unknown as RequestOrigin;
const log = createLogger({ format: "json", level: "error", component: "bench", write: () => {} });

function emptyBody(): BodySource {
  return { empty: true, start: (s: BodySink) => s.end(), pause() {}, resume() {} };
}
const CHUNK = new Uint8Array(1024).fill(97);
function oneChunk(): BodySource {
  return { empty: false, start: (s: BodySink) => { s.data(CHUNK); s.end(); }, pause() {}, resume() {} };
}
function drain(b: BodySource): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    b.start({ data: (c) => (n += c.length), end: () => resolve(n), error: reject });
  });
}

async function oneRequest(chain: PluginChain): Promise<void> {
  const req: HookRequest = {
    origin, method: "GET", path: "/bench", authority: "app.default.svc.cluster.local:8080", protocol: "HTTP/1.1",
    headers: [["user-agent", "bench"], ["accept", "*/*"], ["x-request-id", "6f7a9e2c-3b1d-4c55-9a1e-0b6a2c1d9e77"]],
  };
  const run = chain.forRequest(origin, undefined);
  if (!run) return;
  const out = await run.request(req, emptyBody(), () => undefined);
  if (out.kind !== "forward") throw new Error(`request: ${out.kind}`);
  const headers: HeaderPairs = [["content-type", "text/plain"], ["content-length", "1024"]];
  const resp = await run.response(200, headers, oneChunk());
  if (resp.kind !== "forward") throw new Error(`response: ${resp.kind}`);
  await drain(resp.body);
  run.done({ details: "via_upstream", flags: "-" });
}

// --ballast MB: live objects the size of a real waypoint's heap (GC costs grow with it)
const ballastMb = arg("ballast", 0);
const ballast: unknown[] = [];
for (let i = 0; i < ballastMb * 1024; i++) ballast.push(Array.from({ length: 16 }, (_, k) => ({ k, s: `v${k}` })));
function threadTimes(): Map<string, number> {
  const out = new Map<string, number>();
  const { readdirSync, readFileSync } = require("node:fs") as typeof import("node:fs");
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ticks = Number(f[11]) + Number(f[12]);
      out.set(name, (out.get(name) ?? 0) + ticks);
    } catch {}
  }
  return out;
}
const BUSY_GAP = args.includes("--busy-gap");
const sleepUs = (us: number) => {
  if (BUSY_GAP) {
    const end = Bun.nanoseconds() + us * 1000;
    while (Bun.nanoseconds() < end);
    return Promise.resolve();
  }
  return new Promise<void>((r) => (us <= 0 ? setImmediate(r) : setTimeout(r, us / 1000)));
};

const evictMb = arg("evict", 0);
const evict = evictMb > 0 ? new Uint8Array(evictMb * 1024 * 1024) : undefined;

async function measure(n: number, isolation: string): Promise<{ p50: number; p90: number; cpu: number }> {
  const chain = new PluginChain();
  await chain.start({ configPath: configFor(n, isolation), documentFiles: [], httpCall: (async () => ({ failure: "none" })) as never, gateways: () => [], namespace: "default", nodeId: "bench", log, logLevel: "error" });
  for (let i = 0; i < 500; i++) await oneRequest(chain);
  const t: number[] = [];
  const cpu0 = process.cpuUsage();
  const th0 = threadTimes();
  for (let i = 0; i < REQUESTS; i++) {
    if (GAP_US > 0) await sleepUs(GAP_US);
    if (evict !== undefined) evict.fill(i & 255);
    const a = Bun.nanoseconds();
    await oneRequest(chain);
    t.push((Bun.nanoseconds() - a) / 1000);
  }
  await chain.stop();
  const cpu = process.cpuUsage(cpu0);
  if (args.includes("--threads")) {
    const th1 = threadTimes();
    const rows = [...th1].map(([k, v]) => [k, ((v - (th0.get(k) ?? 0)) * 10000) / REQUESTS] as const).filter(([, v]) => v > 0.05).sort((a, b) => b[1] - a[1]);
    console.log(`${n} ${isolation} threads (µs CPU per request): ${rows.map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}`);
  }
  t.sort((x, y) => x - y);
  return { p50: t[Math.floor(t.length / 2)]!, p90: t[Math.floor(t.length * 0.9)]!, cpu: (cpu.user + cpu.system) / REQUESTS };
}

const onlyAt = args.indexOf("--only");
const only = onlyAt >= 0 ? args[onlyAt + 1]!.split(",") : undefined;
const configs = ([[0, "default"], [1, "inline"], [5, "inline"], [1, "worker"], [5, "worker"], [1, "default"], [5, "default"], [1, "novm"]] as [number, string][]).filter(
  ([n, iso]) => only === undefined || only.includes(`${n}-${iso}`),
);
const results = new Map<string, number[][]>();
for (let r = 0; r < ROUNDS; r++) {
  for (const [n, iso] of configs) {
    const k = `${n} ${iso}`;
    const m = await measure(n, iso);
    const list = results.get(k) ?? [[], [], []];
    list[0]!.push(m.p50);
    list[1]!.push(m.p90);
    list[2]!.push(m.cpu);
    results.set(k, list);
  }
}
const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
console.log(`requests ${REQUESTS}, rounds ${ROUNDS}, gap ${GAP_US} µs; µs per request (median over rounds)`);
for (const [k, [p50, p90, cpu]] of results) console.log(`${k.padEnd(12)} p50 ${med(p50!).toFixed(1).padStart(7)}  p90 ${med(p90!).toFixed(1).padStart(7)}  process CPU per request ${med(cpu!).toFixed(1).padStart(7)}`);
rmSync(dir, { recursive: true, force: true });
process.exit(0);
