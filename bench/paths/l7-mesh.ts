// The mesh's L7 path in loopback mode: two ztunnels and a waypoint, from one istio/ztunnel local config.
//
//   load generator -> SOCKS5 <net>.1:15080 (ztunnel node-a), CONNECT <net>.100:80 (service `server`;
//                     <net>.101:80 is service `bare`: the same app and waypoint, no plugins)
//                  =HBONE=> <net>.10:15008 (waypoint `bench//waypoint`, HTTP/1.1 parsed, policy, routing)
//                  =HBONE=> <net>.2:15008 (ztunnel node-b) -> app on <net>.2:<port>
//
// The service `server` names the waypoint, so node-a steers its traffic there (as in
// test/e2e/waypoint-steering.test.ts). With `plugins`, the config's `plugins` section attaches Wasm
// plugins to the service `server` (the shape test/e2e/waypoint-plugins.test.ts uses), and the
// waypoint counts as ready only once its config dump lists every one of them loaded. How a mesh
// process is started and probed: paths/mesh-cli.ts.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { stringify } from "yaml";
import { stopChild } from "../proc.ts";
import type { L7Handle, L7Path, L7PathName, L7Process } from "./l7-types.ts";
import { HBONE_PORT, meshCaInit, SOCKS5_PORT, startMeshProcess } from "./mesh-cli.ts";
import { PathUnavailable, type AppEndpoint } from "./types.ts";

const SERVICE_PORT = 80;
/**
 * --waypoint-prof sampling interval. Bun's default (1 ms) gives ~1 300 samples over a paced run,
 * too few to compare two runs function by function.
 */
const PROFILE_INTERVAL_US = 50;
const NS = "bench";
export const L7_SERVICE_HOST = `server.${NS}.svc.cluster.local`;
/** A second service of the same app and waypoint that no plugin targets (the plugin rows' same-process baseline). */
export const L7_BARE_SERVICE_HOST = `bare.${NS}.svc.cluster.local`;

/** One entry of the mesh config's `plugins` section, attached to the service `server`. */
export interface L7Plugin {
  name: string;
  /** Absolute path of the .wasm module (kept out of the config's directory). */
  url: string;
  sha256?: string;
  /** Root id (Istio `WasmPlugin.spec.pluginName`). */
  pluginName: string;
  pluginConfig: Record<string, string>;
  /** where the VM runs (limits.isolation; default auto: the waypoint's thread until the plugin misbehaves) */
  isolation?: "auto" | "worker" | "inline";
  /** FAIL_OPEN: the module may be unusable (the `no-vm` rows); the default fails closed. */
  failStrategy?: "FAIL_OPEN";
}

export interface L7MeshPathOptions {
  /** Row name in the report (default "l7"). */
  name?: L7PathName;
  /** Wasm plugins for the waypoint (none by default). */
  plugins?: readonly L7Plugin[];
  /** Response headers the plugins add: the load generator checks them on each connection's first response. */
  expectHeaders?: readonly string[];
  log: (line: string) => void;
  /** `127.a.b` — the path uses .1 (client), .2 (server, where the app listens), .10 (waypoint), .100/.102 (VIPs). */
  net: string;
  /** Repository root holding cmd/mesh.ts (and dist/mesh). */
  repoRoot: string;
  /** Run this binary instead of choosing between dist/mesh and `bun cmd/mesh.ts`. */
  meshBin?: string;
  /** Never use dist/mesh (run `bun cmd/mesh.ts`). */
  fromSource?: boolean;
  /** Extra environment for the three mesh processes (e.g. MESH_LOG_LEVEL=warn). */
  env?: Record<string, string>;
  keepWorkDir: boolean;
  /** Run the waypoint from source under `bun --cpu-prof --cpu-prof-md`, profiles written here on exit. */
  waypointProfileDir?: string;
}

function newestTs(dir: string, depth = 0): number {
  let newest = 0;
  if (depth > 6 || !existsSync(dir)) return 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTs(p, depth + 1));
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * The command that runs `mesh`: dist/mesh (`bun run build`) when it is at least as new as every
 * source file under core/, cmd/, plugins/ and wasm/, else `bun cmd/mesh.ts` — a stale binary would measure old code.
 */
