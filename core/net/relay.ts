// Copies bytes both ways between two streams until both directions are finished, carrying
// half-close across (FIN on one side becomes end() on the other) and applying backpressure:
// a side whose peer's buffer is above its high-water mark is paused until that peer drains.
import type { ByteStream } from "./stream.ts";

export interface RelayResult {
  /** bytes read from `a` and written to `b` */
  aToB: number;
  /** bytes read from `b` and written to `a` */
  bToA: number;
  /** set when either side closed with an error before both directions finished */
  error?: Error;
}

export interface RelayHooks {
  /** called for every chunk, for live byte metrics */
  onBytes?(aToB: number, bToA: number): void;
}

export interface Relay {
  readonly done: Promise<RelayResult>;
  /** Tear both sides down now (policy change, drain deadline). */
  abort(err?: Error): void;
}

interface Side {
  readonly stream: ByteStream;
  ended: boolean;
  closed: boolean;
}

export function relay(a: ByteStream, b: ByteStream, hooks: RelayHooks = {}): Relay {
  const result: RelayResult = { aToB: 0, bToA: 0 };
  const side: [Side, Side] = [
    { stream: a, ended: false, closed: false },
    { stream: b, ended: false, closed: false },
  ];
  let settled = false;
  let resolve!: (r: RelayResult) => void;
  const done = new Promise<RelayResult>((r) => (resolve = r));

  const finish = (err?: Error) => {
    if (settled) return;
    settled = true;
    if (err) result.error = err;
    for (const s of side) if (!s.closed) s.stream.destroy();
    resolve(result);
  };
  const maybeFinish = () => {
    const [x, y] = side;
    if (x.ended && y.ended && x.stream.bufferedBytes === 0 && y.stream.bufferedBytes === 0) finish();
    else if (x.closed && y.closed) finish();
  };

  const wire = (from: 0 | 1) => {
    const src = side[from];
    const dst = side[from === 0 ? 1 : 0];
    const count = from === 0
      ? (n: number) => { result.aToB += n; hooks.onBytes?.(n, 0); }
      : (n: number) => { result.bToA += n; hooks.onBytes?.(0, n); };
    const sawEnd = () => {
      if (src.ended) return;
      src.ended = true;
      dst.stream.end();
    };
    src.stream.setEvents({
      data(chunk) {
        count(chunk.byteLength);
        if (!dst.stream.write(chunk)) src.stream.pause();
      },
      end() {
        sawEnd();
        maybeFinish();
      },
      drain() {
        dst.stream.resume();
        maybeFinish();
      },
      close(err) {
        src.closed = true;
        if (err) return finish(err);
        // A clean close after we already sent our FIN to this side means its peer finished too
        // (Bun reports the final FIN as close, not end, once our side is shut).
        if (dst.ended) {
          sawEnd();
          return maybeFinish();
        }
        finish(new Error("connection closed before its peer finished sending"));
      },
    });
  };
  wire(0);
  wire(1);
  return { done, abort: (err?: Error) => finish(err ?? new Error("relay aborted")) };
}
