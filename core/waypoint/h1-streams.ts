// Bodies of the strict HTTP/1.1 codec (core/http1) in the pipeline's shape (exchange.ts).
import type { Http1Body } from "../http1/index.ts";
import type { BodySink, BodySource, HeaderPairs } from "./exchange.ts";

export function pairsFromHeaderList(list: Iterable<[string, string]>): HeaderPairs {
  const out: HeaderPairs = [];
  for (const [k, v] of list) out.push([k.toLowerCase(), v]);
  return out;
}

/** An incoming HTTP/1 body: pulled chunk by chunk, so pause() simply stops pulling. */
export class H1BodySource implements BodySource {
  private paused = false;
  private wake: (() => void) | undefined;
  constructor(
    private readonly body: Http1Body,
    readonly empty: boolean,
  ) {}

  start(sink: BodySink): void {
    // What has arrived already goes to the sink at once: a small body that came with its head
    // reaches the consumer, end included, in this same turn, with no promise per chunk.
    try {
      while (!this.paused) {
        const c = this.body.readArrived();
        if (c === undefined) break;
        if (c === null) return this.end(sink);
        sink.data(c);
      }
    } catch (e) {
      return sink.error(e instanceof Error ? e : new Error(String(e)));
    }
    void (async () => {
      try {
        for (;;) {
          while (this.paused) await new Promise<void>((r) => (this.wake = r));
          const c = await this.body.read();
          if (c === undefined) break;
          sink.data(c);
        }
        this.end(sink);
      } catch (e) {
        sink.error(e instanceof Error ? e : new Error(String(e)));
      }
    })();
  }

  private end(sink: BodySink): void {
    const t = this.body.trailers;
    sink.end(t && t.size > 0 ? pairsFromHeaderList(t) : undefined);
  }

  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
