// The mesh itself, in loopback mode: two ztunnel processes (node-a, node-b) from cmd/mesh.ts.
//
//   load generator -> SOCKS5 127.77.X.1:15080 (ztunnel node-a)
//                  =HBONE=> 127.77.X.2:15008 (ztunnel node-b) -> app on 127.77.X.2:<port>
//
// Runs `bun cmd/mesh.ts` (the CLI itself is known to paths/mesh-cli.ts). The work directory holds
// the CA, `config/mesh.yaml` and `logs/`: the mesh watches its config's directory, so the logs
// are kept out of it.

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { stringify } from "yaml";
import { randomOctet, stopChild } from "../proc.ts";
import { HBONE_PORT, meshCaInit, SOCKS5_PORT, startMeshProcess } from "./mesh-cli.ts";
import { PathUnavailable, type AppEndpoint, type BenchPath, type PathHandle } from "./types.ts";

export interface MeshPathOptions {
  log: (line: string) => void;
  keepWorkDir: boolean;
  /** Repository root holding cmd/mesh.ts. */
  repoRoot?: string;
}

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
      const confDir = join(workDir, "config");
      const logDir = join(workDir, "logs");
      for (const d of [caDir, confDir, logDir]) mkdirSync(d);
      await meshCaInit([bun, meshCli], caDir, join(logDir, "ca-init.log"), repoRoot);
      const configPath = join(confDir, "mesh.yaml");
      writeFileSync(configPath, meshBenchConfig(clientIp, serverIp));

      const proxies: PathHandle["proxies"] = [];
      const nodes = [
        { node: "node-b", role: "server" as const, ip: serverIp, port: HBONE_PORT, what: "HBONE" },
        { node: "node-a", role: "client" as const, ip: clientIp, port: SOCKS5_PORT, what: "SOCKS5" },
      ];
      for (const n of nodes) {
        const logPath = join(logDir, `ztunnel-${n.node}.log`);
        const child = await startMeshProcess({
          mesh: [bun, meshCli],
          roleArgs: ["--role", "ztunnel", "--node", n.node],
          configPath,
          caDir,
          logPath,
          cwd: repoRoot,
          label: `ztunnel ${n.node}`,
          listener: { ip: n.ip, port: n.port, what: n.what },
          track: (c) => children.push(c),
        });
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
