// A captured-mode mesh on the network-namespace testbed: one real ztunnel process per node, run
// inside the node's namespace with a pod socket; pods handed over with the real `mesh pod add`;
// per-pod resolv.conf (as kubelet writes one) pointing at a cluster DNS address the pod's rules
// redirect to the ztunnel's DNS proxy. Apps and clients are plain OS programs run in the pods.
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initLocalCa } from "../../core/identity/index.ts";
import { localConfig, type PortMap } from "../harness/config.ts";
import { ZtunnelProcess, meshCommand } from "../harness/mesh.ts";
import { Testbed, type ExecResult, type TestbedOptions } from "./testbed.ts";

/** The cluster DNS address in every pod's resolv.conf; nothing listens there, the rules redirect it. */
export const CLUSTER_DNS = "10.96.0.10";
export const ECHO_VIP = "10.96.1.1";
export const REDIS_VIP = "10.96.1.2";
export const ECHO_PORT = 8080;
export const REDIS_PORT = 6379;

/** An HTTP app: answers every request with "<marker> from <client address>" (the address the app saw). */
export const ECHO_APP = `
const name = process.argv.at(-1);
const server = Bun.serve({ hostname: "0.0.0.0", port: ${ECHO_PORT}, fetch(req, srv) {
  const body = req.method === "POST" ? "" : "";
  return new Response(name + " saw " + srv.requestIP(req)?.address + " " + new URL(req.url).pathname + "\\n");
} });
console.log("listening", server.port);
`;

export interface PodWorkload {
  pod: string;
  node: string;
  serviceAccount: string;
  services?: Record<string, PortMap>;
}

/** `echoWaypoint`: name of a waypoint service (in `default`) the echo service is bound to. */
export function meshConfig(tb: Testbed, workloads: readonly PodWorkload[], extra = "", echoWaypoint?: string): string {
  return localConfig({
    workloads: workloads.map((w) => ({ name: w.pod, ip: tb.pod(w.pod).ip, node: w.node, serviceAccount: w.serviceAccount, ...(w.services ? { services: w.services } : {}) })),
    services: [
      { name: "echo", vip: ECHO_VIP, ports: { [ECHO_PORT]: ECHO_PORT, 80: ECHO_PORT }, ...(echoWaypoint ? { waypoint: echoWaypoint } : {}) },
      { name: "redis", vip: REDIS_VIP, ports: { [REDIS_PORT]: REDIS_PORT } },
      ...(echoWaypoint ? [{ name: echoWaypoint, vip: WAYPOINT_VIP, ports: { 15008: 15008 } }] : []),
    ],
    extra,
  });
}

export const WAYPOINT_VIP = "10.96.1.9";

/** /etc/netns entries are outside the testbed's namespaces: removed on exit even when stop() never ran. */
const LEFTOVER_DIRS = new Set<string>();
process.on("exit", () => {
  for (const d of LEFTOVER_DIRS) rmSync(d, { recursive: true, force: true });
  if (LEFTOVER_DIRS.size > 0) removeEtcNetnsIfEmpty();
});

function removeEtcNetnsIfEmpty(): void {
  try {
    rmdirSync("/etc/netns"); // fails (and is left) when anything else is in it
  } catch {
    // not empty, or already gone
  }
}

export class CapturedMesh {
  readonly ztunnels = new Map<string, ZtunnelProcess>();
  private readonly etcDirs: string[] = [];

  private constructor(
    readonly tb: Testbed,
    readonly dir: string,
    readonly caDir: string,
    readonly configPath: string,
  ) {}

