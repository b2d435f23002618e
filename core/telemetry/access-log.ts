// One access-log line per connection, with istio/ztunnel's field names (reference/ztunnel.md §7.2,
// `src/proxy/metrics.rs::ConnectionResult::record`), and one per HTTP request, with the keys of
// Istio's JSON access-log format.
import type { Logger } from "./logger.ts";

export interface ConnectionRecord {
  /** `outbound` when this proxy reported as source, `inbound` as destination. */
  direction: "outbound" | "inbound";
  /** Client address, `ip:port`. */
  srcAddr: string;
  srcWorkload?: string;
  srcNamespace?: string;
  /** Verified peer (or own) SPIFFE id; give it only when the hop used mTLS, as Istio does. */
  srcIdentity?: string;
  srcCluster?: string;
  /** The actual TCP next hop (`podIP:15008`, a waypoint, or the app for passthrough). */
  dstAddr: string;
  /** The HBONE `:authority`, when tunnelled. */
  dstHboneAddr?: string;
  dstService?: string;
  dstWorkload?: string;
  dstNamespace?: string;
  dstIdentity?: string;
  dstCluster?: string;
  clientToServerBytes: number;
  serverToClientBytes: number;
  durationMs: number;
  /** Set when the connection failed; the line becomes `connection failed` at ERROR. */
  error?: string;
  /** Istio response flag (`-`, `DENY`, `CONNECT`, ...). */
  responseFlags?: string;
  /** e.g. `TLSv1.3` for the mTLS hop. */
  tlsVersion?: string;
  /** The authorization policy (`namespace/name`) and rule index that decided, when one did. */
  authzPolicy?: string;
  authzRule?: number;
}

/** The field set of one record, in Istio's names; undefined entries are left out of the line. */
export function accessLogFields(r: ConnectionRecord): Record<string, unknown> {
  // Metrics count client→server as "received" for both reporters (istio/istio#32399); the log
  // un-flips that for the source side, so an outbound line reads as the client sees it.
  const outbound = r.direction === "outbound";
  return {
    "src.addr": r.srcAddr,
    "src.workload": r.srcWorkload,
    "src.namespace": r.srcNamespace,
    "src.identity": r.srcIdentity,
    "src.cluster": r.srcCluster,
    "dst.addr": r.dstAddr,
    "dst.hbone_addr": r.dstHboneAddr,
    "dst.service": r.dstService,
    "dst.workload": r.dstWorkload,
    "dst.namespace": r.dstNamespace,
    "dst.identity": r.dstIdentity,
    "dst.cluster": r.dstCluster,
    direction: r.direction,
    bytes_sent: outbound ? r.clientToServerBytes : r.serverToClientBytes,
    bytes_recv: outbound ? r.serverToClientBytes : r.clientToServerBytes,
    duration: `${Math.max(0, Math.floor(r.durationMs))}ms`,
    error: r.error,
    response_flags: r.responseFlags,
    tls_version: r.tlsVersion,
    "authz.policy": r.authzPolicy,
    "authz.rule": r.authzRule,
  };
}

/** Writes the line for a closed connection under scope `access`. */
export function accessLog(logger: Logger, record: ConnectionRecord): void {
  const level = record.error === undefined ? "info" : "error";
  if (!logger.enabled(level)) return;
  const access = logger.child({ scope: "access" });
  if (level === "info") access.info("connection complete", accessLogFields(record));
  else access.error("connection failed", accessLogFields(record));
}

// ---- HTTP requests (waypoint): one line per request, Istio's JSON access-log field names ----

