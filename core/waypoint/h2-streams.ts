// Bodies over node:http2 streams, in the shape the pipeline uses (exchange.ts): a stream's incoming
// data as a BodySource, and a BodySource written onto a stream with backpressure and trailers.
import type { Duplex } from "node:stream";
import { h2constants, resetH2Stream, type H2ClientStream, type H2Headers } from "../net/index.ts";
import type { BodySink, BodySource, HeaderPairs } from "./exchange.ts";

/** Incoming header block → pairs, without pseudo-headers; repeated fields stay separate. */
export function pairsFromH2(h: H2Headers): HeaderPairs {
  const out: HeaderPairs = [];
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith(":") || v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push([k, x]);
    else out.push([k, String(v)]);
  }
  return out;
}

/** Pairs → an outgoing header object (repeats become arrays, as node:http2 wants). */
export function h2FromPairs(pairs: HeaderPairs, into: Record<string, string | string[]> = {}): Record<string, string | string[]> {
  for (const [k, v] of pairs) {
    const cur = into[k];
    if (cur === undefined) into[k] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else into[k] = [cur, v];
  }
  return into;
}

/** Size of a header block as it would be counted by HPACK's table accounting (name + value + 32). */
export function h2HeaderBytes(h: H2Headers): number {
  let n = 0;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) n += k.length + x.length + 32;
    else n += k.length + String(v).length + 32;
  }
  return n;
}

type H2BodyStream = Duplex & { readonly aborted: boolean; readonly rstCode?: number; on(event: "trailers", l: (h: H2Headers) => void): unknown };

/** An http2 stream's incoming body (request body on the server, response body on the client). */
export class H2StreamBody implements BodySource {
  private trailers: HeaderPairs | undefined;
  constructor(
    private readonly stream: H2BodyStream,
    readonly empty: boolean,
  ) {
    stream.pause();
    // Trailers are an event, not buffered data: listen before the body is read.
    stream.on("trailers", (h: H2Headers) => (this.trailers = pairsFromH2(h)));
  }
  start(sink: BodySink): void {
    const s = this.stream;
    let done = false;
    // Copied: the chunk may be queued downstream, and Bun reuses the memory of an http2 stream's
    // `data` chunks once the event returns (queued views lost whole frames: 1 MiB arrived short).
    s.on("data", (c: Buffer) => sink.data(Buffer.from(c)));
    s.once("end", () => {
      if (done) return;
      done = true;
      // A RST_STREAM ends the readable side too (Bun emits `aborted`, then `end`): a cut-off body
      // must not travel on as a complete one.
      if (s.aborted || (s.rstCode !== undefined && s.rstCode !== h2constants.NGHTTP2_NO_ERROR)) sink.error(new Error(`stream reset (code ${s.rstCode}) before its body ended`));
      else sink.end(this.trailers);
    });
    s.once("error", (e: Error) => {
      if (!done) {
        done = true;
        sink.error(e);
      }
    });
    s.once("close", () => {
      if (!done) {
        done = true;
        sink.error(new Error("stream closed before its body ended"));
      }
    });
    s.resume();
  }
  pause(): void {
    this.stream.pause();
  }
  resume(): void {
    this.stream.resume();
  }
}

type TrailerTarget = Duplex & { sendTrailers(h: Record<string, string | string[]>): void };

/** Sends the trailer block; an empty one ends the stream cleanly (END_STREAM on an empty HEADERS). */
export function sendTrailers(stream: TrailerTarget, trailers: HeaderPairs | undefined): void {
  try {
    stream.sendTrailers(trailers ? h2FromPairs(trailers) : {});
  } catch {
    /* the stream is gone */
  }
}

/**
 * Writes `body` onto an http2 stream opened with `waitForTrailers`, then its trailers (or an empty
 * trailer block, which node:http2 turns into a clean END_STREAM). `onError` fires if the body
 * source fails, after which the stream is reset.
 */
export function writeBodyToH2(body: BodySource, stream: H2ClientStream, onError: (e: Error) => void): void {
  let trailers: HeaderPairs | undefined;
  stream.once("wantTrailers", () => sendTrailers(stream, trailers));
  stream.on("drain", () => body.resume());
  body.start({
    data(chunk) {
      if (!stream.write(chunk)) body.pause();
    },
    end(t) {
      trailers = t;
      stream.end();
    },
    error(e) {
      onError(e);
      resetH2Stream(stream, h2constants.NGHTTP2_INTERNAL_ERROR);
    },
  });
}
