// The waypoint's request, independent of the protocol it arrived in (HTTP/1.x or HTTP/2 inside a
// tunnel) or leaves in: the front ends turn wire messages into these, the upstream clients turn
// these back into wire messages, and the request pipeline in between sees only this shape.

/** Lower-case name, value. Order is kept; a name may repeat. No pseudo-headers, no hop-by-hop. */
export type HeaderPairs = [string, string][];

export type DownstreamProtocol = "HTTP/1.0" | "HTTP/1.1" | "HTTP/2";

/** A body being received, with backpressure: pause() until the consumer can take more. */
export interface BodySource {
  /** The message has no body at all (not even an empty one being framed). */
  readonly empty: boolean;
  /** Receive chunks, then end (with trailers, if any) or an error. Called once. */
  start(sink: BodySink): void;
  pause(): void;
  resume(): void;
}

export interface BodySink {
  data(chunk: Uint8Array): void;
  end(trailers?: HeaderPairs): void;
  error(err: Error): void;
}

export interface L7Request {
  readonly protocol: DownstreamProtocol;
  readonly method: string;
  /** origin-form path with query */
  readonly path: string;
  /** Host / :authority as the client sent it */
  readonly authority: string;
  readonly scheme: string;
  readonly headers: HeaderPairs;
  readonly body: BodySource;
  /** bytes of the request head on the wire (for istio_request_bytes) */
  readonly headerBytes: number;
}

/** Where the response goes: the front end frames it for its protocol. */
export interface L7Responder {
  /** Send status and headers; `end` = no body follows. */
  head(status: number, headers: HeaderPairs, end: boolean): void;
  /** false: wait for onDrain before writing more */
  write(chunk: Uint8Array): boolean;
  onDrain(cb: () => void): void;
  end(trailers?: HeaderPairs): void;
  /** Abort the response (stream reset / connection close), e.g. after an upstream failure mid-body. */
  reset(): void;
  readonly headSent: boolean;
  /** Called once, when the downstream went away before the response completed. */
  onAbort(cb: () => void): void;
}

/** What an upstream answered. */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: HeaderPairs;
  readonly body: BodySource;
  readonly headerBytes: number;
}

export function headerValue(headers: HeaderPairs, name: string): string | undefined {
  for (const [k, v] of headers) if (k === name) return v;
  return undefined;
}

/** All values of `name`, joined as one field value (RFC 9110 §5.3). */
export function headerValues(headers: HeaderPairs, name: string): string | undefined {
  let out: string | undefined;
  for (const [k, v] of headers) if (k === name) out = out === undefined ? v : `${out}, ${v}`;
  return out;
}

/** A body that is already in memory (local responses, buffered request bodies for retries). */
/**
 * A body written as it is produced (a plugin's gRPC stream): chunks queue until the consumer
 * reads them; more than `maxQueued` bytes waiting fails it rather than grow without bound.
 */
export class StreamedBody implements BodySource {
  readonly empty: boolean = false;
  private sink: BodySink | undefined;
  private paused = false;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private ended = false;
  private endDelivered = false;
  private trailers: HeaderPairs | undefined;
  private failure: Error | undefined;

  constructor(private readonly maxQueued: number) {}

  /** false when the body is over (ended or failed): the chunk was not taken. */
  write(chunk: Uint8Array): boolean {
    if (this.ended || this.failure) return false;
    this.queue.push(chunk);
    this.queued += chunk.byteLength;
    if (this.queued > this.maxQueued) this.fail(new Error(`more than ${this.maxQueued} bytes waiting to be sent`));
    else this.flush();
    return true;
  }
  end(trailers?: HeaderPairs): void {
    if (this.ended || this.failure) return;
    this.ended = true;
    this.trailers = trailers;
    this.flush();
  }
  fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    this.queue = [];
    this.queued = 0;
    this.sink?.error(e);
  }
  start(sink: BodySink): void {
    this.sink = sink;
    if (this.failure) sink.error(this.failure);
    else queueMicrotask(() => this.flush());
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.flush();
  }
  private flush(): void {
    const sink = this.sink;
    if (!sink || this.failure) return;
    while (!this.paused && this.queue.length > 0) {
      const c = this.queue.shift()!;
      this.queued -= c.byteLength;
      sink.data(c);
    }
    if (this.ended && this.queue.length === 0 && !this.endDelivered) {
      this.endDelivered = true;
      sink.end(this.trailers);
    }
  }
}

/** A body known whole in advance (a replayed request, a callout's). */
export class BufferedBody extends StreamedBody {
  override readonly empty: boolean;
  constructor(chunks: readonly Uint8Array[], trailers?: HeaderPairs) {
    super(Number.POSITIVE_INFINITY);
    this.empty = chunks.length === 0 && !trailers;
    for (const c of chunks) this.write(c);
    this.end(trailers);
  }
}
