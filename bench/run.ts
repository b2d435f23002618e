// Benchmark orchestrator: `npm run bench` (= `bun bench/run.ts`). Not part of `npm test`.
//
// Measures, in one run and side by side, three ways of carrying TCP from a load generator to a
// server app: `direct` (no proxy), `stunnel` (an mTLS pair, the stand-in peer) and `mesh` (two
// ztunnels joined by HBONE). See bench/README.md for what each number means.
//
//   bun bench/run.ts [--quick] [--only direct,stunnel,mesh] [--bytes 1G] [--runs N]
//                    [--rtts N] [--conn-seconds S] [--concurrency N] [--idle-conns N]
//                    [--out DIR] [--no-install] [--keep] [--no-captured] [--no-l7] [--no-plugins]

import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { canRun } from "../test/netns/testbed.ts";
import { availableParallelism, release } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import { describeEntry, type Entry } from "./entry.ts";
import { L7_HEADING, parseL7Options, runL7Section, stopL7, type L7Result } from "./l7.ts";
import {
  createDirectPath,
  createMeshPath,
  createStunnelPath,
  PathUnavailable,
  type BenchPath,
  type PathHandle,
  type PathName,
  type ProxyProcess,
} from "./paths/index.ts";
import { intArg, parseCli, parseOnly, runMain, stringFlags } from "./cli.ts";
import { nofileLimits, openFdCount, rssKiB, stopChild, totalCpuSeconds, withRaisedNofile } from "./proc.ts";
import { judge, noteLines, reportJson, tallyVerdicts, textTable, type NotedPath, type Verdict } from "./report.ts";
import { fmt, median, ratio } from "./stats.ts";

const BENCH_DIR = import.meta.dir;
const LOAD_TS = join(BENCH_DIR, "load.ts");
const ALL_PATHS: readonly PathName[] = ["direct", "stunnel", "mesh"];
const GIB = 1024 ** 3;

// ---------------------------------------------------------------------------------------------
// Options

export interface BenchOptions {
  quick: boolean;
  only: PathName[];
  bytes: number;
  runs: number;
  rtts: number;
  connSeconds: number;
  concurrency: number;
  idleConns: number;
  outDir: string;
  install: boolean;
  keep: boolean;
  /** Run the captured-mode rows (root with iptables only). */
  captured: boolean;
  /** Run the L7 section (bench/l7.ts: direct, ztunnel → waypoint → ztunnel, nginx). */
  l7: boolean;
  /** In the L7 section, the rows with Wasm plugins in the waypoint (1 and 5 add-header plugins). */
  l7Plugins: boolean;
  /** Checkout whose cmd/mesh.ts is benchmarked (default: this repository). */
  meshRoot: string;
}

const USAGE = `usage: bun bench/run.ts [options]
  --quick              small sizes for a smoke run (64 MiB, 1 000 RTTs, 1 s of connections, 500 idle conns, 1 run)
  --only LIST          comma-separated subset of direct,stunnel,mesh (default: all)
  --bytes N            bytes per throughput test, suffixes K/M/G (binary) allowed (default 1G)
  --runs N             rounds, interleaving the paths; medians are reported (default 3, quick 1)
  --rtts N             1 KiB round trips for latency (default 10000)
  --conn-seconds S     duration of the new-connection test (default 5)
  --concurrency N      parallel connections in the new-connection test (default 32)
  --idle-conns N       idle tunnelled connections for the memory test (default 10000)
  --out DIR            where latest.json and latest.md go (default bench/results)
  --no-captured        skip the captured-mode rows (they run when root with iptables: pod → pod on a netns testbed)
  --no-l7              skip the L7 section (HTTP/1.1 through ztunnel → waypoint → ztunnel, next to direct and nginx;
                       runnable alone: bun bench/l7.ts --help)
  --no-plugins         in the L7 section, skip the rows with Wasm plugins in the waypoint
  --no-install         do not apt-get install stunnel4 when it is missing
  --keep               keep the temporary directories (certificates, configs, proxy logs)
  --mesh-root DIR      benchmark DIR/cmd/mesh.ts instead of this checkout's (e.g. another worktree)`;

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (!m) throw new Error(`cannot read size "${text}" (examples: 1073741824, 256M, 1G)`);
  const unit = (m[2] ?? "").toLowerCase();
  const mult = unit === "k" ? 1024 : unit === "m" ? 1024 ** 2 : unit === "g" ? GIB : unit === "t" ? 1024 ** 4 : 1;
  const n = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`size "${text}" is out of range`);
  return n;
}