export function resolveMeshCommand(o: Pick<L7MeshPathOptions, "repoRoot" | "meshBin" | "fromSource">): { cmd: string[]; note: string } {
  if (o.meshBin) return { cmd: [resolve(o.meshBin)], note: `mesh binary ${resolve(o.meshBin)} (--mesh-bin)` };
  const cli = join(o.repoRoot, "cmd", "mesh.ts");
  const bin = join(o.repoRoot, "dist", "mesh");
  const source = { cmd: [process.execPath, cli], note: `bun ${cli} (Bun ${Bun.version})` };
  if (o.fromSource || !existsSync(bin)) return source;
  const srcTime = Math.max(...["core", "cmd", "plugins", "wasm"].map((d) => newestTs(join(o.repoRoot, d))));
  if (statSync(bin).mtimeMs >= srcTime) return { cmd: [bin], note: `compiled ${bin}` };
  return { ...source, note: `${source.note}; dist/mesh is older than the sources, so not used (\`bun run build\` refreshes it)` };
}

/**
 * istio/ztunnel local config: client (node-a), server (node-b) behind services `server` and `bare`
 * whose waypoint is `waypoint`, and the `plugins` section (targeting `server`) when there are plugins.
 */
export function l7MeshConfig(net: string, appPort: number, plugins: readonly L7Plugin[] = []): string {
  const key = (name: string) => `${NS}/${name}.${NS}.svc.cluster.local`;
  const waypointRef = { destination: key("waypoint"), hboneMtlsPort: HBONE_PORT };
  const workload = (name: string, ip: string, node: string, services?: Record<string, Record<number, number>>) => ({
    uid: `${NS}//${name}`,
    name,
    namespace: NS,
    serviceAccount: name,
    workloadIps: [ip],
    protocol: "HBONE",
    node,
    ...(services ? { services } : {}),
  });
  const service = (name: string, vip: string, ports: Record<number, number>, waypoint?: typeof waypointRef) => ({
    name,
    namespace: NS,
    hostname: `${name}.${NS}.svc.cluster.local`,
    vips: [`/${vip}`],
    ports,
    ...(waypoint ? { waypoint } : {}),
  });
  return stringify({
    workloads: [
      workload("client", `${net}.1`, "node-a"),
      workload("server", `${net}.2`, "node-b", { [key("server")]: { [SERVICE_PORT]: appPort }, [key("bare")]: { [SERVICE_PORT]: appPort } }),
      workload("waypoint", `${net}.10`, "node-w", { [key("waypoint")]: { [HBONE_PORT]: HBONE_PORT } }),
    ],
    services: [
      service("server", `${net}.100`, { [SERVICE_PORT]: appPort }, waypointRef),
      service("bare", `${net}.101`, { [SERVICE_PORT]: appPort }, waypointRef),
      service("waypoint", `${net}.102`, { [HBONE_PORT]: HBONE_PORT }),
    ],
    ...(plugins.length > 0
      ? {
          plugins: plugins.map((p) => ({
            name: p.name,
            namespace: NS,
            targetRefs: [{ kind: "Service", group: "", name: "server" }],
            url: p.url,
            ...(p.sha256 ? { sha256: p.sha256 } : {}),
            ...(p.failStrategy ? { failStrategy: p.failStrategy } : {}),
            pluginName: p.pluginName,
            pluginConfig: p.pluginConfig,
            ...(p.isolation ? { limits: { isolation: p.isolation } } : {}),
          })),
        }
      : {}),
  });
}

/**
 * Whether the waypoint's config dump (admin /config_dump) lists `count` plugins, all loaded; throws
 * when one is unusable (bad module, sha256 mismatch, refused configuration), as waiting won't help.
 * With `unusableOk` (FAIL_OPEN plugins without a module), listing them is enough.
 */
