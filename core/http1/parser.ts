// Incremental HTTP/1.1 parser (RFC 9112) for requests (server side) and responses (client side).
// Bytes are pushed as they arrive; one message is parsed at a time: after `complete` the parser
// holds further input until `next()`, so a pipelined request is not even looked at before the
// previous response is done. Strict by design: anything two HTTP implementations could frame
// differently (request smuggling) is an error, never a guess. Every buffer is bounded by Http1Limits.
import { ErrorCodes, type ErrorCode } from "../errors/index.ts";
import { Http1Error } from "./errors.ts";
import { bodyFraming, type Framing } from "./framing.ts";
import { FORBIDDEN_TRAILERS, HeaderList } from "./headers.ts";
import { FIELD_CHAR, HEX, TCHAR, latin1 } from "./syntax.ts";
import type { Http1Limits } from "./limits.ts";

export type HttpVersion = "1.0" | "1.1";
/** How a message body is delimited (RFC 9112 §6.3). `close` = until the connection closes (responses only). */
export type BodyKind = "none" | "length" | "chunked" | "close";
/** RFC 9112 §3.2. authority-form (CONNECT) is refused before a head is produced. */
export type TargetForm = "origin" | "absolute" | "asterisk";

export interface RequestHead {
  readonly method: string;
  /** The request-target exactly as received. */
  readonly target: string;
  readonly targetForm: TargetForm;
  /** Path and query: the target for origin-form, the path part of an absolute-form URI, `*` for asterisk-form. */
  readonly path: string;
  /** Host (equal to an absolute-form target's authority, which is checked); undefined only for HTTP/1.0 without Host. */
  readonly authority: string | undefined;
  readonly version: HttpVersion;
  readonly headers: HeaderList;
  /** The client lets the connection stay open after this exchange. */
  readonly keepAlive: boolean;
  readonly bodyKind: "none" | "length" | "chunked";
  /** Declared length for bodyKind `length`. */
  readonly contentLength: number | undefined;
  /** `Expect: 100-continue` on an HTTP/1.1 request. */
  readonly expectContinue: boolean;
  /** Octets of the head on the wire, CRLFs included. */
  readonly headBytes: number;
}

export interface ResponseHead {
  readonly version: HttpVersion;
  readonly status: number;
  readonly reason: string;
  readonly headers: HeaderList;
  /** The server lets the connection be reused after this response. */
  readonly keepAlive: boolean;
  readonly bodyKind: BodyKind;
  readonly contentLength: number | undefined;
  readonly headBytes: number;
}

export interface ParserEvents<H> {
  /** The first octet of a message arrived (the server switches from idle to header timeout here). */
  start?(): void;
  head(head: H): void;
  /** A view into the pushed input (not copied): transports must not reuse chunk memory. */
  body(chunk: Uint8Array): void;
  trailers?(trailers: HeaderList): void;
  complete(): void;
  /** After an error the parser is dead: it ignores input. */
  error(err: Http1Error): void;
  /** A 1xx (other than 101) response; the final response for the same request follows. */
  informational?(head: ResponseHead): void;
}

export const CR = 0x0d;
const LF = 0x0a;
export const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SEMI = 0x3b;

export const S_HEAD = 0;
const S_LENGTH = 1;
const S_CHUNK_SIZE = 2;
const S_CHUNK_DATA = 3;
const S_CHUNK_CRLF = 4;
const S_TRAILERS = 5;
const S_UNTIL_CLOSE = 6;
export const S_WAITING = 7;
const S_DEAD = 8;

/** Line scan results besides an offset. */
const NEED_MORE = -1;
const OVERFLOW = -2;
const FAILED = -3;

/** Shared machinery: line scanning, field lines, body framing. Subclasses parse start lines and heads. */
export abstract class MessageParser<H> {
  protected readonly limits: Http1Limits;
  protected readonly events: ParserEvents<H>;
  protected state: number;

  // input held for later: chunk queue with an offset into the first one
  private pending: Uint8Array[] = [];
  private pendingOff = 0;
  private pendingBytes = 0;
  private running = false;
  private eof = false;