  /** Builds the testbed, the CA and config, per-pod resolv.conf files, and starts a ztunnel per node. */
  static async start(opts: { testbed?: TestbedOptions; workloads: (tb: Testbed) => PodWorkload[]; resolvConf?: Record<string, string>; echoWaypoint?: string }): Promise<CapturedMesh> {
    const tb = await Testbed.create(opts.testbed ?? {});
    const dir = mkdtempSync(join(tmpdir(), "mesh-captured-"));
    let mesh: CapturedMesh | undefined;
    try {
      const caDir = join(dir, "ca");
      await initLocalCa(caDir, { trustDomain: "cluster.local" });
      const configPath = join(dir, "config.yaml");
      writeFileSync(configPath, meshConfig(tb, opts.workloads(tb), "", opts.echoWaypoint));
      mesh = new CapturedMesh(tb, dir, caDir, configPath);
      for (const pod of tb.pods) mesh.writePodResolvConf(pod.ns);
      for (const node of tb.nodes) {
        const resolv = join(dir, `${node.name}.resolv.conf`);
        writeFileSync(resolv, opts.resolvConf?.[node.name] ?? "");
      }
      for (const node of tb.nodes) await mesh.startZtunnel(node.name);
      return mesh;
    } catch (e) {
      if (mesh) await mesh.stop();
      else {
        await tb.destroy();
        rmSync(dir, { recursive: true, force: true });
      }
      throw e;
    }
  }

  socketOf(node: string): string {
    return join(this.dir, `${node}.sock`);
  }

  /** `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf: the pod's own, as kubelet writes it. */
  private writePodResolvConf(ns: string): void {
    const d = `/etc/netns/${ns}`;
    mkdirSync(d, { recursive: true });
    this.etcDirs.push(d);
    LEFTOVER_DIRS.add(d);
    writeFileSync(`${d}/resolv.conf`, `nameserver ${CLUSTER_DNS}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:2 attempts:1\n`);
  }

  async startZtunnel(node: string): Promise<ZtunnelProcess> {
    const proc = this.tb.spawnIn(node, [
      ...meshCommand(),
      "--role", "ztunnel",
      "--config", this.configPath,
      "--node", node,
      "--ca-dir", this.caDir,
      "--admin-port", "0",
      "--metrics-port", "0",
      "--readiness-port", "0",
      "--pod-socket", this.socketOf(node),
      "--resolv-conf", join(this.dir, `${node}.resolv.conf`),
    ]);
    const z = new ZtunnelProcess(node, proc as never);
    this.ztunnels.set(node, z);
    const died = z.exited.then(async (code) => {
      await Bun.sleep(50);
      throw new Error(`ztunnel ${node} exited ${code} during start-up:\n${z.stderrText.slice(-20).join("\n")}`);
    });
    died.catch(() => {});
    await Promise.race([z.waitForLog((r) => r.msg === "ztunnel started", 20_000), died]);
    return z;
  }

  z(node: string): ZtunnelProcess {
    const z = this.ztunnels.get(node);
    if (!z) throw new Error(`no ztunnel for ${node}`);
    return z;
  }

  /** Runs the real `mesh pod ...` CLI (as root, in our own namespace, like the CNI agent). */
  async podCli(args: string[]): Promise<ExecResult> {
    const proc = Bun.spawn([...meshCommand(), "pod", ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  }

  async addPod(pod: string, node = this.tb.pod(pod).node): Promise<void> {
    const r = await this.podCli(["add", "--uid", `test//${pod}`, "--netns", this.tb.pod(pod).netnsPath, "--socket", this.socketOf(node)]);
    if (r.code !== 0) throw new Error(`mesh pod add ${pod} failed (${r.code}): ${r.stderr}${r.stdout}`);
  }

  async removePod(pod: string, node = this.tb.pod(pod).node): Promise<ExecResult> {
    return this.podCli(["remove", "--uid", `test//${pod}`, "--socket", this.socketOf(node)]);
  }

  /** Starts a long-running app in a pod and waits until it prints its first line. */
  async app(pod: string, argv: string[]): Promise<void> {
    const proc = this.tb.spawnIn(pod, argv);
    const reader = proc.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`app in ${pod} exited before it started: ${await new Response(proc.stderr).text()}`);
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    void proc.stdout.pipeTo(new WritableStream());
  }

  async stop(): Promise<void> {
    await Promise.all([...this.ztunnels.values()].map((z) => z.stop().catch(() => 0)));
    await this.tb.destroy();
    for (const d of this.etcDirs) {
      rmSync(d, { recursive: true, force: true });
      LEFTOVER_DIRS.delete(d);
    }
    removeEtcNetnsIfEmpty();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** curl inside a pod; `-sS --max-time` so a refused or black-holed connection ends quickly. */
export function curlArgs(url: string, extra: string[] = []): string[] {
  return ["curl", "-sS", "--max-time", "8", "--connect-timeout", "4", ...extra, url];
}
