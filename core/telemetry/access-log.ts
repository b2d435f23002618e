// One access-log line per connection, with istio/ztunnel's field names (reference/ztunnel.md §7.2,
// `src/proxy/metrics.rs::ConnectionResult::record`).
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
