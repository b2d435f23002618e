// A small cluster made of Linux network namespaces, for captured-mode tests (needs root):
//
//     pod ns (eth0) ──veth── node ns (bridge, pod subnet gateway) ──veth── network ns (router)
//
// Every node has its own pod subnet behind a bridge; the "network" namespace routes between the
// nodes' uplinks, so pod-to-pod traffic across nodes crosses it unNATed (capture it there). A
// node's namespace is where that node's ztunnel runs; it reaches its pods' namespaces through
// `/var/run/netns/<name>`, as istio's ztunnel gets a pod's netns from the CNI agent.
//
// Every namespace and interface name starts with a prefix unique to the testbed. Interfaces are
// created directly inside the testbed's namespaces, never in the host's, so nothing of ours can
// clash with or touch the host's network. Teardown: `destroy()`; on process exit or
// SIGINT/SIGTERM; and, for exits that run no handler at all (SIGKILL, or `bun test`, which emits
// no "exit" event), a watchdog shell that removes everything once the owner process is gone.
// `sweepStale()` (also run by every `create`) removes what a run left behind when even its
// watchdog was killed.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Subprocess } from "bun";

const NETNS_DIR = "/var/run/netns";
/** Owner records: `<prefix>` holds "<pid> <starttime>" of the process that owns the testbed. */
const OWNER_DIR = "/run/mesh-testbed";
const IFNAMSIZ = 15;
const PREFIX_RE = /^[a-z0-9]{1,8}-$/;
const NAME_RE = /^[a-z0-9][a-z0-9-]*$/;
const RESERVED = new Set(["net", "up", "br"]);

export interface TestbedNodeSpec {
  name: string;
  /** IPv4 CIDR of the node's pods, prefix length 8..29. */
  podCidr: string;
}

export interface TestbedPodSpec {
  name: string;
  node: string;
  /** False for a workload outside the mesh (no ztunnel captures it). Default true. */
  inMesh?: boolean;
}

export interface TestbedOptions {
  /** Name prefix, `[a-z0-9]{1,8}-`; default `mt<pid%1000>x<counter>-`. */
  prefix?: string;
  nodes?: readonly TestbedNodeSpec[];
  pods?: readonly TestbedPodSpec[];
  /** Where the node<->network point-to-point links take their /30s from. */
  transitCidr?: string;
}

export const DEFAULT_NODES: readonly TestbedNodeSpec[] = [
  { name: "node-a", podCidr: "10.10.1.0/24" },
  { name: "node-b", podCidr: "10.10.2.0/24" },
];

export const DEFAULT_PODS: readonly TestbedPodSpec[] = [
  { name: "a1", node: "node-a" },
  { name: "a2", node: "node-a" },
  { name: "a3", node: "node-a", inMesh: false },
  { name: "b1", node: "node-b" },
  { name: "b2", node: "node-b" },
];

export interface TestbedNode {
  readonly name: string;
  /** Full namespace name. */
  readonly ns: string;
  readonly netnsPath: string;
  /** The node's address (its uplink to the network namespace). */
  readonly ip: string;
  readonly podCidr: string;
  /** The bridge address in the pod subnet: every local pod's default route. */
  readonly gateway: string;
  /** Interface names inside the node's namespace. */
  readonly uplink: string;
  readonly bridge: string;
  /** This node's link as seen inside the network namespace (capture here for its traffic). */
  readonly networkIface: string;
}

export interface TestbedPod {
  readonly name: string;
  readonly node: string;
  readonly inMesh: boolean;
  readonly ns: string;
  readonly netnsPath: string;
  readonly ip: string;
  /** Inside the pod: "eth0", as in a Kubernetes pod. */
  readonly iface: string;
  /** The pod's veth end in its node's namespace (a port of the node's bridge). */
  readonly hostIface: string;
}

/** Where a spawned process's output goes; a "pipe" must be read, or the process blocks once it fills. */
export type Stdio = "pipe" | "inherit" | "ignore";

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface PacketCapture {
  /** Stops tcpdump and returns its text output, one packet per line (`-n -tt`). */
  stop(): Promise<string>;
}