  // the current line when it spans chunks (never larger than the limit that applies)
  private lineBuf: Uint8Array = new Uint8Array(0);
  private lineLen = 0;
  // the last complete line: src[ls, le) without CRLF
  protected src: Uint8Array = this.lineBuf;
  protected ls = 0;
  protected le = 0;

  // the message in progress
  protected headBytes = 0;
  protected started = false;
  protected startLineDone = false;
  protected headers = new HeaderList();
  protected headerCount = 0;
  // fields the framing depends on, collected while parsing so the head is scanned once
  protected hostCount = 0;
  protected host: string | undefined;
  protected clCount = 0;
  protected clValue = "";
  protected te: string | undefined;
  protected connection: string | undefined;
  protected expectField: string | undefined;
  private remaining = 0;
  private bodyBytes = 0;
  private extBytes = 0;
  private crlfSeen = 0;
  private trailers: HeaderList | undefined;
  private trailerBytes = 0;

  constructor(events: ParserEvents<H>, limits: Http1Limits, initial: number) {
    this.events = events;
    this.limits = limits;
    this.state = initial;
  }

  /** Feeds input. Never throws for bad input: errors go to `events.error`. */
  push(chunk: Uint8Array): void {
    if (this.state === S_DEAD || chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.drive();
  }

  /** The peer finished sending. Completes a read-until-close body; anything else mid-message is an error. */
  finish(): void {
    if (this.state === S_DEAD) return;
    this.eof = true;
    this.drive();
  }

  /** Stops parsing for good (the connection is going away). */
  destroy(): void {
    this.state = S_DEAD;
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Octets held but not yet parsed (pipelined input) plus a partial line. */
  get bufferedBytes(): number {
    return this.pendingBytes + this.lineLen;
  }

  /** Waiting for `next()` after a complete message. */
  get waiting(): boolean {
    return this.state === S_WAITING;
  }

  get dead(): boolean {
    return this.state === S_DEAD;
  }

  /** Part of a message has arrived (head or body) but not all of it. */
  get inMessage(): boolean {
    return this.state !== S_WAITING && this.state !== S_DEAD && (this.started || this.state !== S_HEAD);
  }

  /** Allows the next message to be parsed (from held input first). */
  protected resumeNext(): void {
    if (this.state !== S_WAITING) return;
    this.resetMessage();
    this.state = S_HEAD;
    this.drive();
  }

  protected abstract startLine(): boolean;
  protected abstract headDone(): void;
  protected abstract err(code: ErrorCode, reason: string, message: string): Http1Error;
  protected abstract headOverflow(startLine: boolean): Http1Error;
  /** The message ended before it was complete (EOF). */
  protected abstract eofError(inHead: boolean): Http1Error;
  /** Request side: `_` in a field name. */
  protected underscore(): "allow" | "drop" | "reject" {
    return "allow";
  }

  private drive(): void {
    if (this.running) return;
    this.running = true;
    try {
      while (this.pending.length > 0 && this.state !== S_WAITING && this.state !== S_DEAD) {
        const c = this.pending[0]!;
        const from = this.pendingOff;
        const to = this.run(c, from);
        if (this.state === S_DEAD) return;
        this.pendingBytes -= to - from;
        if (to >= c.length) {
          this.pending.shift();
          this.pendingOff = 0;
        } else {
          this.pendingOff = to;
        }
      }
      if (this.eof && this.pending.length === 0) this.atEof();
    } finally {
      this.running = false;
    }
  }

  private atEof(): void {
    const s = this.state;
    if (s === S_WAITING || s === S_DEAD) return;
    if (s === S_UNTIL_CLOSE) {
      this.state = S_DEAD;
      this.events.complete();
      return;
    }
    if (s === S_HEAD && !this.started && this.lineLen === 0) {
      // clean close between messages; a response parser expecting a response still reports it
      const e = this.eofBetweenMessages();
      this.state = S_DEAD;
      if (e) this.events.error(e);
      return;
    }
    this.fail(this.eofError(s === S_HEAD));
  }

  protected eofBetweenMessages(): Http1Error | undefined {
    return undefined;
  }

  /** Processes `c` from `off` until it is used up or the message completes; returns the new offset. */
  private run(c: Uint8Array, off: number): number {
    const n = c.length;
    while (off < n) {
      switch (this.state) {
        case S_HEAD: {
          if (!this.started) {
            this.started = true;
            this.events.start?.();
            if (this.state !== S_HEAD) return off;
          }
          const r = this.headLine(c, off);
          if (r < 0) return r === NEED_MORE ? n : off;
          off = r;
          break;
        }
        case S_LENGTH: {
          const take = Math.min(this.remaining, n - off);
          this.remaining -= take;
          const piece = c.subarray(off, off + take);
          off += take;
          this.events.body(piece);
          if (this.remaining === 0 && this.state === S_LENGTH) this.complete();
          break;
        }
        case S_CHUNK_SIZE: {
          const r = this.chunkSizeLine(c, off);
          if (r < 0) return r === NEED_MORE ? n : off;
          off = r;
          break;
        }
        case S_CHUNK_DATA: {
          const take = Math.min(this.remaining, n - off);
          this.remaining -= take;
          const piece = c.subarray(off, off + take);
          off += take;
          if (this.remaining === 0) {
            this.state = S_CHUNK_CRLF;
            this.crlfSeen = 0;
          }
          this.events.body(piece);
          break;
        }
        case S_CHUNK_CRLF: {
          const b = c[off]!;
          if (this.crlfSeen === 0 ? b !== CR : b !== LF) {
            this.fail(this.err(ErrorCodes.HTTP1_FRAMING, "chunk_data_not_followed_by_crlf", "chunk data is not followed by CRLF"));
            return off;
          }
          off++;
          if (++this.crlfSeen === 2) this.state = S_CHUNK_SIZE;
          break;
        }
        case S_TRAILERS: {
          const r = this.trailerLine(c, off);
          if (r < 0) return r === NEED_MORE ? n : off;
          off = r;
          break;
        }
        case S_UNTIL_CLOSE: {
          const piece = off === 0 ? c : c.subarray(off);
          this.bodyBytes += piece.length;
          if (this.bodyBytes > this.limits.maxBodyBytes) {
            this.fail(this.err(ErrorCodes.HTTP1_BODY_TOO_LARGE, "body_too_large", "body exceeds the configured limit"));
            return off;
          }
          off = n;
          this.events.body(piece);
          break;
        }
        default:
          return off;
      }
    }
    return off;
  }

  protected fail(e: Http1Error): void {
    if (this.state === S_DEAD) return;
    this.destroy();
    this.events.error(e);
  }

  private complete(): void {
    this.state = S_WAITING;
    this.events.complete();
  }

  protected resetMessage(): void {
    // a long line once must not pin its buffer for the life of a keep-alive connection
    if (this.lineBuf.length > 4096) this.lineBuf = new Uint8Array(0);
    this.headBytes = 0;
    this.started = false;
    this.startLineDone = false;
    this.headers = new HeaderList();
    this.headerCount = 0;
    this.hostCount = 0;
    this.host = undefined;
    this.clCount = 0;
    this.clValue = "";
    this.te = undefined;
    this.connection = undefined;
    this.expectField = undefined;
    this.remaining = 0;
    this.bodyBytes = 0;
    this.extBytes = 0;
    this.trailers = undefined;
    this.trailerBytes = 0;
  }

  /**
   * Finds the next CRLF-terminated line no longer than `max` octets (CRLF included). On success sets
   * src/ls/le and returns the offset after LF; a bare LF is an error.
   */
  private line(c: Uint8Array, off: number, max: number): number {
    const lf = c.indexOf(LF, off);
    const end = lf === -1 ? c.length : lf + 1;
    if (this.lineLen + (end - off) > max) return OVERFLOW;
    if (lf === -1) {
      this.appendLine(c, off, end, max);
      return NEED_MORE;
    }
    if (this.lineLen === 0) {
      this.src = c;
      this.ls = off;
      this.le = lf;
    } else {
      this.appendLine(c, off, end, max);
      this.src = this.lineBuf;
      this.ls = 0;
      this.le = this.lineLen - 1;
      this.lineLen = 0;
    }
    if (this.le === this.ls || this.src[this.le - 1] !== CR) {
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "bare_lf", "line ends in LF without CR"));
      return FAILED;
    }
    this.le--;
    return end;
  }

