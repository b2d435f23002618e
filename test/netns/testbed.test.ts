// The network-namespace testbed itself: topology, routing across the "network" namespace,
// packet capture, and teardown that leaves nothing behind (also when the owner is killed).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { Testbed, canRun, sweepStale } from "./testbed.ts";

const can = canRun({ capture: true });
if (!can.ok) console.log(`skip test/netns testbed: ${can.why}`);

const BUN = process.execPath;

/** Echoes each chunk prefixed with the peer's address, so the client learns its source as the server saw it. */
const ECHO_SERVER = `
const l = Bun.listen({ hostname: "0.0.0.0", port: 0, socket: {
  data(s, d) { s.write(s.remoteAddress + " " + d.toString()); s.end(); },
} });
console.log(l.port);
`;

const CLIENT = `
const [host, port, msg] = process.argv.slice(-3);
let out = "";
await new Promise((resolve, reject) => Bun.connect({ hostname: host, port: Number(port), socket: {
  open(s) { s.write(msg); },
  data(_s, d) { out += d.toString(); },
  close: resolve,
  connectError(_s, e) { reject(e); },
  error(_s, e) { reject(e); },
} }).catch(reject));
console.log(out);
`;

/** First line a spawned process prints. */
async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return text.split("\n")[0]!.trim();
}

function hostLinks(): string {
  return Bun.spawnSync(["ip", "-o", "link", "show"]).stdout.toString();
}

