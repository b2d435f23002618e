// One HTTP/1.1 client connection (the waypoint's upstream, over one tunnel stream): one exchange at
// a time, the response parsed strictly (1xx skipped, HEAD/204/304 without body, read-until-close),
// and a verdict after each exchange on whether the connection can carry another request.
import type { Duplex } from "node:stream";
import { ErrorCodes } from "../errors/index.ts";
import { Http1Body } from "./body.ts";
import { Http1Error, invalidField } from "./errors.ts";
import type { HeaderInit, HeaderList } from "./headers.ts";
import { resolveHttp1Limits, type Http1Limits } from "./limits.ts";
import type { ResponseHead } from "./parser.ts";
import { ResponseParser } from "./response-parser.ts";
import { CHUNKED, NO_BODY, concatBytes, encodeChunk, encodeLastChunk, writeRequestHead, type OutgoingFraming } from "./serializer.ts";
import { asTransport, type Http1Transport } from "./transport.ts";

export interface Http1ClientOptions {
  readonly limits?: Partial<Http1Limits>;
  /** Response body bytes queued for the reader before the transport is paused. Default 64 KiB. */
  readonly bodyHighWaterBytes?: number;
  /** A 1xx response arrived (it is otherwise skipped). */
  readonly onInformational?: (head: ResponseHead) => void;
}

export interface OutgoingRequest {
  readonly method: string;
  /** origin-form (`/path?q`) as a rule; written as given after validation. */
  readonly target: string;
  /** Content-Length, Transfer-Encoding, Connection and Keep-Alive here are ignored: framing is the codec's. */
  readonly headers: HeaderInit;
  /** A byte count (sent as Content-Length), `chunked`, or undefined for no body. */
  readonly bodyLength?: number | "chunked";
  /** Send `Connection: close`: this is the connection's last exchange. */
  readonly close?: boolean;
}

export class Http1IncomingResponse {
  constructor(
    readonly head: ResponseHead,
    /** Read it to the end (or discard it) before the connection can be reused. */
    readonly body: Http1Body,
  ) {}
  get status(): number {
    return this.head.status;
  }
  get headers(): HeaderList {
    return this.head.headers;
  }
}

/** Opens client connections: `connectHttp1(tunnelStream)`. */
export function connectHttp1(transport: Http1Transport | Duplex, options: Http1ClientOptions = {}): Http1ClientConnection {
  return new Http1ClientConnection(asTransport(transport), options);
}

export class Http1ClientConnection {
  private readonly parser: ResponseParser;
  private readonly limits: Http1Limits;
  private readonly highWater: number;
  private ex: Http1ClientExchange | undefined;
  private trailers: HeaderList | undefined;
  private broken = false;
  private closedFlag = false;
  private peerEnded = false;
  private lastKeepAlive = true;
  private needDrain = false;
  private drainWaiters: { resolve(): void; reject(e: Error): void }[] = [];
  private transportPaused = false;
  private resolveClosed!: () => void;
  /** Resolves when the transport has closed. */
  readonly closed: Promise<void> = new Promise((r) => (this.resolveClosed = r));

  constructor(
    private readonly t: Http1Transport,
    private readonly options: Http1ClientOptions = {},
  ) {
    this.limits = resolveHttp1Limits(options.limits);
    this.highWater = options.bodyHighWaterBytes ?? 64 * 1024;
    this.parser = new ResponseParser(
      {
        head: (h) => this.ex?.onHead(h, this.newBody()),
        body: (c) => this.ex?.onBody(c),
        trailers: (t) => (this.trailers = t),
        complete: () => {
          const t = this.trailers;
          this.trailers = undefined;
          this.ex?.onComplete(t);
        },
        error: (e) => this.onError(e),
        informational: (h) => this.options.onInformational?.(h),
      },
      this.limits,
    );
    t.setEvents({
      data: (c) => this.onData(c),
      end: () => this.onPeerEnd(),
      drain: () => this.onDrain(),
      close: () => this.onClose(),
    });
  }

  /** Idle, open, and the last exchange allows another request. */
  get reusable(): boolean {
    return this.ex === undefined && !this.broken && !this.closedFlag && !this.peerEnded && this.lastKeepAlive;
  }

