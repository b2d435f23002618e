// What the ztunnel's proxies share: the current state, certificates, the outbound pool, metrics,
// logging, and the set of live connections (for drain and, later, policy re-evaluation).
import type { MeshState, Workload } from "../config/index.ts";
import type { HbonePool, HboneTuning, PeerVerifier } from "../hbone/index.ts";
import type { Relay, TlsIdentity } from "../net/index.ts";
import type { L4Attributes } from "../policy/index.ts";
import type { Logger, MeshMetrics } from "../telemetry/index.ts";
import type { Authorizer } from "./authz.ts";

export interface TrackedConnection {
  readonly direction: "inbound" | "outbound";
  readonly workloadUid: string;
  readonly startedAt: number;
  relay?: Relay;
  /** what the connection was authorized with, so a policy change can re-check it */
  authz?: { readonly workloadUid: string; readonly attrs: L4Attributes };
  /** Istio response flag to report when ztunnel itself closed the connection (e.g. DENY) */
  closedBy?: string;
  /** why ztunnel closed it (drain deadline, policy), for the access log */
  closeReason?: string;
  /** close now: drain past its deadline, a policy that no longer allows it */
  abort(reason: string, responseFlag?: string): void;
}

export interface ZtunnelContext {
  readonly node: string;
  readonly clusterDomain: string;
  state(): MeshState;
  /** certificate of a local workload, as TLS material; throws CERT_UNAVAILABLE if not issued */
  tlsIdentityOf(workload: Workload): TlsIdentity;
  readonly pool: HbonePool;
  readonly verifier: PeerVerifier;
  readonly tuning: HboneTuning;
  readonly metrics: MeshMetrics;
  readonly log: Logger;
  readonly accessLog: Logger;
  readonly connections: Set<TrackedConnection>;
  readonly authorizer: Authorizer;
  readonly upstreamConnectTimeoutMs: number;
  /**
   * Every port this ztunnel listens on (mesh ports, admin, metrics, readiness, and the actual
   * ports of overridden listeners). Never a valid tunnel or outbound target: a peer must not
   * reach our own servers through a tunnel.
   */
  ownPorts(): ReadonlySet<number>;
  /** true once drain started: listeners no longer accept */
  draining(): boolean;
}
