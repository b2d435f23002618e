// Strict HTTP/1.1 for the waypoint (RFC 9112 framing, RFC 9110 field syntax): an incremental parser,
// a validating serializer, and server/client connection drivers over any byte stream (a tunnel
// stream, a TCP connection, a node:stream Duplex). Deterministic and hardened where node:http is not
// ours to control: every ambiguity a request-smuggling attack relies on is refused, every buffer is
// bounded (Http1Limits), and heads must arrive within a deadline.
//
// Decisions beyond the RFC's MUSTs (each one is a rejection where the RFC would allow leniency):
// - Content-Length repeated, even with identical values (RFC 9110 §8.6 permits collapsing them):
//   400. Intermediaries disagreeing about which copy wins is how CL.CL smuggling works, and no
//   conforming sender repeats the field.
// - Content-Length with Transfer-Encoding: 400 (RFC 9112 §6.3 lets TE win; we never guess).
//   Transfer-Encoding on HTTP/1.0: 400. Any coding other than one final `chunked`: 501 (`chunked`
//   not last or repeated: 400). A re-framing proxy cannot pass gzip/deflate transfer codings on.
// - absolute-form target whose authority differs from Host: 400 (RFC 9112 §3.2.2 lets the URI win);
//   routing and policy must never see two destinations. Userinfo in it: 400.
// - CONNECT: 405 (400 if its target is not authority-form). The waypoint is an L7 proxy inside a
//   tunnel already; it opens no tunnels, and the bytes after a CONNECT head are not HTTP, so the
//   connection closes. No `Allow` field: every other method is allowed, which a list cannot say.
// - Header names with `_`: 400 by default (`headersWithUnderscores`: allow | drop | reject), as
//   Envoy's edge best practice; CGI-style `_`/`-` folding makes them a smuggling vector.
// - Fragments (`#`) in the request-target: 400 (never sent by clients; Envoy rejects them too).
// - Empty Host, or Host that is not `host[:port]`: 400. Trailer fields that affect framing or routing
//   (content-length, transfer-encoding, host, connection, te, trailer, upgrade, ...): 400.
// - Responses: every upstream protocol error is HTTP1_UPSTREAM_PROTOCOL (502), an upstream that
//   closes mid-response UPSTREAM_RESET (503); 101 without an Upgrade request is an error.
export { DEFAULT_HTTP1_LIMITS, resolveHttp1Limits, type Http1Limits, type UnderscoreHeaderAction } from "./limits.ts";
export { Http1Error, isHttp1Error } from "./errors.ts";
export { HeaderList, HOP_BY_HOP, appendForwardedFor, isFieldValue, isToken, listTokens, stripHopByHop, type HeaderInit } from "./headers.ts";
export type { BodyKind, HttpVersion, ParserEvents, RequestHead, ResponseHead, TargetForm } from "./parser.ts";
export { RequestParser } from "./request-parser.ts";
export { ResponseParser } from "./response-parser.ts";
export {
  CHUNKED,
  NO_BODY,
  encodeChunk,
  encodeLastChunk,
  errorResponse,
  reasonPhrase,
  statusHasNoBody,
  writeRequestHead,
  writeResponseHead,
  type HeadOptions,
  type OutgoingFraming,
} from "./serializer.ts";
export { Http1Body } from "./body.ts";
export { asTransport, type Http1Transport, type Http1TransportEvents } from "./transport.ts";
export { serveHttp1, Http1ServerConnection, type Http1Handler, type Http1ServerOptions } from "./server-conn.ts";
export { Http1Request, Http1Response } from "./server-exchange.ts";
export {
  connectHttp1,
  Http1ClientConnection,
  Http1ClientExchange,
  Http1IncomingResponse,
  type Http1ClientOptions,
  type OutgoingRequest,
} from "./client-conn.ts";
