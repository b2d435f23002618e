// Writes HTTP/1.1 heads, chunks and trailers. Every name and value is validated before it is
// written, so a header value from a route filter or a plugin cannot inject CRLF or a second message.
// Framing fields (Content-Length, Transfer-Encoding, Connection, Keep-Alive) are always the codec's
// own, derived from the body framing and connection state, never copied from the caller's headers.
import { invalidField, type Http1Error } from "./errors.ts";
import { FORBIDDEN_TRAILERS, HeaderList, type HeaderInit } from "./headers.ts";
import { isFieldValue, isRequestTarget, isToken } from "./syntax.ts";

/** How the body that follows a head is delimited. `close` = until we close (responses only). */
export type OutgoingFraming = { readonly kind: "none" } | { readonly kind: "length"; readonly length: number } | { readonly kind: "chunked" } | { readonly kind: "close" };

export const NO_BODY: OutgoingFraming = Object.freeze({ kind: "none" });
export const CHUNKED: OutgoingFraming = Object.freeze({ kind: "chunked" });

export interface HeadOptions {
  /** Write `Connection: close` (we close after this exchange). */
  readonly close?: boolean;
  /** HTTP/1.0 peer kept alive: write `Connection: keep-alive`. */
  readonly keepAlive10?: boolean;
  /** Response status line version (requests are always HTTP/1.1). */
  readonly version?: "1.0" | "1.1";
  /** Response to HEAD: framing `none` writes no `Content-Length: 0` (it would describe a body that exists). */
  readonly headRequest?: boolean;
}

/** Fields the codec writes itself. */
const CODEC_FIELDS: ReadonlySet<string> = new Set(["content-length", "transfer-encoding", "connection", "keep-alive"]);

/** Methods that define request content: an empty body is sent as `Content-Length: 0` (RFC 9110 §8.6). */
const CONTENT_METHODS: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH"]);

const REASONS: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  103: "Early Hints",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  417: "Expectation Failed",
  421: "Misdirected Request",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? "";
}

