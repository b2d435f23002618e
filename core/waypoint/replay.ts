// A request body that can be sent again: the first try streams it as it arrives while a copy is
// kept up to a bound, so a retry (or a mirror) can replay it. Past the bound the copy is dropped and
// the request is no longer retried (Envoy's per-request retry buffer does the same).
import type { BodySink, BodySource, HeaderPairs } from "./exchange.ts";

export const RETRY_BUFFER_BYTES = 64 * 1024;

export class ReplayableBody {
  private chunks: Uint8Array[] = [];
  private kept = 0;
  private overflow = false;
  private ended = false;
  private trailers: HeaderPairs | undefined;
  private failure: Error | undefined;
  private started = false;
  private current: ReplayReader | undefined;
  /** body bytes received from downstream */
  received = 0;
  private endWaiters: (() => void)[] = [];

  constructor(
    private readonly source: BodySource,
    private readonly limit = RETRY_BUFFER_BYTES,
  ) {}

  get empty(): boolean {
    return this.source.empty;
  }

  /** True while every byte received so far is still held (a retry can resend the body). */
  get replayable(): boolean {
    return !this.overflow;
  }

  get complete(): boolean {
    return this.ended;
  }

  /** Why the body failed, once it has. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** The held copy, once the whole body arrived within the bound. */
  get bufferedChunks(): readonly Uint8Array[] | undefined {
    return this.ended && !this.overflow ? this.chunks : undefined;
  }

  /** Resolves when the downstream body ended or failed. */
  whenComplete(): Promise<void> {
    if (this.ended || this.failure) return Promise.resolve();
    return new Promise((r) => this.endWaiters.push(r));
  }

  /** A fresh reader from the first byte; the previous reader gets nothing more. */
  reader(): BodySource {
    const r = new ReplayReader(this);
    this.current = r;
    return r;
  }

  /** Stop reading for a reader that is gone (its try failed): keep receiving into the copy. */
  detach(): void {
    this.current = undefined;
    if (this.started && !this.ended) this.source.resume();
  }

  startReader(r: ReplayReader): void {
    if (r !== this.current) return;
    for (const c of this.chunks) r.sink?.data(c);
    if (this.failure) return r.sink?.error(this.failure);
    if (this.ended) return r.sink?.end(this.trailers);
    if (this.started) return;
    this.started = true;
    this.source.start({
      data: (c) => {
        this.received += c.byteLength;
        if (!this.overflow) {
          if (this.kept + c.byteLength > this.limit) {
            this.overflow = true;
            this.chunks = [];
          } else {
            this.chunks.push(c);
            this.kept += c.byteLength;
          }
        }
        this.current?.sink?.data(c);
      },
      end: (t) => {
        this.ended = true;
        this.trailers = t;
        this.current?.sink?.end(t);
        for (const w of this.endWaiters.splice(0)) w();
      },
      error: (e) => {
        this.failure = e;
        this.current?.sink?.error(e);
        for (const w of this.endWaiters.splice(0)) w();
      },
    });
  }

  pauseFor(r: ReplayReader): void {
    if (r === this.current) this.source.pause();
  }

  resumeFor(r: ReplayReader): void {
    if (r === this.current) this.source.resume();
  }
}

class ReplayReader implements BodySource {
  sink: BodySink | undefined;
  constructor(private readonly owner: ReplayableBody) {}
  get empty(): boolean {
    return this.owner.empty;
  }
  start(sink: BodySink): void {
    this.sink = sink;
    this.owner.startReader(this);
  }
  pause(): void {
    this.owner.pauseFor(this);
  }
  resume(): void {
    this.owner.resumeFor(this);
  }
}
