// One HTTP/1.1 server connection over a byte stream (the waypoint: one HBONE tunnel). Requests are
// handled strictly one at a time: the next pipelined request is parsed only after the previous
// response is finished, so responses go out in order and pipelined input is held (bounded) meanwhile.
// A head must arrive within headerTimeoutMs (else 408 and close); an idle keep-alive connection
// closes silently after idleTimeoutMs; any parse error is answered with its status and
// `Connection: close`, and the connection closes.
import { ErrorCodes } from "../errors/index.ts";
import { Http1Body } from "./body.ts";
import { Http1Error } from "./errors.ts";
import type { HeaderList } from "./headers.ts";
import { resolveHttp1Limits, type Http1Limits } from "./limits.ts";
import type { RequestHead } from "./parser.ts";
import { RequestParser } from "./request-parser.ts";
import { errorResponse } from "./serializer.ts";
import { Http1Request, Http1Response, type ResponseSink } from "./server-exchange.ts";
import { asTransport, type Http1Transport } from "./transport.ts";
import type { Duplex } from "node:stream";

export type Http1Handler = (req: Http1Request, res: Http1Response) => void | Promise<void>;

export interface Http1ServerOptions {
  readonly limits?: Partial<Http1Limits>;
  /** From the first octet of a request head to its end (408 when exceeded). Default 10 s. */
  readonly headerTimeoutMs?: number;
  /** Keep-alive connection with no request in progress (closed silently). Default 60 s. */
  readonly idleTimeoutMs?: number;
  /** After we end our side, how long the peer gets to read and close before the stream is destroyed. Default 5 s. */
  readonly lingerMs?: number;
  /** Requests served before the connection is closed (`Connection: close` on the last). 0 = unlimited. */
  readonly maxRequestsPerConnection?: number;
  /** Request body bytes queued for the handler before the transport is paused. Default 64 KiB. */
  readonly bodyHighWaterBytes?: number;
  /** Unread request body the connection will read and drop to stay reusable after a response. Default 64 KiB. */
  readonly maxDiscardBytes?: number;
  /** A request the codec refused (for logs and metrics); the connection has already answered it. */
  readonly onProtocolError?: (err: Http1Error) => void;
  /** The handler threw or rejected (answered 500 if nothing was sent, else the connection was dropped). */
  readonly onHandlerError?: (err: unknown) => void;
}

const T_NONE = 0;
const T_IDLE = 1;
const T_HEADER = 2;
const T_LINGER = 3;

const CONTINUE = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n");

/** Serves HTTP/1.1 on `transport` until either side closes it. */
export function serveHttp1(transport: Http1Transport | Duplex, handler: Http1Handler, options: Http1ServerOptions = {}): Http1ServerConnection {
  return new Http1ServerConnection(asTransport(transport), handler, options);
}

interface Exchange {
  readonly req: Http1Request;
  readonly res: Http1Response;
  continueSent: boolean;
  /** The parser finished the request message. */
  requestDone: boolean;
  responseDone: boolean;
  /** Body octets received when the response finished and the rest started being dropped. */
  discardedFrom: number;
}

export class Http1ServerConnection {
  private readonly parser: RequestParser;
  private readonly limits: Http1Limits;
  private readonly headerTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly lingerMs: number;
  private readonly maxRequests: number;
  private readonly highWater: number;
  private readonly maxDiscard: number;
  private current: Exchange | undefined;
  private trailers: HeaderList | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerKind = T_NONE;
  private requests = 0;
  private closingFlag = false;
  private ended = false;
  private closedFlag = false;
  private peerEnded = false;
  private pausedForBody = false;
  private pausedForPipeline = false;
  private transportPaused = false;
  private needDrain = false;
  private drainWaiters: { resolve(): void; reject(e: Error): void }[] = [];
  private resolveClosed!: () => void;
  /** Resolves when the transport has closed. */
  readonly closed: Promise<void> = new Promise((r) => (this.resolveClosed = r));

  constructor(
    private readonly t: Http1Transport,
    private readonly handler: Http1Handler,
    private readonly options: Http1ServerOptions,
  ) {
    this.limits = resolveHttp1Limits(options.limits);
    this.headerTimeoutMs = options.headerTimeoutMs ?? 10_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.lingerMs = options.lingerMs ?? 5_000;
    this.maxRequests = options.maxRequestsPerConnection ?? 0;
    this.highWater = options.bodyHighWaterBytes ?? 64 * 1024;
    this.maxDiscard = options.maxDiscardBytes ?? 64 * 1024;
    this.parser = new RequestParser(
      {
        start: () => this.onStart(),
        head: (h) => this.onHead(h),
        body: (c) => this.onBody(c),
        trailers: (t) => (this.trailers = t),
        complete: () => this.onComplete(),
        error: (e) => this.onParseError(e),
      },
      this.limits,
    );
    this.arm(T_IDLE);
    t.setEvents({
      data: (c) => this.onData(c),
      end: () => this.onPeerEnd(),
      drain: () => this.onDrain(),
      close: () => this.onClose(),
    });
  }

