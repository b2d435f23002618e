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

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.tunnel.write(chunk)) cb();
    else this.pendingWrite = cb;
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.tunnel.end();
    cb();
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