export function parseOptions(argv: string[]): BenchOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...stringFlags("only", "bytes", "runs", "rtts", "conn-seconds", "concurrency", "idle-conns", "out", "mesh-root"),
      quick: { type: "boolean", default: false },
      "no-install": { type: "boolean", default: false },
      "no-captured": { type: "boolean", default: false },
      "no-l7": { type: "boolean", default: false },
      "no-plugins": { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) return "help";
  const quick = values.quick === true;
  const only = parseOnly(values.only, ALL_PATHS);
  const connSeconds = values["conn-seconds"] === undefined ? (quick ? 1 : 5) : Number(values["conn-seconds"]);
  if (!Number.isFinite(connSeconds) || connSeconds <= 0 || connSeconds > 600) throw new Error("--conn-seconds must be in (0, 600]");
  return {
    quick,
    only,
    bytes: values.bytes !== undefined ? parseSize(values.bytes) : quick ? 64 * 1024 ** 2 : GIB,
    runs: intArg(values.runs, "runs", quick ? 1 : 3, 1),
    rtts: intArg(values.rtts, "rtts", quick ? 1000 : 10_000, 1),
    connSeconds,
    concurrency: intArg(values.concurrency, "concurrency", 32, 1),
    idleConns: intArg(values["idle-conns"], "idle-conns", quick ? 500 : 10_000, 1),
    outDir: resolve(values.out ?? join(BENCH_DIR, "results")),
    install: values["no-install"] !== true,
    keep: values.keep === true,
    captured: values["no-captured"] !== true,
    l7: values["no-l7"] !== true,
    l7Plugins: values["no-plugins"] !== true,
    meshRoot: resolve(values["mesh-root"] ?? join(BENCH_DIR, "..")),
  };
}

// ---------------------------------------------------------------------------------------------
// Child processes

