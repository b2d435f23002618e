// Linux-only calls for captured mode (reference/bun.md §5): the original destination of a
// redirected connection, socket marks and transparency, and switching the JS thread into a pod's
// network namespace. Bun has none of these, so they go to libc (core/os, the FFI seam), which is
// opened on first use: other platforms and commands never pay for it.
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { parseIp } from "../config/index.ts";
import { errnoText, libc } from "../os/index.ts";

// Linux ABI constants (identical on x86_64 and aarch64).
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_ERROR = 4;
const IPPROTO_TCP = 6;
const TCP_INFO = 11;
const EADDRINUSE = 98;
const SO_MARK = 36;
const SO_DOMAIN = 39;
const SOL_IP = 0;
const IP_TRANSPARENT = 19;
const SO_ORIGINAL_DST = 80;
const SOL_IPV6 = 41;
const IPV6_TRANSPARENT = 75;
const IP6T_SO_ORIGINAL_DST = 80;
const CLONE_NEWNET = 0x40000000;
const EBADF = 9;
const ENOTSOCK = 88;
const EINPROGRESS = 115;

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;

// ---- sockets ------------------------------------------------------------------------------

/**
 * The file descriptor of a socket: a Bun socket or listener (`.fd`) or a node:net socket or
 * server (`._handle.fd`). Neither is in the published types, so both are probed.
 */
export function socketFd(sock: object): number {
  const s = sock as { fd?: unknown; _handle?: { fd?: unknown } | null };
  const fd = typeof s.fd === "number" ? s.fd : s._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    throw new MeshError(ErrorCodes.SOCKET_OPTION_FAILED, "socket has no file descriptor (closed, or not a TCP socket)");
  }
  return fd;
}

function getIntOption(fd: number, level: number, name: number, what: string): number {
  const lc = libc();
  const value = new Int32Array(1);
  const len = new Uint32Array([4]);
  if (lc.fn.getsockopt(fd, level, name, value, len) !== 0) {
    throw new MeshError(ErrorCodes.SOCKET_OPTION_FAILED, `getsockopt ${what} on fd ${fd}: ${errnoText(lc, lc.errno())}`);
  }
  return value[0]!;
}

function setIntOption(fd: number, level: number, name: number, value: number, what: string): void {
  const lc = libc();
  if (lc.fn.setsockopt(fd, level, name, new Int32Array([value]), 4) !== 0) {
    throw new MeshError(ErrorCodes.SOCKET_OPTION_FAILED, `setsockopt ${what} on fd ${fd}: ${errnoText(lc, lc.errno())}`);
  }
}

function isIpv6Socket(fd: number): boolean {
  return getIntOption(fd, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN") === AF_INET6;
}

/**
 * The destination a connection had before an iptables REDIRECT/DNAT sent it to our listener
 * (SO_ORIGINAL_DST). The kernel answers from conntrack: a connection that conntrack tracks but
 * did not NAT reports its own local address (a caller must treat "original destination is my
 * own listener" as not redirected, as istio/ztunnel's self-call check does); null only when
 * conntrack does not know the connection (no NAT rules in that namespace). IPv4 is asked first,
 * then IPv6, as istio/ztunnel does: a dual-stack listener can hold either kind. IPv4-mapped
 * answers come back as plain IPv4.
 */
export function originalDestination(fd: number): { ip: string; port: number } | null {
  const lc = libc();
  const v4 = new Uint8Array(16);
  const v4len = new Uint32Array([16]);
  if (lc.fn.getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, v4, v4len) === 0) {
    return { ip: `${v4[4]}.${v4[5]}.${v4[6]}.${v4[7]}`, port: (v4[2]! << 8) | v4[3]! };
  }
  const e4 = lc.errno();
  if (e4 === EBADF || e4 === ENOTSOCK) {
    throw new MeshError(ErrorCodes.SOCKET_OPTION_FAILED, `SO_ORIGINAL_DST on fd ${fd}: ${errnoText(lc, e4)}`);
  }
  const v6 = new Uint8Array(28);
  const v6len = new Uint32Array([28]);
  if (lc.fn.getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, v6, v6len) === 0) {
    const groups: string[] = [];
    for (let i = 8; i < 24; i += 2) groups.push(((v6[i]! << 8) | v6[i + 1]!).toString(16));
    const ip = parseIp(groups.join(":"));
    if (!ip) return null;
    return { ip: ip.text, port: (v6[2]! << 8) | v6[3]! };
  }
  // ENOENT: conntrack has no entry; ENOPROTOOPT/EOPNOTSUPP: the other family.
  return null;
}

