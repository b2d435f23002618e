// The L7 section of the benchmark: HTTP/1.1 keep-alive, 1 KiB responses, closed loop, through
//   direct  load generator → app
//   l7      load generator → SOCKS5 on the client's ztunnel → HBONE → waypoint → HBONE → server's ztunnel → app
//   plugin1 the l7 path with one Wasm plugin in the waypoint (the add-header example)
//   plugin5 the l7 path with five add-header plugins chained
//   nginx   load generator → nginx reverse proxy (keep-alive upstream) → app   (the stand-in peer)
// interleaved round by round in one run, with the proxies' CPU per 1 000 requests/s.
//
//   bun bench/l7.ts [--quick] [--runs N] [--conns N] [--warmup-ms MS] [--duration-ms MS] [--rate R]
//                   [--only direct,l7,plugin1,plugin5,nginx] [--no-plugins] [--out DIR] [--no-install] [--keep]
//                   [--mesh-root DIR] [--mesh-bin PATH] [--from-source] [--mesh-env K=V]...
//                   [--waypoint-prof DIR]
//
// Alone it replaces the "## L7 path" section of <out>/latest.md (appending it if absent) and the
// `l7` key of <out>/latest.json; `bun bench/run.ts` runs it as its last section (skip: --no-l7).
// Method and caveats: bench/README.md, "L7 path".

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, release, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import { intArg, parseCli, parseOnly, runMain, stringFlags } from "./cli.ts";
import { describeEntry } from "./entry.ts";
import { createL7MeshPath, type L7MeshPath, type L7MeshPathOptions } from "./paths/l7-mesh.ts";
import { createL7NginxPath } from "./paths/l7-nginx.ts";
import { addHeaderChain, buildPluginModule, expectedHeaders, PLUGIN_MODULE_KINDS, PLUGIN_ROWS, type PluginModule, type PluginModuleKind } from "./paths/l7-plugins.ts";
import type { L7Handle, L7Path, L7PathName } from "./paths/l7-types.ts";
import { PathUnavailable, type AppEndpoint } from "./paths/types.ts";
import { clkTck, cpuSeconds, randomOctet, rssKiB, stopChild, withRaisedNofile } from "./proc.ts";
import { judge, noteLines, reportJson, tallyVerdicts, textTable, type NotedPath, type Verdict } from "./report.ts";
import { fmt, median, ratio } from "./stats.ts";

const BENCH_DIR = import.meta.dir;
const L7_LOAD = join(BENCH_DIR, "paths", "l7-load.ts");
// The plugin rows sit next to `l7` in each round, so drift of the shared machine hits them alike.
const ALL: readonly L7PathName[] = ["direct", "l7", "plugin1", "plugin5", "nginx"];
/** The columns of the main table; the plugin rows have their own table. */
const MAIN: readonly L7PathName[] = ["direct", "l7", "nginx"];
const PLUGIN_PATHS: readonly L7PathName[] = ["plugin1", "plugin5"];
const TITLE: Record<L7PathName, string> = { direct: "direct", l7: "L7 mesh", plugin1: "L7 + 1 plugin", plugin5: "L7 + 5 plugins", nginx: "nginx" };
export const L7_HEADING = "## L7 path";
export const PLUGINS_HEADING = "### Wasm plugins on the L7 path";

/** Targets (bench/README.md "L7 path"). */
const TARGET_RPS_VS_DIRECT = 0.5;
const TARGET_WAYPOINT_CORES_PER_1K = 0.25;
/** Latency one simple plugin (add-header) may add to a request at p50. */
const TARGET_PLUGIN_ADDED_P50_US = 30;

export interface L7Options {
  quick: boolean;
  runs: number;
  conns: number;
  warmupMs: number;
  durationMs: number;
  /** Second measurement per path at this total rate (req/s, paced); 0 skips it. */
  rate: number;
  /**
   * Third measurement of the mesh rows (l7, plugin1, plugin5) at this lower rate when plugin rows
   * run, so that the 5-plugin waypoint is not saturated; 0 skips it.
   */
  pluginRate: number;
  /** where the plugin rows' VMs run (`limits.isolation`) */
  pluginIsolation: "auto" | "worker" | "inline";
  /** what the plugin rows load: the add-header example, a minimal WAT module, or no module */
  pluginModule: PluginModuleKind;
  /** The app: a JS fetch handler (default) or a native static route. */
  app: "fetch" | "static";
  only: L7PathName[];
  install: boolean;
  keep: boolean;
  repoRoot: string;
  meshBin?: string;
  fromSource: boolean;
  meshEnv: Record<string, string>;
  /** Profile the waypoint (bun --cpu-prof --cpu-prof-md) into this directory. */
  waypointProfileDir?: string;
  /** Skip the closed-loop window (profiling the paced path: the closed loop would fill the profile). */
  pacedOnly: boolean;
}

type Metrics = Record<string, number>;

interface PathReport extends NotedPath<L7PathName> {
  runs: Metrics[];
  /** The round (1-based) of each entry of `runs`, to pair rows of the same round. */
  rounds: number[];
  summary: Metrics;
  min: Metrics;
  max: Metrics;
}

export interface L7Result {
  markdown: string;
  text: string;
  json: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Children (tracked so an interrupt stops them all)

const live = new Set<Subprocess>();
const activePaths = new Set<L7Path>();
let interrupted = false;

/** Stop every process this section started (for the orchestrator's signal handler). */
export async function stopL7(): Promise<void> {
  interrupted = true;
  await Promise.all([...[...activePaths].map((p) => p.stop().catch(() => {})), ...[...live].map((c) => stopChild(c, 1000))]);
}

function spawnLoad(args: string[]): Subprocess<"ignore", "pipe", "pipe"> {
  const child = Bun.spawn(withRaisedNofile([process.execPath, L7_LOAD, ...args]), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  live.add(child);
  void child.exited.then(() => live.delete(child));
  return child;
}

/** Newline-delimited JSON from a child's stdout, each line handed to `onLine` as it arrives. */
async function readLines(stream: ReadableStream<Uint8Array>, onLine: (v: Record<string, unknown>, raw: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(line) as Record<string, unknown>;
      } catch {
        v = { error: `unreadable line: ${line.slice(0, 200)}` };
      }
      onLine(v, line);
    }
  }
  if (buf.trim()) {
    try {
      onLine(JSON.parse(buf) as Record<string, unknown>, buf);
    } catch {
      onLine({ error: `unreadable line: ${buf.slice(0, 200)}` }, buf);
    }
  }
}

async function startApp(host: string, kind: L7Options["app"]): Promise<{ child: Subprocess; port: number }> {
  const child = spawnLoad(["serve", "--host", host, "--size", "1024", "--app", kind]);
  let port: number | undefined;
  let error: string | undefined;
  const reading = readLines(child.stdout, (v) => {
    if (v.event === "listening" && typeof v.port === "number") port = v.port;
    else if (typeof v.error === "string") error = v.error;
  });
  const deadline = Date.now() + 15_000;
  while (port === undefined && error === undefined && child.exitCode === null && Date.now() < deadline) await Bun.sleep(20);
  if (port === undefined) {
    child.kill("SIGKILL");
    const err = await new Response(child.stderr).text().catch(() => "");
    throw new Error(`app on ${host} did not start: ${error ?? (err.trim().split("\n").slice(-3).join(" / ") || "no output")}`);
  }
  void reading.catch(() => {});
  return { child, port };
}

// ---------------------------------------------------------------------------------------------
// One measurement

