// Body framing of a message from its Content-Length and Transfer-Encoding fields (RFC 9112 §6.3),
// decided strictly: every case two implementations could resolve differently is a fault, never a
// guess. This is the request-smuggling defence, so it is one pure function with table tests.
import { ErrorCodes, type ErrorCode } from "../errors/index.ts";
import { TCHAR } from "./syntax.ts";

export interface Framing {
  /** undefined: neither field was sent (no body for a request, read-until-close for a response). */
  readonly kind: "none" | "length" | "chunked" | undefined;
  readonly length: number | undefined;
}

export interface FramingFault {
  readonly code: ErrorCode;
  readonly reason: string;
  readonly message: string;
}

const NO_FIELDS: Framing = Object.freeze({ kind: undefined, length: undefined });
const CHUNKED: Framing = Object.freeze({ kind: "chunked", length: undefined });
const EMPTY: Framing = Object.freeze({ kind: "none", length: 0 });

function fault(code: ErrorCode, reason: string, message: string): FramingFault {
  return { code, reason, message };
}

/**
 * @param te every Transfer-Encoding line joined with ","
 * @param clCount how many Content-Length lines; clValue the (last) one's value
 */
export function bodyFraming(te: string | undefined, clCount: number, clValue: string, http10: boolean): Framing | FramingFault {
  if (te !== undefined) {
    if (clCount > 0) return fault(ErrorCodes.HTTP1_FRAMING, "content_length_and_transfer_encoding", "both Content-Length and Transfer-Encoding");
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (http10) return fault(ErrorCodes.HTTP1_FRAMING, "transfer_encoding_in_http10", "Transfer-Encoding in an HTTP/1.0 message");
    let chunked = 0;
    let other = false;
    let last = "";
    for (const raw of te.split(",")) {
      const t = raw.replace(/^[ \t]+|[ \t]+$/g, "").toLowerCase();
      if (t === "") continue; // RFC 9110 §5.6.1: empty list elements are ignored
      for (let k = 0; k < t.length; k++) {
        const c = t.charCodeAt(k);
        if (c > 0xff || TCHAR[c] !== 1) return fault(ErrorCodes.HTTP1_FRAMING, "invalid_transfer_encoding", "malformed Transfer-Encoding");
      }
      if (t === "chunked") chunked++;
      else other = true;
      last = t;
    }
    if (last === "") return fault(ErrorCodes.HTTP1_FRAMING, "invalid_transfer_encoding", "empty Transfer-Encoding");
    if (chunked > 1) return fault(ErrorCodes.HTTP1_FRAMING, "duplicate_chunked", "chunked applied more than once");
    if (chunked === 1 && last !== "chunked") return fault(ErrorCodes.HTTP1_FRAMING, "chunked_not_final", "chunked is not the final transfer coding");
    // gzip, deflate, identity or unknown: a proxy that re-frames bodies cannot pass them through.
    if (other) return fault(ErrorCodes.HTTP1_TE_UNSUPPORTED, "unsupported_transfer_encoding", `unsupported transfer coding in ${JSON.stringify(te.slice(0, 64))}`);
    return CHUNKED;
  }
  if (clCount === 0) return NO_FIELDS;
  if (clCount > 1 || clValue.includes(",")) {
    // RFC 9110 §8.6 lets a recipient collapse identical values; we refuse instead, because proxies that
    // disagree on which copy wins is how smuggling works, and no conforming sender repeats the field.
    return fault(ErrorCodes.HTTP1_FRAMING, "duplicate_content_length", "Content-Length appears more than once");
  }
  let n = 0;
  let ok = clValue.length > 0 && clValue.length <= 16;
  for (let k = 0; ok && k < clValue.length; k++) {
    const d = clValue.charCodeAt(k) - 0x30;
    if (d < 0 || d > 9) ok = false;
    else n = n * 10 + d;
  }
  if (!ok || n > Number.MAX_SAFE_INTEGER) {
    return fault(ErrorCodes.HTTP1_FRAMING, "invalid_content_length", `invalid Content-Length ${JSON.stringify(clValue.slice(0, 32))}`);
  }
  return n === 0 ? EMPTY : { kind: "length", length: n };
}
