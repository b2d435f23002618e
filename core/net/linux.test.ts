// The Linux capture primitives against the real kernel: a network namespace made with
// `ip netns add`, real iptables REDIRECT rules inside it. Needs root; skipped otherwise.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, readlinkSync, statSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import type { TCPSocketListener } from "bun";
import { isMeshError, ErrorCodes } from "../errors/index.ts";
import {
  getIpTransparent,
  getSocketMark,
  isLinuxCaptureSupported,
  originalDestination,
  setIpTransparent,
  setSocketMark,
  socketError,
  socketFd,
  startTcpConnect,
  withNetns,
} from "./linux.ts";

const support = isLinuxCaptureSupported();
const hasIp = Bun.which("ip") !== null;
const hasIptables = Bun.which("iptables") !== null && Bun.which("ip6tables") !== null;
const why = !support.ok ? support.why : !hasIp ? "`ip` (iproute2) is not installed" : undefined;
if (why) console.log(`skip core/net/linux tests: ${why}`);
else if (!hasIptables) console.log("skip core/net/linux SO_ORIGINAL_DST tests: iptables/ip6tables not installed");

// Not the testbed's `mt<n>x<n>-` pattern, so its stale sweep never touches a namespace of this file.
const NS = `meshffi${process.pid}`;
const NS_PATH = `/var/run/netns/${NS}`;
const V6_ADDR = "fd00:6d65:7368::99";

