// Bounds on everything the HTTP/1.1 codec buffers. Defaults follow Envoy's HTTP connection manager
// (max_request_headers_kb 60, max_headers_count 100) and llhttp's chunk-extension cap; every buffer
// in the codec is checked against these before it grows, so a peer cannot make us hold more.
import { ErrorCodes, MeshError } from "../errors/index.ts";

/** What to do with a request header whose name contains `_` (Envoy `headers_with_underscores_action`). */
export type UnderscoreHeaderAction = "allow" | "drop" | "reject";

export interface Http1Limits {
  /** Request line (414 when exceeded) or status line, CRLF excluded. */
  readonly maxStartLineBytes: number;
  /** Whole head: start line, fields and every CRLF, up to and including the empty line (431). */
  readonly maxHeadBytes: number;
  /** Field lines in a head (431). */
  readonly maxHeaderCount: number;
  /** Trailer section bytes including CRLFs (431 for requests). */
  readonly maxTrailerBytes: number;
  /** Trailer field lines. */
  readonly maxTrailerCount: number;
  /** Chunk-extension bytes summed over one message: nothing legitimate sends them (CVE-2024-22019). */
  readonly maxChunkExtensionBytes: number;
  /** Body bytes of one message; `Infinity` = unlimited (413 for requests). */
  readonly maxBodyBytes: number;
  /** Input held past the end of the current message (pipelined requests) before the transport is paused. */
  readonly maxPipelinedBytes: number;
  /** Request headers with `_` in the name: smuggling via CGI-style name mangling (reliability.md §7 C.20). */
  readonly headersWithUnderscores: UnderscoreHeaderAction;
}

export const DEFAULT_HTTP1_LIMITS: Http1Limits = Object.freeze({
  maxStartLineBytes: 16 * 1024,
  maxHeadBytes: 60 * 1024,
  maxHeaderCount: 100,
  maxTrailerBytes: 16 * 1024,
  maxTrailerCount: 100,
  maxChunkExtensionBytes: 16 * 1024,
  maxBodyBytes: Infinity,
  maxPipelinedBytes: 64 * 1024,
  headersWithUnderscores: "reject",
});

const NUMERIC: readonly (keyof Http1Limits)[] = [
  "maxStartLineBytes",
  "maxHeadBytes",
  "maxHeaderCount",
  "maxTrailerBytes",
  "maxTrailerCount",
  "maxChunkExtensionBytes",
  "maxBodyBytes",
  "maxPipelinedBytes",
];

/** Limits objects already validated: passing one back costs nothing per connection. */
const RESOLVED = new WeakSet<object>([DEFAULT_HTTP1_LIMITS]);

/** Defaults overlaid with `overrides`, validated once (positive integers; only maxBodyBytes may be Infinity). */
export function resolveHttp1Limits(overrides: Partial<Http1Limits> = {}): Http1Limits {
  if (RESOLVED.has(overrides)) return overrides as Http1Limits;
  const merged = { ...DEFAULT_HTTP1_LIMITS, ...overrides };
  for (const key of NUMERIC) {
    const v = merged[key] as number;
    const ok = key === "maxBodyBytes" && v === Infinity ? true : Number.isSafeInteger(v) && v > 0;
    if (!ok) throw new MeshError(ErrorCodes.CONFIG_INVALID, `http1 limit ${key} must be a positive integer, got ${String(v)}`);
  }
  if (merged.maxStartLineBytes > merged.maxHeadBytes) {
    throw new MeshError(ErrorCodes.CONFIG_INVALID, "http1 limit maxStartLineBytes must not exceed maxHeadBytes");
  }
  if (!["allow", "drop", "reject"].includes(merged.headersWithUnderscores)) {
    throw new MeshError(ErrorCodes.CONFIG_INVALID, `http1 headersWithUnderscores must be allow, drop or reject`);
  }
  const out = Object.freeze(merged);
  RESOLVED.add(out);
  return out;
}
