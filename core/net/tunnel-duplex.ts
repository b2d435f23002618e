// A node Duplex over a tunnel's ByteStream, so node:http can parse and send HTTP/1.1 inside HBONE
// tunnels (reference/bun.md §3.4) while the tunnel itself stays behind core/hbone's ByteStream.
import { Duplex } from "node:stream";
import type { ByteStream } from "./stream.ts";

export class TunnelDuplex extends Duplex {
  private pendingWrite: ((err?: Error | null) => void) | undefined;

  constructor(private readonly tunnel: ByteStream) {
    super({ allowHalfOpen: true });
    tunnel.setEvents({
      data: (chunk) => {
        // Backpressure: stop the tunnel until node:http reads again.
        if (!this.push(chunk)) tunnel.pause();
      },
      end: () => this.push(null),
      drain: () => {
        this.blocked = false;
        const cb = this.pendingWrite;
        this.pendingWrite = undefined;
        cb?.();
      },
      close: (err) => {
        const cb = this.pendingWrite;
        this.pendingWrite = undefined;
        cb?.(err ?? null);
        if (!this.destroyed) this.destroy(err);
      },
    });
  }

  override _read(): void {
    this.tunnel.resume();
  }

  private queued: Buffer[] = [];
  private flushScheduled = false;
  private blocked = false;

  /**
   * Copied on the way in: Bun's HTTP/2 session hands its transport views of a buffer it reuses once
   * write() returns, and a chunk may wait in a queue meanwhile.
   */
  override write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    const copy = chunk instanceof Uint8Array ? Buffer.from(chunk) : chunk;
    return (super.write as (c: unknown, e?: unknown, cb?: unknown) => boolean)(copy, encoding, cb);
  }

  /**
   * Handed to the tunnel in a microtask, never from inside the caller's write: Bun 1.4.4 loses whole
   * frames when one HTTP/2 session (this one, inside the tunnel) writes synchronously into another
   * (the tunnel's) — an inner 1 MiB response lost a frame each time the client's window reopened.
   */
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.queued.push(chunk);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flushQueued());
    }
    if (this.blocked) this.pendingWrite = cb;
    else cb();
  }

  private flushQueued(): void {
    this.flushScheduled = false;
    const chunks = this.queued;
    this.queued = [];
    let ok = true;
    for (const c of chunks) ok = this.tunnel.write(c);
    if (!ok) this.blocked = true;
  }

  override _final(cb: (err?: Error | null) => void): void {
    // after anything still queued for the next microtask
    queueMicrotask(() => {
      this.flushQueued();
      this.tunnel.end();
      cb();
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.tunnel.destroy(err ?? undefined);
    cb(err);
  }

  // node:http treats its transport as a net.Socket; these are meaningless inside a tunnel.
  setKeepAlive(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setTimeout(_ms: number, cb?: () => void): this {
    void cb;
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}