function run(argv: string[]): void {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (${r.exitCode}): ${r.stderr.toString().trim()}`);
}
const inNs = (argv: string[]) => run(["ip", "netns", "exec", NS, ...argv]);

/** A listener that answers every connection with `tag` and records each accepted socket's original destination. */
function tagListener(hostname: string, tag: string) {
  const seen: ({ ip: string; port: number } | null)[] = [];
  const listener = Bun.listen({
    hostname,
    port: 0,
    socket: {
      open(s) {
        seen.push(originalDestination(socketFd(s)));
        s.write(tag);
        s.end();
      },
      data() {},
    },
  });
  return { listener, seen };
}

/** Connects (in whatever namespace the caller is in when `start` runs) and reads until close. */
type Handlers = Parameters<typeof Bun.connect>[0]["socket"];
async function readAll(connect: (handlers: Handlers) => Promise<unknown>): Promise<string> {
  let text = "";
  const { promise, resolve, reject } = Promise.withResolvers<string>();
  await connect({
    data(_s, d) {
      text += d.toString();
    },
    close() {
      resolve(text);
    },
    error(_s, e) {
      reject(e);
    },
    connectError(_s, e) {
      reject(e);
    },
  }).catch(reject);
  return promise;
}

/** Bun.connect({ fd }) works (reference/bun.md §5) but is missing from bun-types' overloads. */
function connectFd(fd: number, socket: Handlers): Promise<unknown> {
  return Bun.connect({ fd, socket } as unknown as Parameters<typeof Bun.connect>[0]);
}

function connectInNs(hostname: string, port: number): Promise<string> {
  return readAll((socket) => withNetns(NS_PATH, () => Bun.connect({ hostname, port, socket })));
}

describe.skipIf(why !== undefined)("core/net/linux (real netns)", () => {
  const listeners: TCPSocketListener<unknown>[] = [];
  const keep = <T extends TCPSocketListener<unknown>>(l: T): T => {
    listeners.push(l);
    return l;
  };

  beforeAll(() => {
    Bun.spawnSync(["ip", "netns", "del", NS], { stderr: "ignore" });
    run(["ip", "netns", "add", NS]);
    run(["ip", "-n", NS, "link", "set", "lo", "up"]);
    run(["ip", "-n", NS, "-6", "addr", "add", `${V6_ADDR}/128`, "dev", "lo", "nodad"]);
    // A link whose subnet has addresses that are not local, for the transparent bind.
    run(["ip", "-n", NS, "link", "add", "t0", "type", "veth", "peer", "name", "t1"]);
    run(["ip", "-n", NS, "addr", "add", "192.0.2.1/24", "dev", "t0"]);
    run(["ip", "-n", NS, "link", "set", "t0", "up"]);
    run(["ip", "-n", NS, "link", "set", "t1", "up"]);
  });

  afterAll(() => {
    for (const l of listeners) l.stop(true);
    Bun.spawnSync(["ip", "netns", "del", NS], { stderr: "ignore" });
  });

  test("withNetns + Bun.listen opens a listener that exists only inside the namespace", async () => {
    const pod = keep(withNetns(NS_PATH, () => Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: (s) => void s.end("pod"), data() {} } })));
    // The same port is free in our own namespace: the two listeners are independent.
    const host = keep(Bun.listen({ hostname: "127.0.0.1", port: pod.port, socket: { open: (s) => void s.end("host"), data() {} } }));
    expect(host.port).toBe(pod.port);
    expect(await connectInNs("127.0.0.1", pod.port)).toBe("pod");
    expect(await readAll((socket) => Bun.connect({ hostname: "127.0.0.1", port: pod.port, socket }))).toBe("host");
  });

  test("withNetns runs fn inside the namespace and always switches back", () => {
    const home = readlinkSync("/proc/thread-self/ns/net");
    const target = `net:[${statSync(NS_PATH).ino}]`;
    expect(home).not.toBe(target);
    expect(withNetns(NS_PATH, () => readlinkSync("/proc/thread-self/ns/net"))).toBe(target);
    expect(readlinkSync("/proc/thread-self/ns/net")).toBe(home);
    expect(() =>
      withNetns(NS_PATH, () => {
        throw new Error("inside");
      }),
    ).toThrow("inside");
    expect(readlinkSync("/proc/thread-self/ns/net")).toBe(home);
  });

  test("withNetns reports NETNS_FAILED with the reason for a bad path or a file that is no namespace", () => {
    const home = readlinkSync("/proc/thread-self/ns/net");
    let err: unknown;
    try {
      withNetns(`/var/run/netns/${NS}-missing`, () => 1);
    } catch (e) {
      err = e;
    }
    expect(isMeshError(err, ErrorCodes.NETNS_FAILED)).toBe(true);
    expect((err as Error).message).toContain("no such file");
    err = undefined;
    try {
      withNetns("/proc/self/status", () => 1);
    } catch (e) {
      err = e;
    }
    expect(isMeshError(err, ErrorCodes.NETNS_FAILED)).toBe(true);
    expect((err as Error).message).toMatch(/Invalid argument \(errno 22\)/);
    expect(readlinkSync("/proc/thread-self/ns/net")).toBe(home);
  });

  test("withNetns: only the synchronous part of an async fn runs inside", async () => {
    const home = readlinkSync("/proc/thread-self/ns/net");
    const seen: string[] = [];
    await withNetns(NS_PATH, async () => {
      seen.push(readlinkSync("/proc/thread-self/ns/net"));
      await Bun.sleep(1);
      seen.push(readlinkSync("/proc/thread-self/ns/net"));
    });
    expect(seen).toEqual([`net:[${statSync(NS_PATH).ino}]`, home]);
  });

  test.skipIf(!hasIptables)("SO_ORIGINAL_DST: the destination before an iptables REDIRECT, IPv4 and IPv6", async () => {
    const a = withNetns(NS_PATH, () => tagListener("127.0.0.1", "v4"));
    const b = withNetns(NS_PATH, () => tagListener("::1", "v6"));
    keep(a.listener);
    keep(b.listener);
    inNs(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.99", "--dport", "8080", "-j", "REDIRECT", "--to-ports", String(a.listener.port)]);
    inNs(["ip6tables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", V6_ADDR, "--dport", "8443", "-j", "REDIRECT", "--to-ports", String(b.listener.port)]);
    try {
      expect(await connectInNs("127.0.0.99", 8080)).toBe("v4");
      expect(await connectInNs(V6_ADDR, 8443)).toBe("v6");
      // Straight to the listener: conntrack tracks it (the namespace has NAT rules) without NAT,
      // so the "original" destination is the listener itself.
      expect(await connectInNs("127.0.0.1", a.listener.port)).toBe("v4");
      expect(a.seen).toEqual([
        { ip: "127.0.0.99", port: 8080 },
        { ip: "127.0.0.1", port: a.listener.port },
      ]);
      expect(b.seen).toEqual([{ ip: V6_ADDR, port: 8443 }]);
    } finally {
      inNs(["iptables", "-t", "nat", "-F", "OUTPUT"]);
      inNs(["ip6tables", "-t", "nat", "-F", "OUTPUT"]);
    }
  });

  test.skipIf(!hasIptables)("SO_ORIGINAL_DST on a dual-stack listener and on a node:net server", async () => {
    const { listener: dual, seen: dualSeen } = withNetns(NS_PATH, () => tagListener("::", "dual"));
    keep(dual);
    const nodeSeen: unknown[] = [];
    const server: Server = withNetns(NS_PATH, () =>
      createServer((c) => {
        nodeSeen.push(originalDestination(socketFd(c)));
        c.end("node");
      }).listen({ host: "127.0.0.1", port: 0 }),
    );
    await new Promise<void>((r) => (server.listening ? r() : server.once("listening", () => r())));
    const nodePort = (server.address() as AddressInfo).port;
    inNs(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.97", "-j", "REDIRECT", "--to-ports", String(dual.port)]);
    inNs(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.96", "-j", "REDIRECT", "--to-ports", String(nodePort)]);
    try {
      expect(await connectInNs("127.0.0.97", 9000)).toBe("dual");
      expect(await connectInNs("127.0.0.96", 9001)).toBe("node");
      expect(dualSeen).toEqual([{ ip: "127.0.0.97", port: 9000 }]);
      expect(nodeSeen).toEqual([{ ip: "127.0.0.96", port: 9001 }]);
    } finally {
      inNs(["iptables", "-t", "nat", "-F", "OUTPUT"]);
      server.close();
    }
  });

  test("SO_ORIGINAL_DST is null where conntrack does not know the connection", async () => {
    const ns2 = `${NS}-plain`;
    run(["ip", "netns", "add", ns2]);
    try {
      run(["ip", "-n", ns2, "link", "set", "lo", "up"]);
      const { listener, seen } = withNetns(`/var/run/netns/${ns2}`, () => tagListener("127.0.0.1", "plain"));
      try {
        const text = await readAll((socket) =>
          withNetns(`/var/run/netns/${ns2}`, () => Bun.connect({ hostname: "127.0.0.1", port: listener.port, socket })),
        );
        expect(text).toBe("plain");
        expect(seen).toEqual([null]);
      } finally {
        listener.stop(true);
      }
    } finally {
      Bun.spawnSync(["ip", "netns", "del", ns2], { stderr: "ignore" });
    }
  });

  test("SO_MARK and IP_TRANSPARENT read back on IPv4 and IPv6 sockets", () => {
    for (const hostname of ["127.0.0.1", "::1"]) {
      const l = keep(withNetns(NS_PATH, () => Bun.listen({ hostname, port: 0, socket: { data() {} } })));
      const fd = socketFd(l);
      expect(getSocketMark(fd)).toBe(0);
      setSocketMark(fd, 1337);
      expect(getSocketMark(fd)).toBe(1337);
      setSocketMark(fd, 0xfffffff0);
      expect(getSocketMark(fd)).toBe(0xfffffff0);
      expect(getIpTransparent(fd)).toBe(false);
      setIpTransparent(fd, true);
      expect(getIpTransparent(fd)).toBe(true);
      setIpTransparent(fd, false);
      expect(getIpTransparent(fd)).toBe(false);
    }
    expect(() => setSocketMark(0x7ffffff0, 1)).toThrow(/Bad file descriptor/);
    expect(() => setSocketMark(0, -1)).toThrow(/32-bit/);
  });

  test.skipIf(!hasIptables)("a socket marked before connect passes a mark-excluding REDIRECT rule; an unmarked one is captured", async () => {
    const capture = keep(withNetns(NS_PATH, () => tagListener("127.0.0.1", "captured")).listener);
    const real = keep(withNetns(NS_PATH, () => tagListener("127.0.0.98", "real")).listener);
    // The shape of istio's in-pod rules: ztunnel's mark 1337 (0x539) is never redirected.
    inNs(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "mark", "--mark", "0x539/0xfff", "-j", "RETURN"]);
    inNs(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.98", "-j", "REDIRECT", "--to-ports", String(capture.port)]);
    try {
      expect(await connectInNs("127.0.0.98", real.port)).toBe("captured");
      const fd = withNetns(NS_PATH, () => startTcpConnect({ ip: "127.0.0.98", port: real.port, mark: 1337 }));
      expect(getSocketMark(fd)).toBe(1337);
      const opened: number[] = [];
      const text = await readAll((socket) =>
        connectFd(fd, {
          ...socket,
          open() {
            opened.push(socketError(fd));
          },
        }),
      );
      expect(opened).toEqual([0]);
      expect(text).toBe("real");
    } finally {
      inNs(["iptables", "-t", "nat", "-F", "OUTPUT"]);
    }
  });

  test("startTcpConnect: a refused connect shows as SO_ERROR ECONNREFUSED", async () => {
    const l = withNetns(NS_PATH, () => Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }));
    const port = l.port;
    l.stop(true);
    const fd = withNetns(NS_PATH, () => startTcpConnect({ ip: "127.0.0.1", port }));
    const outcome = await new Promise<string>((resolve) => {
      connectFd(fd, {
        open() {
          resolve(`open, SO_ERROR ${socketError(fd)}`);
        },
        connectError(_s, e) {
          resolve(`connectError ${(e as NodeJS.ErrnoException).code ?? e.message}`);
        },
        data() {},
      }).catch((e: Error) => resolve(`rejected ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    });
    expect(outcome).toMatch(/open, SO_ERROR 111|ECONNREFUSED/);
  });

  test("IP_TRANSPARENT lets startTcpConnect bind a source address that is not local", () => {
    let err: unknown;
    try {
      withNetns(NS_PATH, () => startTcpConnect({ ip: "192.0.2.1", port: 9, localIp: "192.0.2.77" }));
    } catch (e) {
      err = e;
    }
    expect(isMeshError(err, ErrorCodes.SOCKET_OPTION_FAILED)).toBe(true);
    expect((err as Error).message).toContain("Cannot assign requested address");
    const fd = withNetns(NS_PATH, () => startTcpConnect({ ip: "192.0.2.1", port: 9, localIp: "192.0.2.77", transparent: true, mark: 7 }));
    expect(getIpTransparent(fd)).toBe(true);
    expect(getSocketMark(fd)).toBe(7);
    closeSync(fd);
  });
});

// What needs no privilege runs on any Linux machine.
describe.skipIf(process.platform !== "linux")("core/net/linux (unprivileged)", () => {
  test("socketFd finds Bun and node:net descriptors and refuses anything else", async () => {
    const bunListener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    expect(socketFd(bunListener)).toBeGreaterThan(2);
    const server = createServer().listen({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((r) => server.once("listening", () => r()));
    expect(socketFd(server)).toBeGreaterThan(2);
    server.close();
    bunListener.stop(true);
    expect(() => socketFd({})).toThrow("no file descriptor");
    expect(() => socketFd({ _handle: null })).toThrow("no file descriptor");
  });

  test("SO_MARK reads back without privilege; setting it needs CAP_NET_ADMIN", () => {
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      expect(getSocketMark(socketFd(l))).toBe(0);
      if (support.why?.startsWith("needs root")) expect(() => setSocketMark(socketFd(l), 1337)).toThrow(/Operation not permitted/);
    } finally {
      l.stop(true);
    }
  });

  test("withNetns names the path it could not open", () => {
    expect(() => withNetns("/nonexistent/netns", () => 1)).toThrow("/nonexistent/netns");
  });
});
