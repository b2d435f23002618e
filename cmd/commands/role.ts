// `mesh --role ztunnel|waypoint ...`: run a data-plane role until drained.
import { readRuntimeEnv } from "../../core/config/index.ts";
import { MeshError, ErrorCodes, formatForCli } from "../../core/errors/index.ts";
import { createLogger, type Logger } from "../../core/telemetry/index.ts";
import { DEFAULT_POD_SOCKET, Ztunnel } from "../../core/ztunnel/index.ts";
import { Waypoint } from "../../core/waypoint/index.ts";
import { PluginChain } from "../../plugins/index.ts";
import { noPositionals, parseFlags, portFlag, requireFlag } from "../flags.ts";
import { helpFor } from "../help.ts";

const SPEC = {
  role: { type: "string" },
  config: { type: "string" },
  node: { type: "string" },
  "ca-dir": { type: "string" },
  "admin-port": { type: "string" },
  "metrics-port": { type: "string" },
  "readiness-port": { type: "string" },
  "hbone-port": { type: "string" },
  "socks5-port": { type: "string" },
  policies: { type: "string", multiple: true },
  captured: { type: "boolean" },
  "pod-socket": { type: "string" },
  "pod-state": { type: "string" },
  "resolv-conf": { type: "string" },
  workload: { type: "string" },
  routes: { type: "string", multiple: true },
} as const;

export async function runRole(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags("mesh --role", argv, SPEC);
  const role = flags.role;
  if (role !== "ztunnel" && role !== "waypoint") {
    if (flags.help) {
      process.stdout.write(helpFor("ztunnel"));
      return 0;
    }
    throw new MeshError(ErrorCodes.FLAG_INVALID, `--role must be 'ztunnel' or 'waypoint', got ${JSON.stringify(role ?? "")}`);
  }
  if (flags.help) {
    process.stdout.write(helpFor(role));
    return 0;
  }
  if (role === "waypoint") return runWaypoint(flags, positionals);
  noPositionals("mesh --role ztunnel", positionals);
  const cmd = "mesh --role ztunnel";
  const configPath = requireFlag(cmd, "config", flags.config);
  const node = requireFlag(cmd, "node", flags.node);
  const caDir = requireFlag(cmd, "ca-dir", flags["ca-dir"]);
  const adminPort = portFlag("admin-port", flags["admin-port"], 15000);
  const metricsPort = portFlag("metrics-port", flags["metrics-port"], 15020);
  const readinessPort = portFlag("readiness-port", flags["readiness-port"], 15021);
  const workloadPorts = { hbone: portFlag("hbone-port", flags["hbone-port"], 15008), socks5: portFlag("socks5-port", flags["socks5-port"], 15080) };
  const env = readRuntimeEnv();
  const log = createLogger({ format: env.logFormat, level: env.logLevel, component: "ztunnel" }).child({ node });
  const accessLog = log.child({ scope: "access" });

  const ztunnel = new Ztunnel({
    node,
    configPath,
    caDir,
    env,
    adminPort,
    metricsPort,
    readinessPort,
    workloadPorts,
    policyFiles: flags.policies ?? [],
    // Captured mode: --captured (default socket) or an explicit --pod-socket.
    ...(flags.captured || flags["pod-socket"] ? { podSocket: flags["pod-socket"] ?? DEFAULT_POD_SOCKET } : {}),
    ...(flags["pod-state"] ? { podStatePath: flags["pod-state"] } : {}),
    ...(flags["resolv-conf"] ? { resolvConfPath: flags["resolv-conf"] } : {}),
    log,
    accessLog,
    onExit: (code) => process.exit(code),
  });
  await ztunnel.start();
  log.info("ztunnel started", { admin: `127.0.0.1:${ztunnel.ports.admin}`, metrics: ztunnel.ports.metrics, readiness: ztunnel.ports.readiness });
  return drainOnSignals(ztunnel, log);
}

async function runWaypoint(flags: ReturnType<typeof parseFlags<typeof SPEC>>["flags"], positionals: string[]): Promise<number> {
  const cmd = "mesh --role waypoint";
  noPositionals(cmd, positionals);
  for (const f of ["node", "socks5-port", "captured", "pod-socket", "pod-state", "resolv-conf"] as const) {
    if (flags[f] !== undefined) throw new MeshError(ErrorCodes.FLAG_INVALID, `--${f} is a ztunnel flag; the waypoint takes --workload`);
  }
  const configPath = requireFlag(cmd, "config", flags.config);
  const workloadUid = requireFlag(cmd, "workload", flags.workload);
  const caDir = requireFlag(cmd, "ca-dir", flags["ca-dir"]);
  const env = readRuntimeEnv();
  const log = createLogger({ format: env.logFormat, level: env.logLevel, component: "waypoint" }).child({ workload: workloadUid });
  const waypoint = new Waypoint({
    workloadUid,
    configPath,
    caDir,
    env,
    adminPort: portFlag("admin-port", flags["admin-port"], 15000),
    metricsPort: portFlag("metrics-port", flags["metrics-port"], 15020),
    readinessPort: portFlag("readiness-port", flags["readiness-port"], 15021),
    hbonePort: portFlag("hbone-port", flags["hbone-port"], 15008),
    routeFiles: flags.routes ?? [],
    policyFiles: flags.policies ?? [],
    plugins: new PluginChain(),
    log,
    accessLog: log.child({ scope: "access" }),
    onExit: (code) => process.exit(code),
  });
  await waypoint.start();
  const p = waypoint.ports;
  log.info("waypoint started", { admin: `127.0.0.1:${p.admin}`, metrics: p.metrics, readiness: p.readiness, hbone: p.hbone });
  return drainOnSignals(waypoint, log);
}

/** SIGTERM/SIGINT drain the role (it exits when drained); a second signal exits at once. */
function drainOnSignals(role: { drain(): Promise<number> }, log: Logger): number {
  let exiting = false;
  const onSignal = (sig: string) => {
    if (exiting) {
      log.warn("second signal; exiting now", { signal: sig });
      process.exit(1);
    }
    exiting = true;
    log.info("signal received; draining", { signal: sig });
    role.drain().catch((e) => {
      process.stderr.write(`${formatForCli(e)}\n`);
      process.exit(1);
    });
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  return -1; // keep running; drain exits the process
}