/** Busy and total jiffies of the whole machine (/proc/stat "cpu" line). */
function machineJiffies(): { busy: number; total: number } {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    const busy = user + nice + system + irq + softirq + steal;
    return { busy, total: busy + idle + iowait };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

/** Kernel-mode CPU seconds of a process (stime, field 15 of /proc/<pid>/stat), NaN when gone. */
function systemSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[12]) / clkTck();
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU seconds of a process's JavaScriptCore JIT compiler threads (named "JITWorker"): large while
 * code is still tiering up, so it shows a warm-up that spilled into the measured window.
 */
function jitSeconds(pid: number): number {
  let seconds = 0;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        if (readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim() !== "JITWorker") continue;
        const s = cpuSeconds(pid, Number(t));
        if (Number.isFinite(s)) seconds += s; // NaN: the thread ended
      } catch {
        // the thread ended
      }
    }
  } catch {
    return Number.NaN;
  }
  return seconds;
}

interface Sample {
  at: number;
  cpu: Map<number, number>;
  sys: Map<number, number>;
  jit: Map<number, number>;
  /** CPU seconds of the main (event-loop) thread of the same processes as `jit` */
  main: Map<number, number>;
  machine: { busy: number; total: number };
}

function sample(pids: number[], jitPids: number[] = []): Sample {
  return {
    at: performance.now(),
    cpu: new Map(pids.map((p) => [p, cpuSeconds(p)])),
    sys: new Map(pids.map((p) => [p, systemSeconds(p)])),
    jit: new Map(jitPids.map((p) => [p, jitSeconds(p)])),
    main: new Map(jitPids.map((p) => [p, cpuSeconds(p, p)])),
    machine: machineJiffies(),
  };
}

/** A load generator run against `target` (its result line); `onEvent` sees measure-start / measure-end. */
async function runLoad(
  target: { entry: L7Handle["entry"]; authority: string; expectHeaders?: readonly string[] },
  o: L7Options,
  conns: number,
  rate: number,
  onEvent: (event: string, pid: number) => void = () => {},
  /** A second target taking turns with `target`, `sliceMs` each (paced only). */
  alt?: { target: { entry: L7Handle["entry"]; authority: string }; sliceMs: number },
): Promise<Record<string, unknown>> {
  const child = spawnLoad([
    "load", "--entry", JSON.stringify(target.entry), "--authority", target.authority, "--conns", String(conns),
    // The paced run follows the closed loop on the same processes, whose JIT is warm by then.
    "--warmup-ms", String(rate > 0 ? Math.min(o.warmupMs, PACED_WARMUP_MS) : o.warmupMs), "--duration-ms", String(o.durationMs), "--rate", String(rate),
    ...(target.expectHeaders?.length ? ["--expect-headers", target.expectHeaders.join(",")] : []),
    ...(alt ? ["--alt-entry", JSON.stringify(alt.target.entry), "--alt-authority", alt.target.authority, "--slice-ms", String(alt.sliceMs)] : []),
  ]);
  let result: Record<string, unknown> | undefined;
  let lastError: string | undefined;
  let events = 0;
  const timeoutMs = o.warmupMs + o.durationMs + 30_000;
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  await readLines(child.stdout, (v) => {
    if (v.event === "measure-start" || v.event === "measure-end") {
      events++;
      onEvent(v.event, child.pid);
    } else if (typeof v.error === "string") lastError = v.error;
    else if (v.event === undefined) result = v;
  });
  const code = await child.exited;
  clearTimeout(timer);
  if (!result || events < 2) {
    const err = await new Response(child.stderr).text().catch(() => "");
    throw new Error(`load generator ${code === null ? "killed" : `exited ${code}`}: ${lastError ?? (err.trim().split("\n").slice(-3).join(" / ") || "no result")}`);
  }
  return result;
}

/**
 * One window of the load generator on a started path. Failed connections and non-2xx responses
 * are counted in the figures and described to `problem`.
 */
async function measure(handle: L7Handle, app: { child: Subprocess }, o: L7Options, rate: number, log: (l: string) => void, problem: (what: string) => void): Promise<Metrics> {
  const jitPids = handle.procs.filter((p) => p.role !== "nginx").map((p) => p.pid);
  let s0: Sample | undefined;
  let s1: Sample | undefined;
  let loadPid = 0;
  const result = await runLoad(handle, o, o.conns, rate, (event, pid) => {
    loadPid = pid;
    const pids = [...handle.procs.map((p) => p.pid), app.child.pid, pid];
    if (event === "measure-start") s0 = sample(pids, jitPids);
    else s1 = sample(pids, jitPids);
  });
  if (!s0 || !s1) throw new Error("the load generator did not report its measured window");
  const wall = (s1.at - s0.at) / 1000;
  const rps = result.rps as number;
  const m: Metrics = {
    rps,
    requests: result.requests as number,
    p50Us: result.p50Us as number,
    p90Us: result.p90Us as number,
    p99Us: result.p99Us as number,
    p999Us: result.p999Us as number,
    meanUs: result.meanUs as number,
    errors: result.errors as number,
    non2xx: result.non2xx as number,
    conns: result.conns as number,
  };
  const cores = (pid: number) => ((s1?.cpu.get(pid) ?? Number.NaN) - (s0?.cpu.get(pid) ?? Number.NaN)) / wall;
  const per1k = (c: number) => (rps > 0 ? c / (rps / 1000) : Number.NaN);
  let proxyCores = 0;
  for (const p of handle.procs) {
    const c = cores(p.pid);
    proxyCores += c;
    m[`cores.${p.role}`] = c;
    m[`per1k.${p.role}`] = per1k(c);
    // Share of its CPU spent in the kernel (syscalls, TCP): high means many small reads/writes.
    m[`sysShare.${p.role}`] = ((s1.sys.get(p.pid) ?? Number.NaN) - (s0.sys.get(p.pid) ?? Number.NaN)) / wall / c;
    if (jitPids.includes(p.pid)) {
      m[`jitShare.${p.role}`] = ((s1.jit.get(p.pid) ?? Number.NaN) - (s0.jit.get(p.pid) ?? Number.NaN)) / wall / c;
      // The event loop runs on one thread: near 1 core, it is the bottleneck whatever the total.
      m[`mainCores.${p.role}`] = ((s1.main.get(p.pid) ?? Number.NaN) - (s0.main.get(p.pid) ?? Number.NaN)) / wall;
    }
    m[`rssMiB.${p.role}`] = rssKiB(p.pid) / 1024;
  }
  if (handle.procs.length > 0) {
    m["cores.proxies"] = proxyCores;
    m["per1k.proxies"] = per1k(proxyCores);
  }
  if (handle.procs.some((p) => p.role.startsWith("ztunnel"))) {
    const z = handle.procs.filter((p) => p.role.startsWith("ztunnel")).reduce((a, p) => a + cores(p.pid), 0);
    m["cores.ztunnels"] = z;
    m["per1k.ztunnels"] = per1k(z);
  }
  m["cores.app"] = cores(app.child.pid);
  m["per1k.app"] = per1k(m["cores.app"]);
  m["cores.load"] = cores(loadPid);
  m["per1k.load"] = per1k(m["cores.load"]);
  m["cores.machine"] = (s1.machine.busy - s0.machine.busy) / clkTck() / wall;
  const errs = m.errors as number;
  log(
    `  ${rate > 0 ? `paced at ${rate}/s: ` : "closed loop: "}${fmt(rps, 0)} req/s, p50 ${fmt(m.p50Us)} µs, p99 ${fmt(m.p99Us)} µs` +
      handle.procs.map((p) => `, ${p.role} ${fmt(m[`cores.${p.role}`])} cores (${fmt(m[`per1k.${p.role}`], 3)}/1k rps)`).join("") +
      `, machine ${fmt(m["cores.machine"])} cores busy${errs ? `, ${errs} errors (${String(result.firstError)})` : ""}${m.non2xx ? `, ${m.non2xx} non-2xx` : ""}`,
  );
  if (errs > 0) problem(`${errs} connections failed mid-run (counted, not retried); first: ${String(result.firstError)}`);
  if (m.non2xx) problem(`${m.non2xx} responses were not 2xx; first: ${String(result.firstNon2xx)}`);
  if ((result.connectFailures as number) > 0) throw new Error(`${String(result.connectFailures)} of ${o.conns} connections failed: ${String(result.firstConnectError)}`);
  if (!(rps > 0)) throw new Error(`no request completed${result.firstError ? `: ${String(result.firstError)}` : ""}`);
  return m;
}