/** One HTTP/gRPC request as this proxy handled it. */
export interface RequestRecord {
  /** When the request's first byte arrived, epoch milliseconds. */
  startTime: number;
  method: string;
  /** The path as the client sent it, before any rewrite (Envoy's `X-ENVOY-ORIGINAL-PATH?:PATH`). */
  path: string;
  /** `HTTP/1.1` or `HTTP/2`. */
  protocol: string;
  /** Status sent downstream; 0 when none was. */
  responseCode: number;
  /** Envoy response flags; `-` when absent. */
  responseFlags?: string;
  /** Why this code, in Envoy's words (`via_upstream`, `rbac_access_denied_matched_policy[none]`, ...). */
  responseCodeDetails?: string;
  connectionTerminationDetails?: string;
  /** Body bytes received from the client. */
  bytesReceived: number;
  /** Body bytes sent to the client. */
  bytesSent: number;
  /** First request byte to last response byte. */
  durationMs: number;
  /** Time the upstream took to its response headers (Envoy's x-envoy-upstream-service-time). */
  upstreamServiceTimeMs?: number;
  /** Request headers, as received. */
  xForwardedFor?: string;
  userAgent?: string;
  requestId?: string;
  authority?: string;
  /** The `traceparent` header as forwarded; the line carries its trace id. */
  traceparent?: string;
  /** `ip:port` of the endpoint that served the request. */
  upstreamHost?: string;
  /** The upstream cluster, Istio style (`inbound-vip|80|http|reviews.default.svc.cluster.local`). */
  upstreamCluster?: string;
  upstreamLocalAddress?: string;
  downstreamLocalAddress?: string;
  downstreamRemoteAddress?: string;
  /** SNI, when the request came over TLS that named one. */
  requestedServerName?: string;
  upstreamTransportFailureReason?: string;
  /** `namespace/name` of the HTTPRoute (and rule) that routed the request, when one did. */
  routeName?: string;
  /** Verified peer identity of the client (the HBONE peer, or the original source it vouched for). */
  srcIdentity?: string;
  srcWorkload?: string;
  srcNamespace?: string;
  /** Identity the upstream endpoint presented. */
  dstIdentity?: string;
  dstWorkload?: string;
  dstNamespace?: string;
  /** Destination service hostname. */
  dstService?: string;
  /** Set when the proxy itself failed the request; the line becomes `request failed` at ERROR. */
  error?: string;
}

/** Client-supplied header values are cut here so one request cannot write an unbounded line. */
const MAX_HEADER_CHARS = 4096;

function clip(v: string | undefined): string | null {
  if (v === undefined || v === "") return null;
  return v.length <= MAX_HEADER_CHARS ? v : `${v.slice(0, MAX_HEADER_CHARS)}...[truncated]`;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$/;

/** The trace id of a W3C `traceparent`, or undefined when the header is not a valid one. */
export function traceIdFromTraceparent(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined) return undefined;
  const m = TRACEPARENT.exec(traceparent.trim());
  if (!m) return undefined;
  const [, version, traceId, parentId, rest] = m;
  // Version ff is forbidden; version 00 has exactly four fields; all-zero ids are invalid.
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(parentId!)) return undefined;
  return traceId;
}

function whole(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/**
 * The field set of one request. Istio's default JSON access-log keys are always present (null when
 * unknown, as Envoy writes them); the mesh's own additions appear only when known.
 */
export function requestLogFields(r: RequestRecord): Record<string, unknown> {
  return {
    start_time: new Date(r.startTime).toISOString(),
    route_name: r.routeName ?? null,
    method: clip(r.method),
    path: clip(r.path),
    protocol: r.protocol,
    response_code: r.responseCode,
    response_flags: r.responseFlags || "-",
    response_code_details: r.responseCodeDetails ?? null,
    connection_termination_details: r.connectionTerminationDetails ?? null,
    bytes_received: whole(r.bytesReceived),
    bytes_sent: whole(r.bytesSent),
    duration: whole(r.durationMs),
    upstream_service_time: r.upstreamServiceTimeMs === undefined ? null : String(whole(r.upstreamServiceTimeMs)),
    x_forwarded_for: clip(r.xForwardedFor),
    user_agent: clip(r.userAgent),
    request_id: clip(r.requestId),
    authority: clip(r.authority),
    upstream_host: r.upstreamHost ?? null,
    upstream_cluster: r.upstreamCluster ?? null,
    upstream_local_address: r.upstreamLocalAddress ?? null,
    downstream_local_address: r.downstreamLocalAddress ?? null,
    downstream_remote_address: r.downstreamRemoteAddress ?? null,
    requested_server_name: r.requestedServerName ?? null,
    upstream_transport_failure_reason: r.upstreamTransportFailureReason ?? null,
    trace_id: traceIdFromTraceparent(r.traceparent),
    "src.identity": r.srcIdentity,
    "src.workload": r.srcWorkload,
    "src.namespace": r.srcNamespace,
    "dst.identity": r.dstIdentity,
    "dst.workload": r.dstWorkload,
    "dst.namespace": r.dstNamespace,
    "dst.service": r.dstService,
    error: r.error,
  };
}

// A child per request would be an allocation per request; children share the sink (and level).
const accessLoggers = new WeakMap<Logger, Logger>();

/** Writes the line for a finished request under scope `access`. */
export function requestLog(logger: Logger, record: RequestRecord): void {
  const level = record.error === undefined ? "info" : "error";
  if (!logger.enabled(level)) return;
  let access = accessLoggers.get(logger);
  if (!access) {
    access = logger.child({ scope: "access" });
    accessLoggers.set(logger, access);
  }
  if (level === "info") access.info("request complete", requestLogFields(record));
  else access.error("request failed", requestLogFields(record));
}
