// Sockets inside a pod's network namespace (captured mode): listeners that learn each accepted
// connection's original destination, upstream connections opened in the pod's namespace with the
// ztunnel mark (and, inbound, the client's address as source), and the byte transport an HBONE
// client runs TLS over. A socket lands in another namespace only when it is opened synchronously
// while the thread is inside (reference/bun.md §5), so every socket here is opened inside
// `withNetns` and its descriptor handed to Bun.
//
// Measured with Bun 1.4.4: `Bun.connect({ fd })` reports `open` at once, before the TCP handshake
// finished (SO_ERROR 0, write() returns 0). A zero-length write asks for writability, and `drain`
// then fires when the handshake completes; a refused connect closes with ECONNREFUSED.
import { Duplex } from "node:stream";
import type { Socket, SocketHandler, TCPSocketListener } from "bun";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { closeFd, listenSocket, originalDestination, socketError, socketFd, startTcpConnect, tcpState, withNetns } from "./linux.ts";
import { TcpConnection, handlers, listenError, type TcpListener } from "./tcp.ts";

const TCP_ESTABLISHED = 1;

/** A connected byte stream for an HBONE client to run TLS over (a node Duplex). */
export type HboneTransport = Duplex;

export interface AddressPort {
  readonly ip: string;
  readonly port: number;
}

interface SocketState {
  conn?: TcpConnection;
}

