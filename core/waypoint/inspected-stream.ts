// A tunnel's ByteStream with bytes already read by protocol detection put back in front, and an
// optional inspector that sees every incoming chunk first and can close the stream.
import type { ByteStream, ByteStreamEvents } from "../net/index.ts";

export class InspectedStream implements ByteStream {
  private events: Partial<ByteStreamEvents> = {};
  private prefix: Uint8Array[];

  constructor(
    private readonly inner: ByteStream,
    prefix: readonly Uint8Array[],
    /** false: drop the chunk and destroy the stream */
    private readonly inspect?: (chunk: Uint8Array) => boolean,
    private readonly onViolation?: () => void,
  ) {
    this.prefix = [...prefix];
  }

  setEvents(events: Partial<ByteStreamEvents>): void {
    this.events = events;
    this.inner.setEvents({
      data: (c) => this.deliver(c),
      end: () => this.events.end?.(),
      drain: () => this.events.drain?.(),
      close: (e) => this.events.close?.(e),
    });
    const pending = this.prefix;
    this.prefix = [];
    for (const c of pending) if (!this.deliver(c)) return;
  }

  private violated = false;

  private deliver(c: Uint8Array): boolean {
    if (this.violated) return false;
    if (this.inspect && !this.inspect(c)) {
      // Nothing more is read; the caller's GOAWAY gets a moment to leave before the tunnel closes.
      this.violated = true;
      this.inner.pause();
      this.onViolation?.();
      setTimeout(() => this.inner.destroy(new Error("protocol limits exceeded")), 100).unref?.();
      return false;
    }
    this.events.data?.(c);
    return true;
  }

  write(chunk: Uint8Array): boolean {
    return this.inner.write(chunk);
  }
  end(): void {
    this.inner.end();
  }
  destroy(err?: Error): void {
    this.inner.destroy(err);
  }
  pause(): void {
    this.inner.pause();
  }
  resume(): void {
    this.inner.resume();
  }
  get bufferedBytes(): number {
    return this.inner.bufferedBytes;
  }
}