  /** An exchange is in progress. */
  get busy(): boolean {
    return this.ex !== undefined;
  }

  /**
   * Sends a request head (validated: throws Http1Error HTTP1_INVALID_FIELD for anything unsafe). The
   * body, if any, follows through the exchange's write()/end().
   */
  request(req: OutgoingRequest): Http1ClientExchange {
    if (this.ex !== undefined) throw new Error("http1 client connection is busy");
    if (!this.reusable) throw new Http1Error(ErrorCodes.UPSTREAM_RESET, "connection_not_reusable", "the upstream connection cannot carry another request");
    const framing: OutgoingFraming =
      req.bodyLength === "chunked" ? CHUNKED : req.bodyLength === undefined || req.bodyLength === 0 ? NO_BODY : { kind: "length", length: req.bodyLength };
    const head = writeRequestHead(req.method, req.target, req.headers, framing, { close: req.close === true });
    const ex = new Http1ClientExchange(this, framing, head);
    this.ex = ex;
    this.lastKeepAlive = req.close !== true;
    this.parser.expect(req.method);
    return ex;
  }

  /** Half-closes our side (no more requests). */
  close(): void {
    this.broken = true;
    if (!this.closedFlag) this.t.end();
  }

  destroy(err?: Error): void {
    this.broken = true;
    this.t.destroy(err);
    this.onClose();
  }

  // ---- used by the exchange ----

  /** @internal */
  write(b: Uint8Array): boolean {
    if (this.closedFlag) return false;
    const ok = this.t.write(b);
    if (!ok) this.needDrain = true;
    return ok;
  }

  /** @internal */
  drained(): Promise<void> {
    if (this.closedFlag) return Promise.reject(new Http1Error(ErrorCodes.UPSTREAM_RESET, "connection_closed", "the upstream connection is closed"));
    if (!this.needDrain) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /** @internal both directions of the exchange are done */
  finished(ex: Http1ClientExchange, keepAlive: boolean, requestComplete: boolean): void {
    if (this.ex !== ex) return;
    this.ex = undefined;
    if (!keepAlive) this.lastKeepAlive = false;
    if (!requestComplete) this.broken = true;
  }

  /** @internal */
  fail(err: Error): void {
    this.broken = true;
    this.destroy(err);
  }

  private newBody(): Http1Body {
    return new Http1Body(
      {
        pause: () => this.setPaused(true),
        resume: () => this.setPaused(false),
      },
      this.highWater,
    );
  }

  private setPaused(p: boolean): void {
    if (p === this.transportPaused || this.closedFlag) return;
    this.transportPaused = p;
    if (p) this.t.pause();
    else this.t.resume();
  }

  private onData(c: Uint8Array): void {
    if (this.ex === undefined || this.ex.responseComplete) {
      // Bytes nobody asked for: the connection's framing is lost.
      this.broken = true;
      this.t.destroy();
      this.onClose();
      return;
    }
    this.parser.push(c);
    if (this.parser.waiting && this.parser.bufferedBytes > 0) {
      // the response was followed by more bytes in the same read: same verdict
      this.broken = true;
      this.t.destroy();
      this.onClose();
    }
  }

  private onPeerEnd(): void {
    this.peerEnded = true;
    this.parser.finish();
  }

  private onDrain(): void {
    this.needDrain = false;
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const x of w) x.resolve();
  }

  private onError(e: Http1Error): void {
    this.broken = true;
    const ex = this.ex;
    this.ex = undefined;
    ex?.onError(e);
    this.t.destroy();
  }

  private onClose(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.broken = true;
    this.parser.destroy();
    const err = new Http1Error(ErrorCodes.UPSTREAM_RESET, "connection_closed", "the upstream connection closed mid-exchange");
    const ex = this.ex;
    this.ex = undefined;
    ex?.onError(err);
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const x of w) x.reject(err);
    this.resolveClosed();
  }
}

/** One request/response on a client connection. */
export class Http1ClientExchange {
  private pendingHead: Uint8Array | undefined;
  private written = 0;
  private requestDone = false;
  private responseDone = false;
  private keepAlive = true;
  private body: Http1Body | undefined;
  private resolveResponse!: (r: Http1IncomingResponse) => void;
  private rejectResponse!: (e: Error) => void;
  /** The final response head (1xx skipped); rejects with Http1Error if none arrives. */
  readonly response: Promise<Http1IncomingResponse>;