  /** `max`: the limit that applies to this line (need <= max is checked by the caller). */
  private appendLine(c: Uint8Array, from: number, to: number, max: number): void {
    const need = this.lineLen + (to - from);
    if (need > this.lineBuf.length) {
      // grow geometrically (amortised copies) but never past the limit that applies
      const next = new Uint8Array(Math.min(max, Math.max(need, this.lineBuf.length * 2, 256)));
      next.set(this.lineBuf.subarray(0, this.lineLen));
      this.lineBuf = next;
    }
    this.lineBuf.set(c.subarray(from, to), this.lineLen);
    this.lineLen = need;
  }

  /** A byte of the line currently being assembled (buffered part first, then `c` from `off`). */
  private partialByte(c: Uint8Array, off: number, i: number): number {
    return i < this.lineLen ? this.lineBuf[i]! : (c[off + i - this.lineLen] ?? -1);
  }

  private headLine(c: Uint8Array, off: number): number {
    const budget = this.limits.maxHeadBytes - this.headBytes;
    const max = this.startLineDone ? budget : Math.min(budget, this.limits.maxStartLineBytes + 2);
    const r = this.line(c, off, max);
    if (r === OVERFLOW) {
      this.fail(this.headOverflow(!this.startLineDone && budget > this.limits.maxStartLineBytes + 2));
      return FAILED;
    }
    if (r < 0) return r;
    this.headBytes += this.le - this.ls + 2;
    if (!this.startLineDone) {
      if (this.le === this.ls) return r; // RFC 9112 §2.2: empty lines before a request line are ignored
      if (!this.startLine()) return FAILED;
      this.startLineDone = true;
      return r;
    }
    if (this.le === this.ls) {
      this.headDone();
      return this.state === S_DEAD ? FAILED : r;
    }
    if (++this.headerCount > this.limits.maxHeaderCount) {
      this.fail(this.err(ErrorCodes.HTTP1_HEADERS_TOO_LARGE, "too_many_headers", `more than ${this.limits.maxHeaderCount} header fields`));
      return FAILED;
    }
    return this.fieldLine(this.headers, true) ? r : FAILED;
  }

