// What a server handler sees: the request (head + body with backpressure) and the response it
// writes. The response owns framing: Content-Length when the length is known (given, or the whole
// body handed to end()), chunked otherwise for HTTP/1.1, read-until-close for HTTP/1.0.
import { ErrorCodes } from "../errors/index.ts";
import type { Http1Body } from "./body.ts";
import { Http1Error, invalidField } from "./errors.ts";
import { HeaderList, listTokens, type HeaderInit } from "./headers.ts";
import type { RequestHead } from "./parser.ts";
import { CHUNKED, NO_BODY, concatBytes, encodeChunk, encodeLastChunk, formatFields, responseHeadFromFields, statusHasNoBody, type OutgoingFraming } from "./serializer.ts";
import { isFieldValue } from "./syntax.ts";

export class Http1Request {
  constructor(
    readonly head: RequestHead,
    /** The request body; read it (or `discard()` it) so the connection can move to the next request. */
    readonly body: Http1Body,
  ) {}

  get method(): string {
    return this.head.method;
  }
  get path(): string {
    return this.head.path;
  }
  get headers(): HeaderList {
    return this.head.headers;
  }
  get authority(): string | undefined {
    return this.head.authority;
  }
}

/** The connection side of a response. */
export interface ResponseSink {
  write(bytes: Uint8Array): boolean;
  /** Resolves when write() may be called again; rejects once the connection is gone. */
  drained(): Promise<void>;
  /** The connection will close after this exchange (draining, request limit, protocol error). */
  readonly closing: boolean;
  readonly closed: boolean;
  /** The request's body has fully arrived (or is being discarded). */
  requestComplete(): boolean;
  readonly continueSent: boolean;
  /** The response is complete; `close` = this exchange ends the connection. */
  responseFinished(close: boolean): void;
  /** Framing is broken (a body shorter or longer than declared): drop the connection. */
  abort(err: Error): void;
}

const R_FRESH = 0;
const R_HEAD_PENDING = 1;
const R_STREAMING = 2;
const R_DONE = 3;

export class Http1Response {
  private state = R_FRESH;
  private status = 200;
  private reason: string | undefined;
  private fields = "";
  private declared = -1;
  private written = 0;
  private framing: OutgoingFraming = NO_BODY;
  private noBody: boolean;
  private close = false;
  private controller: AbortController | undefined;

  constructor(
    private readonly sink: ResponseSink,
    private readonly request: RequestHead,
  ) {
    this.noBody = request.method === "HEAD";
  }

  get statusCode(): number {
    return this.status;
  }

  /** The status line has been committed (writeHead called or body written). */
  get headersSent(): boolean {
    return this.state !== R_FRESH;
  }

  get finished(): boolean {
    return this.state === R_DONE;
  }

