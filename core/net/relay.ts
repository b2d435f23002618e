// Copies bytes both ways between two streams until both directions are finished, carrying
// half-close across (FIN on one side becomes end() on the other) and applying backpressure:
// a side whose peer's buffer is above its high-water mark is paused until that peer drains.
// Sides are small objects with prototype methods (no closures per connection): an idle
// tunnelled connection's memory is mostly this, so it is kept lean.
import type { ByteStream, ByteStreamEvents } from "./stream.ts";

export interface RelayResult {
  /** bytes read from `a` and written to `b` */
  aToB: number;
  /** bytes read from `b` and written to `a` */
  bToA: number;
  /** set when either side closed with an error before both directions finished */
  error?: Error;
}

/** Receives the byte counts of every chunk, for live metrics (a metrics handle fits). */
export interface RelayMeter {
  addBytes(aToB: number, bToA: number): void;
}

export interface Relay {
  readonly done: Promise<RelayResult>;
  /** Tear both sides down now (policy change, drain deadline). */
  abort(err?: Error): void;
}

class Side implements ByteStreamEvents {
  ended = false;
  closed = false;
  peer!: Side;
  constructor(
    readonly owner: RelayImpl,
    readonly stream: ByteStream,
    readonly isA: boolean,
  ) {}

  data(chunk: Uint8Array): void {
    this.owner.count(this.isA, chunk.byteLength);
    if (!this.peer.stream.write(chunk)) this.stream.pause();
  }

  end(): void {
    this.sawEnd();
    this.owner.maybeFinish();
  }

  drain(): void {
    this.peer.stream.resume();
    this.owner.maybeFinish();
  }

  close(err?: Error): void {
    this.closed = true;
    if (err) return this.owner.finish(err);
    // A clean close after we already sent our FIN to this side means its peer finished too
    // (Bun reports the final FIN as close, not end, once our side is shut).
    if (this.peer.ended) {
      this.sawEnd();
      return this.owner.maybeFinish();
    }
    this.owner.finish(new Error("connection closed before its peer finished sending"));
  }

  private sawEnd(): void {
    if (this.ended) return;
    this.ended = true;
    this.peer.stream.end();
  }
}

class RelayImpl implements Relay {
  readonly result: RelayResult = { aToB: 0, bToA: 0 };
  readonly done: Promise<RelayResult>;
  private resolve!: (r: RelayResult) => void;
  private settled = false;
  private readonly a: Side;
  private readonly b: Side;

  constructor(a: ByteStream, b: ByteStream, private readonly meter: RelayMeter | undefined) {
    this.done = new Promise<RelayResult>((r) => (this.resolve = r));
    this.a = new Side(this, a, true);
    this.b = new Side(this, b, false);
    this.a.peer = this.b;
    this.b.peer = this.a;
    a.setEvents(this.a);
    b.setEvents(this.b);
  }

  count(fromA: boolean, n: number): void {
    if (fromA) {
      this.result.aToB += n;
      this.meter?.addBytes(n, 0);
    } else {
      this.result.bToA += n;
      this.meter?.addBytes(0, n);
    }
  }

  maybeFinish(): void {
    const { a, b } = this;
    if (a.ended && b.ended && a.stream.bufferedBytes === 0 && b.stream.bufferedBytes === 0) this.finish();
    else if (a.closed && b.closed) this.finish();
  }

  finish(err?: Error): void {
    if (this.settled) return;
    this.settled = true;
    if (err) {
      this.result.error = err;
      if (!this.a.closed) this.a.stream.destroy();
      if (!this.b.closed) this.b.stream.destroy();
    }
    // A clean finish leaves both sides to close on their own: both FINs are sent, and tearing a
    // socket down now would turn its last unsent bytes into a reset.
    this.resolve(this.result);
  }

  abort(err?: Error): void {
    this.finish(err ?? new Error("relay aborted"));
  }
}

export function relay(a: ByteStream, b: ByteStream, meter?: RelayMeter): Relay {
  return new RelayImpl(a, b, meter);
}