/** SO_MARK: the fwmark on every packet this socket sends (ztunnel uses 1337 so its own traffic is not captured again). Needs CAP_NET_ADMIN. */
export function setSocketMark(fd: number, mark: number): void {
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) {
    throw new MeshError(ErrorCodes.SOCKET_OPTION_FAILED, `socket mark must be a 32-bit unsigned integer, got ${mark}`);
  }
  setIntOption(fd, SOL_SOCKET, SO_MARK, mark | 0, "SO_MARK");
}

export function getSocketMark(fd: number): number {
  return getIntOption(fd, SOL_SOCKET, SO_MARK, "SO_MARK") >>> 0;
}

/** IP_TRANSPARENT (IPV6_TRANSPARENT on an IPv6 socket, as istio/ztunnel): bind to and accept for addresses that are not local. Needs CAP_NET_ADMIN. */
export function setIpTransparent(fd: number, on: boolean): void {
  if (isIpv6Socket(fd)) setIntOption(fd, SOL_IPV6, IPV6_TRANSPARENT, on ? 1 : 0, "IPV6_TRANSPARENT");
  else setIntOption(fd, SOL_IP, IP_TRANSPARENT, on ? 1 : 0, "IP_TRANSPARENT");
}

export function getIpTransparent(fd: number): boolean {
  return isIpv6Socket(fd)
    ? getIntOption(fd, SOL_IPV6, IPV6_TRANSPARENT, "IPV6_TRANSPARENT") !== 0
    : getIntOption(fd, SOL_IP, IP_TRANSPARENT, "IP_TRANSPARENT") !== 0;
}