/** A status that never has a body, whatever the framing fields say. */
export function statusHasNoBody(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

function encode(s: string): Uint8Array {
  return Buffer.from(s, "latin1");
}

/** `name: value\r\n` for every field except the codec's own; throws on anything unsafe. */
function fieldLines(headers: HeaderInit, skip: ReadonlySet<string>, trailer: boolean): string {
  let out = "";
  const h = headers instanceof HeaderList ? headers : HeaderList.from(headers);
  for (let i = 0; i < h.size; i++) {
    const name = h.nameAt(i);
    const lower = h.lowerNameAt(i);
    const value = h.valueAt(i);
    if (!isToken(name)) throw invalidField("invalid_header_name", `refusing to write header name ${JSON.stringify(name.slice(0, 64))}`);
    if (!isFieldValue(value)) throw invalidField("invalid_header_value", `refusing to write an unsafe value for ${name}`);
    if (skip.has(lower)) {
      if (trailer) throw invalidField("forbidden_trailer", `${name} is not allowed in trailers`);
      continue;
    }
    out += `${name}: ${value}\r\n`;
  }
  return out;
}

function framingLines(framing: OutgoingFraming, withLength: boolean): string {
  switch (framing.kind) {
    case "length":
      if (!Number.isSafeInteger(framing.length) || framing.length < 0) throw invalidField("invalid_content_length", `invalid body length ${framing.length}`);
      return `content-length: ${framing.length}\r\n`;
    case "chunked":
      return "transfer-encoding: chunked\r\n";
    case "none":
      return withLength ? "content-length: 0\r\n" : "";
    case "close":
      return "";
  }
}

function connectionLine(opts: HeadOptions): string {
  return opts.close ? "connection: close\r\n" : opts.keepAlive10 ? "connection: keep-alive\r\n" : "";
}

/** `METHOD target HTTP/1.1` and fields. `framing.kind` `close` is not valid for a request. */
export function writeRequestHead(method: string, target: string, headers: HeaderInit, framing: OutgoingFraming, opts: HeadOptions = {}): Uint8Array {
  if (!isToken(method)) throw invalidField("invalid_method", `refusing to write method ${JSON.stringify(method.slice(0, 32))}`);
  if (!isRequestTarget(target)) throw invalidField("invalid_target", "refusing to write an unsafe request target");
  if (framing.kind === "close") throw invalidField("invalid_framing", "a request body cannot be delimited by closing the connection");
  const head =
    `${method} ${target} HTTP/1.1\r\n` +
    fieldLines(headers, CODEC_FIELDS, false) +
    framingLines(framing, CONTENT_METHODS.has(method)) +
    connectionLine(opts) +
    "\r\n";
  return encode(head);
}

/** Validated `name: value\r\n` lines of `headers` without the codec's own fields (throws Http1Error). */
export function formatFields(headers: HeaderInit): string {
  return fieldLines(headers, CODEC_FIELDS, false);
}

/** Status line and fields; statuses without a body get no framing fields (304 keeps a length). */
export function writeResponseHead(status: number, reason: string | undefined, headers: HeaderInit, framing: OutgoingFraming, opts: HeadOptions = {}): Uint8Array {
  return responseHeadFromFields(status, reason, formatFields(headers), framing, opts);
}

/** writeResponseHead with fields already formatted by formatFields (the server commits fields before framing). */
export function responseHeadFromFields(status: number, reason: string | undefined, fields: string, framing: OutgoingFraming, opts: HeadOptions = {}): Uint8Array {
  if (!Number.isInteger(status) || status < 100 || status > 999) throw invalidField("invalid_status", `refusing to write status ${status}`);
  const phrase = reason ?? reasonPhrase(status);
  if (!isFieldValue(phrase)) throw invalidField("invalid_reason", "refusing to write an unsafe reason phrase");
  let framingText = "";
  if (status === 304) framingText = framing.kind === "length" ? framingLines(framing, false) : "";
  else if (!statusHasNoBody(status)) framingText = framingLines(framing, opts.headRequest !== true);
  const close = opts.close === true || framing.kind === "close";
  const head =
    `HTTP/${opts.version ?? "1.1"} ${status} ${phrase}\r\n` +
    fields +
    framingText +
    connectionLine({ close, keepAlive10: !close && opts.keepAlive10 === true }) +
    "\r\n";
  return encode(head);
}

/** One chunk (`size CRLF data CRLF`) in a single buffer: one write, one DATA frame in a tunnel. */
export function encodeChunk(data: Uint8Array): Uint8Array {
  const size = data.length.toString(16);
  const out = Buffer.allocUnsafe(size.length + 2 + data.length + 2);
  out.write(size, 0, "latin1");
  out[size.length] = 0x0d;
  out[size.length + 1] = 0x0a;
  out.set(data, size.length + 2);
  out[out.length - 2] = 0x0d;
  out[out.length - 1] = 0x0a;
  return out;
}

/** The last chunk and the trailer section. */
export function encodeLastChunk(trailers?: HeaderInit): Uint8Array {
  if (trailers === undefined) return encode("0\r\n\r\n");
  return encode(`0\r\n${fieldLines(trailers, FORBIDDEN_TRAILERS, true)}\r\n`);
}

/** Joins pieces into one buffer (a head and a small body become one write). */
export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (b.length === 0) return a;
  const out = Buffer.allocUnsafe(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** The complete answer to a request we refuse: the error's status, its reason as a text body, and close. */
export function errorResponse(err: Http1Error, version: "1.0" | "1.1" = "1.1"): Uint8Array {
  const body = encode(`${err.reason}\n`);
  const head = writeResponseHead(err.status, undefined, [["content-type", "text/plain"]], { kind: "length", length: body.length }, { close: true, version });
  return concatBytes(head, body);
}