/** Describes a window's failed connections and non-2xx responses to `problem`; throws when nothing completed. */
function checkWindow(name: string, r: Record<string, unknown>, problem: (what: string) => void): void {
  if ((r.errors as number) > 0) problem(`${name}: ${String(r.errors)} connections failed mid-run; first: ${String(r.firstError)}`);
  if ((r.non2xx as number) > 0) problem(`${name}: ${String(r.non2xx)} responses were not 2xx; first: ${String(r.firstNon2xx)}`);
  if (!((r.rps as number) > 0)) throw new Error(`${name}: no request completed`);
}

/**
 * The plugin path and the same waypoint's plugin-free path (handle.bare) at once, each at half of
 * `rate` over half the connections: what the plugins add to a request, with the process, its JIT
 * state and the machine's load the same on both sides (separate rows differ by ±40 µs at p50 from
 * one set of processes to the next).
 */
async function measureSideBySide(handle: L7Handle, o: L7Options, rate: number, log: (l: string) => void, problem: (what: string) => void): Promise<Metrics> {
  const bare = handle.bare;
  if (!bare) return {};
  const conns = Math.max(1, Math.floor(o.conns / 2));
  const [withPlugins, without] = await Promise.all([runLoad(handle, o, conns, rate / 2), runLoad(bare, o, conns, rate / 2)]);
  for (const [side, r] of [["plugin side", withPlugins], ["bare side", without]] as const) checkWindow(side, r, problem);
  log(
    `  same waypoint, ${fmt(rate, 0)} req/s split between the plugin service and the bare one: ` +
      `p50 ${fmt(withPlugins.p50Us as number)} vs ${fmt(without.p50Us as number)} µs, p99 ${fmt(withPlugins.p99Us as number)} vs ${fmt(without.p99Us as number)} µs`,
  );
  return {
    "ab.p50Us": withPlugins.p50Us as number,
    "ab.bareP50Us": without.p50Us as number,
    "ab.p99Us": withPlugins.p99Us as number,
    "ab.bareP99Us": without.p99Us as number,
    "ab.p50DiffUs": (withPlugins.p50Us as number) - (without.p50Us as number),
  };
}

/** The alternating measure: slices of this length, plugin service and plugin-free one in turn, over this long. */
const ALT_SLICE_MS = 250;
const ALT_WARMUP_MS = 1000;
const ALT_DURATION_MS = 12_000;

/**
 * Same processes, all the traffic to one service at a time: the service the plugins target and the
 * plugin-free one in turn, switching every ALT_SLICE_MS, from one generator process over the same
 * connections throughout (short slices cancel the machine's drift between the two sides). Unlike side
 * by side, a slice through the plugins has every request run them, as a waypoint whose traffic all
 * goes through a plugin; unlike separate rows, both sides run on the same set of processes.
 */
async function measureAlternating(handle: L7Handle, o: L7Options, rate: number, log: (l: string) => void, problem: (what: string) => void): Promise<Metrics> {
  const bare = handle.bare;
  if (!bare) return {};
  const window = { ...o, warmupMs: ALT_WARMUP_MS, durationMs: ALT_DURATION_MS };
  const r = await runLoad(handle, window, o.conns, rate, undefined, { target: bare, sliceMs: ALT_SLICE_MS });
  const b = (r.alt ?? {}) as Record<string, unknown>;
  // failed connections and non-2xx responses are counted over both services; rps per service
  checkWindow("in turn, plugin service", r, problem);
  if (!((b.rps as number) > 0)) throw new Error("in turn: no request to the plugin-free service completed");
  const m: Metrics = { "alt.p50Us": r.p50Us as number, "alt.bareP50Us": b.p50Us as number, "alt.p99Us": r.p99Us as number, "alt.bareP99Us": b.p99Us as number };
  m["alt.p50DiffUs"] = (m["alt.p50Us"] as number) - (m["alt.bareP50Us"] as number);
  log(
    `  same waypoint, ${fmt(rate, 0)} req/s to the plugin service and to the bare one in turn (${ALT_SLICE_MS} ms slices): ` +
      `p50 ${fmt(r.p50Us as number)} vs ${fmt(b.p50Us as number)} µs, p99 ${fmt(r.p99Us as number)} vs ${fmt(b.p99Us as number)} µs`,
  );
  return m;
}

const IDLE_MS = 2000;
const PACED_WARMUP_MS = 1000;

/** The proxies' own CPU with no traffic (timers, watchers, metrics), which a low request rate pays too. */
async function measureIdle(handle: L7Handle, log: (l: string) => void): Promise<Metrics> {
  if (handle.procs.length === 0) return {};
  await Bun.sleep(500);
  const pids = handle.procs.map((p) => p.pid);
  const s0 = sample(pids);
  await Bun.sleep(IDLE_MS);
  const s1 = sample(pids);
  const wall = (s1.at - s0.at) / 1000;
  const m: Metrics = {};
  let total = 0;
  for (const p of handle.procs) {
    const c = ((s1.cpu.get(p.pid) ?? Number.NaN) - (s0.cpu.get(p.pid) ?? Number.NaN)) / wall;
    m[`idle.${p.role}`] = c;
    total += c;
  }
  m["idle.proxies"] = total;
  log(`  idle: ${handle.procs.map((p) => `${p.role} ${fmt(m[`idle.${p.role}`], 3)}`).join(", ")} cores`);
  return m;
}

// ---------------------------------------------------------------------------------------------
// The section

function directPath(): L7Path {
  return {
    name: "direct",
    async start(app: AppEndpoint): Promise<L7Handle> {
      return { entry: { kind: "tcp", host: app.host, port: app.port }, authority: `${app.host}:${app.port}`, procs: [], notes: [] };
    },
    async stop(): Promise<void> {},
  };
}

function stats(runs: Metrics[], pick: (v: number[]) => number): Metrics {
  const keys = new Set(runs.flatMap((r) => Object.keys(r)));
  const out: Metrics = {};
  for (const k of keys) {
    const vs = runs.map((r) => r[k]).filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (vs.length) out[k] = pick(vs);
  }
  return out;
}

