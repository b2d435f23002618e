// The mesh CLI as the benchmark's mesh paths run it (paths/mesh.ts: the ztunnel pair;
// paths/l7-mesh.ts: ztunnel → waypoint → ztunnel). The only place that knows how a mesh process is
// started and when it is ready; if the CLI changes, change it here.
//   mesh ca init --dir DIR
//   mesh --role ztunnel  --config FILE --node NAME   --ca-dir DIR --admin-port P --metrics-port P --readiness-port P
//   mesh --role waypoint --config FILE --workload UID --ca-dir DIR --admin-port P --metrics-port P --readiness-port P
// Ready: GET http://127.0.0.1:<readiness-port>/healthz/ready answers 200, and the listener is up.

import type { Subprocess } from "bun";
import { deathReason, freePort, isListening, tailFile, waitFor, withRaisedNofile } from "../proc.ts";

/** The client-side ztunnel's SOCKS5 listener (loopback mode) and every node's HBONE port. */
export const SOCKS5_PORT = 15080;
export const HBONE_PORT = 15008;

async function readyOnce(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz/ready`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** `mesh ca init --dir DIR` (`mesh` = the command prefix), output to logPath; throws with the log's tail. */
export async function meshCaInit(mesh: readonly string[], dir: string, logPath: string, cwd: string): Promise<void> {
  const p = Bun.spawn([...mesh, "ca", "init", "--dir", dir], { cwd, stdin: "ignore", stdout: Bun.file(logPath), stderr: Bun.file(logPath) });
  const r = await Promise.race([p.exited, Bun.sleep(60_000).then(() => "timeout" as const)]);
  if (r === 0) return;
  if (r === "timeout") p.kill("SIGKILL");
  throw new Error(`mesh ca init --dir ${dir} ${r === "timeout" ? "timed out" : `exited ${r}`}:\n${tailFile(logPath)}`);
}

export interface MeshProcessSpec {
  /** Command prefix that runs `mesh` (e.g. `bun cmd/mesh.ts`, or dist/mesh). */
  mesh: readonly string[];
  /** Role arguments: `--role ztunnel --node N` or `--role waypoint --workload UID`. */
  roleArgs: readonly string[];
  configPath: string;
  caDir: string;
  /** stdout and stderr; keep it out of the config's directory (the mesh watches that directory). */
  logPath: string;
  cwd: string;
  env?: Record<string, string | undefined>;
  /** Names the process in errors. */
  label: string;
  /** The data-plane listener that must be up: what (e.g. "HBONE") on ip:port. */
  listener: { ip: string; port: number; what: string };
  /** Called with the child as soon as it is spawned, so the caller can stop it if readiness fails. */
  track: (child: Subprocess) => void;
  /** A further condition, polled on the admin port after the listener is up (may throw to give up). */
  alsoReady?: { what: string; check: (adminPort: number) => Promise<boolean> };
}

/** Starts one mesh process with fresh admin, metrics and readiness ports; resolves once it is ready. */
export async function startMeshProcess(s: MeshProcessSpec): Promise<Subprocess> {
  const [admin, metrics, readiness] = [freePort("127.0.0.1"), freePort("127.0.0.1"), freePort("127.0.0.1")];
  const cmd = [
    ...s.mesh, ...s.roleArgs, "--config", s.configPath, "--ca-dir", s.caDir,
    "--admin-port", String(admin), "--metrics-port", String(metrics), "--readiness-port", String(readiness),
  ];
  const child = Bun.spawn(withRaisedNofile(cmd), { cwd: s.cwd, stdin: "ignore", stdout: Bun.file(s.logPath), stderr: Bun.file(s.logPath), ...(s.env ? { env: s.env } : {}) });
  s.track(child);
  const dead = () => deathReason(child, s.logPath);
  await waitFor(`${s.label} readiness on 127.0.0.1:${readiness}`, () => readyOnce(readiness), 30_000, dead);
  const l = s.listener;
  await waitFor(`${s.label} ${l.what} listener on ${l.ip}:${l.port}`, () => isListening(l.ip, l.port), 5_000, dead);
  const also = s.alsoReady;
  if (also) await waitFor(`${s.label} ${also.what}`, () => also.check(admin), 30_000, dead);
  return child;
}
