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

/** Adapts a Node Duplex (e.g. an http2 stream) to ByteStream. */
export class DuplexByteStream implements ByteStream {
  private closed = false;
  private events: Partial<ByteStreamEvents> = {};
  constructor(private readonly duplex: Duplex) {
    // Flowing mode starts when a `data` listener is attached; hold it until events are set.
    duplex.pause();
    duplex.on("data", (c: Buffer) => this.events.data?.(c));
    duplex.on("end", () => this.events.end?.());
    duplex.on("drain", () => this.events.drain?.());
    duplex.on("error", (e: Error) => this.finish(e));
    duplex.on("close", () => this.finish());
  }

  private finish(err?: Error): void {
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
    if (!this.duplex.destroyed) this.duplex.destroy(err);
  }

  pause(): void {
    this.duplex.pause();
  }

  resume(): void {
    this.duplex.resume();
  }
}
