// A real `mesh --role waypoint` process for end-to-end tests, on a TestMesh's config and CA.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestMesh, ZtunnelProcess, meshCommand } from "./mesh.ts";

export interface WaypointProcessOptions {
  /** uid of the waypoint's workload in the config (default `test//waypoint`) */
  readonly uid?: string;
  /** HTTPRoute YAML written to a file passed with --routes */
  readonly routes?: string;
  /** AuthorizationPolicy YAML written to a file passed with --policies */
  readonly policies?: string;
  readonly extraArgs?: readonly string[];
  readonly env?: Record<string, string>;
}

/** Starts a waypoint replica and waits until it serves; the returned process has its admin ports set. */
export async function startWaypoint(mesh: TestMesh, opts: WaypointProcessOptions = {}): Promise<ZtunnelProcess> {
  const uid = opts.uid ?? "test//waypoint";
  const tag = uid.replace(/[^a-z0-9]+/gi, "-");
  const args = [...meshCommand(), "--role", "waypoint", "--config", mesh.configPath, "--workload", uid, "--ca-dir", mesh.caDir, "--admin-port", "0", "--metrics-port", "0", "--readiness-port", "0"];
  if (opts.routes !== undefined) {
    const f = join(mesh.dir, `${tag}-routes.yaml`);
    writeFileSync(f, opts.routes);
    args.push("--routes", f);
  }
  if (opts.policies !== undefined) {
    const f = join(mesh.dir, `${tag}-policies.yaml`);
    writeFileSync(f, opts.policies);
    args.push("--policies", f);
  }
  args.push(...(opts.extraArgs ?? []));
  const proc = Bun.spawn(args, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, MESH_LOG_LEVEL: "debug", ...(opts.env ?? {}) } });
  const wp = new ZtunnelProcess(tag, proc);
  // Started, or exited (a refused config is printed as one plain `error[CODE]` line, not JSON).
  const died = wp.exited.then(async (code) => {
    await Bun.sleep(50);
    throw new Error(`waypoint ${uid} exited ${code} during start-up:\n${wp.stderrText.slice(-20).join("\n")}`);
  });
  died.catch(() => {});
  const started = await Promise.race([wp.waitForLog((r) => r.msg === "waypoint started", 30_000), died]);
  wp.ports = { admin: Number(String(started.admin).split(":").pop()), metrics: Number(started.metrics), readiness: Number(started.readiness) };
  return wp;
}