export async function runL7Section(o: L7Options, log: (line: string) => void): Promise<L7Result> {
  const started = new Date();
  const net = `127.76.${randomOctet()}`;
  const appHost = `${net}.2`; // the server workload's address: the mesh delivers there
  const reports = new Map<L7PathName, PathReport>();
  for (const n of o.only) reports.set(n, { name: n, status: "ok", notes: [], errors: [], runs: [], rounds: [], summary: {}, min: {}, max: {} });
  log(`L7: ${o.only.join(", ")}; HTTP/1.1 keep-alive, 1 KiB responses, ${o.conns} connections, ${o.warmupMs} ms warm-up + ${o.durationMs} ms, ${o.runs} round(s)`);

  // The plugin rows' module, compiled once (outside the config's directory, which the mesh watches).
  const wantPlugins = PLUGIN_PATHS.filter((p) => o.only.includes(p));
  let pluginDir: string | undefined;
  let pluginModule: PluginModule | undefined;
  if (wantPlugins.length > 0) {
    pluginDir = mkdtempSync(join(tmpdir(), "bench-l7-plugins-"));
    try {
      const t0 = performance.now();
      const m = await buildPluginModule(o.pluginModule, pluginDir, PLUGIN_ROWS.plugin5);
      pluginModule = m;
      const file = m.files[0];
      log(
        file === undefined
          ? "plugin rows: no module (--plugin-module no-vm: FAIL_OPEN plugins whose module is missing)"
          : `${m.kind === "wat" ? "minimal WAT add-header plugins" : "add-header plugin"}: ${file.path} (sha256 ${file.sha256.slice(0, 12)}…, ${m.fromCache ? "from the build cache" : `built in ${fmt((performance.now() - t0) / 1000)} s`})`,
      );
    } catch (e) {
      for (const p of wantPlugins) {
        const r = reports.get(p) as PathReport;
        r.status = "failed";
        r.reason = `add-header did not build: ${(e as Error).message}`;
      }
      log(`L7 plugin rows: ${(e as Error).message}`);
    }
  }
  const meshOpts: L7MeshPathOptions = { log, net, repoRoot: o.repoRoot, meshBin: o.meshBin, fromSource: o.fromSource, env: o.meshEnv, keepWorkDir: o.keep, waypointProfileDir: o.waypointProfileDir };
  const meshes: L7MeshPath[] = [];
  const meshPath = (name: L7PathName, plugins = 0): L7MeshPath | undefined => {
    if (!o.only.includes(name) || (plugins > 0 && !pluginModule)) return undefined;
    const m = createL7MeshPath({
      ...meshOpts,
      name,
      ...(plugins > 0 && pluginModule ? { plugins: addHeaderChain(plugins, pluginModule, o.pluginIsolation), expectHeaders: expectedHeaders(plugins, pluginModule) } : {}),
    });
    meshes.push(m);
    return m;
  };
  const paths: Record<L7PathName, L7Path | undefined> = {
    direct: o.only.includes("direct") ? directPath() : undefined,
    l7: meshPath("l7"),
    plugin1: meshPath("plugin1", PLUGIN_ROWS.plugin1),
    plugin5: meshPath("plugin5", PLUGIN_ROWS.plugin5),
    nginx: o.only.includes("nginx") ? createL7NginxPath({ log, host: `${net}.5`, install: o.install, keepWorkDir: o.keep }) : undefined,
  };

  // One app for every path and round: it listens on the server workload's address.
  let app: { child: Subprocess; port: number } | undefined;
  try {
    app = await startApp(appHost, o.app);
    const endpoint = { host: appHost, port: app.port };
    for (let round = 0; round < o.runs && !interrupted; round++) {
      for (const name of o.only) {
        const report = reports.get(name) as PathReport;
        const path = paths[name];
        if (report.status !== "ok" || !path || interrupted) continue;
        activePaths.add(path);
        try {
          let handle: L7Handle;
          try {
            handle = await startPath(path, endpoint, log);
          } catch (e) {
            report.status = e instanceof PathUnavailable ? "skipped" : "failed";
            report.reason = (e as Error).message;
            log(`L7 ${name}: ${report.status === "skipped" ? "skipped" : "failed to start"}: ${report.reason}`);
            continue;
          }
          report.entry = describeEntry(handle.entry);
          for (const n of handle.notes) if (!report.notes.includes(n)) report.notes.push(n);
          log(`L7 ${name} (round ${round + 1}/${o.runs}): ${report.entry}`);
          let troubled = false;
          const problem = (what: string) => (msg: string) => {
            troubled = true;
            report.errors.push(`round ${round + 1} (${what}): ${msg}`);
          };
          try {
            const m = await measureIdle(handle, log);
            if (!o.pacedOnly) Object.assign(m, await measure(handle, app, o, 0, log, problem("closed loop")));
            if (o.rate > 0 && !interrupted) {
              const paced = await measure(handle, app, o, o.rate, log, problem(`at ${o.rate} req/s`));
              for (const [k, v] of Object.entries(paced)) m[`paced.${k}`] = v;
            }
            const pluginTable = wantPlugins.length > 0 && PLUGIN_COLUMNS.some((c) => c.name === name);
            if (o.rate > 0 && handle.bare && pluginTable && !interrupted) Object.assign(m, await measureSideBySide(handle, o, o.rate, log, problem("same waypoint, side by side")));
            if (o.rate > 0 && handle.bare && pluginTable && !interrupted) Object.assign(m, await measureAlternating(handle, o, o.rate, log, problem("same waypoint, in turn")));
            if (o.pluginRate > 0 && pluginTable && !interrupted) {
              const low = await measure(handle, app, o, o.pluginRate, log, problem(`at ${o.pluginRate} req/s`));
              for (const [k, v] of Object.entries(low)) m[`low.${k}`] = v;
            }
            report.runs.push(m);
            report.rounds.push(round + 1);
          } catch (e) {
            troubled = true;
            report.errors.push(`round ${round + 1}: ${(e as Error).message}`);
            log(`  ! ${(e as Error).message}`);
          }
          // What the proxies logged about it, read before stop() removes the round's logs.
          if (troubled) for (const p of path.problems?.() ?? []) report.errors.push(`round ${round + 1}, logged: ${p}`);
        } finally {
          await path.stop().catch((e: Error) => log(`L7 ${name}: stop: ${e.message}`));
          activePaths.delete(path);
        }
      }
    }
  } finally {
    await Promise.all(meshes.map((m) => m.dispose().catch(() => {})));
    if (app) await stopChild(app.child);
    if (pluginDir && !o.keep) rmSync(pluginDir, { recursive: true, force: true });
  }
  for (const r of reports.values()) {
    r.summary = stats(r.runs, median);
    r.min = stats(r.runs, (v) => Math.min(...v));
    r.max = stats(r.runs, (v) => Math.max(...v));
  }
  return render(reports, o, started);
}

// ---------------------------------------------------------------------------------------------
// Report

interface Row {
  label: string;
  key: string;
  digits?: number;
  /** only this column carries the value (per-process rows) */
  target?: { text: string; check: (v: Record<L7PathName, number | undefined>) => number | undefined; pass: (r: number) => boolean };
}

function rows(o: L7Options): Row[] {
  return [
    {
      label: `requests/s (${o.conns} connections)`,
      key: "rps",
      digits: 0,
      target: { text: `L7 ≥ ${TARGET_RPS_VS_DIRECT * 100} % of direct`, check: (v) => ratio(v.l7, v.direct), pass: (r) => r >= TARGET_RPS_VS_DIRECT },
    },
    { label: "latency p50 (µs)", key: "p50Us", digits: 0 },
    { label: "latency p99 (µs)", key: "p99Us", digits: 0 },
    {
      label: "waypoint cores per 1 000 req/s",
      key: "per1k.waypoint",
      digits: 3,
      target: { text: `≤ ${TARGET_WAYPOINT_CORES_PER_1K} cores`, check: (v) => v.l7, pass: (r) => r <= TARGET_WAYPOINT_CORES_PER_1K },
    },
    { label: "ztunnel client side, cores per 1 000 req/s", key: "per1k.ztunnel-client", digits: 3 },
    { label: "ztunnel server side, cores per 1 000 req/s", key: "per1k.ztunnel-server", digits: 3 },
    { label: "nginx cores per 1 000 req/s", key: "per1k.nginx", digits: 3 },
    { label: "all proxies, cores per 1 000 req/s", key: "per1k.proxies", digits: 3 },
    { label: "waypoint CPU in the kernel (share)", key: "sysShare.waypoint" },
    { label: "nginx CPU in the kernel (share)", key: "sysShare.nginx" },
    { label: "waypoint CPU in JIT compiler threads (share; high = still warming up)", key: "jitShare.waypoint" },
    { label: "waypoint cores in use", key: "cores.waypoint" },
    { label: "waypoint main (event-loop) thread, cores in use", key: "mainCores.waypoint" },
    { label: "both ztunnels, cores in use", key: "cores.ztunnels" },
    { label: "all proxies, cores in use", key: "cores.proxies" },
    { label: `waypoint cores with no traffic (${IDLE_MS / 1000} s)`, key: "idle.waypoint", digits: 3 },
    { label: `all proxies, cores with no traffic (${IDLE_MS / 1000} s)`, key: "idle.proxies", digits: 3 },
    { label: "app cores per 1 000 req/s", key: "per1k.app", digits: 3 },
    { label: "load generator cores per 1 000 req/s", key: "per1k.load", digits: 3 },
    { label: `machine busy, all processes (cores of ${availableParallelism()})`, key: "cores.machine" },
    ...(o.rate > 0 ? pacedRows(o) : []),
  ];
}

