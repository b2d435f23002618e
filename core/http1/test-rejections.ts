// The request rejection table (reliability.md §7 C.20, RFC 9112): each input with the exact status,
// code and reason it must get. Shared by the parser tests and the server connection tests.
import type { Http1Limits } from "./limits.ts";

export const H = "Host: a\r\n";

export interface Rejection {
  readonly name: string;
  readonly input: string;
  readonly status: number;
  readonly code: string;
  readonly reason: string;
  readonly limits?: Partial<Http1Limits>;
  /** The head is delivered before the error (errors found in the body). */
  readonly afterHead?: boolean;
}

const MAL = "HTTP1_MALFORMED";
const FRM = "HTTP1_FRAMING";

export const rejections: readonly Rejection[] = [
  // ---- framing: request smuggling ----
  { name: "CL with TE", input: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`, status: 400, code: FRM, reason: "content_length_and_transfer_encoding" },
  { name: "TE with CL", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n`, status: 400, code: FRM, reason: "content_length_and_transfer_encoding" },
  { name: "CL with unknown TE", input: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n`, status: 400, code: FRM, reason: "content_length_and_transfer_encoding" },
  { name: "duplicate CL, equal values", input: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, status: 400, code: FRM, reason: "duplicate_content_length" },
  { name: "duplicate CL, different values", input: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\n`, status: 400, code: FRM, reason: "duplicate_content_length" },
  { name: "CL list", input: `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\n`, status: 400, code: FRM, reason: "duplicate_content_length" },
  { name: "CL with plus sign", input: `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\n`, status: 400, code: FRM, reason: "invalid_content_length" },
  { name: "CL negative", input: `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, status: 400, code: FRM, reason: "invalid_content_length" },
  { name: "CL hex", input: `POST / HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\n`, status: 400, code: FRM, reason: "invalid_content_length" },
  { name: "CL trailing garbage", input: `POST / HTTP/1.1\r\n${H}Content-Length: 5a\r\n\r\n`, status: 400, code: FRM, reason: "invalid_content_length" },
  { name: "CL inner space", input: `POST / HTTP/1.1\r\n${H}Content-Length: 1 2\r\n\r\n`, status: 400, code: FRM, reason: "invalid_content_length" },
  { name: "CL empty", input: `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, status: 400, code: FRM, reason: "invalid_content_length" },
  { name: "CL 2^53", input: `POST / HTTP/1.1\r\n${H}Content-Length: 9007199254740992\r\n\r\n`, status: 400, code: FRM, reason: "invalid_content_length" },
  { name: "CL 17 digits", input: `POST / HTTP/1.1\r\n${H}Content-Length: 00000000000000005\r\n\r\n`, status: 400, code: FRM, reason: "invalid_content_length" },
  { name: "TE gzip", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, status: 501, code: "HTTP1_TE_UNSUPPORTED", reason: "unsupported_transfer_encoding" },
  { name: "TE identity", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`, status: 501, code: "HTTP1_TE_UNSUPPORTED", reason: "unsupported_transfer_encoding" },
  { name: "TE gzip, chunked", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n`, status: 501, code: "HTTP1_TE_UNSUPPORTED", reason: "unsupported_transfer_encoding" },
  { name: "TE chunked not last", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`, status: 400, code: FRM, reason: "chunked_not_final" },
  { name: "TE chunked then identity on two lines", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n`, status: 400, code: FRM, reason: "chunked_not_final" },
  { name: "TE chunked twice", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n`, status: 400, code: FRM, reason: "duplicate_chunked" },
  { name: "TE chunked on two lines", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`, status: 400, code: FRM, reason: "duplicate_chunked" },
  { name: "TE with parameter", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked;q=1\r\n\r\n`, status: 400, code: FRM, reason: "invalid_transfer_encoding" },
  { name: "TE quoted", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: "chunked"\r\n\r\n`, status: 400, code: FRM, reason: "invalid_transfer_encoding" },
  { name: "TE empty", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \r\n\r\n`, status: 400, code: FRM, reason: "invalid_transfer_encoding" },
  { name: "TE in HTTP/1.0", input: `POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n`, status: 400, code: FRM, reason: "transfer_encoding_in_http10" },
  // ---- line syntax ----
  { name: "obs-fold", input: `GET / HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`, status: 400, code: MAL, reason: "obs_fold" },
  { name: "obs-fold with tab", input: `GET / HTTP/1.1\r\n${H}X-A: b\r\n\tc\r\n\r\n`, status: 400, code: MAL, reason: "obs_fold" },
  { name: "whitespace before the first field", input: `GET / HTTP/1.1\r\n Host: a\r\n\r\n`, status: 400, code: MAL, reason: "obs_fold" },
  { name: "bare LF after request line", input: `GET / HTTP/1.1\n${H}\r\n`, status: 400, code: MAL, reason: "bare_lf" },
  { name: "bare LF after a field", input: `GET / HTTP/1.1\r\nHost: a\n\r\n`, status: 400, code: MAL, reason: "bare_lf" },
  { name: "bare LF ends the head", input: `GET / HTTP/1.1\r\n${H}\n`, status: 400, code: MAL, reason: "bare_lf" },
  { name: "bare LF only", input: `GET / HTTP/1.1\nHost: a\n\n`, status: 400, code: MAL, reason: "bare_lf" },
  { name: "bare CR in a value", input: `GET / HTTP/1.1\r\n${H}X-A: b\rc\r\n\r\n`, status: 400, code: MAL, reason: "bare_cr" },
  { name: "bare CR in a name", input: `GET / HTTP/1.1\r\n${H}X\r: b\r\n\r\n`, status: 400, code: MAL, reason: "bare_cr" },
  { name: "bare CR in the target", input: `GET /a\rb HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "bare_cr" },
  { name: "bare CR after the method", input: `GET\r / HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "bare_cr" },
  { name: "CR CR LF", input: `GET / HTTP/1.1\r\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_version" },
  // ---- request line ----
  { name: "method with (", input: `GE(T / HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_method" },
  { name: "method with @", input: `G@T / HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_method" },
  { name: "method with non-ASCII", input: `G\xc9T / HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_method" },
  { name: "empty method", input: ` / HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_request_line" },
  { name: "two spaces", input: `GET  / HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_request_line" },
  { name: "tab separator", input: `GET\t/ HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_method" },
  { name: "no version (HTTP/0.9)", input: `GET /\r\n\r\n`, status: 400, code: MAL, reason: "invalid_request_line" },
  { name: "trailing space after version", input: `GET / HTTP/1.1 \r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_version" },
  { name: "lower-case version", input: `GET / http/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_version" },
  { name: "version without minor", input: `GET / HTTP/1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_version" },
  { name: "version HTTP/2.0", input: `GET / HTTP/2.0\r\n${H}\r\n`, status: 505, code: "HTTP1_VERSION_UNSUPPORTED", reason: "unsupported_version" },
  { name: "version HTTP/1.2", input: `GET / HTTP/1.2\r\n${H}\r\n`, status: 505, code: "HTTP1_VERSION_UNSUPPORTED", reason: "unsupported_version" },
  { name: "version HTTP/0.9", input: `GET / HTTP/0.9\r\n${H}\r\n`, status: 505, code: "HTTP1_VERSION_UNSUPPORTED", reason: "unsupported_version" },
  // ---- request-target forms ----
  { name: "authority-form on GET", input: `GET a:80 HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_target" },
  { name: "bare word target", input: `GET index.html HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_target" },
  { name: "asterisk on GET", input: `GET * HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_target" },
  { name: "fragment", input: `GET /a#b HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_target" },
  { name: "non-ASCII in target", input: `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_target" },
  { name: "absolute-form other scheme", input: `GET ftp://a/x HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_target" },
  { name: "absolute-form userinfo", input: `GET http://u@a/x HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_target" },
  { name: "absolute-form empty authority", input: `GET http:///x HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_target" },
  { name: "absolute-form differs from Host", input: `GET http://b/x HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "absolute_form_host_mismatch" },
  { name: "absolute-form port differs from Host", input: `GET http://a:8080/x HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "absolute_form_host_mismatch" },
  { name: "CONNECT", input: `CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n`, status: 405, code: "HTTP1_METHOD_NOT_ALLOWED", reason: "connect_not_allowed" },
  { name: "CONNECT with origin-form", input: `CONNECT / HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_target" },
  { name: "CONNECT without port", input: `CONNECT a HTTP/1.1\r\n${H}\r\n`, status: 400, code: MAL, reason: "invalid_target" },
  // ---- Host ----
  { name: "missing Host", input: `GET / HTTP/1.1\r\nX-A: b\r\n\r\n`, status: 400, code: MAL, reason: "missing_host" },
  { name: "two Host fields", input: `GET / HTTP/1.1\r\n${H}${H}\r\n`, status: 400, code: MAL, reason: "multiple_host" },
  { name: "two Host fields, different case", input: `GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n`, status: 400, code: MAL, reason: "multiple_host" },
  { name: "two Host in HTTP/1.0", input: `GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n`, status: 400, code: MAL, reason: "multiple_host" },
  { name: "empty Host", input: `GET / HTTP/1.1\r\nHost:\r\n\r\n`, status: 400, code: MAL, reason: "invalid_host" },
  { name: "Host with userinfo", input: `GET / HTTP/1.1\r\nHost: u@a\r\n\r\n`, status: 400, code: MAL, reason: "invalid_host" },
  { name: "Host with a space", input: `GET / HTTP/1.1\r\nHost: a b\r\n\r\n`, status: 400, code: MAL, reason: "invalid_host" },
  { name: "Host with a path", input: `GET / HTTP/1.1\r\nHost: a/b\r\n\r\n`, status: 400, code: MAL, reason: "invalid_host" },
  { name: "Host with a bad port", input: `GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n`, status: 400, code: MAL, reason: "invalid_host" },
  { name: "Host list", input: `GET / HTTP/1.1\r\nHost: a, b\r\n\r\n`, status: 400, code: MAL, reason: "invalid_host" },
  // ---- field syntax ----
  { name: "space before colon", input: `GET / HTTP/1.1\r\nHost : a\r\n\r\n`, status: 400, code: MAL, reason: "whitespace_before_colon" },
  { name: "tab before colon", input: `GET / HTTP/1.1\r\n${H}X-A\t: b\r\n\r\n`, status: 400, code: MAL, reason: "whitespace_before_colon" },
  { name: "name with (", input: `GET / HTTP/1.1\r\n${H}X(A: b\r\n\r\n`, status: 400, code: MAL, reason: "invalid_header_name" },
  { name: "name with non-ASCII", input: `GET / HTTP/1.1\r\n${H}X\xe9: b\r\n\r\n`, status: 400, code: MAL, reason: "invalid_header_name" },
  { name: "empty name", input: `GET / HTTP/1.1\r\n${H}: b\r\n\r\n`, status: 400, code: MAL, reason: "invalid_header_name" },
  { name: "no colon", input: `GET / HTTP/1.1\r\n${H}X-A\r\n\r\n`, status: 400, code: MAL, reason: "missing_colon" },
  { name: "NUL in value", input: `GET / HTTP/1.1\r\n${H}X-A: b\x00c\r\n\r\n`, status: 400, code: MAL, reason: "invalid_header_value" },
  { name: "CTL in value", input: `GET / HTTP/1.1\r\n${H}X-A: b\x01c\r\n\r\n`, status: 400, code: MAL, reason: "invalid_header_value" },
  { name: "DEL in value", input: `GET / HTTP/1.1\r\n${H}X-A: b\x7fc\r\n\r\n`, status: 400, code: MAL, reason: "invalid_header_value" },
  { name: "underscore in name", input: `GET / HTTP/1.1\r\n${H}X_A: b\r\n\r\n`, status: 400, code: MAL, reason: "header_name_underscore" },
  // ---- chunked framing ----
  { name: "chunk size 17 hex digits", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n`, status: 400, code: FRM, reason: "invalid_chunk_size", afterHead: true },
  { name: "chunk size 2^53", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n20000000000000\r\n`, status: 400, code: FRM, reason: "invalid_chunk_size", afterHead: true },
  { name: "chunk size 2^64", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n`, status: 400, code: FRM, reason: "invalid_chunk_size", afterHead: true },
  { name: "chunk size leading space", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n`, status: 400, code: FRM, reason: "invalid_chunk_size", afterHead: true },
  { name: "chunk size trailing space", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n`, status: 400, code: FRM, reason: "invalid_chunk_size", afterHead: true },
  { name: "chunk size 0x prefix", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`, status: 400, code: FRM, reason: "invalid_chunk_size", afterHead: true },
  { name: "chunk size negative", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`, status: 400, code: FRM, reason: "invalid_chunk_size", afterHead: true },
  { name: "chunk size garbage", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5g\r\nhello\r\n0\r\n\r\n`, status: 400, code: FRM, reason: "invalid_chunk_size", afterHead: true },
  { name: "chunk size empty", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n`, status: 400, code: FRM, reason: "invalid_chunk_size", afterHead: true },
  { name: "chunk size bare LF", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`, status: 400, code: MAL, reason: "bare_lf", afterHead: true },
  { name: "chunk extension bare CR", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n`, status: 400, code: FRM, reason: "invalid_chunk_size", afterHead: true },
  { name: "chunk data too long", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n`, status: 400, code: FRM, reason: "chunk_data_not_followed_by_crlf", afterHead: true },
  { name: "chunk data ends in bare LF", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n`, status: 400, code: FRM, reason: "chunk_data_not_followed_by_crlf", afterHead: true },
  { name: "chunk data ends in bare CR", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r0\r\n\r\n`, status: 400, code: FRM, reason: "chunk_data_not_followed_by_crlf", afterHead: true },
  { name: "last chunk bare LF", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\n`, status: 400, code: MAL, reason: "bare_lf", afterHead: true },
  { name: "forbidden trailer", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n`, status: 400, code: MAL, reason: "forbidden_trailer", afterHead: true },
  { name: "trailer obs-fold", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n`, status: 400, code: MAL, reason: "obs_fold", afterHead: true },
  // ---- limits ----
  { name: "request line too long", input: `GET /${"a".repeat(200)} HTTP/1.1\r\n${H}\r\n`, status: 414, code: "HTTP1_URI_TOO_LONG", reason: "request_line_too_long", limits: { maxStartLineBytes: 100 } },
  { name: "request line too long (default 16 KiB)", input: `GET /${"a".repeat(16 * 1024)} HTTP/1.1\r\n${H}\r\n`, status: 414, code: "HTTP1_URI_TOO_LONG", reason: "request_line_too_long" },
  { name: "head too large", input: `GET / HTTP/1.1\r\n${H}X-A: ${"b".repeat(300)}\r\n\r\n`, status: 431, code: "HTTP1_HEADERS_TOO_LARGE", reason: "headers_too_large", limits: { maxHeadBytes: 256, maxStartLineBytes: 100 } },
  { name: "head too large (default 60 KiB)", input: `GET / HTTP/1.1\r\n${H}${"X-A: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n".repeat(1000)}\r\n`, status: 431, code: "HTTP1_HEADERS_TOO_LARGE", reason: "headers_too_large", limits: { maxHeaderCount: 10_000 } },
  { name: "too many fields", input: `GET / HTTP/1.1\r\n${H}${"X-A: b\r\n".repeat(100)}\r\n`, status: 431, code: "HTTP1_HEADERS_TOO_LARGE", reason: "too_many_headers" },
  { name: "body over the limit (CL)", input: `POST / HTTP/1.1\r\n${H}Content-Length: 11\r\n\r\nhello world`, status: 413, code: "HTTP1_BODY_TOO_LARGE", reason: "body_too_large", limits: { maxBodyBytes: 10 } },
  { name: "body over the limit (chunked)", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`, status: 413, code: "HTTP1_BODY_TOO_LARGE", reason: "body_too_large", limits: { maxBodyBytes: 10 }, afterHead: true },
  { name: "chunk extensions over the limit", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1;${"x".repeat(40)}\r\na\r\n1;${"y".repeat(40)}\r\nb\r\n0\r\n\r\n`, status: 413, code: "HTTP1_BODY_TOO_LARGE", reason: "chunk_extensions_too_large", limits: { maxChunkExtensionBytes: 64 }, afterHead: true },
  { name: "one huge chunk extension", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1;${"x".repeat(20_000)}\r\na\r\n0\r\n\r\n`, status: 413, code: "HTTP1_BODY_TOO_LARGE", reason: "chunk_extensions_too_large", afterHead: true },
  { name: "trailers too large", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: ${"t".repeat(100)}\r\n\r\n`, status: 431, code: "HTTP1_HEADERS_TOO_LARGE", reason: "trailers_too_large", limits: { maxTrailerBytes: 64 }, afterHead: true },
  { name: "too many trailers", input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n${"X-T: t\r\n".repeat(3)}\r\n`, status: 431, code: "HTTP1_HEADERS_TOO_LARGE", reason: "too_many_trailers", limits: { maxTrailerCount: 2 }, afterHead: true },
  { name: "leading CRLFs count toward the head", input: `${"\r\n".repeat(200)}GET / HTTP/1.1\r\n${H}\r\n`, status: 431, code: "HTTP1_HEADERS_TOO_LARGE", reason: "headers_too_large", limits: { maxHeadBytes: 256, maxStartLineBytes: 100 } },
];