  /** Requests received on this connection so far. */
  get requestCount(): number {
    return this.requests;
  }

  /** Graceful close (drain): finish the response in progress (with `Connection: close`), then close. */
  close(): void {
    this.closingFlag = true;
    if (this.current === undefined && !this.parser.inMessage) this.endConnection();
  }

  /** Drops the connection now. */
  destroy(err?: Error): void {
    this.t.destroy(err);
    this.onClose();
  }

  // ---- transport events ----

  private onData(c: Uint8Array): void {
    if (this.ended || this.closedFlag) return;
    this.parser.push(c);
    if (this.parser.waiting && this.parser.bufferedBytes > this.limits.maxPipelinedBytes && !this.pausedForPipeline) {
      this.pausedForPipeline = true;
      this.updatePause();
    }
  }

  private onPeerEnd(): void {
    this.peerEnded = true;
    // both directions done: the transport closes by itself once our queued bytes are flushed
    if (this.ended) return;
    this.parser.finish();
    if (this.parser.dead && this.current === undefined) this.endConnection();
  }

  private onDrain(): void {
    this.needDrain = false;
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const x of w) x.resolve();
  }

  private onClose(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.clearTimer();
    this.parser.destroy();
    const cur = this.current;
    this.current = undefined;
    if (cur) {
      const gone = new Http1Error(ErrorCodes.DOWNSTREAM_CLOSED, "downstream_closed", "the client closed the connection");
      cur.req.body.fail(gone);
      cur.res.kill();
    }
    const w = this.drainWaiters;
    this.drainWaiters = [];
    const gone = new Http1Error(ErrorCodes.DOWNSTREAM_CLOSED, "downstream_closed", "the client closed the connection");
    for (const x of w) x.reject(gone);
    this.resolveClosed();
  }

  // ---- parser events ----

  private onStart(): void {
    if (this.current === undefined) this.arm(T_HEADER);
  }

  private onHead(head: RequestHead): void {
    this.clearTimer();
    this.requests++;
    if (this.maxRequests > 0 && this.requests >= this.maxRequests) this.closingFlag = true;
    this.trailers = undefined;
    const ex: Exchange = { req: undefined as never, res: undefined as never, continueSent: false, requestDone: false, responseDone: false, discardedFrom: -1 };
    const body = new Http1Body(
      {
        pause: () => {
          this.pausedForBody = true;
          this.updatePause();
        },
        resume: () => {
          this.pausedForBody = false;
          this.updatePause();
        },
        firstRead: () => {
          if (head.expectContinue && !ex.continueSent && !ex.res.headersSent && !body.complete) {
            ex.continueSent = true;
            this.write(CONTINUE);
          }
        },
      },
      this.highWater,
    );
    if (head.bodyKind === "none") body.end();
    const sink = this.sinkFor(ex);
    (ex as { req: Http1Request }).req = new Http1Request(head, body);
    (ex as { res: Http1Response }).res = new Http1Response(sink, head);
    this.current = ex;
    let ret: void | Promise<void>;
    try {
      ret = this.handler(ex.req, ex.res);
    } catch (e) {
      this.handlerFailed(ex, e);
      return;
    }
    if (ret !== undefined && typeof (ret as Promise<void>).then === "function") {
      (ret as Promise<void>).then(undefined, (e: unknown) => this.handlerFailed(ex, e));
    }
  }

  private onBody(c: Uint8Array): void {
    const ex = this.current;
    if (ex === undefined) return;
    const body = ex.req.body;
    body.push(c);
    if (ex.responseDone && body.discarding && body.bytesReceived - ex.discardedFrom > this.maxDiscard) {
      // not worth reading any further just to keep the connection
      this.current = undefined;
      body.fail(new Http1Error(ErrorCodes.HTTP1_BODY_TOO_LARGE, "discard_limit", "unread request body too large"));
      this.endConnection();
    }
  }

  private onComplete(): void {
    const ex = this.current;
    if (ex === undefined) return;
    ex.requestDone = true;
    ex.req.body.end(this.trailers);
    this.trailers = undefined;
    if (ex.responseDone) this.afterExchange(ex);
  }

  private onParseError(err: Http1Error): void {
    this.options.onProtocolError?.(err);
    this.clearTimer();
    const ex = this.current;
    // EOF in the middle of a request: the client is gone, there is nobody to answer.
    const eof = err.code === ErrorCodes.DOWNSTREAM_CLOSED;
    if (ex !== undefined) {
      ex.req.body.fail(err);
      if (!ex.res.headersSent && !eof) {
        ex.res.kill();
        this.current = undefined;
        this.write(errorResponse(err));
        this.endConnection();
        return;
      }
      // the response is under way or done: it finishes (or not) and the connection closes after it
      this.closingFlag = true;
      if (ex.res.finished) {
        this.current = undefined;
        this.endConnection();
      }
      return;
    }
    if (!eof) this.write(errorResponse(err));
    this.endConnection();
  }

  // ---- the exchange ----

  private sinkFor(ex: Exchange): ResponseSink {
    const conn = this;
    return {
      write: (b) => conn.write(b),
      drained: () => conn.drained(),
      get closing() {
        return conn.closingFlag;
      },
      get closed() {
        return conn.closedFlag || conn.ended;
      },
      requestComplete: () => ex.req.body.complete || ex.req.head.bodyKind === "none",
      get continueSent() {
        return ex.continueSent;
      },
      responseFinished: (close) => conn.responseFinished(ex, close),
      abort: (err) => {
        conn.options.onHandlerError?.(err);
        conn.destroy(err);
      },
    };
  }

  private responseFinished(ex: Exchange, close: boolean): void {
    if (this.current !== ex) return;
    ex.responseDone = true;
    const body = ex.req.body;
    if (close || body.failed) {
      this.current = undefined;
      if (!body.complete) body.discard();
      this.endConnection();
      return;
    }
    if (ex.requestDone) {
      this.afterExchange(ex);
      return;
    }
    // The handler answered without reading the whole body: read and drop the rest to reach the next
    // request (the parser completes the message, then onComplete moves on).
    ex.discardedFrom = body.bytesReceived;
    body.discard();
  }

  private afterExchange(ex: Exchange): void {
    if (this.current !== ex) return;
    this.current = undefined;
    if (this.closingFlag || !ex.req.head.keepAlive) {
      this.endConnection();
      return;
    }
    // The next request starts after the code that finished this response has run (never inside
    // res.end()), and a run of synchronous handlers cannot nest on the stack.
    queueMicrotask(() => this.nextRequest());
  }

  private nextRequest(): void {
    if (this.ended || this.closedFlag || this.current !== undefined) return;
    this.parser.next();
    if (this.parser.dead) {
      if (this.current === undefined) this.endConnection();
      return;
    }
    if (this.pausedForPipeline && (!this.parser.waiting || this.parser.bufferedBytes <= this.limits.maxPipelinedBytes)) {
      this.pausedForPipeline = false;
      this.updatePause();
    }
    if (this.current === undefined && !this.parser.inMessage) {
      if (this.peerEnded) this.endConnection();
      else this.arm(T_IDLE);
    }
  }

  private handlerFailed(ex: Exchange, e: unknown): void {
    this.options.onHandlerError?.(e);
    if (this.current !== ex || ex.res.finished) return;
    if (!ex.res.headersSent) {
      ex.res.kill();
      this.current = undefined;
      this.write(errorResponse(new Http1Error(ErrorCodes.INTERNAL, "handler_error", "request handler failed")));
      this.endConnection();
      return;
    }
    this.destroy(e instanceof Error ? e : new Error(String(e)));
  }

  // ---- plumbing ----

  private write(b: Uint8Array): boolean {
    if (this.closedFlag || this.ended) return false;
    const ok = this.t.write(b);
    if (!ok) this.needDrain = true;
    return ok;
  }

  private drained(): Promise<void> {
    if (this.closedFlag || this.ended) return Promise.reject(new Http1Error(ErrorCodes.DOWNSTREAM_CLOSED, "downstream_closed", "the connection is closed"));
    if (!this.needDrain) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /** Half-closes our side after what is queued; the peer gets lingerMs to finish before the stream is destroyed. */
  private endConnection(): void {
    if (this.ended || this.closedFlag) return;
    this.ended = true;
    this.parser.destroy();
    const cur = this.current;
    this.current = undefined;
    cur?.res.kill();
    this.t.end();
    this.arm(T_LINGER);
  }

  private updatePause(): void {
    const want = this.pausedForBody || this.pausedForPipeline;
    if (want === this.transportPaused || this.closedFlag) return;
    this.transportPaused = want;
    if (want) this.t.pause();
    else this.t.resume();
  }

  private arm(kind: number): void {
    this.clearTimer();
    const ms = kind === T_IDLE ? this.idleTimeoutMs : kind === T_HEADER ? this.headerTimeoutMs : this.lingerMs;
    if (!(ms > 0 && ms < Infinity)) return;
    this.timerKind = kind;
    this.timer = setTimeout(() => this.onTimer(), ms);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerKind = T_NONE;
  }

  private onTimer(): void {
    const kind = this.timerKind;
    this.timer = undefined;
    this.timerKind = T_NONE;
    if (this.closedFlag) return;
    if (kind === T_LINGER) {
      this.destroy();
      return;
    }
    if (this.current !== undefined) return;
    if (kind === T_HEADER && this.parser.inMessage) {
      const err = new Http1Error(ErrorCodes.HTTP1_HEADER_TIMEOUT, "header_timeout", `request head not received within ${this.headerTimeoutMs} ms`);
      this.options.onProtocolError?.(err);
      this.write(errorResponse(err));
    }
    this.endConnection();
  }
}