  constructor(
    private readonly conn: Http1ClientConnection,
    private readonly framing: OutgoingFraming,
    head: Uint8Array,
  ) {
    this.response = new Promise((resolve, reject) => {
      this.resolveResponse = resolve;
      this.rejectResponse = reject;
    });
    // a caller that awaits only the body must not leave an unhandled rejection behind
    this.response.catch(() => {});
    if (framing.kind === "none") {
      conn.write(head);
      this.requestDone = true;
    } else {
      // sent with the first body bytes when they follow in the same tick (one write, one tunnel frame)
      this.pendingHead = head;
      queueMicrotask(() => this.flushHead());
    }
  }

  /** The whole request has been written. */
  get requestComplete(): boolean {
    return this.requestDone;
  }

  /** The whole response has arrived. */
  get responseComplete(): boolean {
    return this.responseDone;
  }

  /** Request body bytes. false = wait for drained(). */
  write(chunk: Uint8Array | string): boolean {
    if (this.requestDone) throw invalidField("request_already_ended", "request body already ended");
    const data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (data.length === 0) return true;
    return this.conn.write(this.withHead(this.frame(data)));
  }

  drained(): Promise<void> {
    return this.conn.drained();
  }

  /** Ends the request body (trailers only with chunked framing). */
  end(chunk?: Uint8Array | string, trailers?: HeaderInit): void {
    if (this.requestDone) return;
    const data = chunk === undefined ? undefined : typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    let out = data !== undefined && data.length > 0 ? this.frame(data) : new Uint8Array(0);
    if (this.framing.kind === "chunked") out = concatBytes(out, encodeLastChunk(trailers));
    else if (this.framing.kind === "length" && this.written !== this.framing.length) {
      const err = invalidField("body_shorter_than_content_length", "request body shorter than its content-length");
      this.conn.fail(err);
      throw err;
    }
    const bytes = this.withHead(out);
    if (bytes.length > 0) this.conn.write(bytes);
    this.requestDone = true;
    if (this.responseDone) this.conn.finished(this, this.keepAlive, true);
  }

  /** Gives up: the connection is destroyed (never reused). */
  abort(err?: Error): void {
    this.conn.fail(err ?? new Http1Error(ErrorCodes.UPSTREAM_RESET, "aborted", "exchange aborted"));
  }

  // ---- connection side ----

  /** @internal */
  onHead(head: ResponseHead, body: Http1Body): void {
    this.keepAlive = head.keepAlive;
    this.body = body;
    this.resolveResponse(new Http1IncomingResponse(head, body));
  }

  /** @internal */
  onBody(c: Uint8Array): void {
    this.body?.push(c);
  }

  /** @internal */
  onComplete(trailers: HeaderList | undefined): void {
    this.responseDone = true;
    this.body?.end(trailers);
    // An early response (before the request body was sent) leaves the connection unusable.
    if (this.requestDone) this.conn.finished(this, this.keepAlive, true);
    else this.keepAlive = false;
  }

  /** @internal */
  onError(err: Error): void {
    if (this.body === undefined) this.rejectResponse(err);
    else this.body.fail(err);
  }

  private flushHead(): void {
    const h = this.pendingHead;
    if (h === undefined) return;
    this.pendingHead = undefined;
    this.conn.write(h);
  }

  private withHead(b: Uint8Array): Uint8Array {
    const h = this.pendingHead;
    if (h === undefined) return b;
    this.pendingHead = undefined;
    return concatBytes(h, b);
  }

  private frame(data: Uint8Array): Uint8Array {
    if (this.framing.kind === "length") {
      this.written += data.length;
      if (this.written > this.framing.length) {
        const err = invalidField("body_exceeds_content_length", "request body longer than its content-length");
        this.conn.fail(err);
        throw err;
      }
      return data;
    }
    if (this.framing.kind === "none") throw invalidField("unexpected_body", "request declared without a body");
    this.written += data.length;
    return encodeChunk(data);
  }
}