/** The same paths at a fixed rate (Istio's CPU and latency anchors are taken at 1 000 req/s). */
function pacedRows(o: L7Options): Row[] {
  const at = `at ${fmt(o.rate, 0)} req/s`;
  return [
    { label: `${at}: achieved req/s`, key: "paced.rps", digits: 0 },
    { label: `${at}: latency p50 (µs)`, key: "paced.p50Us", digits: 0 },
    { label: `${at}: latency p90 (µs)`, key: "paced.p90Us", digits: 0 },
    { label: `${at}: latency p99 (µs)`, key: "paced.p99Us", digits: 0 },
    { label: `${at}: p50 added over direct (µs)`, key: "added.paced.p50Us", digits: 0 },
    { label: `${at}: p99 added over direct (µs)`, key: "added.paced.p99Us", digits: 0 },
    {
      label: `${at}: waypoint cores per 1 000 req/s`,
      key: "paced.per1k.waypoint",
      digits: 3,
      target: { text: `≤ ${TARGET_WAYPOINT_CORES_PER_1K} cores`, check: (v) => v.l7, pass: (r) => r <= TARGET_WAYPOINT_CORES_PER_1K },
    },
    { label: `${at}: ztunnel client side, cores per 1 000 req/s`, key: "paced.per1k.ztunnel-client", digits: 3 },
    { label: `${at}: ztunnel server side, cores per 1 000 req/s`, key: "paced.per1k.ztunnel-server", digits: 3 },
    { label: `${at}: nginx cores per 1 000 req/s`, key: "paced.per1k.nginx", digits: 3 },
    { label: `${at}: all proxies, cores per 1 000 req/s`, key: "paced.per1k.proxies", digits: 3 },
  ];
}

interface TableRow {
  label: string;
  cells: Record<L7PathName, string>;
  ranges: Record<L7PathName, string>;
  raw: Record<L7PathName, number | undefined>;
  overDirect: number;
  overNginx: number;
  target: string;
  verdict: Verdict;
}

