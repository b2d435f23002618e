// The one error catalog. Every failure the mesh reports carries a stable code from here; the
// mapping from a code to what goes on the wire (HBONE status, metric response flag, exit status)
// lives in this file and nowhere else.

export const ErrorCodes = {
  // configuration and flags
  CONFIG_PARSE: "CONFIG_PARSE",
  CONFIG_INVALID: "CONFIG_INVALID",
  CONFIG_FILE_MISSING: "CONFIG_FILE_MISSING",
  FLAG_INVALID: "FLAG_INVALID",
  // identity (SPIFFE id syntax and X.509-SVID verification)
  SPIFFE_ID_INVALID: "SPIFFE_ID_INVALID",
  SVID_NO_URI_SAN: "SVID_NO_URI_SAN",
  SVID_MULTIPLE_URI_SANS: "SVID_MULTIPLE_URI_SANS",
  SVID_BAD_SPIFFE_ID: "SVID_BAD_SPIFFE_ID",
  SVID_LEAF_IS_CA: "SVID_LEAF_IS_CA",
  SVID_KEY_USAGE_MISSING: "SVID_KEY_USAGE_MISSING",
  SVID_KEY_USAGE_NOT_CRITICAL: "SVID_KEY_USAGE_NOT_CRITICAL",
  SVID_KEY_USAGE_INVALID: "SVID_KEY_USAGE_INVALID",
  SVID_EKU_MISSING_USAGE: "SVID_EKU_MISSING_USAGE",
  SVID_EXPIRED: "SVID_EXPIRED",
  SVID_NOT_YET_VALID: "SVID_NOT_YET_VALID",
  SVID_UNTRUSTED_CHAIN: "SVID_UNTRUSTED_CHAIN",
  SVID_TRUST_DOMAIN_MISMATCH: "SVID_TRUST_DOMAIN_MISMATCH",
  SVID_IDENTITY_MISMATCH: "SVID_IDENTITY_MISMATCH",
  SVID_NO_PEER_CERTIFICATE: "SVID_NO_PEER_CERTIFICATE",
  SVID_MALFORMED: "SVID_MALFORMED", // unparseable, oversized, duplicate or unsupported critical extension
  CA_EXISTS: "CA_EXISTS",
  CA_MISSING: "CA_MISSING",
  CA_INVALID: "CA_INVALID",
  CERT_UNAVAILABLE: "CERT_UNAVAILABLE",
  // tunnel (HBONE)
  HBONE_BAD_METHOD: "HBONE_BAD_METHOD",
  HBONE_BAD_AUTHORITY: "HBONE_BAD_AUTHORITY",
  HBONE_IP_MISMATCH: "HBONE_IP_MISMATCH",
  HBONE_SELF_CALL: "HBONE_SELF_CALL",
  HBONE_UNKNOWN_WORKLOAD: "HBONE_UNKNOWN_WORKLOAD",
  HBONE_UPSTREAM_CONNECT: "HBONE_UPSTREAM_CONNECT",
  HBONE_STATUS: "HBONE_STATUS",
  HBONE_TLS_FAILURE: "HBONE_TLS_FAILURE",
  HBONE_H2_FAILURE: "HBONE_H2_FAILURE",
  HBONE_ALPN: "HBONE_ALPN",
  HBONE_LIMIT: "HBONE_LIMIT",
  HBONE_DRAINING: "HBONE_DRAINING",
  AUTHZ_DENIED: "AUTHZ_DENIED",
  // routing
  NO_HEALTHY_UPSTREAM: "NO_HEALTHY_UPSTREAM",
  UPSTREAM_CONNECT: "UPSTREAM_CONNECT",
  SOCKS_PROTOCOL: "SOCKS_PROTOCOL",
  UNKNOWN_HOST: "UNKNOWN_HOST",
  // waypoints: a destination's waypoint cannot be resolved; traffic must go through one
  WAYPOINT_UNRESOLVED: "WAYPOINT_UNRESOLVED",
  WAYPOINT_REQUIRED: "WAYPOINT_REQUIRED",
  // the waypoint's L7 upstream
  UPSTREAM_RESET: "UPSTREAM_RESET",
  UPSTREAM_TIMEOUT: "UPSTREAM_TIMEOUT",
  REQUEST_TIMEOUT: "REQUEST_TIMEOUT",
  ROUTE_BACKEND_MISSING: "ROUTE_BACKEND_MISSING",
  DOWNSTREAM_CLOSED: "DOWNSTREAM_CLOSED",
  // process
  ADDRESS_IN_USE: "ADDRESS_IN_USE",
  LISTEN_FAILED: "LISTEN_FAILED",
  NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
  INTERNAL: "INTERNAL",
  // traffic capture (Linux: network namespaces, socket options)
  NETNS_FAILED: "NETNS_FAILED",
  SOCKET_OPTION_FAILED: "SOCKET_OPTION_FAILED",
  // captured mode: pod hand-off (`mesh pod add|remove`) and redirect rules
  POD_UNKNOWN_WORKLOAD: "POD_UNKNOWN_WORKLOAD",
  POD_SOCKET_UNAVAILABLE: "POD_SOCKET_UNAVAILABLE",
  CAPTURE_RULES_FAILED: "CAPTURE_RULES_FAILED",
  // HTTP/1.1 codec (core/http1): a request we refuse, or an upstream response we cannot frame
  HTTP1_MALFORMED: "HTTP1_MALFORMED",
  HTTP1_FRAMING: "HTTP1_FRAMING", // ambiguous or invalid body framing (request smuggling defence)
  HTTP1_METHOD_NOT_ALLOWED: "HTTP1_METHOD_NOT_ALLOWED",
  HTTP1_HEADER_TIMEOUT: "HTTP1_HEADER_TIMEOUT",
  HTTP1_BODY_TOO_LARGE: "HTTP1_BODY_TOO_LARGE",
  HTTP1_URI_TOO_LONG: "HTTP1_URI_TOO_LONG",
  HTTP1_HEADERS_TOO_LARGE: "HTTP1_HEADERS_TOO_LARGE",
  HTTP1_TE_UNSUPPORTED: "HTTP1_TE_UNSUPPORTED",
  HTTP1_VERSION_UNSUPPORTED: "HTTP1_VERSION_UNSUPPORTED",
  HTTP1_INVALID_FIELD: "HTTP1_INVALID_FIELD", // we were asked to write a header that would corrupt the message
  HTTP1_UPSTREAM_PROTOCOL: "HTTP1_UPSTREAM_PROTOCOL",
  // Proxy-Wasm plugins (wasm/): loading, ABI, and the runtime failures a fail strategy applies to
  WASM_MODULE_INVALID: "WASM_MODULE_INVALID",
  WASM_ABI_UNSUPPORTED: "WASM_ABI_UNSUPPORTED",
  WASM_CONFIG_REJECTED: "WASM_CONFIG_REJECTED",
  WASM_TRAP: "WASM_TRAP",
  WASM_TIMEOUT: "WASM_TIMEOUT",
  WASM_MEMORY_LIMIT: "WASM_MEMORY_LIMIT",
  WASM_BUFFER_LIMIT: "WASM_BUFFER_LIMIT", // a body the plugin buffers grew past the host's bound
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** An error the mesh knows how to report: a stable code, an operator-facing message, details. */
export class MeshError extends Error {
  readonly code: ErrorCode;
  readonly details: readonly string[];
  constructor(code: ErrorCode, message: string, opts: { details?: readonly string[]; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "MeshError";
    this.code = code;
    this.details = opts.details ?? [];
  }
}

export function isMeshError(e: unknown, code?: ErrorCode): e is MeshError {
  return e instanceof MeshError && (code === undefined || e.code === code);
}

/** Wraps anything thrown into a MeshError, keeping the code if it already has one. */
export function asMeshError(e: unknown, fallback: ErrorCode = ErrorCodes.INTERNAL): MeshError {
  if (e instanceof MeshError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new MeshError(fallback, msg, { cause: e });
}

// ---- wire mappings ------------------------------------------------------------------------

/** HTTP status an inbound HBONE CONNECT answers with for an error (reference/ztunnel.md §2.4). */
export function hboneStatusFor(code: ErrorCode): number {
  switch (code) {
    case ErrorCodes.HBONE_BAD_METHOD:
    case ErrorCodes.HBONE_BAD_AUTHORITY:
    case ErrorCodes.HBONE_IP_MISMATCH:
      return 400;
    case ErrorCodes.AUTHZ_DENIED:
      return 401;
    default:
      return 503;
  }
}

/** Istio's `response_flags` metric label for an error (reference/ztunnel.md §7.1). */
export function responseFlagFor(code: ErrorCode | undefined): string {
  if (code === undefined) return "-";
  switch (code) {
    case ErrorCodes.AUTHZ_DENIED:
      return "DENY";
    case ErrorCodes.HBONE_TLS_FAILURE:
    case ErrorCodes.HBONE_ALPN:
      return "TLS_FAILURE";
    case ErrorCodes.HBONE_H2_FAILURE:
      return "H2_HANDSHAKE_FAILURE";
    case ErrorCodes.SVID_NO_URI_SAN:
    case ErrorCodes.SVID_MULTIPLE_URI_SANS:
    case ErrorCodes.SVID_BAD_SPIFFE_ID:
    case ErrorCodes.SVID_LEAF_IS_CA:
    case ErrorCodes.SVID_KEY_USAGE_MISSING:
    case ErrorCodes.SVID_KEY_USAGE_NOT_CRITICAL:
    case ErrorCodes.SVID_KEY_USAGE_INVALID:
    case ErrorCodes.SVID_EKU_MISSING_USAGE:
    case ErrorCodes.SVID_EXPIRED:
    case ErrorCodes.SVID_NOT_YET_VALID:
    case ErrorCodes.SVID_UNTRUSTED_CHAIN:
    case ErrorCodes.SVID_TRUST_DOMAIN_MISMATCH:
    case ErrorCodes.SVID_IDENTITY_MISMATCH:
    case ErrorCodes.SVID_NO_PEER_CERTIFICATE:
    case ErrorCodes.SVID_MALFORMED:
      return "IDENTITY_ERROR";
    case ErrorCodes.HBONE_UPSTREAM_CONNECT:
    case ErrorCodes.UPSTREAM_CONNECT:
    case ErrorCodes.HBONE_STATUS:
      return "CONNECT";
    case ErrorCodes.NO_HEALTHY_UPSTREAM:
      return "NO_HEALTHY_UPSTREAM";
    default:
      return "CONNECT";
  }
}

/** SOCKS5 reply code (RFC 1928 §6) for an outbound failure. */
export function socksReplyFor(code: ErrorCode): number {
  switch (code) {
    case ErrorCodes.AUTHZ_DENIED:
      return 0x02; // connection not allowed by ruleset
    case ErrorCodes.UNKNOWN_HOST:
      return 0x04; // host unreachable
    case ErrorCodes.NO_HEALTHY_UPSTREAM:
    case ErrorCodes.WAYPOINT_UNRESOLVED:
      return 0x04;
    case ErrorCodes.SOCKS_PROTOCOL:
      return 0x07; // command not supported
    case ErrorCodes.UPSTREAM_CONNECT:
    case ErrorCodes.HBONE_UPSTREAM_CONNECT:
      return 0x05; // connection refused
    default:
      return 0x01; // general failure
  }
}

/** Maps an HBONE response status received by a client back to a code. */
export function codeForHboneStatus(status: number): ErrorCode {
  if (status === 401 || status === 403) return ErrorCodes.AUTHZ_DENIED;
  if (status === 400) return ErrorCodes.HBONE_BAD_AUTHORITY;
  return ErrorCodes.HBONE_STATUS;
}

/**
 * What the waypoint answers (and reports) when it cannot forward a request: HTTP status, Envoy's
 * response flag, `response_code_details`, and the body Envoy would send.
 */
export function l7FailureFor(code: ErrorCode): { status: number; flag: string; details: string; body: string } {
  switch (code) {
    case ErrorCodes.AUTHZ_DENIED:
      return { status: 403, flag: "-", details: "rbac_access_denied", body: "RBAC: access denied" };
    case ErrorCodes.NO_HEALTHY_UPSTREAM:
    case ErrorCodes.WAYPOINT_UNRESOLVED:
      return { status: 503, flag: "UH", details: "no_healthy_upstream", body: "no healthy upstream" };
    case ErrorCodes.ROUTE_BACKEND_MISSING:
      return { status: 500, flag: "NR", details: "route_backend_not_found", body: "" };
    case ErrorCodes.UPSTREAM_CONNECT:
    case ErrorCodes.HBONE_UPSTREAM_CONNECT:
    case ErrorCodes.HBONE_STATUS:
    case ErrorCodes.HBONE_TLS_FAILURE:
    case ErrorCodes.SVID_IDENTITY_MISMATCH:
      return { status: 503, flag: "UF", details: "upstream_reset_before_response_started{connection_failure}", body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure" };
    case ErrorCodes.UPSTREAM_RESET:
      return { status: 503, flag: "UC", details: "upstream_reset_before_response_started{connection_termination}", body: "upstream connect error or disconnect/reset before headers. reset reason: connection termination" };
    case ErrorCodes.UPSTREAM_TIMEOUT:
    case ErrorCodes.REQUEST_TIMEOUT:
      return { status: 504, flag: "UT", details: "response_timeout", body: "upstream request timeout" };
    case ErrorCodes.DOWNSTREAM_CLOSED:
      return { status: 0, flag: "DC", details: "downstream_remote_disconnect", body: "" };
    default:
      return { status: 500, flag: "-", details: "internal_error", body: "" };
  }
}

/** One line for a terminal: `error[CODE]: message` plus indented details. */
export function formatForCli(e: unknown): string {
  const m = asMeshError(e);
  const lines = [`error[${m.code}]: ${m.message}`];
  for (const d of m.details) lines.push(`  ${d}`);
  return lines.join("\n");
}

/** HTTP status a waypoint answers with for an HTTP/1.1 codec error (RFC 9110 §15, RFC 9112). */
export function http1StatusFor(code: ErrorCode): number {
  switch (code) {
    case ErrorCodes.HTTP1_MALFORMED:
    case ErrorCodes.HTTP1_FRAMING:
      return 400;
    case ErrorCodes.HTTP1_METHOD_NOT_ALLOWED:
      return 405;
    case ErrorCodes.HTTP1_HEADER_TIMEOUT:
      return 408;
    case ErrorCodes.HTTP1_BODY_TOO_LARGE:
      return 413;
    case ErrorCodes.HTTP1_URI_TOO_LONG:
      return 414;
    case ErrorCodes.HTTP1_HEADERS_TOO_LARGE:
      return 431;
    case ErrorCodes.HTTP1_TE_UNSUPPORTED:
      return 501;
    case ErrorCodes.HTTP1_UPSTREAM_PROTOCOL:
      return 502;
    case ErrorCodes.UPSTREAM_RESET: // the upstream closed mid-response (raised by core/http1 too)
      return 503;
    case ErrorCodes.HTTP1_VERSION_UNSUPPORTED:
      return 505;
    default:
      return 500;
  }
}
