// `mesh quickstart --captured` (Linux, root): the quickstart's demo with real traffic capture. Builds
// a tiny cluster out of network namespaces (two nodes, a "network" routing between them, a sleep
// pod on node-a and an echo pod on node-b), runs a ztunnel per node in captured mode, hands both
// pods over with the same code as `mesh pod add`, and sends plain `curl` from the sleep pod to
// http://echo/: no proxy settings, no SOCKS, DNS answered by the ztunnel. Ctrl-C tears it all down.
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ErrorCodes, MeshError } from "../../core/errors/index.ts";
import { serveHttp, withNetns, type HttpListener } from "../../core/net/index.ts";
import { addPod } from "../../core/ztunnel/index.ts";
import { demoAccessRecords, followZtunnelLog, printRows, quickstartHome, responseRow, selfCommand, tunnelRows, untilStopSignal, type AccessRecord } from "../quickstart-common.ts";

const P = "mqs-";
const NET = `${P}net`;
const NODES = [
  { node: "node-a", ns: `${P}node-a`, ip: "10.253.0.2", router: "10.253.0.1", cidr: "10.253.1.0/24", gw: "10.253.1.1", up: `${P}a-up`, peer: `${P}a-net`, br: `${P}a-br` },
  { node: "node-b", ns: `${P}node-b`, ip: "10.253.0.6", router: "10.253.0.5", cidr: "10.253.2.0/24", gw: "10.253.2.1", up: `${P}b-up`, peer: `${P}b-net`, br: `${P}b-br` },
] as const;
const PODS = [
  { name: "sleep-0", sa: "sleep", ns: `${P}sleep`, node: NODES[0], ip: "10.253.1.10", host: `${P}sleep-h` },
  { name: "echo-0", sa: "echo", ns: `${P}echo`, node: NODES[1], ip: "10.253.2.10", host: `${P}echo-h` },
] as const;
const ECHO_VIP = "10.253.100.1";
const CLUSTER_DNS = "10.253.100.53";
const NAMESPACES = [NET, ...NODES.map((n) => n.ns), ...PODS.map((p) => p.ns)];

function sh(argv: string[]): void {
  const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
  if (r.exitCode !== 0) throw new MeshError(ErrorCodes.NETNS_FAILED, `\`${argv.join(" ")}\` failed: ${r.stderr.toString().trim()}`);
}

function preflight(): void {
  if (process.platform !== "linux") throw new MeshError(ErrorCodes.NOT_IMPLEMENTED, `'mesh quickstart --captured' needs Linux network namespaces; this is ${process.platform}`);
  if (process.getuid?.() !== 0) throw new MeshError(ErrorCodes.FLAG_INVALID, "'mesh quickstart --captured' creates network namespaces and iptables rules: run it as root");
  const missing = ["ip", "iptables", "ip6tables", "curl"].filter((c) => Bun.which(c) === null);
  if (missing.length > 0) throw new MeshError(ErrorCodes.NOT_IMPLEMENTED, `'mesh quickstart --captured' needs ${missing.join(", ")} (e.g. apt-get install iproute2 iptables curl)`);
}

function teardownTopology(): void {
  const existing = new Set(existsSync("/var/run/netns") ? readdirSync("/var/run/netns") : []);
  for (const ns of NAMESPACES) {
    if (!existing.has(ns)) continue;
    for (const pid of Bun.spawnSync(["ip", "netns", "pids", ns]).stdout.toString().split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone already
      }
    }
    Bun.spawnSync(["ip", "netns", "del", ns]);
  }
  for (const p of PODS) rmSync(`/etc/netns/${p.ns}`, { recursive: true, force: true });
  try {
    rmdirSync("/etc/netns"); // only when empty: other tools keep files there too
  } catch {
    // not empty, or not there
  }
}