function where(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * A TCP listener opened inside the namespace at `netnsPath`. Each accepted connection comes with
 * its original destination (SO_ORIGINAL_DST; null when conntrack does not know it).
 */
export function listenTcpInNetns(
  netnsPath: string,
  opts: { hostname: string; port: number; ipv6Only?: boolean; onConnection(conn: TcpConnection, originalDst: AddressPort | null): void },
): TcpListener {
  let listener: TCPSocketListener<SocketState>;
  try {
    listener = withNetns(netnsPath, () =>
      Bun.listen<SocketState>({
        hostname: opts.hostname,
        port: opts.port,
        allowHalfOpen: true,
        exclusive: true,
        ...(opts.ipv6Only ? { ipv6Only: true } : {}),
        socket: {
          ...handlers,
          open(s) {
            let orig: AddressPort | null = null;
            try {
              orig = originalDestination(socketFd(s));
            } catch {
              orig = null;
            }
            opts.onConnection(new TcpConnection(s), orig);
          },
        },
      }),
    );
  } catch (e) {
    throw listenError(opts.hostname, opts.port, e, ` in ${netnsPath}`);
  }
  return {
    hostname: opts.hostname,
    port: listener.port,
    close() {
      listener.stop(false);
    },
  };
}

/** A listening socket bound inside the namespace, for `server.listen({ fd })` (node:net, node:http2). */
export function listenFdInNetns(netnsPath: string, ip: string, port: number): number {
  return withNetns(netnsPath, () => listenSocket({ ip, port }));
}

export interface NetnsConnectOptions {
  ip: string;
  port: number;
  /** SO_MARK on every packet, so the pod's redirect rules let it pass. */
  mark: number;
  /** Bind this (non-local) source address with IP_TRANSPARENT: the peer sees the original client. */
  sourceIp?: string;
  timeoutMs: number;
}

/**
 * Starts a connect inside the namespace and resolves with the Bun socket once the handshake has
 * completed; `onReady` is called exactly once, before any data is delivered.
 */
function connectFd(netnsPath: string, opts: NetnsConnectOptions, socket: {
  ready(s: Socket<SocketState>): void;
  data(s: Socket<SocketState>, d: Buffer): void;
  drain(s: Socket<SocketState>): void;
  end(s: Socket<SocketState>): void;
  close(s: Socket<SocketState>, err?: Error): void;
}): Promise<void> {
  const fd = withNetns(netnsPath, () =>
    startTcpConnect({ ip: opts.ip, port: opts.port, mark: opts.mark, ...(opts.sourceIp ? { transparent: true, localIp: opts.sourceIp } : {}) }),
  );
  const target = where(opts.ip, opts.port);
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let handedOver = false;
    let sock: Socket<SocketState> | undefined;
    const fail = (err: MeshError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (sock) sock.terminate();
      else if (!handedOver) closeFd(fd);
      reject(err);
    };
    const timer = setTimeout(() => fail(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `connect to ${target} timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const established = (s: Socket<SocketState>): boolean => {
      if (settled) return true;
      let err = 0;
      try {
        err = socketError(fd);
      } catch {
        err = -1;
      }
      if (err !== 0) {
        fail(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `connect to ${target} failed (errno ${err})`));
        return false;
      }
      settled = true;
      clearTimeout(timer);
      socket.ready(s);
      resolve();
      return true;
    };
    handedOver = true;
    const handlersForFd: SocketHandler<SocketState> = {
      open(s) {
        sock = s;
        s.data = {};
        if (settled) return void s.terminate();
        let state = 0;
        try {
          state = tcpState(fd);
        } catch {
          state = 0;
        }
        if (state === TCP_ESTABLISHED) return void established(s);
        // Still connecting: a zero-length write makes Bun wait for writability (see top).
        s.write(new Uint8Array(0));
      },
      data(s, d) {
        if (!settled && !established(s)) return;
        socket.data(s, d);
      },
      drain(s) {
        if (!settled) {
          established(s);
          return;
        }
        socket.drain(s);
      },
      end(s) {
        if (!settled) return fail(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `connect to ${target}: closed by the peer during the handshake`));
        socket.end(s);
      },
      close(s, err) {
        if (!settled) return fail(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `connect to ${target} failed: ${err?.message ?? "connection refused"}`));
        socket.close(s, err);
      },
      error(s, err) {
        if (!settled) return fail(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `connect to ${target} failed: ${err.message}`));
        socket.close(s, err);
      },
    };
    // `fd` is missing from bun-types' connect overloads (reference/bun.md §4.2 item 6).
    const connecting = Bun.connect<SocketState>({ fd, allowHalfOpen: true, socket: handlersForFd } as unknown as Parameters<typeof Bun.connect<SocketState>>[0]);
    void Promise.resolve(connecting).catch((e: unknown) =>
      fail(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `connect to ${target} failed: ${e instanceof Error ? e.message : String(e)}`)),
    );
  });
}

/** A TCP connection opened inside the namespace (marked; optionally from a transparent source). */
export async function connectTcpInNetns(netnsPath: string, opts: NetnsConnectOptions): Promise<TcpConnection> {
  let conn: TcpConnection | undefined;
  await connectFd(netnsPath, opts, {
    ready(s) {
      conn = new TcpConnection(s);
    },
    data: handlers.data,
    drain: handlers.drain,
    end: handlers.end,
    close: handlers.close,
  });
  return conn!;
}

/** The node Duplex face of a Bun socket, for `tls.connect({ socket })`. */
class BunSocketDuplex extends Duplex {
  private socket: Socket<SocketState> | undefined;
  private pending: { chunk: Uint8Array; cb: (err?: Error | null) => void } | undefined;
  private shutdownWanted = false;

  attach(s: Socket<SocketState>): void {
    this.socket = s;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const s = this.socket;
    if (!s) return cb(new Error("transport not connected"));
    const n = s.write(chunk);
    if (n === chunk.byteLength) return cb();
    if (n < 0) return cb(new Error("transport closed"));
    this.pending = { chunk: chunk.subarray(n), cb };
  }

  override _read(): void {
    this.socket?.resume();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.pending) this.shutdownWanted = true;
    else this.socket?.shutdown();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket?.terminate();
    this.socket = undefined;
    cb(err);
  }

  onData(d: Buffer): void {
    if (!this.push(d)) this.socket?.pause();
  }

  onDrain(): void {
    const p = this.pending;
    const s = this.socket;
    if (!p || !s) return;
    const n = s.write(p.chunk);
    if (n < 0) {
      this.pending = undefined;
      return p.cb(new Error("transport closed"));
    }
    if (n < p.chunk.byteLength) {
      p.chunk = p.chunk.subarray(n);
      return;
    }
    this.pending = undefined;
    if (this.shutdownWanted) s.shutdown();
    p.cb();
  }
}

/** A marked TCP connection inside the namespace, as a Duplex for the HBONE client's TLS. */
export async function connectTransportInNetns(netnsPath: string, opts: NetnsConnectOptions): Promise<HboneTransport> {
  const duplex = new BunSocketDuplex();
  await connectFd(netnsPath, opts, {
    ready: (s) => duplex.attach(s),
    data: (_s, d) => duplex.onData(d),
    drain: () => duplex.onDrain(),
    end: () => void duplex.push(null),
    close: (_s, err) => void duplex.destroy(err),
  });
  return duplex;
}