async function pluginsLoaded(adminPort: number, count: number, unusableOk: boolean): Promise<boolean> {
  let dump: { plugins?: { key?: string; loaded?: boolean; error?: string }[] };
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/config_dump`, { signal: AbortSignal.timeout(1000) });
    if (res.status !== 200) return false;
    dump = (await res.json()) as typeof dump;
  } catch {
    return false;
  }
  const listed = dump.plugins ?? [];
  if (unusableOk) return listed.length === count;
  const broken = listed.find((p) => p.error !== undefined);
  if (broken) throw new Error(`plugin ${broken.key ?? "?"} is unusable: ${broken.error}`);
  return listed.length === count && listed.every((p) => p.loaded === true);
}

/**
 * The warn and error lines of a mesh log (JSON lines: time, level, scope, msg, fields), grouped by
 * message with counts, the most frequent first (at most `most`).
 */
function loggedProblems(logPath: string, most = 3): string[] {
  let text: string;
  try {
    text = readFileSync(logPath, "utf8");
  } catch {
    return [];
  }
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.includes('"level":"warn"') && !line.includes('"level":"error"')) continue;
    let key: string;
    try {
      const v = JSON.parse(line) as Record<string, unknown>;
      const detail = v.error ?? v.message ?? v.code ?? v.reason;
      const plugin = v.plugin !== undefined ? ` ${String(v.plugin)}` : "";
      key = `${String(v.level)} "${String(v.msg)}"${plugin}${detail !== undefined ? ` (${String(detail).slice(0, 200)})` : ""}`;
    } catch {
      key = line.slice(0, 200);
    }
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, most).map(([k, n]) => `${n} × ${k}`);
}

export interface L7MeshPath extends L7Path {
  /** Remove the CA and work directories kept across rounds. */
  dispose(): Promise<void>;
}

export function createL7MeshPath(opts: L7MeshPathOptions): L7MeshPath {
  const mesh = resolveMeshCommand(opts);
  const plugins = opts.plugins ?? [];
  const clientIp = `${opts.net}.1`;
  const serverIp = `${opts.net}.2`;
  const waypointIp = `${opts.net}.10`;
  const vip = `${opts.net}.100`;
  let baseDir: string | undefined;
  let caDir: string | undefined;
  let round = 0;
  let children: Subprocess[] = [];
  /** This round's log files, by process label. */
  let logs: { label: string; path: string }[] = [];

  async function ensureCa(): Promise<string> {
    if (caDir) return caDir;
    baseDir = mkdtempSync(join(tmpdir(), "bench-l7-"));
    const dir = join(baseDir, "ca");
    await meshCaInit(mesh.cmd, dir, join(baseDir, "ca-init.log"), opts.repoRoot);
    caDir = dir;
    return dir;
  }

  return {
    name: opts.name ?? "l7",

    async start(app: AppEndpoint): Promise<L7Handle> {
      if (!opts.meshBin && !existsSync(join(opts.repoRoot, "cmd", "mesh.ts"))) {
        throw new PathUnavailable(`${join(opts.repoRoot, "cmd", "mesh.ts")} does not exist`);
      }
      if (app.host !== serverIp) throw new Error(`the app must listen on the server workload's address ${serverIp}, not ${app.host}`);
      const ca = await ensureCa();
      if (opts.waypointProfileDir) mkdirSync(opts.waypointProfileDir, { recursive: true });
      const workDir = join(baseDir as string, `round-${++round}`);
      // The mesh watches its config's directory: a log file there would wake every process's
      // watcher once per log line (measured: ~+25 µs of waypoint CPU per request). Logs go elsewhere.
      const confDir = join(workDir, "config");
      const logDir = join(workDir, "logs");
      mkdirSync(confDir, { recursive: true });
      mkdirSync(logDir, { recursive: true });
      const configPath = join(confDir, "mesh.yaml");
      writeFileSync(configPath, l7MeshConfig(opts.net, app.port, plugins));
      const env = opts.env && Object.keys(opts.env).length > 0 ? { ...process.env, ...opts.env } : undefined;

      const procs: L7Process[] = [];
      const roles = [
        { role: "ztunnel-server" as const, label: "ztunnel node-b (server side)", args: ["--role", "ztunnel", "--node", "node-b"], ip: serverIp, port: HBONE_PORT, what: "HBONE" },
        { role: "waypoint" as const, label: "waypoint", args: ["--role", "waypoint", "--workload", `${NS}//waypoint`], ip: waypointIp, port: HBONE_PORT, what: "HBONE" },
        { role: "ztunnel-client" as const, label: "ztunnel node-a (client side)", args: ["--role", "ztunnel", "--node", "node-a"], ip: clientIp, port: SOCKS5_PORT, what: "SOCKS5" },
      ];
      for (const r of roles) {
        const logPath = join(logDir, `${r.role}.log`);
        logs.push({ label: r.label, path: logPath });
        // Profiling needs the bun CLI, so a profiled waypoint always runs from source.
        const prof = r.role === "waypoint" && opts.waypointProfileDir
          ? [process.execPath, "--cpu-prof", "--cpu-prof-interval", String(PROFILE_INTERVAL_US), "--cpu-prof-md", `--cpu-prof-dir=${opts.waypointProfileDir}`, join(opts.repoRoot, "cmd", "mesh.ts")]
          : undefined;
        const child = await startMeshProcess({
          mesh: prof ?? mesh.cmd,
          roleArgs: r.args,
          configPath,
          caDir: ca,
          logPath,
          cwd: opts.repoRoot,
          ...(env ? { env } : {}),
          label: r.label,
          listener: { ip: r.ip, port: r.port, what: r.what },
          track: (c) => children.push(c),
          // The waypoint answers readiness before its plugins are loaded; wait for them too.
          ...(r.role === "waypoint" && plugins.length > 0
            ? { alsoReady: { what: `${plugins.length} plugin(s) loaded (admin /config_dump)`, check: (admin: number) => pluginsLoaded(admin, plugins.length, plugins.every((p) => p.failStrategy === "FAIL_OPEN")) } }
            : {}),
        });
        procs.push({ role: r.role, label: r.label, pid: child.pid });
        opts.log(`${r.label} ready (pid ${child.pid}, log ${logPath})`);
      }
      const envNote = env ? `; environment ${Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`).join(" ")}` : "; default environment (info logs: one access-log line per request in the waypoint)";
      return {
        entry: { kind: "socks5", proxyHost: clientIp, proxyPort: SOCKS5_PORT, host: vip, port: SERVICE_PORT },
        authority: L7_SERVICE_HOST,
        procs,
        ...(opts.expectHeaders?.length ? { expectHeaders: [...opts.expectHeaders] } : {}),
        // with no plugins too: the no-plugin row's side-by-side difference is the method's own error
        bare: { entry: { kind: "socks5" as const, proxyHost: clientIp, proxyPort: SOCKS5_PORT, host: `${opts.net}.101`, port: SERVICE_PORT }, authority: L7_BARE_SERVICE_HOST },
        notes: [
          `mesh: ${mesh.note}${envNote}; logs to files`,
          ...(plugins.length > 0
            ? [`waypoint plugins (config \`plugins:\`, targetRefs Service server): ${plugins.map((p) => `${p.name} (${p.pluginName}, ${JSON.stringify(p.pluginConfig)})`).join(", ")}; module ${plugins[0]?.url}`]
            : []),
          ...(opts.waypointProfileDir ? [`waypoint run from source under bun --cpu-prof (profiles in ${opts.waypointProfileDir}): its CPU figures include the profiler's cost`] : []),
        ],
      };
    },

    problems(): string[] {
      return logs.flatMap((l) => loggedProblems(l.path).map((p) => `${l.label}: ${p}`));
    },

    async stop(): Promise<void> {
      await Promise.all(children.map((c) => stopChild(c, 5000)));
      children = [];
      logs = [];
      if (baseDir && !opts.keepWorkDir) {
        // Access logs grow by tens of MB per round; keep only the CA between rounds.
        for (const e of readdirSync(baseDir)) if (e.startsWith("round-")) rmSync(join(baseDir, e), { recursive: true, force: true });
      }
    },

    async dispose(): Promise<void> {
      await this.stop();
      if (baseDir && !opts.keepWorkDir) rmSync(baseDir, { recursive: true, force: true });
      baseDir = undefined;
      caDir = undefined;
    },
  };
}