  /** Parses src[ls, le) as `name: value` into `into`. */
  private fieldLine(into: HeaderList, inHead: boolean): boolean {
    const src = this.src;
    const ls = this.ls;
    const le = this.le;
    const c0 = src[ls]!;
    if (c0 === SP || c0 === HTAB) {
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "obs_fold", "a field line starts with whitespace (obs-fold)"));
      return false;
    }
    let i = ls;
    let underscore = false;
    let upper = false;
    for (; i < le; i++) {
      const b = src[i]!;
      if (TCHAR[b] !== 1) break;
      if (b <= 0x5f && b >= 0x41) {
        if (b === 0x5f) underscore = true;
        else if (b <= 0x5a) upper = true;
      }
    }
    const b = i < le ? src[i]! : -1;
    if (b !== COLON || i === ls) {
      const reason = b === SP || b === HTAB ? "whitespace_before_colon" : b === CR ? "bare_cr" : b === -1 ? "missing_colon" : "invalid_header_name";
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, reason, "invalid header field name"));
      return false;
    }
    const name = latin1(src, ls, i);
    let vs = i + 1;
    while (vs < le && (src[vs] === SP || src[vs] === HTAB)) vs++;
    let ve = le;
    while (ve > vs && (src[ve - 1] === SP || src[ve - 1] === HTAB)) ve--;
    for (let k = vs; k < ve; k++) {
      if (FIELD_CHAR[src[k]!] !== 1) {
        const reason = src[k] === CR ? "bare_cr" : "invalid_header_value";
        this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, reason, `invalid octet 0x${src[k]!.toString(16)} in the value of ${name}`));
        return false;
      }
    }
    const value = vs === ve ? "" : latin1(src, vs, ve);
    const lower = upper ? name.toLowerCase() : name;
    if (underscore) {
      const action = this.underscore();
      if (action === "reject") {
        this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "header_name_underscore", `header name ${name} contains an underscore`));
        return false;
      }
      if (action === "drop") return true;
    }
    if (inHead) {
      switch (lower) {
        case "host":
          this.hostCount++;
          this.host = value;
          break;
        case "content-length":
          this.clCount++;
          this.clValue = value;
          break;
        case "transfer-encoding":
          this.te = this.te === undefined ? value : `${this.te},${value}`;
          break;
        case "connection":
          this.connection = this.connection === undefined ? value : `${this.connection},${value}`;
          break;
        case "expect":
          this.expectField = this.expectField === undefined ? value : `${this.expectField},${value}`;
          break;
      }
    } else if (FORBIDDEN_TRAILERS.has(lower)) {
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "forbidden_trailer", `${name} is not allowed in trailers`));
      return false;
    }
    into.push(name, lower, value);
    return true;
  }

  /** Body framing from the collected fields (framing.ts); a fault fails the parser. */
  protected framing(http10: boolean): Framing | undefined {
    const f = bodyFraming(this.te, this.clCount, this.clValue, http10);
    if ("reason" in f) {
      this.fail(this.err(f.code, f.reason, f.message));
      return undefined;
    }
    return f;
  }

  /** Moves to body parsing for a head just delivered (kind `none` completes the message). */
  protected beginBody(kind: BodyKind, length: number | undefined): void {
    if (this.state === S_DEAD || this.state === S_WAITING) return;
    if (kind === "length") {
      if (length! > this.limits.maxBodyBytes) {
        this.fail(this.err(ErrorCodes.HTTP1_BODY_TOO_LARGE, "body_too_large", "Content-Length exceeds the configured body limit"));
        return;
      }
      this.remaining = length!;
      this.state = S_LENGTH;
    } else if (kind === "chunked") {
      this.state = S_CHUNK_SIZE;
    } else if (kind === "close") {
      this.state = S_UNTIL_CLOSE;
    } else {
      this.complete();
    }
  }

  private chunkSizeLine(c: Uint8Array, off: number): number {
    // 16 hex digits, BWS, the rest of this message's extension budget, CRLF
    const max = 16 + 2 + 64 + (this.limits.maxChunkExtensionBytes - this.extBytes);
    const r = this.line(c, off, max);
    if (r === OVERFLOW) {
      let digits = 0;
      while (digits < 17 && HEX[this.partialByte(c, off, digits)]! >= 0) digits++;
      this.fail(
        digits > 16
          ? this.err(ErrorCodes.HTTP1_FRAMING, "invalid_chunk_size", "chunk size has more than 16 hex digits")
          : this.err(ErrorCodes.HTTP1_BODY_TOO_LARGE, "chunk_extensions_too_large", "chunk extensions exceed the configured limit"),
      );
      return FAILED;
    }
    if (r < 0) return r;
    const src = this.src;
    const le = this.le;
    let i = this.ls;
    let size = 0;
    while (i < le && HEX[src[i]!]! >= 0) {
      if (i - this.ls === 16) return this.badChunkSize("chunk size has more than 16 hex digits");
      size = size * 16 + HEX[src[i]!]!;
      i++;
    }
    if (i === this.ls) return this.badChunkSize("chunk size is not hexadecimal");
    if (size > Number.MAX_SAFE_INTEGER) return this.badChunkSize("chunk size too large");
    let j = i;
    while (j < le && (src[j] === SP || src[j] === HTAB)) j++;
    if (j < le) {
      if (src[j] !== SEMI) return this.badChunkSize(src[j] === CR ? "bare CR in chunk size line" : "garbage after chunk size");
      for (let k = j; k < le; k++) {
        if (FIELD_CHAR[src[k]!] !== 1) return this.badChunkSize(src[k] === CR ? "bare CR in chunk extension" : "invalid octet in chunk extension");
      }
      this.extBytes += le - j;
      if (this.extBytes > this.limits.maxChunkExtensionBytes) {
        this.fail(this.err(ErrorCodes.HTTP1_BODY_TOO_LARGE, "chunk_extensions_too_large", "chunk extensions exceed the configured limit"));
        return FAILED;
      }
    } else if (j > i) {
      return this.badChunkSize("whitespace after chunk size without an extension");
    }
    this.bodyBytes += size;
    if (this.bodyBytes > this.limits.maxBodyBytes) {
      this.fail(this.err(ErrorCodes.HTTP1_BODY_TOO_LARGE, "body_too_large", "body exceeds the configured limit"));
      return FAILED;
    }
    if (size === 0) {
      this.state = S_TRAILERS;
    } else {
      this.remaining = size;
      this.state = S_CHUNK_DATA;
    }
    return r;
  }

  private badChunkSize(message: string): number {
    this.fail(this.err(ErrorCodes.HTTP1_FRAMING, "invalid_chunk_size", message));
    return FAILED;
  }

  private trailerLine(c: Uint8Array, off: number): number {
    const r = this.line(c, off, this.limits.maxTrailerBytes - this.trailerBytes);
    if (r === OVERFLOW) {
      this.fail(this.err(ErrorCodes.HTTP1_HEADERS_TOO_LARGE, "trailers_too_large", "trailer section exceeds the configured limit"));
      return FAILED;
    }
    if (r < 0) return r;
    this.trailerBytes += this.le - this.ls + 2;
    if (this.le === this.ls) {
      const t = this.trailers;
      this.trailers = undefined;
      if (t !== undefined && t.size > 0) this.events.trailers?.(t);
      if (this.state === S_TRAILERS) this.complete();
      return r;
    }
    this.trailers ??= new HeaderList();
    if (this.trailers.size + 1 > this.limits.maxTrailerCount) {
      this.fail(this.err(ErrorCodes.HTTP1_HEADERS_TOO_LARGE, "too_many_trailers", "too many trailer fields"));
      return FAILED;
    }
    return this.fieldLine(this.trailers, false) ? r : FAILED;
  }

  /** Version octets src[i, le): 1.0 and 1.1 parse, other well-formed versions are 505, the rest 400. */
  protected version(i: number): HttpVersion | undefined {
    const src = this.src;
    const major = src[i + 5]!;
    const minor = src[i + 7]!;
    const ok =
      this.le - i === 8 &&
      src[i] === 0x48 && // H
      src[i + 1] === 0x54 && // T
      src[i + 2] === 0x54 && // T
      src[i + 3] === 0x50 && // P
      src[i + 4] === 0x2f && // /
      src[i + 6] === 0x2e && // .
      major >= 0x30 &&
      major <= 0x39 &&
      minor >= 0x30 &&
      minor <= 0x39;
    if (!ok) {
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "invalid_version", "malformed HTTP version"));
      return undefined;
    }
    if (major === 0x31 && minor === 0x31) return "1.1";
    if (major === 0x31 && minor === 0x30) return "1.0";
    this.fail(this.err(ErrorCodes.HTTP1_VERSION_UNSUPPORTED, "unsupported_version", `HTTP/${latin1(src, i + 5, i + 8)} is not supported`));
    return undefined;
  }

  protected connectionFlags(version: HttpVersion): { close: boolean; keepAlive: boolean } {
    let close = false;
    let keep = false;
    if (this.connection !== undefined) {
      for (const part of this.connection.split(",")) {
        const t = part.trim().toLowerCase();
        if (t === "close") close = true;
        else if (t === "keep-alive") keep = true;
      }
    }
    return { close, keepAlive: !close && (version === "1.1" || keep) };
  }
}