  /** Aborted when the connection goes away before this response is finished. */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.sink.closed && this.state !== R_DONE) this.controller.abort();
    return this.controller.signal;
  }

  /** Connection side: the connection closed (or a protocol error took the exchange over). */
  kill(): void {
    if (this.state === R_DONE) return;
    this.state = R_DONE;
    this.controller?.abort();
  }

  /**
   * Commits status and fields. `content-length` among them fixes the framing (validated); the codec's
   * own fields (transfer-encoding, connection, keep-alive) are not copied, but `connection: close` is honoured.
   * Throws Http1Error (HTTP1_INVALID_FIELD) for anything that could not be written safely.
   */
  writeHead(status: number, headers?: HeaderInit, reason?: string): void {
    if (this.sink.closed && this.state !== R_DONE) this.kill();
    if (this.state === R_DONE) return;
    if (this.state !== R_FRESH) throw invalidField("head_already_sent", "response head already sent");
    if (!Number.isInteger(status) || status < 200 || status > 999) throw invalidField("invalid_status", `invalid final status ${status}`);
    const h = headers === undefined ? new HeaderList() : headers instanceof HeaderList ? headers : HeaderList.from(headers);
    const cl = h.getAll("content-length");
    if (cl.length > 1) throw invalidField("invalid_content_length", "more than one content-length");
    if (cl.length === 1) {
      const v = cl[0]!;
      if (!/^[0-9]{1,16}$/.test(v) || Number(v) > Number.MAX_SAFE_INTEGER) throw invalidField("invalid_content_length", `invalid content-length ${JSON.stringify(v.slice(0, 32))}`);
      this.declared = Number(v);
    }
    if (reason !== undefined && !isFieldValue(reason)) throw invalidField("invalid_reason", "refusing to write an unsafe reason phrase");
    const fields = formatFields(h); // validates now, so the handler gets the error, not the flush
    if (listTokens(h, "connection").includes("close")) this.close = true;
    this.status = status;
    this.reason = reason;
    this.fields = fields;
    if (statusHasNoBody(status)) this.noBody = true;
    this.state = R_HEAD_PENDING;
    // Sent with the first body bytes when they follow in the same tick (one write, one tunnel frame).
    queueMicrotask(() => {
      if (this.state !== R_HEAD_PENDING) return;
      if (this.sink.closed) this.kill();
      else this.sink.write(this.headBytes(undefined));
    });
  }

  /** Body bytes. false = the connection's buffer is full: await drained() before writing more. */
  write(chunk: Uint8Array | string): boolean {
    if (this.state === R_DONE) return false;
    if (this.state === R_FRESH) this.writeHead(200);
    if (this.state === R_DONE) return false;
    const data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    const head = this.state === R_HEAD_PENDING ? this.headBytes(undefined) : undefined;
    const framed = this.frame(data);
    if (framed === undefined) return false;
    return this.sink.write(head === undefined ? framed : concatBytes(head, framed));
  }

  drained(): Promise<void> {
    return this.sink.drained();
  }

  /**
   * Finishes the response. With no head committed yet, `chunk` is the whole body and is sent with a
   * Content-Length. Trailers are sent only with chunked framing (dropped otherwise).
   */
  end(chunk?: Uint8Array | string, trailers?: HeaderInit): void {
    if (this.sink.closed && this.state !== R_DONE) this.kill();
    if (this.state === R_DONE) return;
    const data = chunk === undefined ? undefined : typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (this.state === R_FRESH) this.writeHead(200);
    if (this.state === R_DONE) return;
    let out: Uint8Array | undefined;
    if (this.state === R_HEAD_PENDING) {
      out = this.headBytes(this.declared < 0 ? (data?.length ?? 0) : undefined);
    }
    if (data !== undefined && data.length > 0) {
      const framed = this.frame(data);
      if (framed === undefined) return;
      out = out === undefined ? framed : concatBytes(out, framed);
    }
    if (this.framing.kind === "chunked") {
      let last: Uint8Array;
      try {
        last = encodeLastChunk(trailers);
      } catch (e) {
        this.fail(e as Error);
        throw e;
      }
      out = out === undefined ? last : concatBytes(out, last);
    }
    if (out !== undefined) this.sink.write(out);
    this.state = R_DONE;
    if (this.framing.kind === "length" && !this.noBody && this.written < this.declared) {
      // Fewer bytes than declared: the client would wait forever or misparse the next response.
      this.sink.abort(new Http1Error(ErrorCodes.HTTP1_INVALID_FIELD, "body_shorter_than_content_length", "response body shorter than its content-length"));
      return;
    }
    this.sink.responseFinished(this.close);
  }

  /** Gives up on this response: the connection is dropped (the client sees a truncated response). */
  destroy(err?: Error): void {
    if (this.state === R_DONE) return;
    this.fail(err ?? new Http1Error(ErrorCodes.INTERNAL, "response_aborted", "response aborted"));
  }

  private fail(err: Error): void {
    this.state = R_DONE;
    this.controller?.abort();
    this.sink.abort(err);
  }

  /** Serializes the committed head, choosing the framing. `knownLength`: the whole body is known. */
  private headBytes(knownLength: number | undefined): Uint8Array {
    const req = this.request;
    let framing: OutgoingFraming;
    if (this.declared >= 0) framing = { kind: "length", length: this.declared };
    else if (knownLength !== undefined && !statusHasNoBody(this.status)) {
      framing = { kind: "length", length: knownLength };
      this.declared = knownLength;
    } else if (this.noBody) framing = NO_BODY;
    else if (req.version === "1.1") framing = CHUNKED;
    else framing = { kind: "close" };
    let close = this.close || this.sink.closing || !req.keepAlive || framing.kind === "close";
    // A client waiting for 100-continue that never got it may or may not send the body: close (RFC 9110 §10.1.1).
    if (req.expectContinue && !this.sink.continueSent && !this.sink.requestComplete()) close = true;
    this.close = close;
    this.framing = this.noBody && framing.kind !== "length" ? NO_BODY : framing;
    // fields and reason were validated by writeHead; nothing here can throw
    const bytes = responseHeadFromFields(this.status, this.reason, this.fields, framing, {
      close,
      keepAlive10: req.version === "1.0" && !close,
      headRequest: req.method === "HEAD",
    });
    this.state = R_STREAMING;
    return bytes;
  }

  /** Applies the framing to body bytes; undefined when the bytes cannot be sent. */
  private frame(data: Uint8Array): Uint8Array | undefined {
    if (this.noBody || data.length === 0) return new Uint8Array(0);
    if (this.framing.kind === "length") {
      this.written += data.length;
      if (this.written > this.declared) {
        const err = new Http1Error(ErrorCodes.HTTP1_INVALID_FIELD, "body_exceeds_content_length", "response body longer than its content-length");
        this.fail(err);
        throw err;
      }
      return data;
    }
    this.written += data.length;
    return this.framing.kind === "chunked" ? encodeChunk(data) : data;
  }
}