function buildTopology(): void {
  for (const ns of NAMESPACES) {
    sh(["ip", "netns", "add", ns]);
    sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
  }
  sh(["ip", "netns", "exec", NET, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
  for (const n of NODES) {
    sh(["ip", "-n", n.ns, "link", "add", n.up, "type", "veth", "peer", "name", n.peer, "netns", NET]);
    sh(["ip", "-n", NET, "addr", "add", `${n.router}/30`, "dev", n.peer]);
    sh(["ip", "-n", NET, "link", "set", n.peer, "up"]);
    sh(["ip", "-n", NET, "route", "add", n.cidr, "via", n.ip]);
    sh(["ip", "-n", n.ns, "addr", "add", `${n.ip}/30`, "dev", n.up]);
    sh(["ip", "-n", n.ns, "link", "set", n.up, "up"]);
    sh(["ip", "-n", n.ns, "route", "add", "default", "via", n.router]);
    sh(["ip", "-n", n.ns, "link", "add", n.br, "type", "bridge"]);
    sh(["ip", "-n", n.ns, "addr", "add", `${n.gw}/24`, "dev", n.br]);
    sh(["ip", "-n", n.ns, "link", "set", n.br, "up"]);
    sh(["ip", "netns", "exec", n.ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
  }
  for (const p of PODS) {
    sh(["ip", "-n", p.node.ns, "link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", p.ns]);
    sh(["ip", "-n", p.node.ns, "link", "set", p.host, "master", p.node.br, "up"]);
    sh(["ip", "-n", p.ns, "addr", "add", `${p.ip}/24`, "dev", "eth0"]);
    sh(["ip", "-n", p.ns, "link", "set", "eth0", "up"]);
    sh(["ip", "-n", p.ns, "route", "add", "default", "via", p.node.gw]);
    // What kubelet writes for a pod: the cluster DNS address (captured to the ztunnel's DNS proxy) and the search list.
    mkdirSync(`/etc/netns/${p.ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${p.ns}/resolv.conf`, `nameserver ${CLUSTER_DNS}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`);
  }
}

function config(): string {
  const w = PODS.map(
    (p) => `- uid: quickstart//v1/Pod/default/${p.name}
  name: ${p.name}
  namespace: default
  serviceAccount: ${p.sa}
  workloadIps: ["${p.ip}"]
  protocol: HBONE
  node: ${p.node.node}
  canonicalName: ${p.sa}
  canonicalRevision: v1
  workloadName: ${p.sa}
  workloadType: deployment${p.sa === "echo" ? `\n  services:\n    "default/echo.default.svc.cluster.local": {80: 8080}` : ""}`,
  );
  return `# mesh quickstart --captured: two pods in network namespaces, captured by their node's ztunnel.
workloads:
${w.join("\n")}
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  vips: ["/${ECHO_VIP}"]
  ports: {80: 8080}
`;
}

export async function runCapturedQuickstart(opts: { once: boolean }): Promise<number> {
  preflight();
  const { home, caDir, logDir } = await quickstartHome();
  const dir = join(home, "captured");
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, "config.yaml");
  writeFileSync(configPath, config());
  const emptyResolv = join(dir, "no-upstream.resolv.conf");
  writeFileSync(emptyResolv, "# the demo has no upstream resolver: names outside the mesh get SERVFAIL at once\n");

  teardownTopology(); // a previous run killed before it could clean up
  const children: { node: string; child: Subprocess<"ignore", "ignore", "pipe">; started: Promise<void> }[] = [];
  const access: AccessRecord[] = [];
  let echo: HttpListener | undefined;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await echo?.stop();
    for (const c of children) if (c.child.exitCode === null) c.child.kill("SIGTERM");
    await Promise.all(children.map((c) => c.child.exited));
    teardownTopology();
  };
  const onExit = () => {
    if (!cleaned) teardownTopology();
  };
  process.on("exit", onExit);
  try {
    process.stdout.write("building the cluster: namespaces mqs-net, mqs-node-a, mqs-node-b, mqs-sleep, mqs-echo\n");
    buildTopology();
    for (const n of NODES) {
      const socket = join(dir, `${n.node}.sock`);
      const child = Bun.spawn(
        [
          "ip", "netns", "exec", n.ns,
          ...selfCommand(),
          "--role", "ztunnel",
          "--config", configPath,
          "--node", n.node,
          "--ca-dir", caDir,
          "--pod-socket", socket,
          "--pod-state", join(dir, `${n.node}.pods.json`),
          "--resolv-conf", emptyResolv,
        ],
        { stdout: "ignore", stderr: "pipe", stdin: "ignore" },
      );
      const started = followZtunnelLog(child.stderr, n.node, join(logDir, `captured-${n.node}.log`), access);
      children.push({ node: n.node, child, started });
    }
    for (const c of children) await c.started;
    // The echo app, inside the echo pod: bound to the pod's own address, which exists only there.
    const echoPod = PODS[1];
    echo = withNetns(`/var/run/netns/${echoPod.ns}`, () =>
      serveHttp(
        async (req) => new Response(`hello from echo-0 (${req.method} ${new URL(req.url).pathname})\n`),
        { hostname: echoPod.ip, port: 8080 },
      ),
    );
    for (const p of PODS) {
      await addPod({ socketPath: join(dir, `${p.node.node}.sock`), uid: `quickstart//v1/Pod/default/${p.name}`, netns: `/var/run/netns/${p.ns}` });
      process.stdout.write(`mesh pod add ${p.name} (${p.ip}, ${p.node.node}): redirect rules installed, served by the ztunnel\n`);
    }
    // Async: the echo app answers from this process, so the event loop must keep running.
    const curl = Bun.spawn(["ip", "netns", "exec", PODS[0].ns, "curl", "-sS", "-i", "--max-time", "10", "http://echo/"], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const [response, curlErr, curlCode] = await Promise.all([new Response(curl.stdout).text(), new Response(curl.stderr).text(), curl.exited]);
    const ok = curlCode === 0 && /^HTTP\/1\.1 200/.test(response) && response.includes("hello from echo-0");
    const { outbound, inbound } = await demoAccessRecords(access, 3000);
    const crossed = ok && !!inbound && inbound["tls_version"] === "TLSv1.3" && typeof inbound["src.identity"] === "string";
    printRows([
      ["client", "plain curl in pod sleep-0 (10.253.1.10, node-a): curl http://echo/"],
      ...tunnelRows(outbound, inbound),
      ["path", `sleep-0 -> captured on 15001 -> HBONE ${String(outbound?.["dst.addr"] ?? "?")} -> echo-0 (node-b)`],
      ["client address at echo", String(inbound?.["src.addr"] ?? "-")],
      responseRow(response, curlErr.trim()),
      ["mTLS end to end", crossed ? "yes" : "NO"],
    ]);
    if (opts.once) {
      await cleanup();
      return crossed ? 0 : 1;
    }
    process.stdout.write(
      `\nThe captured mesh is up. The apps need nothing: try, as root,\n\n` +
        `  ip netns exec ${PODS[0].ns} curl http://echo/\n` +
        `  ip netns exec ${PODS[0].ns} curl http://${PODS[1].ip}:8080/\n\n` +
        `Logs: ${logDir}/captured-node-a.log, ${logDir}/captured-node-b.log. Press Ctrl-C to tear everything down.\n`,
    );
    await untilStopSignal();
    process.stdout.write("tearing down...\n");
    await cleanup();
    process.stdout.write("stopped; no namespace left behind.\n");
    return 0;
  } catch (e) {
    await cleanup();
    throw e;
  } finally {
    process.off("exit", onExit);
  }
}
