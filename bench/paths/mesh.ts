// The mesh itself, in loopback mode: two ztunnel processes (node-a, node-b) from cmd/mesh.ts.
//
//   load generator -> SOCKS5 127.77.X.1:15080 (ztunnel node-a)
//                  =HBONE=> 127.77.X.2:15008 (ztunnel node-b) -> app on 127.77.X.2:<port>
//
// This file is the only place that knows the mesh CLI; if the CLI changes, change it here.
//   bun cmd/mesh.ts ca init --dir DIR
//   bun cmd/mesh.ts --role ztunnel --config FILE --node NAME --ca-dir DIR
//                   --admin-port P --metrics-port P --readiness-port P
// Readiness: GET http://127.0.0.1:<readiness-port>/healthz/ready answers 200.

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { stringify } from "yaml";
import { deathReason, freePort, isListening, randomOctet, stopChild, tailFile, waitFor, withRaisedNofile } from "../proc.ts";
import { PathUnavailable, type AppEndpoint, type BenchPath, type PathHandle } from "./types.ts";

export interface MeshPathOptions {
  log: (line: string) => void;
  keepWorkDir: boolean;
  /** Repository root holding cmd/mesh.ts. */
  repoRoot?: string;
}

const SOCKS5_PORT = 15080;
const HBONE_PORT = 15008;

/** istio/ztunnel local config (reference/ztunnel.md §4.3): one client and one server workload on two nodes. */
export function meshBenchConfig(clientIp: string, serverIp: string): string {
  const workload = (name: string, ip: string, node: string) => ({
    uid: `bench//${name}`,
    name,
    namespace: "bench",
    serviceAccount: name,
    workloadIps: [ip],
    protocol: "HBONE",
    node,
  });
  return stringify({ workloads: [workload("client", clientIp, "node-a"), workload("server", serverIp, "node-b")] });
}

async function readyOnce(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz/ready`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

export function createMeshPath(opts: MeshPathOptions): BenchPath {
  const repoRoot = opts.repoRoot ?? resolve(import.meta.dir, "..", "..");
  const meshCli = join(repoRoot, "cmd", "mesh.ts");
  const net = `127.77.${randomOctet()}`;
  const clientIp = `${net}.1`;
  const serverIp = `${net}.2`;
  let children: Subprocess[] = [];
  let workDir: string | undefined;

  return {
    name: "mesh",
    appHost: serverIp,
    // node-a holds one fd per SOCKS5 connection, node-b one per upstream connection; HBONE is pooled.
    idleConnCap: (nofile: number) => Math.max(0, nofile - 512),

    async start(app: AppEndpoint): Promise<PathHandle> {
      if (!existsSync(meshCli)) throw new PathUnavailable(`${meshCli} does not exist yet (the ztunnel role is not built)`);
      const bun = process.execPath;
      workDir = mkdtempSync(join(tmpdir(), "bench-mesh-"));
      const caDir = join(workDir, "ca");
      mkdirSync(caDir);
      const caLog = join(workDir, "ca-init.log");
      const ca = Bun.spawn([bun, meshCli, "ca", "init", "--dir", caDir], {
        cwd: repoRoot,
        stdin: "ignore",
        stdout: Bun.file(caLog),
        stderr: Bun.file(caLog),
      });
      const caExit = await Promise.race([ca.exited, Bun.sleep(60_000).then(() => "timeout" as const)]);
      if (caExit !== 0) {
        if (caExit === "timeout") ca.kill("SIGKILL");
        throw new Error(`mesh ca init --dir ${caDir} ${caExit === "timeout" ? "timed out" : `exited ${caExit}`}:\n${tailFile(caLog)}`);
      }
      const configPath = join(workDir, "mesh.yaml");
      writeFileSync(configPath, meshBenchConfig(clientIp, serverIp));

      const proxies: PathHandle["proxies"] = [];
      const nodes = [
        { node: "node-b", role: "server" as const, ip: serverIp, port: HBONE_PORT, what: "HBONE" },
        { node: "node-a", role: "client" as const, ip: clientIp, port: SOCKS5_PORT, what: "SOCKS5" },
      ];
      for (const n of nodes) {
        const [admin, metrics, readiness] = [freePort("127.0.0.1"), freePort("127.0.0.1"), freePort("127.0.0.1")];
        const logPath = join(workDir, `ztunnel-${n.node}.log`);
        const cmd = [
          bun, meshCli, "--role", "ztunnel", "--config", configPath, "--node", n.node, "--ca-dir", caDir,
          "--admin-port", String(admin), "--metrics-port", String(metrics), "--readiness-port", String(readiness),
        ];
        const child = Bun.spawn(withRaisedNofile(cmd), { cwd: repoRoot, stdin: "ignore", stdout: Bun.file(logPath), stderr: Bun.file(logPath) });
        children.push(child);
        const dead = () => deathReason(child, logPath);
        await waitFor(`ztunnel ${n.node} readiness on 127.0.0.1:${readiness}`, () => readyOnce(readiness), 30_000, dead);
        await waitFor(`ztunnel ${n.node} ${n.what} listener on ${n.ip}:${n.port}`, () => isListening(n.ip, n.port), 5_000, dead);
        proxies.push({ role: n.role, label: `ztunnel ${n.role} (${n.node})`, pid: child.pid });
        opts.log(`ztunnel ${n.node} ready (pid ${child.pid}, log ${logPath})`);
      }
      return {
        entry: { kind: "socks5", proxyHost: clientIp, proxyPort: SOCKS5_PORT, host: app.host, port: app.port },
        proxyPids: proxies.map((p) => p.pid),
        proxies,
        notes: [`mesh ztunnel pair via ${meshCli} on Bun ${Bun.version}, SOCKS5 -> HBONE`],
      };
    },

    async stop(): Promise<void> {
      await Promise.all(children.map((c) => stopChild(c, 5000)));
      children = [];
      if (workDir && !opts.keepWorkDir) rmSync(workDir, { recursive: true, force: true });
      workDir = undefined;
    },
  };
}
