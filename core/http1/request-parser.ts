// Requests (the server side of the waypoint): request line, target forms, Host rules, framing.
import { ErrorCodes, type ErrorCode } from "../errors/index.ts";
import { Http1Error } from "./errors.ts";
import { DEFAULT_HTTP1_LIMITS, type Http1Limits } from "./limits.ts";
import { CR, MessageParser, SP, S_HEAD, type HttpVersion, type ParserEvents, type RequestHead, type TargetForm } from "./parser.ts";
import { TARGET_CHAR, TCHAR, isValidAuthority, latin1 } from "./syntax.ts";

/** Interned method strings: most requests use one of these, so no allocation. */
function methodOf(src: Uint8Array, s: number, e: number): string {
  const n = e - s;
  if (n === 3 && src[s] === 0x47 && src[s + 1] === 0x45 && src[s + 2] === 0x54) return "GET";
  if (n === 4 && src[s] === 0x50 && src[s + 1] === 0x4f && src[s + 2] === 0x53 && src[s + 3] === 0x54) return "POST";
  return latin1(src, s, e);
}

export class RequestParser extends MessageParser<RequestHead> {
  private method = "";
  private target = "";
  private targetForm: TargetForm = "origin";
  private path = "";
  private absAuthority: string | undefined;
  private ver: HttpVersion = "1.1";

  constructor(events: ParserEvents<RequestHead>, limits: Http1Limits = DEFAULT_HTTP1_LIMITS) {
    super(events, limits, S_HEAD);
  }

  /** Parse the next pipelined request (call once the previous response is done). */
  next(): void {
    this.resumeNext();
  }

  protected override underscore(): "allow" | "drop" | "reject" {
    return this.limits.headersWithUnderscores;
  }

  protected err(code: ErrorCode, reason: string, message: string): Http1Error {
    return new Http1Error(code, reason, message);
  }

  protected headOverflow(startLine: boolean): Http1Error {
    return startLine
      ? new Http1Error(ErrorCodes.HTTP1_URI_TOO_LONG, "request_line_too_long", `request line exceeds ${this.limits.maxStartLineBytes} bytes`)
      : new Http1Error(ErrorCodes.HTTP1_HEADERS_TOO_LARGE, "headers_too_large", `request head exceeds ${this.limits.maxHeadBytes} bytes`);
  }

  protected eofError(inHead: boolean): Http1Error {
    // nobody is left to answer: the client went away mid-request
    return inHead
      ? new Http1Error(ErrorCodes.DOWNSTREAM_CLOSED, "eof_in_head", "connection ended inside a request head")
      : new Http1Error(ErrorCodes.DOWNSTREAM_CLOSED, "eof_in_body", "connection ended inside a request body");
  }

  /** method SP request-target SP HTTP-version (RFC 9112 §3), single spaces only. */
  protected startLine(): boolean {
    const src = this.src;
    const le = this.le;
    const ms = this.ls;
    let i = ms;
    while (i < le && TCHAR[src[i]!] === 1) i++;
    if (i === ms || i === le || src[i] !== SP) {
      const reason = i < le && src[i] === CR ? "bare_cr" : i === ms || i === le ? "invalid_request_line" : "invalid_method";
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, reason, "invalid request line"));
      return false;
    }
    const method = methodOf(src, ms, i);
    const ts = ++i;
    while (i < le && TARGET_CHAR[src[i]!] === 1) i++;
    if (i === ts || i === le || src[i] !== SP) {
      const reason = i < le && src[i] === CR ? "bare_cr" : i === ts || i === le ? "invalid_request_line" : "invalid_target";
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, reason, "invalid request target"));
      return false;
    }
    const target = latin1(src, ts, i);
    const version = this.version(i + 1);
    if (version === undefined) return false;
    this.method = method;
    this.target = target;
    this.ver = version;
    this.absAuthority = undefined;
    if (method === "CONNECT") {
      // A tunnel inside the tunnel: the waypoint is an L7 proxy and never opens one (see index.ts).
      this.fail(
        isValidAuthority(target, true)
          ? this.err(ErrorCodes.HTTP1_METHOD_NOT_ALLOWED, "connect_not_allowed", "CONNECT is not served by the waypoint")
          : this.err(ErrorCodes.HTTP1_MALFORMED, "invalid_target", "CONNECT needs an authority-form target"),
      );
      return false;
    }
    const t0 = src[ts];
    if (t0 === 0x2f) {
      this.targetForm = "origin";
      this.path = target;
    } else if (i - ts === 1 && t0 === 0x2a) {
      if (method !== "OPTIONS") {
        this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "invalid_target", "asterisk-form is only valid for OPTIONS"));
        return false;
      }
      this.targetForm = "asterisk";
      this.path = "*";
    } else {
      const lower = target.slice(0, 8).toLowerCase();
      const schemeLen = lower.startsWith("http://") ? 7 : lower.startsWith("https://") ? 8 : 0;
      if (schemeLen === 0) {
        this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "invalid_target", "request target is not origin-, absolute- or asterisk-form"));
        return false;
      }
      let end = schemeLen;
      while (end < target.length && target[end] !== "/" && target[end] !== "?") end++;
      const authority = target.slice(schemeLen, end);
      if (!isValidAuthority(authority)) {
        this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "invalid_target", "absolute-form target has an invalid authority"));
        return false;
      }
      const rest = target.slice(end);
      this.targetForm = "absolute";
      this.absAuthority = authority;
      this.path = rest === "" ? "/" : rest[0] === "?" ? `/${rest}` : rest;
    }
    return true;
  }

  protected headDone(): void {
    const http10 = this.ver === "1.0";
    if (this.hostCount > 1) {
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "multiple_host", "more than one Host field"));
      return;
    }
    if (this.hostCount === 0 && !http10) {
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "missing_host", "HTTP/1.1 request without Host"));
      return;
    }
    if (this.host !== undefined && !isValidAuthority(this.host)) {
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "invalid_host", "invalid Host"));
      return;
    }
    // RFC 9112 §3.2.2 lets the absolute-form authority win; a disagreement is refused instead, so
    // routing (Host) and policy can never see two different destinations.
    if (this.absAuthority !== undefined && this.host !== undefined && this.absAuthority.toLowerCase() !== this.host.toLowerCase()) {
      this.fail(this.err(ErrorCodes.HTTP1_MALFORMED, "absolute_form_host_mismatch", "absolute-form authority differs from Host"));
      return;
    }
    const f = this.framing(http10);
    if (f === undefined) return;
    const { keepAlive } = this.connectionFlags(this.ver);
    const bodyKind = f.kind ?? "none";
    const head: RequestHead = {
      method: this.method,
      target: this.target,
      targetForm: this.targetForm,
      path: this.path,
      authority: this.host ?? this.absAuthority,
      version: this.ver,
      headers: this.headers,
      keepAlive,
      bodyKind,
      contentLength: bodyKind === "length" ? f.length : bodyKind === "none" ? 0 : undefined,
      expectContinue: !http10 && this.expectField !== undefined && this.expectField.trim().toLowerCase() === "100-continue",
      headBytes: this.headBytes,
    };
    if (bodyKind === "length" && f.length! > this.limits.maxBodyBytes) {
      this.fail(this.err(ErrorCodes.HTTP1_BODY_TOO_LARGE, "body_too_large", "Content-Length exceeds the configured body limit"));
      return;
    }
    this.events.head(head);
    this.beginBody(bodyKind, f.length);
  }
}