/** The pending error of a socket (SO_ERROR, 0 when none); clears it. */
export function socketError(fd: number): number {
  return getIntOption(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR");
}

function sockaddr(ipText: string, port: number, what: string): { family: number; bytes: Uint8Array } {
  const ip = parseIp(ipText);
  if (!ip) throw new MeshError(ErrorCodes.SOCKET_OPTION_FAILED, `${what}: not an IP address: ${ipText}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new MeshError(ErrorCodes.SOCKET_OPTION_FAILED, `${what}: port out of range: ${port}`);
  }
  if (ip.family === 4) {
    const b = new Uint8Array(16); // sockaddr_in
    new DataView(b.buffer).setUint16(0, AF_INET, true);
    new DataView(b.buffer).setUint16(2, port, false);
    b.set(ip.bytes, 4);
    return { family: AF_INET, bytes: b };
  }
  const b = new Uint8Array(28); // sockaddr_in6
  new DataView(b.buffer).setUint16(0, AF_INET6, true);
  new DataView(b.buffer).setUint16(2, port, false);
  b.set(ip.bytes, 8);
  return { family: AF_INET6, bytes: b };
}

export interface TcpConnectOptions {
  ip: string;
  port: number;
  /** SO_MARK, set before the SYN leaves (a mark set after Bun.connect would miss it, and the SYN would be captured). */
  mark?: number;
  /** IP_TRANSPARENT, so `localIp` may be an address that is not local (spoofed source). */
  transparent?: boolean;
  localIp?: string;
  localPort?: number;
}

/**
 * A non-blocking TCP socket with its options set before connect, connect started (EINPROGRESS).
 * Hand the fd to `Bun.connect({ fd, socket })`; Bun reports `open` even when the connect failed,
 * so check `socketError(fd)` there before trusting it. Creates the socket in the calling thread's
 * network namespace (use inside `withNetns` for a pod's). The caller owns the fd.
 */
export function startTcpConnect(opts: TcpConnectOptions): number {
  const lc = libc();
  const remote = sockaddr(opts.ip, opts.port, "connect");
  const fd = lc.fn.socket(remote.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new MeshError(ErrorCodes.UPSTREAM_CONNECT, `socket(): ${errnoText(lc, lc.errno())}`);
  try {
    if (opts.mark !== undefined) setSocketMark(fd, opts.mark);
    if (opts.transparent) setIpTransparent(fd, true);
    if (opts.localIp !== undefined || opts.localPort !== undefined) {
      const local = sockaddr(opts.localIp ?? (remote.family === AF_INET ? "0.0.0.0" : "::"), opts.localPort ?? 0, "bind");
      if (local.family !== remote.family) {
        throw new MeshError(ErrorCodes.SOCKET_OPTION_FAILED, `bind: ${opts.localIp} and ${opts.ip} are of different address families`);
      }
      if (lc.fn.bind(fd, local.bytes, local.bytes.byteLength) !== 0) {
        throw new MeshError(ErrorCodes.SOCKET_OPTION_FAILED, `bind ${opts.localIp ?? "*"}:${opts.localPort ?? 0}: ${errnoText(lc, lc.errno())}`);
      }
    }
    if (lc.fn.connect(fd, remote.bytes, remote.bytes.byteLength) !== 0) {
      const e = lc.errno();
      if (e !== EINPROGRESS) throw new MeshError(ErrorCodes.UPSTREAM_CONNECT, `connect ${opts.ip}:${opts.port}: ${errnoText(lc, e)}`);
    }
    return fd;
  } catch (e) {
    lc.fn.close(fd);
    throw e;
  }
}

/**
 * A bound, listening, non-blocking TCP socket in the calling thread's network namespace, for
 * servers that must be created inside a pod's namespace but cannot open their socket
 * synchronously (node:net / node:http2 `listen`): create it here inside `withNetns`, then
 * `server.listen({ fd })`. The caller owns the fd.
 */
export function listenSocket(opts: { ip: string; port: number; transparent?: boolean; backlog?: number }): number {
  const lc = libc();
  const local = sockaddr(opts.ip, opts.port, "listen");
  const fd = lc.fn.socket(local.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new MeshError(ErrorCodes.LISTEN_FAILED, `socket(): ${errnoText(lc, lc.errno())}`);
  try {
    setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    if (opts.transparent) setIpTransparent(fd, true);
    if (lc.fn.bind(fd, local.bytes, local.bytes.byteLength) !== 0) {
      const e = lc.errno();
      const where = opts.ip.includes(":") ? `[${opts.ip}]:${opts.port}` : `${opts.ip}:${opts.port}`;
      if (e === EADDRINUSE) throw new MeshError(ErrorCodes.ADDRESS_IN_USE, `address ${where} is already in use`);
      throw new MeshError(ErrorCodes.LISTEN_FAILED, `cannot listen on ${where}: ${errnoText(lc, e)}`);
    }
    if (lc.fn.listen(fd, opts.backlog ?? 511) !== 0) throw new MeshError(ErrorCodes.LISTEN_FAILED, `listen(): ${errnoText(lc, lc.errno())}`);
    return fd;
  } catch (e) {
    lc.fn.close(fd);
    throw e;
  }
}

/** Closes a descriptor this module handed out (startTcpConnect, listenSocket) that was never given to Bun or node. */
export function closeFd(fd: number): void {
  libc().fn.close(fd);
}

/** The kernel TCP state of a socket (TCP_INFO tcpi_state): 1 ESTABLISHED, 2 SYN_SENT, 7 CLOSE, ... */
export function tcpState(fd: number): number {
  // A 4-byte read of TCP_INFO is allowed (the kernel copies what fits); the state is its first byte.
  return getIntOption(fd, IPPROTO_TCP, TCP_INFO, "TCP_INFO") & 0xff;
}

// ---- network namespaces -------------------------------------------------------------------

/** Set when the thread could not get back to its own namespace: every later switch refuses. */
let stranded: string | undefined;

function openNs(path: string, what: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new MeshError(ErrorCodes.NETNS_FAILED, `cannot open ${what} network namespace ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Runs `fn` with the JS thread inside the network namespace at `netnsPath` (e.g.
 * `/var/run/netns/<name>` or `/proc/<pid>/ns/net`) and always switches back. Sockets created by
 * `fn` (Bun.listen, node:net listen, startTcpConnect, Bun.connect to an IP literal) belong to that
 * namespace for their whole life. Only the synchronous part of `fn` runs inside: a promise it
 * returns is handed back as is and settles in our own namespace, so `() => Bun.connect({hostname:
 * ip, ...})` works (the socket exists before Bun.connect returns) but anything after an `await`,
 * or a connect that needs a DNS lookup first, happens outside.
 */
export function withNetns<T>(netnsPath: string, fn: () => T): T {
  const lc = libc();
  if (stranded) throw new MeshError(ErrorCodes.NETNS_FAILED, stranded);
  const target = openNs(netnsPath, "target");
  let home: number;
  try {
    home = openNs("/proc/thread-self/ns/net", "current");
  } catch (e) {
    closeSync(target);
    throw e;
  }
  try {
    if (lc.fn.setns(target, CLONE_NEWNET) !== 0) {
      throw new MeshError(ErrorCodes.NETNS_FAILED, `cannot enter network namespace ${netnsPath}: ${errnoText(lc, lc.errno())}`);
    }
    try {
      return fn();
    } finally {
      if (lc.fn.setns(home, CLONE_NEWNET) !== 0) {
        // The thread is now in the wrong namespace and every socket it opens would be too.
        stranded = `could not return from network namespace ${netnsPath}: ${errnoText(lc, lc.errno())}; the process must restart`;
        throw new MeshError(ErrorCodes.NETNS_FAILED, stranded);
      }
    }
  } finally {
    closeSync(target);
    closeSync(home);
  }
}

// ---- capability check ---------------------------------------------------------------------

let supportCache: { ok: boolean; why?: string } | undefined;

/**
 * Whether captured mode can work here: Linux, CAP_NET_ADMIN (marks, transparency, iptables) and
 * CAP_SYS_ADMIN (setns) in effect (root normally has both), and libc loadable through bun:ffi.
 */
export function isLinuxCaptureSupported(): { ok: boolean; why?: string } {
  if (supportCache) return supportCache;
  supportCache = checkSupport();
  return supportCache;
}

function checkSupport(): { ok: boolean; why?: string } {
  if (process.platform !== "linux") return { ok: false, why: `traffic capture needs Linux; this is ${process.platform}` };
  let capEff: bigint;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (!m) return { ok: false, why: "cannot read effective capabilities from /proc/self/status" };
    capEff = BigInt(`0x${m[1]}`);
  } catch (e) {
    return { ok: false, why: `cannot read /proc/self/status: ${(e as Error).message}` };
  }
  const missing: string[] = [];
  if (((capEff >> BigInt(CAP_NET_ADMIN)) & 1n) === 0n) missing.push("CAP_NET_ADMIN");
  if (((capEff >> BigInt(CAP_SYS_ADMIN)) & 1n) === 0n) missing.push("CAP_SYS_ADMIN");
  if (missing.length > 0) return { ok: false, why: `needs root (missing ${missing.join(" and ")})` };
  if (!existsSync("/proc/thread-self/ns/net")) return { ok: false, why: "/proc/thread-self/ns/net is missing (procfs not mounted?)" };
  try {
    libc();
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
  return { ok: true };
}