describe.skipIf(!can.ok)("network-namespace testbed", () => {
  let tb: Testbed;

  beforeAll(async () => {
    tb = await Testbed.create();
  });

  afterAll(async () => {
    await tb?.destroy();
  });

  test("builds two nodes with their pod subnets, mesh pods and a pod outside the mesh", async () => {
    expect(tb.nodes.map((n) => [n.name, n.podCidr])).toEqual([
      ["node-a", "10.10.1.0/24"],
      ["node-b", "10.10.2.0/24"],
    ]);
    expect(tb.pods.map((p) => [p.name, p.node, p.ip, p.inMesh])).toEqual([
      ["a1", "node-a", "10.10.1.10", true],
      ["a2", "node-a", "10.10.1.11", true],
      ["a3", "node-a", "10.10.1.12", false],
      ["b1", "node-b", "10.10.2.10", true],
      ["b2", "node-b", "10.10.2.11", true],
    ]);
    for (const ns of [tb.network, ...tb.nodes, ...tb.pods]) {
      expect(ns.ns.startsWith(tb.prefix)).toBe(true);
      expect(existsSync(ns.netnsPath)).toBe(true);
    }
    const addr = await tb.exec("a1", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    expect(addr.stdout).toContain("10.10.1.10/24");
    const route = await tb.exec("b2", ["ip", "route", "show", "default"]);
    expect(route.stdout).toContain(`via ${tb.node("node-b").gateway}`);
    // Nothing of the testbed is in the host's namespace.
    expect(hostLinks()).not.toContain(tb.prefix);
  });

  test("a pod on node-a reaches a pod on node-b through the network namespace, unNATed", async () => {
    const a1 = tb.pod("a1");
    const b1 = tb.pod("b1");
    const capture = await tb.capture("net", tb.node("node-a").networkIface, `tcp and host ${b1.ip}`);
    const server = tb.spawnIn("b1", [BUN, "-e", ECHO_SERVER]);
    const port = await firstLine(server.stdout);
    expect(Number(port)).toBeGreaterThan(0);
    const client = await tb.exec("a1", [BUN, "-e", CLIENT, b1.ip, port, "hello from a1"]);
    expect(client.stderr).toBe("");
    // The server saw the client pod's own address: routed, not NATed.
    expect(client.stdout.trim()).toBe(`${a1.ip} hello from a1`);
    const text = await capture.stop();
    expect(text).toContain(`IP ${a1.ip}.`);
    expect(text).toContain(`> ${b1.ip}.${port}: Flags [S]`);
    expect(text).toContain(`IP ${b1.ip}.${port} > ${a1.ip}.`);
    server.kill();
  });

  test("the pod outside the mesh, and a node, reach pods and nodes across the network", async () => {
    const b2 = tb.pod("b2");
    const server = tb.spawnIn("b2", [BUN, "-e", ECHO_SERVER]);
    const port = await firstLine(server.stdout);
    const fromPlain = await tb.exec("a3", [BUN, "-e", CLIENT, b2.ip, port, "plain"]);
    expect(fromPlain.stdout.trim()).toBe(`${tb.pod("a3").ip} plain`);
    // Where a node's ztunnel runs: it reaches the other node's pods from its own address.
    const fromNode = await tb.exec("node-a", [BUN, "-e", CLIENT, b2.ip, port, "node"]);
    expect(fromNode.stdout.trim()).toBe(`${tb.node("node-a").ip} node`);
    server.kill();
    // A pod reaches the other node's address.
    const nodeServer = tb.spawnIn("node-b", [BUN, "-e", ECHO_SERVER]);
    const nodePort = await firstLine(nodeServer.stdout);
    const toNode = await tb.exec("a2", [BUN, "-e", CLIENT, tb.node("node-b").ip, nodePort, "to node"]);
    expect(toNode.stdout.trim()).toBe(`${tb.pod("a2").ip} to node`);
    nodeServer.kill();
  });

  test("an iptables REDIRECT inside a pod captures its outbound traffic before it leaves the pod", async () => {
    const b1 = tb.pod("b1");
    // Stands in for the ztunnel listener the pod's traffic is redirected to.
    const local = tb.spawnIn("a2", [BUN, "-e", ECHO_SERVER]);
    const localPort = await firstLine(local.stdout);
    const capture = await tb.capture("net", tb.node("node-a").networkIface, `tcp and host ${b1.ip}`);
    const rule = ["-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", b1.ip, "--dport", "7777", "-j", "REDIRECT", "--to-ports", localPort];
    expect((await tb.exec("a2", ["iptables", ...rule])).code).toBe(0);
    const client = await tb.exec("a2", [BUN, "-e", CLIENT, b1.ip, "7777", "captured"]);
    expect(client.stdout.trim()).toEndWith(" captured");
    expect((await capture.stop()).trim()).toBe("");
    local.kill();
  });

  test("a pod going away never changes its node's gateway MAC (other pods' ARP caches stay valid)", async () => {
    const node = tb.node("node-a");
    const mac = async () => (await tb.exec("node-a", ["cat", `/sys/class/net/${node.bridge}/address`])).stdout.trim();
    const before = await mac();
    const extra = await Testbed.create({ pods: [{ name: "x1", node: "node-a" }, { name: "x2", node: "node-a" }] });
    const n = extra.node("node-a");
    const macOf = async () => (await extra.exec("node-a", ["cat", `/sys/class/net/${n.bridge}/address`])).stdout.trim();
    const first = await macOf();
    for (const p of ["x1", "x2"]) Bun.spawnSync(["ip", "netns", "del", extra.pod(p).ns]);
    expect(await macOf()).toBe(first);
    await extra.destroy();
    expect(await mac()).toBe(before);
  });

  test("exec reports a failing command's exit status and output", async () => {
    const r = await tb.exec("a1", ["sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
  });

  test("destroy removes every namespace and interface with the prefix, and kills what ran inside", async () => {
    const other = await Testbed.create({ pods: [{ name: "p1", node: "node-a" }] });
    expect(other.prefix).not.toBe(tb.prefix);
    const sleeper = other.spawnIn("p1", ["sleep", "60"], { stdout: "ignore", stderr: "ignore" });
    expect(readdirSync("/var/run/netns").filter((n) => n.startsWith(other.prefix)).length).toBe(4);
    await other.destroy();
    expect(await sleeper.exited).not.toBe(0);
    expect(readdirSync("/var/run/netns").filter((n) => n.startsWith(other.prefix))).toEqual([]);
    expect(hostLinks()).not.toContain(other.prefix);
    // The first testbed is untouched.
    expect(existsSync(tb.pod("a1").netnsPath)).toBe(true);
  });

  test("a testbed whose owner is killed is removed by its watchdog", async () => {
    const script = `
      import { Testbed } from ${JSON.stringify(`${import.meta.dir}/testbed.ts`)};
      const tb = await Testbed.create({ pods: [{ name: "p1", node: "node-b" }] });
      console.log(tb.prefix);
      setInterval(() => {}, 1000);
    `;
    const owner = Bun.spawn([BUN, "-e", script], { stdout: "pipe", stderr: "inherit" });
    const prefix = await firstLine(owner.stdout);
    expect(prefix).toMatch(/^mt\d+x\d+-$/);
    expect(readdirSync("/var/run/netns").some((n) => n.startsWith(prefix))).toBe(true);
    owner.kill("SIGKILL");
    await owner.exited;
    const deadline = Date.now() + 10_000;
    while (readdirSync("/var/run/netns").some((n) => n.startsWith(prefix)) && Date.now() < deadline) await Bun.sleep(100);
    expect(readdirSync("/var/run/netns").filter((n) => n.startsWith(prefix))).toEqual([]);
  });

  test("sweepStale removes leftovers with no live owner and spares live testbeds", () => {
    const stale = "mtstale-";
    Bun.spawnSync(["ip", "netns", "add", `${stale}net`]);
    const removed = sweepStale();
    expect(removed).toContain(`${stale}net`);
    expect(existsSync(`/var/run/netns/${stale}net`)).toBe(false);
    expect(existsSync(tb.network.netnsPath)).toBe(true);
    expect(removed.some((n) => n.startsWith(tb.prefix))).toBe(false);
  });
});