function build(reports: Map<L7PathName, PathReport>, o: L7Options): TableRow[] {
  return rows(o).map((row) => {
    const raw = {} as Record<L7PathName, number | undefined>;
    const cells = {} as Record<L7PathName, string>;
    const ranges = {} as Record<L7PathName, string>;
    for (const p of MAIN) {
      const r = reports.get(p);
      let v = r?.summary[row.key];
      let lo = r?.min[row.key];
      let hi = r?.max[row.key];
      if (row.key.startsWith("added.")) {
        // Median of the path minus median of direct; the range is not meaningful for a difference.
        const key = row.key.slice("added.".length);
        const base = reports.get("direct")?.summary[key];
        const own = r?.summary[key];
        v = p === "direct" || base === undefined || own === undefined ? undefined : own - base;
        lo = hi = undefined;
      }
      raw[p] = v;
      cells[p] = fmt(v, row.digits);
      ranges[p] = v === undefined || (r?.runs.length ?? 0) < 2 || lo === undefined ? fmt(v, row.digits) : `${fmt(lo, row.digits)}–${fmt(hi, row.digits)}`;
    }
    const verdict = row.target ? judge(row.target.check(raw), row.target.pass) : "";
    return {
      label: row.label,
      cells,
      ranges,
      raw,
      overDirect: ratio(raw.l7, raw.direct),
      overNginx: ratio(raw.l7, raw.nginx),
      target: row.target?.text ?? "",
      verdict,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Wasm plugin rows: no plugin (the l7 path), 1 and 5 add-header plugins, from the same rounds

/** The no-plugin column and the plugin columns, with their plugin counts. */
const PLUGIN_COLUMNS: readonly { name: L7PathName; plugins: number; title: string }[] = [
  { name: "l7", plugins: 0, title: "no plugin" },
  { name: "plugin1", plugins: PLUGIN_ROWS.plugin1, title: "1 plugin" },
  { name: "plugin5", plugins: PLUGIN_ROWS.plugin5, title: "5 plugins" },
];

interface PluginRow {
  label: string;
  digits?: number;
  /** One round's value for a column: `own` is its run, `base` the no-plugin run of the same round, `k` its plugin count. */
  value: (own: Metrics, base: Metrics | undefined, k: number) => number | undefined;
  target?: { text: string; pass: (v: number) => boolean };
}

interface PluginCell {
  median: number;
  min: number;
  max: number;
  /** by round */
  values: number[];
}

function pluginRows(o: L7Options): PluginRow[] {
  const plain = (key: string) => (m: Metrics) => m[key];
  // (plugin row − no-plugin row of the same round) ÷ plugins: pairs rounds, so drift between rounds cancels.
  const perPlugin = (key: string, scale = 1) => (m: Metrics, base: Metrics | undefined, k: number) =>
    base && k > 0 && m[key] !== undefined && base[key] !== undefined ? (((m[key] as number) - (base[key] as number)) * scale) / k : undefined;
  const vsBase = (key: string) => (m: Metrics, base: Metrics | undefined, k: number) => (base && k > 0 ? ratio(m[key], base[key]) : undefined);
  const target = { text: `≤ ${TARGET_PLUGIN_ADDED_P50_US} µs per plugin`, pass: (v: number) => v <= TARGET_PLUGIN_ADDED_P50_US };
  // cores per 1 000 req/s = CPU-seconds per 1 000 requests; × 1 000 = CPU-µs per request.
  const cpuUs = 1000;
  const paced = (prefix: string, rate: number): PluginRow[] => {
    const at = `at ${fmt(rate, 0)} req/s`;
    return [
      { label: `${at}: achieved req/s`, value: plain(`${prefix}rps`), digits: 0 },
      { label: `${at}: latency p50 (µs)`, value: plain(`${prefix}p50Us`), digits: 0 },
      { label: `${at}: latency p99 (µs)`, value: plain(`${prefix}p99Us`), digits: 0 },
      { label: `${at}: p50 added per plugin (µs)`, value: perPlugin(`${prefix}p50Us`), digits: 1, target },
      { label: `${at}: p99 added per plugin (µs)`, value: perPlugin(`${prefix}p99Us`), digits: 1 },
      { label: `${at}: waypoint cores per 1 000 req/s`, value: plain(`${prefix}per1k.waypoint`), digits: 3 },
      { label: `${at}: waypoint CPU added per request per plugin (µs)`, value: perPlugin(`${prefix}per1k.waypoint`, cpuUs), digits: 1 },
      { label: `${at}: waypoint cores in use`, value: plain(`${prefix}cores.waypoint`), digits: 2 },
      { label: `${at}: waypoint main (event-loop) thread, cores in use`, value: plain(`${prefix}mainCores.waypoint`), digits: 2 },
      { label: `${at}: all proxies, cores per 1 000 req/s`, value: plain(`${prefix}per1k.proxies`), digits: 3 },
    ];
  };
  // (plugin service − plugin-free service of the same waypoint, same window) ÷ plugins
  const sameProcess = (key: string, bareKey: string) => (m: Metrics, _base: Metrics | undefined, k: number) =>
    k > 0 && m[key] !== undefined && m[bareKey] !== undefined ? ((m[key] as number) - (m[bareKey] as number)) / k : undefined;
  /** Rows of a same-waypoint measure (plugin service vs plugin-free service), keys under `prefix`. */
  const sameWaypoint = (at: string, prefix: string): PluginRow[] => [
    { label: `${at}: latency p50 (µs), plugin service`, value: plain(`${prefix}p50Us`), digits: 0 },
    { label: `${at}: latency p50 (µs), plugin-free service`, value: plain(`${prefix}bareP50Us`), digits: 0 },
    { label: `${at}: p50 difference between the two services (µs; no plugin: the method's own error)`, value: plain(`${prefix}p50DiffUs`), digits: 1 },
    { label: `${at}: p50 added per plugin (µs)`, value: sameProcess(`${prefix}p50Us`, `${prefix}bareP50Us`), digits: 1, target },
    { label: `${at}: p99 added per plugin (µs)`, value: sameProcess(`${prefix}p99Us`, `${prefix}bareP99Us`), digits: 1 },
  ];
  const sideBySide = (rate: number): PluginRow[] =>
    sameWaypoint(`same waypoint, plugin and plugin-free service side by side at ${fmt(rate, 0)} req/s in total`, "ab.");
  const inTurn = (rate: number): PluginRow[] =>
    sameWaypoint(`same waypoint, all traffic to the plugin service or to the plugin-free one in turn at ${fmt(rate, 0)} req/s`, "alt.");
  return [
    { label: `closed loop (${o.conns} connections): requests/s`, value: plain("rps"), digits: 0 },
    { label: "closed loop: requests/s ÷ no plugin", value: vsBase("rps") },
    { label: "closed loop: latency p50 (µs)", value: plain("p50Us"), digits: 0 },
    { label: "closed loop: latency p99 (µs)", value: plain("p99Us"), digits: 0 },
    { label: "closed loop: p50 added per plugin (µs; CPU-bound, so mostly waiting for a core)", value: perPlugin("p50Us"), digits: 1, target },
    { label: "closed loop: waypoint cores per 1 000 req/s", value: plain("per1k.waypoint"), digits: 3 },
    { label: "closed loop: waypoint CPU added per request per plugin (µs)", value: perPlugin("per1k.waypoint", cpuUs), digits: 1 },
    { label: "closed loop: waypoint cores in use", value: plain("cores.waypoint"), digits: 2 },
    { label: "closed loop: waypoint main (event-loop) thread, cores in use", value: plain("mainCores.waypoint"), digits: 2 },
    ...(o.rate > 0 ? paced("paced.", o.rate) : []),
    ...(o.rate > 0 ? sideBySide(o.rate) : []),
    ...(o.rate > 0 ? inTurn(o.rate) : []),
    ...(o.pluginRate > 0 ? paced("low.", o.pluginRate) : []),
    { label: `waypoint cores with no traffic (${IDLE_MS / 1000} s)`, value: plain("idle.waypoint"), digits: 3 },
    { label: "waypoint RSS after the closed loop (MiB)", value: plain("rssMiB.waypoint"), digits: 0 },
  ];
}

function pluginCell(reports: Map<L7PathName, PathReport>, col: (typeof PLUGIN_COLUMNS)[number], row: PluginRow): PluginCell | undefined {
  const own = reports.get(col.name);
  const base = reports.get("l7");
  if (!own) return undefined;
  const values = own.runs
    .map((m, i) => row.value(m, base?.runs[base.rounds.indexOf(own.rounds[i] as number)], col.plugins))
    .filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (values.length === 0) return undefined;
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), values };
}

/** The plugin table (markdown, text, JSON), or a skipped note when no plugin row ran. */
function renderPlugins(reports: Map<L7PathName, PathReport>, o: L7Options): { markdown: string; text: string; json: unknown } {
  if (!PLUGIN_PATHS.some((p) => reports.has(p))) {
    return { markdown: `${PLUGINS_HEADING}\n\nSkipped (--no-plugins or --only).`, text: "", json: { skipped: "--no-plugins or --only" } };
  }
  const show = (c: PluginCell | undefined, digits?: number) =>
    c === undefined ? "–" : c.values.length < 2 ? fmt(c.median, digits) : `${fmt(c.median, digits)} (${fmt(c.min, digits)}–${fmt(c.max, digits)})`;
  const table = pluginRows(o).map((row) => {
    const cells = PLUGIN_COLUMNS.map((col) => pluginCell(reports, col, row));
    // The worst plugin column decides (a target row has no value in the no-plugin column).
    const judged = cells.filter((c): c is PluginCell => c !== undefined).map((c) => c.median);
    const verdict: Verdict = row.target ? judge(judged.length ? Math.max(...judged) : undefined, row.target.pass) : "";
    return { row, cells, verdict };
  });
  const tally = tallyVerdicts(table.map((t) => t.verdict));
  const module = [...PLUGIN_PATHS].reverse().map((p) => reports.get(p)?.notes.find((n) => n.startsWith("waypoint plugins"))).find((n) => n !== undefined);
  const head = `| metric | ${PLUGIN_COLUMNS.map((c) => c.title).join(" | ")} | target | |`;
  const body = table.map((t) => `| ${t.row.label} | ${t.cells.map((c) => show(c, t.row.digits)).join(" | ")} | ${t.row.target?.text ?? ""} | ${t.verdict} |`);
  const markdown = [
    PLUGINS_HEADING,
    "",
    `The L7 mesh path with no plugin, one \`add-header\` plugin (plugins/examples/add-header, built with plugins/build \`buildExamples\`) and five ` +
      `add-header instances chained (response headers \`x-p1\`…\`x-p5\`, request headers \`x-p1-req\`…), configured in the mesh config's \`plugins:\` section ` +
      `with targetRefs to the service; in the same rounds as the table above (fresh mesh processes per row and round; the waypoint is ready once its config dump lists every plugin loaded; ` +
      `the load generator checks the plugins' response headers on each connection's first response). ` +
      `Cells: median over rounds (min–max). "Added per plugin" = (row − no-plugin row of the same round) ÷ number of plugins, median over rounds. ` +
      `The closed loop is CPU-bound (the 2 cores are shared by 3 mesh processes, the generator and the app), so its latency measures contention; ` +
      `${o.rate > 0 ? `the rows at ${fmt(o.rate, 0)} req/s are the fairer added-latency figure` : "run with --rate for a paced measurement"}` +
      `${o.pluginRate > 0 ? `, and the rows at ${fmt(o.pluginRate, 0)} req/s (measured after the others, on the same processes) show it where even the 5-plugin waypoint is far from saturating a core.` : "."}` +
      `${o.rate > 0 ? ` "Same waypoint, side by side": right after the paced run, on the same processes, two generators at ${fmt(o.rate / 2, 0)} req/s each over ${Math.max(1, Math.floor(o.conns / 2))} connections, one to the service the plugins target and one to a second service of the same app and waypoint that no plugin targets (in the no-plugin row both are plugin-free: its difference is the method's own error); added per plugin = (plugin side − plugin-free side) ÷ plugins, each round. It takes out what separate rows cannot (a fresh set of processes per row: p50 differs by tens of µs between two sets running the same code), and keeps what a plugin costs the request it applies to. "Same waypoint, in turn": then, on the same processes again, all the traffic (${fmt(o.rate, 0)} req/s over ${o.conns} connections to each service) to the plugin service or to the plugin-free one, switching every ${ALT_SLICE_MS} ms for ${ALT_DURATION_MS / 1000} s after a ${ALT_WARMUP_MS / 1000} s warm-up, from one generator process over the same connections; each side's p50 is over all its requests. Every request of a plugin turn runs the plugins, as in a waypoint whose traffic all goes through them, without the process-set variance of separate rows.` : ""}`,
    "",
    [head, `|---|${PLUGIN_COLUMNS.map(() => "---:").join("|")}|---|---|`, ...body].join("\n"),
    "",
    `Plugin targets: ${tally.passed} pass, ${tally.failed} fail, ${tally.na} n/a (the worse plugin column decides).`,
    ...(module ? ["", `Configuration: ${module.replace(/^waypoint plugins/, "plugins")}.`] : []),
  ].join("\n");
  const text = [
    "Wasm plugins on the L7 path (median; range in latest.md):",
    textTable(["metric", ...PLUGIN_COLUMNS.map((c) => c.title), "target", ""], table.map((t) => [t.row.label, ...t.cells.map((c) => fmt(c?.median, t.row.digits)), t.row.target?.text ?? "", t.verdict]), 1 + PLUGIN_COLUMNS.length),
  ].join("\n");
  const json = {
    targetAddedP50UsPerPlugin: TARGET_PLUGIN_ADDED_P50_US,
    columns: Object.fromEntries(PLUGIN_COLUMNS.map((c) => [c.name, { plugins: c.plugins, title: c.title }])),
    rows: table.map((t) => ({
      metric: t.row.label,
      ...Object.fromEntries(PLUGIN_COLUMNS.map((c, i) => [c.name, t.cells[i] ?? null])),
      target: t.row.target?.text ?? "",
      verdict: t.verdict,
    })),
    targets: tally,
  };
  return { markdown, text, json };
}

function render(reports: Map<L7PathName, PathReport>, o: L7Options, started: Date): L7Result {
  const table = build(reports, o);
  const head = "| metric | direct | L7 mesh | nginx | L7 ÷ direct | L7 ÷ nginx | target | |";
  const sep = "|---|---:|---:|---:|---:|---:|---|---|";
  const body = table.map((r) => `| ${r.label} | ${r.cells.direct} | ${r.cells.l7} | ${r.cells.nginx} | ${fmt(r.overDirect)} | ${fmt(r.overNginx)} | ${r.target} | ${r.verdict} |`);
  const rangeHead = "| metric | direct | L7 mesh | nginx |";
  const rangeBody = table.filter((r) => MAIN.some((p) => r.raw[p] !== undefined)).map((r) => `| ${r.label} | ${r.ranges.direct} | ${r.ranges.l7} | ${r.ranges.nginx} |`);
  const roundsLine = (key: string, digits?: number) =>
    [...reports.values()].filter((r) => r.runs.length > 0).map((r) => `${TITLE[r.name]} ${r.runs.map((m) => fmt(m[key], digits)).join(", ")}`).join("; ");
  const { passed, failed, na } = tallyVerdicts(table.map((t) => t.verdict));
  const notes = noteLines(reports.values(), (n) => TITLE[n]);
  const plugins = renderPlugins(reports, o);
  const seconds = Math.round((Date.now() - started.getTime()) / 1000);
  const markdown = [
    `${L7_HEADING} (HTTP/1.1 keep-alive, 1 KiB responses)`,
    "",
    `${started.toISOString()}, ${seconds} s. Bun ${Bun.version}, Linux ${release()}, ${availableParallelism()} CPUs. ` +
      `Closed loop: ${o.conns} keep-alive connections, one request in flight each, ${o.warmupMs} ms warm-up then ${o.durationMs} ms measured` +
      `${o.rate > 0 ? `; then, on the same processes, paced at ${fmt(o.rate, 0)} req/s in total over the same connections (no catch-up), ${Math.min(o.warmupMs, PACED_WARMUP_MS)} ms warm-up + ${o.durationMs} ms` : ""}; ` +
      `median of ${o.runs} round(s), paths interleaved${o.quick ? " (--quick: smoke sizes, not for quoting)" : ""}. ` +
      `App: Bun.serve, ${o.app === "static" ? "native static route" : "JS fetch handler"}, 1 024-byte body. Load generator, app and every proxy share the machine's cores.`,
    "",
    [head, sep, ...body].join("\n"),
    "",
    `Targets: ${passed} pass, ${failed} fail, ${na} n/a. Generated by \`bun bench/l7.ts\` (or \`bun bench/run.ts\`); method in bench/README.md.`,
    "",
    ...(o.runs > 1 ? [`Range over the rounds (min–max):`, "", [rangeHead, "|---|---:|---:|---:|", ...rangeBody].join("\n"), ""] : []),
    `Requests/s by round: ${roundsLine("rps", 0)}.`,
    ...(reports.get("l7")?.runs.length
      ? [
          `Waypoint cores per 1 000 req/s by round: closed loop ${reports.get("l7")?.runs.map((m) => fmt(m["per1k.waypoint"], 3)).join(", ")}` +
            `${o.rate > 0 ? `; at ${fmt(o.rate, 0)} req/s ${reports.get("l7")?.runs.map((m) => fmt(m["paced.per1k.waypoint"], 3)).join(", ")}` : ""}.`,
        ]
      : []),
    "",
    plugins.markdown,
    "",
    ...(notes.length ? ["Notes:", "", ...notes, ""] : []),
  ].join("\n");

  const cols = ["metric", "direct", "L7 mesh", "nginx", "L7/direct", "L7/nginx", "target", ""];
  const data = table.map((r) => [r.label, r.cells.direct, r.cells.l7, r.cells.nginx, fmt(r.overDirect), fmt(r.overNginx), r.target, r.verdict]);
  const text = [textTable(cols, data, 6), ...(plugins.text ? ["", plugins.text] : [])].join("\n");

  const json = {
    date: started.toISOString(),
    seconds,
    config: { runs: o.runs, conns: o.conns, warmupMs: o.warmupMs, durationMs: o.durationMs, rate: o.rate, pluginRate: o.pluginRate, pluginIsolation: o.pluginIsolation, pluginModule: o.pluginModule, app: o.app, quick: o.quick, only: o.only, meshEnv: o.meshEnv, responseBytes: 1024 },
    paths: Object.fromEntries([...reports].map(([k, r]) => [k, r])),
    table: table.map((t) => ({ metric: t.label, ...t.raw, l7OverDirect: t.overDirect, l7OverNginx: t.overNginx, target: t.target, verdict: t.verdict })),
    targets: { passed, failed, na },
    plugins: plugins.json,
  };
  return { markdown, text, json };
}

/** Put the section into <outDir>/latest.md (replacing an earlier one) and latest.json's `l7` key. */
export function writeL7Results(outDir: string, r: L7Result): void {
  mkdirSync(outDir, { recursive: true });
  const mdPath = join(outDir, "latest.md");
  let md = existsSync(mdPath) ? readFileSync(mdPath, "utf8") : "# Benchmark results\n";
  const at = md.indexOf(`\n${L7_HEADING}`);
  if (at >= 0) {
    // The section runs to the next "## " heading or the end.
    const next = md.indexOf("\n## ", at + 1);
    md = next >= 0 ? md.slice(0, at) + md.slice(next) : md.slice(0, at);
  }
  md = `${md.trimEnd()}\n\n${r.markdown.trimEnd()}\n`;
  writeFileSync(mdPath, md);
  const jsonPath = join(outDir, "latest.json");
  let doc: Record<string, unknown> = {};
  if (existsSync(jsonPath)) {
    try {
      doc = JSON.parse(readFileSync(jsonPath, "utf8")) as Record<string, unknown>;
    } catch {
      doc = {};
    }
  }
  doc.l7 = r.json;
  writeFileSync(jsonPath, `${reportJson(doc)}\n`);
}

/**
 * Starts a path, again (up to twice more) when a port it was given was taken meanwhile: ports
 * are picked free on 127.0.0.1 (bench/proc.ts freePort) and a proxy's wildcard listener can
 * still collide with a port another path's process holds on its own loopback address.
 */
async function startPath(path: L7Path, endpoint: { host: string; port: number }, log: (m: string) => void): Promise<L7Handle> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await path.start(endpoint);
    } catch (e) {
      if (attempt >= 3 || e instanceof PathUnavailable || !/ADDRESS_IN_USE|already in use/.test((e as Error).message)) throw e;
      log(`a port was taken meanwhile (${(e as Error).message.split("\n").find((l) => /in use/.test(l))?.trim()}); starting again`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// CLI

const USAGE = `usage: bun bench/l7.ts [options]
  --quick              smoke run: 1 round, 500 ms warm-up, 2 000 ms measured
  --runs N             rounds, interleaving the paths; medians are reported (default 3, quick 1)
  --conns N            keep-alive connections of the load generator (default 16)
  --warmup-ms MS       warm-up before the closed-loop window (default 3000; the paced run then warms up 1000)
  --duration-ms MS     measured window (default 5000)
  --rate R             also measure each path paced at R req/s in total (default 1000; 0 skips)
  --only LIST          comma-separated subset of direct,l7,plugin1,plugin5,nginx (default: all)
                       plugin1 / plugin5: the l7 path with 1 / 5 add-header Wasm plugins in the waypoint
  --no-plugins         skip plugin1 and plugin5
  --plugin-isolation I auto (default), worker or inline: where the plugin rows' VMs run (limits.isolation)
  --plugin-module M    example (default): the add-header example; wat: a minimal hand-written module adding the
                       same headers (the host's own cost); no-vm: a missing module under FAIL_OPEN (the chain and
                       flow without a VM). Not for the published figures: for splitting a plugin's cost
  --plugin-rate R      with plugin rows, also measure l7, plugin1 and plugin5 paced at R req/s (default 200; 0 skips):
                       at --rate the 5-plugin waypoint needs about a core of the 2, so that row also measures queueing
  --app KIND           fetch (a JS handler per request, default) or static (Bun's native static route)
  --out DIR            where latest.md / latest.json are updated (default bench/results)
  --no-install         do not apt-get install nginx when it is missing
  --keep               keep the temporary directories (configs, proxy logs)
  --mesh-root DIR      benchmark DIR's mesh (dist/mesh if fresh, else DIR/cmd/mesh.ts)
  --mesh-bin PATH      run this mesh binary
  --from-source        run bun cmd/mesh.ts even when dist/mesh is fresh
  --mesh-env K=V       extra environment for the mesh processes (repeatable; e.g. MESH_LOG_LEVEL=warn)
  --paced-only         skip the closed-loop window (with --waypoint-prof: a profile of the paced path alone)
  --waypoint-prof DIR  run the waypoint from source under bun --cpu-prof --cpu-prof-md, profiles into DIR
                       (a sample every 50 µs; the profiler costs CPU: do not quote those rounds' figures)`;

function badApp(v: string): never {
  throw new Error(`--app must be fetch or static, got "${v}"`);
}

export function parseL7Options(argv: string[]): (L7Options & { outDir: string }) | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...stringFlags("runs", "conns", "warmup-ms", "duration-ms", "rate", "plugin-rate", "app", "only", "out", "mesh-root", "mesh-bin", "waypoint-prof"),
      quick: { type: "boolean", default: false },
      "no-plugins": { type: "boolean", default: false },
      "plugin-isolation": { type: "string" },
      "plugin-module": { type: "string" },
      "no-install": { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      "from-source": { type: "boolean", default: false },
      "paced-only": { type: "boolean", default: false },
      "mesh-env": { type: "string", multiple: true },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) return "help";
  const quick = values.quick === true;
  let only = parseOnly(values.only, ALL);
  if (values["no-plugins"] === true) {
    only = only.filter((p) => !PLUGIN_PATHS.includes(p));
    if (only.length === 0) throw new Error("--no-plugins with --only leaves no path");
  }
  const meshEnv: Record<string, string> = {};
  for (const kv of values["mesh-env"] ?? []) {
    const eq = kv.indexOf("=");
    if (eq < 1) throw new Error(`--mesh-env wants K=V, got "${kv}"`);
    meshEnv[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return {
    quick,
    runs: intArg(values.runs, "runs", quick ? 1 : 3, 1),
    conns: intArg(values.conns, "conns", 16, 1),
    // JavaScriptCore keeps tiering the proxies' hot code up for ~2–3 s of load (JITWorker threads):
    // a shorter warm-up bills that compilation to the measured window.
    warmupMs: intArg(values["warmup-ms"], "warmup-ms", quick ? 500 : 3000, 1),
    durationMs: intArg(values["duration-ms"], "duration-ms", quick ? 2000 : 5000, 1),
    rate: values.rate === "0" ? 0 : intArg(values.rate, "rate", 1000, 1),
    pluginRate: values["plugin-rate"] === "0" ? 0 : intArg(values["plugin-rate"], "plugin-rate", 200, 1),
    pluginIsolation: isolationArg(values["plugin-isolation"]),
    pluginModule: pluginModuleArg(values["plugin-module"]),
    app: values.app === "static" ? "static" : values.app === undefined || values.app === "fetch" ? "fetch" : badApp(values.app),
    only,
    install: values["no-install"] !== true,
    keep: values.keep === true,
    repoRoot: resolve(values["mesh-root"] ?? join(BENCH_DIR, "..")),
    meshBin: values["mesh-bin"],
    fromSource: values["from-source"] === true,
    pacedOnly: values["paced-only"] === true,
    meshEnv,
    ...(values["waypoint-prof"] ? { waypointProfileDir: resolve(values["waypoint-prof"]) } : {}),
    outDir: resolve(values.out ?? join(BENCH_DIR, "results")),
  };
}

async function main(): Promise<number> {
  const o = parseCli(parseL7Options, USAGE);
  if (typeof o === "number") return o;
  const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
  const r = await runL7Section(o, log);
  console.log("");
  console.log(r.text);
  console.log("");
  writeL7Results(o.outDir, r);
  log(`updated ${join(o.outDir, "latest.md")} ("${L7_HEADING}") and latest.json (l7)`);
  return 0;
}

if (import.meta.main) {
  runMain(main, (sig) => {
    process.stderr.write(`[bench] ${sig}: stopping children\n`);
    return stopL7();
  });
}


function isolationArg(v: unknown): "auto" | "worker" | "inline" {
  if (v === undefined) return "auto";
  if (v === "auto" || v === "worker" || v === "inline") return v;
  throw new Error(`--plugin-isolation must be auto, worker or inline, got ${JSON.stringify(v)}`);
}

function pluginModuleArg(v: unknown): PluginModuleKind {
  if (v === undefined) return "example";
  if (PLUGIN_MODULE_KINDS.includes(v as PluginModuleKind)) return v as PluginModuleKind;
  throw new Error(`--plugin-module must be ${PLUGIN_MODULE_KINDS.join(", ")}, got ${JSON.stringify(v)}`);
}
