// Plain TCP on Bun's native sockets (Bun.listen / Bun.connect): the fastest byte path measured in
// reference/bun.md §1.3. Bun's write() is unbuffered (it returns what the kernel took), so every
// socket gets a bounded write queue here and reports backpressure like a Node stream would.
import type { Socket, TCPSocketListener } from "bun";
import { MeshError, ErrorCodes } from "../errors/index.ts";
import type { ByteStream, ByteStreamEvents } from "./stream.ts";

/** Shared empty queue: most connections never queue, so they never allocate one. */
const EMPTY: Uint8Array[] = [];

/** Above this many queued bytes write() returns false and the producer should pause. */
const HIGH_WATER = 256 * 1024;

interface SocketState {
  conn?: TcpConnection;
}

export class TcpConnection implements ByteStream {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  private readonly socket: Socket<SocketState>;
  private queue: Uint8Array[] = EMPTY;
  private queuedBytes = 0;
  private endRequested = false;
  private writeShut = false;
  private closed = false;
  private events: Partial<ByteStreamEvents> = {};
  /** data that arrived before handlers were attached */
  private early: Uint8Array[] | undefined;
  private earlyEnd = false;
  private earlyClose: { err?: Error } | undefined;

  constructor(socket: Socket<SocketState>) {
    this.socket = socket;
    socket.data = { conn: this };
    this.localAddress = stripMapped(socket.localAddress ?? "");
    this.localPort = socket.localPort ?? 0;
    this.remoteAddress = stripMapped(socket.remoteAddress ?? "");
    this.remotePort = socket.remotePort ?? 0;
    socket.setNoDelay(true);
  }

  get bufferedBytes(): number {
    return this.queuedBytes;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  setEvents(events: Partial<ByteStreamEvents>): void {
    this.events = events;
    if (this.early !== undefined) {
      const early = this.early;
      this.early = undefined;
      for (const c of early) events.data?.(c);
    }
    if (this.earlyEnd) {
      this.earlyEnd = false;
      events.end?.();
    }
    if (this.earlyClose) {
      const c = this.earlyClose;
      this.earlyClose = undefined;
      events.close?.(c.err);
    }
  }

  write(chunk: Uint8Array): boolean {
    if (this.closed || this.writeShut || this.endRequested) return false;
    if (this.queue.length === 0) {
      const n = this.socket.write(chunk);
      if (n === chunk.byteLength) return true;
      if (n < 0) return false;
      chunk = chunk.subarray(Math.max(0, n));
    }
    // Copy: the caller may reuse its buffer once write() returns.
    if (this.queue === EMPTY) this.queue = [];
    this.queue.push(new Uint8Array(chunk));
    this.queuedBytes += chunk.byteLength;
    return this.queuedBytes < HIGH_WATER;
  }

  /** Half-close: flush what is queued, then send FIN; reading continues. */
  end(): void {
    if (this.closed || this.endRequested) return;
    this.endRequested = true;
    if (this.queue.length === 0) this.shutWrite();
  }

  destroy(): void {
    if (this.closed) return;
    this.socket.terminate();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  private shutWrite(): void {
    if (this.writeShut) return;
    this.writeShut = true;
    this.socket.shutdown();
  }

  // ---- called from the Bun socket handlers ----
  // Handlers are called as methods of the events object (the relay's sides are objects).
  onData(chunk: Uint8Array): void {
    if (this.events.data) this.events.data(chunk);
    else (this.early ??= []).push(new Uint8Array(chunk));
  }

  onDrain(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = this.socket.write(head);
      if (n < 0) return;
      if (n < head.byteLength) {
        this.queue[0] = head.subarray(n);
        this.queuedBytes -= n;
        return;
      }
      this.queue.shift();
      this.queuedBytes -= head.byteLength;
    }
    if (this.endRequested) this.shutWrite();
    if (this.events.drain) this.events.drain();
  }

  onEnd(): void {
    if (this.events.end) this.events.end();
    else this.earlyEnd = true;
  }

  onClose(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = EMPTY;
    this.queuedBytes = 0;
    if (this.events.close) this.events.close(err);
    else this.earlyClose = { err };
  }
}

function stripMapped(ip: string): string {
  return ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
}

/** The Bun socket handlers that feed a TcpConnection; shared with the in-namespace sockets of netns.ts. */
export const handlers = {
  data(s: Socket<SocketState>, d: Buffer) {
    s.data?.conn?.onData(d);
  },
  drain(s: Socket<SocketState>) {
    s.data?.conn?.onDrain();
  },
  end(s: Socket<SocketState>) {
    s.data?.conn?.onEnd();
  },
  close(s: Socket<SocketState>, err?: Error) {
    s.data?.conn?.onClose(err);
  },
  error(s: Socket<SocketState>, err: Error) {
    s.data?.conn?.onClose(err);
  },
};

export interface TcpListener {
  readonly hostname: string;
  readonly port: number;
  /** Stop accepting; established connections are not touched. */
  close(): void;
}

/** The error for a listen that failed: ADDRESS_IN_USE naming the address, else LISTEN_FAILED. */
export function listenError(hostname: string, port: number, e: unknown, scope = ""): MeshError {
  if (e instanceof MeshError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const where = `${hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`}${scope}`;
  if (/in use|EADDRINUSE/i.test(msg) || (e as { code?: string })?.code === "EADDRINUSE") {
    return new MeshError(ErrorCodes.ADDRESS_IN_USE, `address ${where} is already in use`, { cause: e });
  }
  return new MeshError(ErrorCodes.LISTEN_FAILED, `cannot listen on ${where}: ${msg}`, { cause: e });
}

export function listenTcp(opts: {
  hostname: string;
  port: number;
  onConnection: (conn: TcpConnection) => void;
}): TcpListener {
  let listener: TCPSocketListener<SocketState>;
  try {
    listener = Bun.listen<SocketState>({
      hostname: opts.hostname,
      port: opts.port,
      allowHalfOpen: true,
      // Without it a second process could bind the same address and steal connections.
      exclusive: true,
      socket: {
        ...handlers,
        open(s) {
          const conn = new TcpConnection(s);
          opts.onConnection(conn);
        },
      },
    });
  } catch (e) {
    throw listenError(opts.hostname, opts.port, e);
  }
  return {
    hostname: opts.hostname,
    port: listener.port,
    close() {
      listener.stop(false);
    },
  };
}

export async function connectTcp(opts: {
  hostname: string;
  port: number;
  timeoutMs: number;
}): Promise<TcpConnection> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const connecting = Bun.connect<SocketState>({
    hostname: opts.hostname,
    port: opts.port,
    allowHalfOpen: true,
    socket: handlers,
  });
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `connect to ${opts.hostname}:${opts.port} timed out after ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
  });
  try {
    const socket = await Promise.race([connecting, timeout]);
    return new TcpConnection(socket);
  } catch (e) {
    if (e instanceof MeshError) {
      connecting.then((s) => s.terminate(), () => {});
      throw e;
    }
    const msg = e instanceof Error ? e.message : String(e);
    throw new MeshError(ErrorCodes.UPSTREAM_CONNECT, `connect to ${opts.hostname}:${opts.port} failed: ${msg}`, { cause: e });
  } finally {
    clearTimeout(timer);
  }
}
