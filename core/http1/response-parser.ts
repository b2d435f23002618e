// Responses (the client side of the waypoint): status line, 1xx skipping, no-body rules. Every
// problem is the upstream's, so errors carry HTTP1_UPSTREAM_PROTOCOL (502) or UPSTREAM_RESET (503).
import { ErrorCodes, type ErrorCode } from "../errors/index.ts";
import { Http1Error } from "./errors.ts";
import { DEFAULT_HTTP1_LIMITS, type Http1Limits } from "./limits.ts";
import { CR, MessageParser, SP, S_WAITING, type BodyKind, type HttpVersion, type ParserEvents, type ResponseHead } from "./parser.ts";
import { FIELD_CHAR, latin1 } from "./syntax.ts";

/** 1xx responses tolerated before the final one (a server could otherwise stream 103s forever). */
const MAX_INFORMATIONAL = 32;

export class ResponseParser extends MessageParser<ResponseHead> {
  private requestMethod = "";
  private status = 0;
  private reason = "";
  private ver: HttpVersion = "1.1";
  private informationals = 0;

  constructor(events: ParserEvents<ResponseHead>, limits: Http1Limits = DEFAULT_HTTP1_LIMITS) {
    super(events, limits, S_WAITING);
  }

  /** A request with `method` was sent: parse its response (HEAD responses have no body). */
  expect(method: string): void {
    this.requestMethod = method;
    this.informationals = 0;
    this.resumeNext();
  }

  // Every response-side problem is the upstream's fault: 502, or 503 when it went away.
  protected err(_code: ErrorCode, reason: string, message: string): Http1Error {
    return new Http1Error(ErrorCodes.HTTP1_UPSTREAM_PROTOCOL, reason, `upstream response: ${message}`);
  }

  protected headOverflow(startLine: boolean): Http1Error {
    return this.err(ErrorCodes.HTTP1_HEADERS_TOO_LARGE, startLine ? "status_line_too_long" : "headers_too_large", "response head exceeds the configured limit");
  }

  protected eofError(inHead: boolean): Http1Error {
    return new Http1Error(ErrorCodes.UPSTREAM_RESET, inHead ? "eof_in_head" : "eof_in_body", "upstream closed the connection mid-response");
  }

  protected override eofBetweenMessages(): Http1Error | undefined {
    return new Http1Error(ErrorCodes.UPSTREAM_RESET, "eof_before_response", "upstream closed the connection before responding");
  }

  /** HTTP-version SP 3DIGIT SP reason-phrase; a missing reason (and its SP) is tolerated. */
  protected startLine(): boolean {
    const src = this.src;
    const ls = this.ls;
    const le = this.le;
    if (le - ls < 12 || src[ls + 8] !== SP) {
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "invalid_status_line", "malformed status line"));
      return false;
    }
    this.le = ls + 8;
    const version = this.version(ls);
    this.le = le;
    if (version === undefined) return false;
    let status = 0;
    for (let k = ls + 9; k < ls + 12; k++) {
      const d = src[k]! - 0x30;
      if (d < 0 || d > 9) {
        this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "invalid_status_line", "malformed status code"));
        return false;
      }
      status = status * 10 + d;
    }
    if (status < 100) {
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "invalid_status_line", "status code below 100"));
      return false;
    }
    let reason = "";
    if (le > ls + 12) {
      if (src[ls + 12] !== SP) {
        this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "invalid_status_line", "malformed status line"));
        return false;
      }
      for (let k = ls + 13; k < le; k++) {
        if (FIELD_CHAR[src[k]!] !== 1) {
          this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, src[k] === CR ? "bare_cr" : "invalid_status_line", "invalid octet in reason phrase"));
          return false;
        }
      }
      reason = latin1(src, ls + 13, le);
    }
    this.ver = version;
    this.status = status;
    this.reason = reason;
    return true;
  }

  protected headDone(): void {
    const status = this.status;
    if (status < 200) {
      if (status === 101) {
        this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "unexpected_upgrade", "101 Switching Protocols without an Upgrade request"));
        return;
      }
      if (++this.informationals > MAX_INFORMATIONAL) {
        this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "too_many_informational", "too many 1xx responses"));
        return;
      }
      const info: ResponseHead = {
        version: this.ver,
        status,
        reason: this.reason,
        headers: this.headers,
        keepAlive: true,
        bodyKind: "none",
        contentLength: undefined,
        headBytes: this.headBytes,
      };
      // the final response for the same request follows on the same parse
      const n = this.informationals;
      this.resetMessage();
      this.informationals = n;
      this.events.informational?.(info);
      return;
    }
    const f = this.framing(this.ver === "1.0");
    if (f === undefined) return;
    const noBody = this.requestMethod === "HEAD" || status === 204 || status === 304;
    const bodyKind: BodyKind = noBody ? "none" : (f.kind ?? "close");
    const flags = this.connectionFlags(this.ver);
    const head: ResponseHead = {
      version: this.ver,
      status,
      reason: this.reason,
      headers: this.headers,
      keepAlive: flags.keepAlive && bodyKind !== "close",
      bodyKind,
      contentLength: f.length,
      headBytes: this.headBytes,
    };
    this.events.head(head);
    this.beginBody(bodyKind, f.length);
  }
}