const live = new Set<Subprocess>();
const activePaths = new Set<BenchPath>();
let interrupted = false;

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/** Reads newline-delimited text from a child's stdout, each read bounded in time. */
class LineReader {
  private buf = "";
  private readonly reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> };
  private readonly decoder = new TextDecoder();
  private ended = false;
  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.getReader();
  }
  async next(timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 1_000_000; i++) {
      const nl = this.buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        return line;
      }
      if (this.ended) {
        const rest = this.buf;
        this.buf = "";
        return rest || undefined;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no output within ${timeoutMs} ms`);
      const r = await Promise.race([this.reader.read(), Bun.sleep(left).then(() => "timeout" as const)]);
      if (r === "timeout") throw new Error(`no output within ${timeoutMs} ms`);
      if (r.done) this.ended = true;
      else this.buf += this.decoder.decode(r.value, { stream: true });
    }
    return undefined;
  }
}

function spawnLoad(args: string[], stdin: "pipe" | "ignore" = "ignore"): Subprocess<"pipe" | "ignore", "pipe", "pipe"> {
  const child = Bun.spawn(withRaisedNofile([process.execPath, LOAD_TS, ...args]), { stdin, stdout: "pipe", stderr: "pipe" });
  live.add(child);
  void child.exited.then(() => live.delete(child));
  return child;
}

function parseResult(text: string, what: string): Record<string, unknown> {
  const lines = text.trim().split("\n").filter(Boolean);
  const last = lines[lines.length - 1];
  if (!last) throw new Error(`${what}: no result`);
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(last) as Record<string, unknown>;
  } catch {
    throw new Error(`${what}: unreadable result line: ${last.slice(0, 200)}`);
  }
  if (typeof v.error === "string") throw new Error(`${what}: ${v.error}`);
  return v;
}

/** Run one load-generator child to completion, bounded by timeoutMs. */
async function runLoad(args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  const child = spawnLoad(args);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  await child.exited;
  clearTimeout(timer);
  const what = `load ${args[0]}`;
  if (timedOut) throw new Error(`${what}: killed after ${timeoutMs} ms`);
  try {
    return parseResult(out, what);
  } catch (e) {
    const tail = err.trim().split("\n").slice(-5).join("\n");
    throw new Error(`${(e as Error).message}${tail ? `\n${tail}` : ""}`);
  }
}

async function startApp(host: string): Promise<{ child: Subprocess; port: number }> {
  const child = spawnLoad(["serve", "--host", host]);
  const lines = new LineReader(child.stdout);
  const first = await lines.next(15_000).catch((e: Error) => {
    child.kill("SIGKILL");
    throw new Error(`server app on ${host}: ${e.message}`);
  });
  const v = first ? (JSON.parse(first) as { event?: string; port?: number }) : {};
  if (v.event !== "listening" || typeof v.port !== "number") {
    child.kill("SIGKILL");
    throw new Error(`server app on ${host} did not start: ${first ?? "(no output)"}`);
  }
  return { child, port: v.port };
}

// ---------------------------------------------------------------------------------------------
// Measurements. Each returns flat metrics (name → number) so rounds can be merged by median.

type Metrics = Record<string, number>;

const TPUT_CASES = [
  { dir: "up", streams: 1 },
  { dir: "up", streams: 8 },
  { dir: "down", streams: 1 },
  { dir: "down", streams: 8 },
] as const;

function entryArg(entry: Entry): string {
  return JSON.stringify(entry);
}

async function measureThroughput(h: PathHandle, o: BenchOptions, m: Metrics): Promise<void> {
  for (const c of TPUT_CASES) {
    const key = `tput.${c.dir}.${c.streams}`;
    const timeoutMs = 30_000 + Math.ceil(((o.bytes * 8) / 100e6) * 1000); // fails below ~100 Mbit/s
    const cpu0 = totalCpuSeconds(h.proxyPids);
    const r = await runLoad(
      ["throughput", "--entry", entryArg(h.entry), "--streams", String(c.streams), "--bytes", String(o.bytes), "--dir", c.dir, "--timeout-ms", String(timeoutMs - 5000)],
      timeoutMs,
    );
    const cpu = totalCpuSeconds(h.proxyPids) - cpu0;
    m[`${key}.gbps`] = r.gbps as number;
    if (h.proxyPids.length > 0) m[`${key}.cpuPerGB`] = cpu / (o.bytes / 1e9);
    log(`  ${c.streams} stream${c.streams > 1 ? "s" : ""} ${c.dir}: ${fmt(r.gbps as number)} Gbit/s${h.proxyPids.length ? `, proxies ${fmt(cpu / (o.bytes / 1e9))} core-s/GB` : ""}`);
  }
}

async function measureLatency(h: PathHandle, o: BenchOptions, m: Metrics): Promise<void> {
  const timeoutMs = 30_000 + o.rtts * 5;
  const r = await runLoad(["latency", "--entry", entryArg(h.entry), "--count", String(o.rtts), "--warmup", String(Math.min(1000, Math.ceil(o.rtts / 10))), "--size", "1024", "--timeout-ms", String(timeoutMs - 5000)], timeoutMs);
  for (const k of ["p50Us", "p90Us", "p99Us", "p999Us", "meanUs"]) m[`lat.${k}`] = r[k] as number;
  log(`  1 KiB RTT: p50 ${fmt(r.p50Us as number)} µs, p99 ${fmt(r.p99Us as number)} µs`);
}

async function measureConnRate(h: PathHandle, o: BenchOptions, m: Metrics): Promise<void> {
  const durationMs = Math.round(o.connSeconds * 1000);
  const cpu0 = totalCpuSeconds(h.proxyPids);
  const r = await runLoad(["connrate", "--entry", entryArg(h.entry), "--concurrency", String(o.concurrency), "--duration-ms", String(durationMs), "--size", "100"], durationMs + 60_000);
  const cpu = totalCpuSeconds(h.proxyPids) - cpu0;
  const ok = r.ok as number;
  m["conn.perSec"] = r.perSec as number;
  m["conn.errors"] = r.errors as number;
  m["conn.p50Ms"] = (r.connectMs as { p50: number }).p50;
  m["conn.p99Ms"] = (r.connectMs as { p99: number }).p99;
  if (h.proxyPids.length > 0 && ok > 0) m["conn.cpuMsPerConn"] = (cpu * 1000) / ok;
  const errs = r.errors as number;
  log(`  new connections: ${fmt(r.perSec as number)} /s (${ok} ok, ${errs} errors${errs ? `: ${String(r.firstError)}` : ""})`);
  if (ok === 0) throw new Error(`no connection completed: ${String(r.firstError)}`);
}

/**
 * After the load generator closed its idle connections, give the proxies up to 10 s to release
 * them (stunnel ends one thread per connection) and record what is left: fds still open beyond
 * the baseline show connections a proxy keeps (pooled tunnels) or leaks.
 */
async function checkRelease(h: PathHandle, fdBaseline: Map<number, number>, m: Metrics, notes: string[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  let fds: { p: ProxyProcess; now: number; base: number }[] = [];
  let busyCores = 0;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    fds = h.proxies.map((p) => ({ p, now: openFdCount(p.pid), base: fdBaseline.get(p.pid) ?? 0 }));
    const cpu0 = totalCpuSeconds(h.proxyPids);
    await Bun.sleep(250);
    busyCores = (totalCpuSeconds(h.proxyPids) - cpu0) / 0.25;
    if (fds.every((f) => !(f.now > f.base + 32)) && busyCores <= 0.1) break;
  }
  for (const f of fds) {
    m[`rss.${f.p.role}.fdsAfterClose`] = f.now;
    m[`rss.${f.p.role}.afterCloseKiB`] = rssKiB(f.p.pid);
  }
  const kept = fds.filter((f) => f.now > f.base + 32);
  if (kept.length > 0 || busyCores > 0.1) {
    notes.push(
      `after the idle test closed its connections: ${fds.map((f) => `${f.p.label} ${f.now} fds open (${f.base} before)`).join(", ")}; proxies using ${fmt(busyCores)} cores`,
    );
  }
}

async function measureIdleMemory(h: PathHandle, conns: number, m: Metrics, notes: string[]): Promise<void> {
  await Bun.sleep(500);
  const fdBaseline = new Map(h.proxies.map((p) => [p.pid, openFdCount(p.pid)]));
  const before = new Map<ProxyProcess, number>(h.proxies.map((p) => [p, rssKiB(p.pid)]));
  for (const p of h.proxies) m[`rss.${p.role}.idleKiB`] = before.get(p) as number;
  const child = spawnLoad(["idle", "--entry", entryArg(h.entry), "--conns", String(conns), "--parallel", "64", "--hold-ms", "600000"], "pipe");
  const lines = new LineReader(child.stdout);
  const stdin = child.stdin as import("bun").FileSink;
  try {
    const openTimeout = 60_000 + conns * 10;
    let ready: Record<string, unknown> | undefined;
    for (let i = 0; i < 10 && !ready; i++) {
      const line = await lines.next(openTimeout);
      if (line === undefined) break;
      const v = parseResult(line, "load idle");
      if (v.event === "ready") ready = v;
    }
    if (!ready) throw new Error(`load idle: ended before holding its connections: ${await new Response(child.stderr).text()}`);
    const opened = ready.opened as number;
    if ((ready.failed as number) > 0) notes.push(`idle test: ${String(ready.failed)} of ${conns} connections failed (${String(ready.firstError)})`);
    if (opened === 0) throw new Error(`no idle connection could be opened: ${String(ready.firstError)}`);
    await Bun.sleep(1000); // let allocator and GC settle
    m["rss.conns"] = opened;
    for (const p of h.proxies) {
      const held = rssKiB(p.pid);
      m[`rss.${p.role}.heldKiB`] = held;
      m[`rss.${p.role}.perConnKiB`] = (held - (before.get(p) as number)) / opened;
      m[`rss.${p.role}.fds`] = openFdCount(p.pid);
    }
    log(
      `  ${opened} idle connections: ` +
        h.proxies.map((p) => `${p.label} ${fmt(m[`rss.${p.role}.idleKiB`] as number / 1024)} → ${fmt(m[`rss.${p.role}.heldKiB`] as number / 1024)} MiB (${fmt(m[`rss.${p.role}.perConnKiB`])} KiB/conn)`).join("; "),
    );
  } finally {
    try {
      stdin.write("close\n");
      await stdin.end();
    } catch {
      // child already gone
    }
    await Promise.race([child.exited, Bun.sleep(15_000)]);
    await stopChild(child);
    await checkRelease(h, fdBaseline, m, notes);
  }
}

// ---------------------------------------------------------------------------------------------
// Rounds

interface PathReport extends NotedPath<PathName> {
  proxies?: { role: string; label: string }[];
  runs: Metrics[];
  summary: Metrics;
}

function makePath(name: PathName, o: BenchOptions): BenchPath {
  if (name === "direct") return createDirectPath();
  if (name === "stunnel") return createStunnelPath({ log, install: o.install, keepWorkDir: o.keep });
  return createMeshPath({ log, keepWorkDir: o.keep, repoRoot: o.meshRoot });
}

async function step(report: PathReport, what: string, fn: () => Promise<void>): Promise<void> {
  if (interrupted) return;
  try {
    await fn();
  } catch (e) {
    const msg = `${what}: ${(e as Error).message}`;
    report.errors.push(msg);
    log(`  ! ${msg}`);
  }
}

/**
 * Start a fresh path (and server app), run `body` against it, stop both. Returns false when the
 * path is unavailable or failed to start (recorded in the report).
 */
async function withPath(name: PathName, o: BenchOptions, report: PathReport, body: (path: BenchPath, handle: PathHandle) => Promise<void>): Promise<boolean> {
  const path = makePath(name, o);
  activePaths.add(path);
  let app: { child: Subprocess; port: number } | undefined;
  try {
    app = await startApp(path.appHost);
    let handle: PathHandle;
    try {
      handle = await path.start({ host: path.appHost, port: app.port });
    } catch (e) {
      report.status = e instanceof PathUnavailable ? "skipped" : "failed";
      report.reason = (e as Error).message;
      log(`${name}: ${report.status === "skipped" ? "skipped" : "failed to start"}: ${(e as Error).message}`);
      return false;
    }
    report.entry = describeEntry(handle.entry);
    report.proxies = handle.proxies.map((p) => ({ role: p.role, label: p.label }));
    for (const n of handle.notes) if (!report.notes.includes(n)) report.notes.push(n);
    await body(path, handle);
    return true;
  } catch (e) {
    report.status = "failed";
    report.reason = (e as Error).message;
    log(`${name}: ${(e as Error).message}`);
    return false;
  } finally {
    await path.stop().catch((e: Error) => log(`${name}: stop: ${e.message}`));
    activePaths.delete(path);
    if (app) await stopChild(app.child);
  }
}

/** Memory per idle tunnelled connection, on its own fresh proxies so nothing else is in their heap. */
async function memoryPhase(name: PathName, o: BenchOptions, report: PathReport): Promise<Metrics> {
  const m: Metrics = {};
  if (name === "direct") return m;
  await withPath(name, o, report, async (path, handle) => {
    if (handle.proxies.length === 0) return;
    const { hard } = nofileLimits();
    // The load generator and the server app each hold one fd per connection.
    let conns = Math.min(o.idleConns, Math.max(0, hard - 512));
    const cap = path.idleConnCap?.(hard);
    if (cap !== undefined && cap < conns) conns = cap;
    if (conns < o.idleConns) report.notes.push(`idle-memory test held ${conns} connections, not ${o.idleConns}: fd limit ${hard} per process`);
    log(`${name} (memory): ${report.entry}`);
    if (conns > 0) await step(report, "idle memory", () => measureIdleMemory(handle, conns, m, report.notes));
  });
  return m;
}

/** Throughput, latency and connection rate, on fresh proxies. */
async function perfPhase(name: PathName, round: number, o: BenchOptions, report: PathReport): Promise<Metrics | undefined> {
  const m: Metrics = {};
  const ok = await withPath(name, o, report, async (_path, handle) => {
    log(`${name} (round ${round + 1}/${o.runs}): ${report.entry}`);
    await step(report, "throughput", () => measureThroughput(handle, o, m));
    await step(report, "latency", () => measureLatency(handle, o, m));
    await step(report, "connection rate", () => measureConnRate(handle, o, m));
  });
  return ok ? m : undefined;
}

async function runRound(name: PathName, round: number, o: BenchOptions, report: PathReport): Promise<void> {
  const memory = round === 0 ? await memoryPhase(name, o, report) : {};
  if (report.status !== "ok") return;
  const perf = await perfPhase(name, round, o, report);
  if (perf) report.runs.push({ ...memory, ...perf });
}

function summarize(runs: Metrics[]): Metrics {
  const keys = new Set(runs.flatMap((r) => Object.keys(r)));
  const out: Metrics = {};
  for (const k of keys) out[k] = median(runs.map((r) => r[k]).filter((v): v is number => v !== undefined));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Report

interface Row {
  label: string;
  key: string; // metric key, or derived "added.p50" / "added.p99"
  digits?: number;
  scale?: number;
  /** A count, not a measurement: no ratio columns. */
  noRatio?: boolean;
  target?: { text: string; check: (v: Record<PathName, number | undefined>) => number | undefined; pass: (r: number) => boolean };
}

function value(reports: Map<PathName, PathReport>, name: PathName, key: string): number | undefined {
  const r = reports.get(name);
  if (!r || r.runs.length === 0) return undefined;
  if (key.startsWith("added.")) {
    const direct = reports.get("direct")?.summary[`lat.${key.slice(6)}Us`];
    const own = r.summary[`lat.${key.slice(6)}Us`];
    if (name === "direct" || direct === undefined || own === undefined) return undefined;
    return own - direct;
  }
  const v = r.summary[key];
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}

function rows(o: BenchOptions): Row[] {
  const vsStunnel = (text: string): Row["target"] => ({
    text,
    check: (v) => ratio(v.mesh, v.stunnel),
    pass: (r) => r >= 1.0,
  });
  const out: Row[] = [];
  for (const c of TPUT_CASES) {
    const name = `${c.streams} stream${c.streams > 1 ? "s" : ""} ${c.dir}`;
    out.push({ label: `throughput, ${name} (Gbit/s)`, key: `tput.${c.dir}.${c.streams}.gbps`, target: vsStunnel("≥ 1.0× stunnel") });
  }
  for (const c of TPUT_CASES) {
    out.push({ label: `proxy CPU, ${c.streams} stream${c.streams > 1 ? "s" : ""} ${c.dir} (core-s/GB)`, key: `tput.${c.dir}.${c.streams}.cpuPerGB` });
  }
  out.push(
    { label: "1 KiB RTT p50 (µs)", key: "lat.p50Us" },
    { label: "1 KiB RTT p99 (µs)", key: "lat.p99Us" },
    {
      label: "added p50 over direct (µs)",
      key: "added.p50",
      target: { text: "≤ 1.0× stunnel's", check: (v) => ratio(v.mesh, v.stunnel), pass: (r) => r <= 1.0 },
    },
    { label: "added p99 over direct (µs)", key: "added.p99" },
    {
      label: `new connections/s (c=${o.concurrency})`,
      key: "conn.perSec",
      digits: 0,
      target: { text: "mesh ≥ 2 000/s", check: (v) => v.mesh, pass: (r) => r >= 2000 },
    },
    { label: "new connection + 100 B echo p50 (ms)", key: "conn.p50Ms" },
    { label: "proxy CPU per new connection (ms)", key: "conn.cpuMsPerConn" },
  );
  for (const role of ["client", "server"] as const) {
    out.push(
      { label: `RSS ${role}-side proxy, idle (MiB)`, key: `rss.${role}.idleKiB`, scale: 1 / 1024 },
      { label: `RSS ${role}-side proxy, holding idle conns (MiB)`, key: `rss.${role}.heldKiB`, scale: 1 / 1024 },
      {
        label: `RSS per idle conn, ${role}-side proxy (KiB)`,
        key: `rss.${role}.perConnKiB`,
        target: { text: "mesh ≤ 8 KiB", check: (v) => v.mesh, pass: (r) => r <= 8 },
      },
    );
  }
  out.push({ label: "idle connections held", key: "rss.conns", digits: 0, noRatio: true });
  return out;
}

interface TableRow {
  label: string;
  cells: Record<PathName, string>;
  ratioStunnel: string;
  ratioDirect: string;
  target: string;
  verdict: Verdict;
  raw: Record<PathName, number | undefined>;
}

function buildTable(reports: Map<PathName, PathReport>, o: BenchOptions): TableRow[] {
  return rows(o).map((row) => {
    const raw = {} as Record<PathName, number | undefined>;
    const cells = {} as Record<PathName, string>;
    for (const p of ALL_PATHS) {
      const v = value(reports, p, row.key);
      raw[p] = v;
      cells[p] = fmt(v === undefined ? undefined : v * (row.scale ?? 1), row.digits);
    }
    const verdict = row.target ? judge(row.target.check(raw), row.target.pass) : "";
    return {
      label: row.label,
      cells,
      ratioStunnel: row.noRatio ? "" : fmt(ratio(raw.mesh, raw.stunnel)),
      ratioDirect: row.noRatio ? "" : fmt(ratio(raw.mesh, raw.direct)),
      target: row.target?.text ?? "",
      verdict,
      raw,
    };
  });
}

function renderMarkdown(table: TableRow[]): string {
  const head = "| metric | direct | stunnel | mesh | mesh ÷ stunnel | mesh ÷ direct | target | |";
  const sep = "|---|---:|---:|---:|---:|---:|---|---|";
  const body = table.map((r) => `| ${r.label} | ${r.cells.direct} | ${r.cells.stunnel} | ${r.cells.mesh} | ${r.ratioStunnel} | ${r.ratioDirect} | ${r.target} | ${r.verdict} |`);
  return [head, sep, ...body].join("\n");
}

function renderText(table: TableRow[]): string {
  const cols = ["metric", "direct", "stunnel", "mesh", "mesh/stunnel", "mesh/direct", "target", ""];
  const data = table.map((r) => [r.label, r.cells.direct, r.cells.stunnel, r.cells.mesh, r.ratioStunnel, r.ratioDirect, r.target, r.verdict]);
  return textTable(cols, data, 6);
}

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const opts = parseCli(parseOptions, USAGE);
  if (typeof opts === "number") return opts;
  const limits = nofileLimits();
  log(
    `paths ${opts.only.join(", ")}; ${fmt(opts.bytes / 1024 ** 2, 0)} MiB per throughput test, ${opts.rtts} RTTs, ` +
      `${opts.connSeconds} s × ${opts.concurrency} connections, ${opts.idleConns} idle conns, ${opts.runs} run(s); fd limit ${limits.soft}/${limits.hard}`,
  );

  const reports = new Map<PathName, PathReport>();
  for (const name of opts.only) reports.set(name, { name, status: "ok", notes: [], errors: [], runs: [], summary: {} });
  const started = new Date();
  // Interleave the paths round by round, so slow drifts of this shared machine hit all of them alike.
  for (let round = 0; round < opts.runs; round++) {
    for (const name of opts.only) {
      const report = reports.get(name) as PathReport;
      if (report.status !== "ok") continue;
      await runRound(name, round, opts, report);
    }
  }
  for (const r of reports.values()) r.summary = summarize(r.runs);
  const captured = opts.captured ? await runCaptured(opts) : { skipped: "--no-captured" };
  const l7 = opts.l7 && !interrupted ? await runL7(opts) : { skipped: "--no-l7" };

  const table = buildTable(reports, opts);
  const md = renderMarkdown(table);
  const text = renderText(table);
  const meta = {
    date: started.toISOString(),
    seconds: Math.round((Date.now() - started.getTime()) / 1000),
    bun: Bun.version,
    kernel: release(),
    cpu: cpuModel(),
    cpus: availableParallelism(),
    nofile: limits,
  };
  const config = { ...opts, outDir: undefined };

  console.log("");
  console.log(text);
  console.log("");
  for (const r of reports.values()) {
    if (r.status !== "ok") console.log(`${r.name}: ${r.status}: ${r.reason ?? ""}`);
    for (const e of r.errors) console.log(`${r.name}: error: ${e}`);
    for (const n of r.notes) console.log(`${r.name}: ${n}`);
  }
  const { passed, failed, na } = tallyVerdicts(table.map((t) => t.verdict));
  console.log(`targets: ${passed} pass, ${failed} fail, ${na} n/a`);
  if ("text" in l7) console.log(`\nL7 path:\n${l7.text}`);

  mkdirSync(opts.outDir, { recursive: true });
  const json = {
    meta,
    config,
    paths: Object.fromEntries([...reports].map(([k, r]) => [k, r])),
    table: table.map((t) => ({ metric: t.label, ...t.raw, meshOverStunnel: ratio(t.raw.mesh, t.raw.stunnel), meshOverDirect: ratio(t.raw.mesh, t.raw.direct), target: t.target, verdict: t.verdict })),
    targets: { passed, failed, na },
    captured,
    l7: "json" in l7 ? l7.json : l7,
  };
  writeFileSync(join(opts.outDir, "latest.json"), `${reportJson(json)}\n`);
  const notes = noteLines(reports.values());
  const mdDoc = [
    `# Benchmark results`,
    "",
    `${meta.date}, ${meta.seconds} s. Bun ${meta.bun}, Linux ${meta.kernel}, ${meta.cpus} × ${meta.cpu}.`,
    `${fmt(opts.bytes / 1024 ** 2, 0)} MiB per throughput test, ${opts.rtts} round trips, ${opts.connSeconds} s × ${opts.concurrency} new-connection workers, ` +
      `${opts.idleConns} idle connections requested; median of ${opts.runs} run(s)${opts.quick ? " (--quick: smoke sizes, not for quoting)" : ""}.`,
    "",
    md,
    "",
    `Targets: ${passed} pass, ${failed} fail, ${na} n/a. Generated by \`bun bench/run.ts\`; method in bench/README.md.`,
    "",
    ...(notes.length ? ["Notes:", "", ...notes, ""] : []),
    "## Captured mode (pod → pod on a network-namespace testbed)",
    "",
    "captured" in captured && captured.captured ? captured.captured : `Skipped: ${"skipped" in captured ? captured.skipped : "unknown"}.`,
    "",
    ...("markdown" in l7 ? [l7.markdown] : [L7_HEADING, "", `Skipped: ${l7.skipped}.`, ""]),
  ].join("\n");
  writeFileSync(join(opts.outDir, "latest.md"), mdDoc);
  log(`wrote ${join(opts.outDir, "latest.json")} and latest.md`);
  return 0;
}