// ---- preconditions ------------------------------------------------------------------------

/** Whether this process can build a testbed: root, `ip`, `iptables`, and with `capture`, `tcpdump`. */
export function canRun(opts: { capture?: boolean } = {}): { ok: boolean; why?: string } {
  if (process.platform !== "linux") return { ok: false, why: `network namespaces need Linux; this is ${process.platform}` };
  if (process.getuid?.() !== 0) return { ok: false, why: "not root" };
  const missing = ["ip", "iptables", ...(opts.capture ? ["tcpdump"] : [])].filter((c) => Bun.which(c) === null);
  if (missing.length > 0) return { ok: false, why: `missing ${missing.join(", ")} (apt-get install iproute2 iptables tcpdump)` };
  return { ok: true };
}

// ---- small helpers ------------------------------------------------------------------------

function ipToInt(ip: string): number {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function parseCidr(cidr: string, minLen: number, maxLen: number): { base: number; len: number } {
  const [ip, lenText] = cidr.split("/");
  const len = Number(lenText);
  if (ip === undefined || !Number.isInteger(len) || len < minLen || len > maxLen) {
    throw new Error(`bad CIDR ${cidr} (IPv4, prefix length ${minLen}..${maxLen})`);
  }
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return { base: (ipToInt(ip) & mask) >>> 0, len };
}

function run(argv: readonly string[]): ExecResult {
  const r = Bun.spawnSync([...argv], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

async function runAsync(argv: readonly string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  const proc = Bun.spawn([...argv], {
    stdout: "pipe",
    stderr: "pipe",
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    timeout: opts.timeoutMs ?? 20_000,
    killSignal: "SIGKILL",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

async function must(argv: readonly string[]): Promise<void> {
  const r = await runAsync(argv);
  if (r.code !== 0) throw new Error(`testbed: \`${argv.join(" ")}\` failed (exit ${r.code}): ${r.stderr.trim()}`);
}

function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name; starttime is field 22 overall.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function ownerAlive(prefix: string): boolean {
  let record: string;
  try {
    record = readFileSync(`${OWNER_DIR}/${prefix}`, "utf8").trim();
  } catch {
    return false;
  }
  const [pid, start] = record.split(" ");
  return pid !== undefined && start !== undefined && procStartTime(Number(pid)) === start;
}

function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

/** Kills what runs inside `ns` (only our own processes can be in a testbed namespace) and deletes it. */
function removeNetnsSync(ns: string): void {
  for (const pid of run(["ip", "netns", "pids", ns]).stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  }
  run(["ip", "netns", "del", ns]);
}

/**
 * Removes leftovers of testbeds whose owner process is gone: every namespace under
 * /var/run/netns whose name starts with `prefix` and whose testbed prefix (up to the first "-")
 * has no live owner, plus host interfaces with that testbed prefix. Returns the names removed.
 */
export function sweepStale(prefix = "mt"): string[] {
  const removed: string[] = [];
  const stale = new Set<string>();
  for (const ns of listNetns()) {
    if (!ns.startsWith(prefix)) continue;
    const dash = ns.indexOf("-");
    const group = ns.slice(0, dash + 1);
    if (dash < 0 || !PREFIX_RE.test(group) || ownerAlive(group)) continue;
    stale.add(group);
    removeNetnsSync(ns);
    removed.push(ns);
  }
  for (const line of run(["ip", "-o", "link", "show"]).stdout.split("\n")) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (!name?.startsWith(prefix)) continue;
    const group = name.slice(0, name.indexOf("-") + 1);
    if (!PREFIX_RE.test(group) || ownerAlive(group)) continue;
    stale.add(group);
    run(["ip", "link", "del", name]);
    removed.push(name);
  }
  for (const group of stale) rmSync(`${OWNER_DIR}/${group}`, { force: true });
  return removed;
}

// ---- process-wide teardown ----------------------------------------------------------------

const live = new Set<Testbed>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", () => {
    for (const tb of live) tb.destroySync();
  });
  for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    process.on(sig, () => {
      for (const tb of live) tb.destroySync();
      process.exit(code);
    });
  }
}

let counter = 0;

// ---- the testbed --------------------------------------------------------------------------

export class Testbed {
  readonly prefix: string;
  readonly network: { readonly ns: string; readonly netnsPath: string };
  readonly nodes: readonly TestbedNode[];
  readonly pods: readonly TestbedPod[];
  private readonly namespaces: string[];
  private readonly processes = new Set<Subprocess>();
  private watchdog: Subprocess | undefined;
  private destroyed = false;

  private constructor(prefix: string, nodes: TestbedNode[], pods: TestbedPod[]) {
    this.prefix = prefix;
    this.network = { ns: `${prefix}net`, netnsPath: `${NETNS_DIR}/${prefix}net` };
    this.nodes = nodes;
    this.pods = pods;
    this.namespaces = [this.network.ns, ...nodes.map((n) => n.ns), ...pods.map((p) => p.ns)];
  }

  /** Builds the namespaces, links, addresses and routes; throws (having removed everything) on failure. */
  static async create(opts: TestbedOptions = {}): Promise<Testbed> {
    const can = canRun();
    if (!can.ok) throw new Error(`testbed cannot run: ${can.why}`);
    sweepStale();
    const prefix = claimPrefix(opts.prefix);
    let tb: Testbed;
    try {
      tb = new Testbed(prefix, ...plan(prefix, opts));
    } catch (e) {
      rmSync(`${OWNER_DIR}/${prefix}`, { force: true });
      throw e;
    }
    live.add(tb);
    installHooks();
    tb.startWatchdog();
    try {
      await tb.build(opts.transitCidr ?? "10.10.0.0/24");
    } catch (e) {
      await tb.destroy();
      throw e;
    }
    return tb;
  }

  node(name: string): TestbedNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`testbed has no node ${name}`);
    return n;
  }

  pod(name: string): TestbedPod {
    const p = this.pods.find((x) => x.name === name);
    if (!p) throw new Error(`testbed has no pod ${name}`);
    return p;
  }

  /** Full namespace name for a short one ("net", a node or a pod name); full names pass through. */
  nsName(name: string): string {
    if (this.namespaces.includes(name)) return name;
    const full = `${this.prefix}${name}`;
    if (!this.namespaces.includes(full)) throw new Error(`testbed has no namespace ${name}`);
    return full;
  }

  /** Runs a command to completion inside a namespace (`ip netns exec`). */
  exec(ns: string, argv: readonly string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return runAsync(["ip", "netns", "exec", this.nsName(ns), ...argv], opts);
  }

  /**
   * Starts a long-running process inside a namespace; `ip netns exec` execs it, so the pid is the
   * program's own. Killed by `destroy()` if still running.
   */
  spawnIn<O extends Stdio = "pipe", E extends Stdio = "pipe">(ns: string, argv: readonly string[], opts: { stdout?: O; stderr?: E } = {}): Subprocess<"ignore", O, E> {
    const proc = Bun.spawn(["ip", "netns", "exec", this.nsName(ns), ...argv], {
      stdin: "ignore",
      stdout: opts.stdout ?? "pipe",
      stderr: opts.stderr ?? "pipe",
    }) as Subprocess<"ignore", O, E>;
    this.processes.add(proc);
    void proc.exited.then(() => this.processes.delete(proc));
    return proc;
  }

  /**
   * Starts tcpdump on `iface` inside a namespace with a pcap-filter expression; resolves once it
   * is listening, so no packet sent afterwards is missed. With `pcapPath` the packets are also
   * written there.
   */
  async capture(ns: string, iface: string, filter = "", opts: { pcapPath?: string } = {}): Promise<PacketCapture> {
    const argv = ["tcpdump", "-i", iface, "-n", "-tt", "-l", "--immediate-mode", "-Z", "root"];
    if (opts.pcapPath) argv.push("-U", "-w", opts.pcapPath, "--print");
    if (filter) argv.push(filter);
    const proc = this.spawnIn(ns, argv);
    const stdout = new Response(proc.stdout).text();
    let stderr = "";
    const reader = proc.stderr.getReader();
    const decoder = new TextDecoder();
    const ready = (async () => {
      while (!stderr.includes("listening on")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`tcpdump on ${this.nsName(ns)}/${iface} did not start: ${stderr.trim()}`);
        stderr += decoder.decode(value, { stream: true });
      }
      // Keep draining, so tcpdump never blocks on a full stderr pipe.
      void (async () => {
        for (;;) if ((await reader.read()).done) return;
      })();
    })();
    const timeout = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    try {
      await ready;
    } finally {
      clearTimeout(timeout);
    }
    return {
      stop: async () => {
        proc.kill("SIGINT");
        await proc.exited;
        return stdout;
      },
    };
  }

  /** Kills every process in the testbed's namespaces and removes them all. Idempotent. */
  async destroy(): Promise<void> {
    const procs = [...this.processes];
    for (const p of procs) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.exited));
    this.destroySync();
  }

  /** The synchronous teardown, for exit and signal handlers. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.processes) p.kill("SIGKILL");
    for (const ns of this.namespaces) removeNetnsSync(ns);
    rmSync(`${OWNER_DIR}/${this.prefix}`, { force: true });
    this.watchdog?.kill("SIGKILL");
    live.delete(this);
  }

  private startWatchdog(): void {
    const names = this.namespaces.join(" ");
    // Ignores SIGINT/SIGHUP so a Ctrl-C to the whole process group leaves it to clean up.
    const script = [
      "trap '' INT HUP",
      `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done`,
      `for ns in ${names}; do for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p"; done; ip netns del "$ns" 2>/dev/null; done`,
      `rm -f ${OWNER_DIR}/${this.prefix}`,
    ].join("\n");
    this.watchdog = Bun.spawn(["sh", "-c", script], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    this.watchdog.unref();
  }

  private async build(transitCidr: string): Promise<void> {
    const transit = parseCidr(transitCidr, 8, 29);
    if (this.nodes.length * 4 > 2 ** (32 - transit.len)) throw new Error(`transit CIDR ${transitCidr} is too small for ${this.nodes.length} nodes`);
    const net = this.network.ns;
    for (const ns of this.namespaces) {
      await must(["ip", "netns", "add", ns]);
      await must(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    await enableForwarding(net);
    for (const [i, node] of this.nodes.entries()) {
      const routerSide = intToIp(transit.base + 4 * i + 1);
      // Created inside the node's namespace with the peer placed straight into the network's.
      await must(["ip", "-n", node.ns, "link", "add", node.uplink, "type", "veth", "peer", "name", node.networkIface, "netns", net]);
      await must(["ip", "-n", net, "addr", "add", `${routerSide}/30`, "dev", node.networkIface]);
      await must(["ip", "-n", net, "link", "set", node.networkIface, "up"]);
      await must(["ip", "-n", node.ns, "addr", "add", `${node.ip}/30`, "dev", node.uplink]);
      await must(["ip", "-n", node.ns, "link", "set", node.uplink, "up"]);
      await must(["ip", "-n", node.ns, "route", "add", "default", "via", routerSide]);
      await must(["ip", "-n", net, "route", "add", node.podCidr, "via", node.ip]);
      // A fixed MAC: a bridge otherwise takes the lowest MAC of its ports, so removing a pod
      // could change the gateway's MAC under the other pods' ARP caches and black-hole them.
      await must(["ip", "-n", node.ns, "link", "add", node.bridge, "address", `02:00:00:00:${(i + 1).toString(16).padStart(2, "0")}:01`, "type", "bridge"]);
      await must(["ip", "-n", node.ns, "addr", "add", `${node.gateway}/${node.podCidr.split("/")[1]}`, "dev", node.bridge]);
      await must(["ip", "-n", node.ns, "link", "set", node.bridge, "up"]);
      await enableForwarding(node.ns);
    }
    for (const pod of this.pods) {
      const node = this.node(pod.node);
      await must(["ip", "-n", node.ns, "link", "add", pod.hostIface, "type", "veth", "peer", "name", pod.iface, "netns", pod.ns]);
      await must(["ip", "-n", node.ns, "link", "set", pod.hostIface, "master", node.bridge, "up"]);
      await must(["ip", "-n", pod.ns, "addr", "add", `${pod.ip}/${node.podCidr.split("/")[1]}`, "dev", pod.iface]);
      await must(["ip", "-n", pod.ns, "link", "set", pod.iface, "up"]);
      await must(["ip", "-n", pod.ns, "route", "add", "default", "via", node.gateway]);
    }
  }
}

async function enableForwarding(ns: string): Promise<void> {
  // /proc/sys/net resolves to the namespace of the process that opens it.
  await must(["ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
}

/** Picks a prefix and records this process as its owner; the exclusive create is the lock. */
function claimPrefix(requested: string | undefined): string {
  mkdirSync(OWNER_DIR, { recursive: true });
  const start = procStartTime(process.pid) ?? "0";
  for (let tries = 0; tries < 100; tries++) {
    // At most 9 characters, so prefix + "node-a" still fits an interface name.
    const prefix = requested ?? `mt${process.pid % 1000}x${counter++ % 100}-`;
    if (!PREFIX_RE.test(prefix)) throw new Error(`testbed prefix must match ${PREFIX_RE}: ${prefix}`);
    const taken = listNetns().some((n) => n.startsWith(prefix));
    if (!taken) {
      try {
        writeFileSync(`${OWNER_DIR}/${prefix}`, `${process.pid} ${start}\n`, { flag: "wx" });
        return prefix;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
    if (requested !== undefined) throw new Error(`testbed prefix ${prefix} is in use`);
  }
  throw new Error("no free testbed prefix");
}

function plan(prefix: string, opts: TestbedOptions): [TestbedNode[], TestbedPod[]] {
  const nodeSpecs = opts.nodes ?? DEFAULT_NODES;
  const podSpecs = opts.pods ?? DEFAULT_PODS;
  const transit = parseCidr(opts.transitCidr ?? "10.10.0.0/24", 8, 29);
  const seen = new Set<string>();
  const checkName = (name: string) => {
    if (!NAME_RE.test(name) || RESERVED.has(name) || seen.has(name)) throw new Error(`bad or duplicate testbed name: ${name}`);
    seen.add(name);
  };
  const iface = (name: string) => {
    if (name.length > IFNAMSIZ) throw new Error(`interface name ${name} is longer than ${IFNAMSIZ} characters; use a shorter prefix or name`);
    return name;
  };
  const nodes = nodeSpecs.map((spec, i): TestbedNode => {
    checkName(spec.name);
    const cidr = parseCidr(spec.podCidr, 8, 29);
    return {
      name: spec.name,
      ns: `${prefix}${spec.name}`,
      netnsPath: `${NETNS_DIR}/${prefix}${spec.name}`,
      ip: intToIp(transit.base + 4 * i + 2),
      podCidr: `${intToIp(cidr.base)}/${cidr.len}`,
      gateway: intToIp(cidr.base + 1),
      uplink: iface(`${prefix}up`),
      bridge: iface(`${prefix}br`),
      networkIface: iface(`${prefix}${spec.name}`),
    };
  });
  const perNode = new Map<string, number>();
  const pods = podSpecs.map((spec): TestbedPod => {
    checkName(spec.name);
    const node = nodes.find((n) => n.name === spec.node);
    if (!node) throw new Error(`pod ${spec.name} is on unknown node ${spec.node}`);
    const index = perNode.get(node.name) ?? 0;
    perNode.set(node.name, index + 1);
    const cidr = parseCidr(node.podCidr, 8, 29);
    const host = 10 + index;
    if (host >= 2 ** (32 - cidr.len) - 1) throw new Error(`pod subnet ${node.podCidr} is too small for pod ${spec.name}`);
    return {
      name: spec.name,
      node: node.name,
      inMesh: spec.inMesh ?? true,
      ns: `${prefix}${spec.name}`,
      netnsPath: `${NETNS_DIR}/${prefix}${spec.name}`,
      ip: intToIp(cidr.base + host),
      iface: "eth0",
      hostIface: iface(`${prefix}${spec.name}`),
    };
  });
  return [nodes, pods];
}
