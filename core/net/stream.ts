// One shape for every byte stream the mesh relays (a TCP socket, an HBONE CONNECT stream), so the
// relay logic is written once and testable with in-memory streams.
import type { Duplex } from "node:stream";

export interface ByteStreamEvents {
  data(chunk: Uint8Array): void;
  /** The peer finished sending (FIN / END_STREAM). */
  end(): void;
  /** The write side can take more after write() returned false. */
  drain(): void;
  close(err?: Error): void;
}

export interface ByteStream {
  /** false = buffer above the high-water mark; wait for `drain`. The chunk is always accepted. */
  write(chunk: Uint8Array): boolean;
  /** Half-close our sending side once queued bytes are flushed. */
  end(): void;
  /** Abort both directions now. */
  destroy(err?: Error): void;
  pause(): void;
  resume(): void;
  setEvents(events: Partial<ByteStreamEvents>): void;
  readonly bufferedBytes: number;
}

const OWNER = Symbol("mesh.byteStream");
type OwnedDuplex = Duplex & { [OWNER]?: DuplexByteStream };

// Listeners are shared functions called with the emitter as `this`, so an adapted stream costs
// no closures (idle tunnels are mostly this bookkeeping).
function onData(this: OwnedDuplex, c: Buffer): void {
  this[OWNER]?.events.data?.(c);
}
function onEnd(this: OwnedDuplex): void {
  this[OWNER]?.events.end?.();
}
function onDrain(this: OwnedDuplex): void {
  this[OWNER]?.events.drain?.();
}
function onError(this: OwnedDuplex, e: Error): void {
  this[OWNER]?.finish(e);
}
function onClose(this: OwnedDuplex): void {
  this[OWNER]?.finish();
}

/** A listener for `error` events that are handled elsewhere (an unhandled one would throw). */
export function ignoreError(): void {}

/** Adapts a Node Duplex (e.g. an http2 stream) to ByteStream. */
export class DuplexByteStream implements ByteStream {
  private closed = false;
  events: Partial<ByteStreamEvents> = {};
  /** `abort` replaces duplex.destroy() where destroying is not a reset (an HTTP/2 stream's is an END_STREAM). */
  constructor(
    private readonly duplex: Duplex,
    private readonly abort?: (err?: Error) => void,
  ) {
    // Flowing mode starts when a `data` listener is attached; hold it until events are set.
    duplex.pause();
    (duplex as OwnedDuplex)[OWNER] = this;
    duplex.on("data", onData);
    duplex.on("end", onEnd);
    duplex.on("drain", onDrain);
    duplex.on("error", onError);
    duplex.on("close", onClose);
  }

  finish(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.events.close?.(err);
  }

  setEvents(events: Partial<ByteStreamEvents>): void {
    this.events = events;
    this.duplex.resume();
  }

  get bufferedBytes(): number {
    return this.duplex.writableLength;
  }

  write(chunk: Uint8Array): boolean {
    if (this.closed || this.duplex.writableEnded) return false;
    return this.duplex.write(chunk);
  }

  end(): void {
    if (!this.closed && !this.duplex.writableEnded) this.duplex.end();
  }

  destroy(err?: Error): void {
    if (this.duplex.destroyed) return;
    if (this.abort) this.abort(err);
    else this.duplex.destroy(err);
  }

  pause(): void {
    this.duplex.pause();
  }

  resume(): void {
    this.duplex.resume();
  }
}