/** The L7 section (bench/l7.ts), with this run's rounds, install and mesh-root choices. */
async function runL7(opts: BenchOptions): Promise<L7Result | { skipped: string }> {
  const base = parseL7Options([...(opts.quick ? ["--quick"] : []), ...(opts.l7Plugins ? [] : ["--no-plugins"])]);
  if (base === "help") return { skipped: "unreachable" };
  try {
    return await runL7Section({ ...base, runs: opts.runs, install: opts.install, keep: opts.keep, repoRoot: opts.meshRoot }, log);
  } catch (e) {
    log(`L7 section failed: ${(e as Error).message}`);
    return { skipped: `failed: ${(e as Error).message.split("\n")[0]}` };
  }
}

/**
 * The captured-mode rows: its own process (it builds network namespaces and needs root), with the
 * same load generator and app as the loopback rows.
 */
async function runCaptured(opts: BenchOptions): Promise<{ captured: string; rows: unknown } | { skipped: string }> {
  const can = canRun();
  if (!can.ok) {
    log(`captured-mode rows skipped: ${can.why}`);
    return { skipped: can.why ?? "cannot build network namespaces here" };
  }
  const jsonPath = join(opts.outDir, "captured.tmp.json");
  mkdirSync(opts.outDir, { recursive: true });
  const bytes = Math.min(opts.bytes, 256 * 1024 ** 2);
  log(`captured mode: pod → pod direct and through the mesh, ${fmt(bytes / 1024 ** 2, 0)} MiB`);
  const proc = Bun.spawn(
    [process.execPath, join(BENCH_DIR, "paths", "captured.ts"), "--bytes", String(bytes), "--rtts", String(Math.min(opts.rtts, 2000)), "--conn-seconds", String(Math.min(opts.connSeconds, 2)), "--json", jsonPath],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) {
    const why = `captured bench exited ${code}: ${err.trim().split("\n").slice(-3).join(" / ")}`;
    log(why);
    return { skipped: why };
  }
  let rows: unknown = null;
  try {
    rows = JSON.parse(readFileSync(jsonPath, "utf8")).rows;
    rmSync(jsonPath, { force: true });
  } catch {
    // the table on stdout is still reported
  }
  return { captured: out.trim(), rows };
}

async function shutdown(signal: string): Promise<void> {
  interrupted = true;
  log(`${signal}: stopping children`);
  await Promise.all([...[...activePaths].map((p) => p.stop().catch(() => {})), ...[...live].map((c) => stopChild(c, 1000)), stopL7()]);
}

if (import.meta.main) runMain(main, shutdown);
