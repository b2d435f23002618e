// The one error type the codec raises: a stable code (core/errors), the status to answer with
// (mapped there), and a finer `reason` in Envoy's response-code-details style for access logs.
import { ErrorCodes, MeshError, http1StatusFor, type ErrorCode } from "../errors/index.ts";

export class Http1Error extends MeshError {
  /** HTTP status to answer with (for a response-side error: what the proxy tells its client). */
  readonly status: number;
  /** Stable snake_case detail, e.g. `content_length_and_transfer_encoding`. */
  readonly reason: string;
  constructor(code: ErrorCode, reason: string, message: string, opts: { cause?: unknown } = {}) {
    super(code, message, { details: [reason], ...(opts.cause === undefined ? {} : { cause: opts.cause }) });
    this.name = "Http1Error";
    this.status = http1StatusFor(code);
    this.reason = reason;
  }
}

export function isHttp1Error(e: unknown): e is Http1Error {
  return e instanceof Http1Error;
}

/** An outbound field we refuse to write (it would inject or corrupt framing). */
export function invalidField(reason: string, message: string): Http1Error {
  return new Http1Error(ErrorCodes.HTTP1_INVALID_FIELD, reason, message);
}
