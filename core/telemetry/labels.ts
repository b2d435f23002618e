// Istio's CommonTrafficLabels (reference/ztunnel.md §7.1) and how to derive them from workloads,
// following ztunnel's `src/proxy/metrics.rs` (with_source / with_destination / with_destination_service).

export const TCP_LABEL_NAMES = [
  "reporter",
  "source_workload",
  "source_canonical_service",
  "source_canonical_revision",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_cluster",
  "destination_service",
  "destination_service_namespace",
  "destination_service_name",
  "destination_workload",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_cluster",
  "request_protocol",
  "response_flags",
  "connection_security_policy",
] as const;

export type TcpLabelName = (typeof TCP_LABEL_NAMES)[number];
export type Reporter = "source" | "destination";
export type ConnectionSecurityPolicy = "mutual_tls" | "unknown";

/** Labels of one TCP connection. Anything left out (or empty) renders as `unknown`. */
export type TcpLabels = {
  reporter?: Reporter;
  request_protocol?: "tcp";
  connection_security_policy?: ConnectionSecurityPolicy;
} & { [K in Exclude<TcpLabelName, "reporter" | "request_protocol" | "connection_security_policy">]?: string };

/** Every label present, as handed to prom-client. */
export type ResolvedTcpLabels = Record<TcpLabelName, string>;

const UNKNOWN = "unknown";
/** Istio's ResponseFlags::None. */
export const NO_RESPONSE_FLAGS = "-";

export function resolveTcpLabels(labels: TcpLabels): ResolvedTcpLabels {
  const out = {} as ResolvedTcpLabels;
  for (const name of TCP_LABEL_NAMES) {
    const v = labels[name];
    out[name] = v === undefined || v === "" ? UNKNOWN : v;
  }
  // ztunnel only ever reports TCP here; response_flags defaults to "no flags", not "unknown".
  out.request_protocol = "tcp";
  if (labels.response_flags === undefined || labels.response_flags === "") out.response_flags = NO_RESPONSE_FLAGS;
  return out;
}

/**
 * The part of a workload the labels need. Structural on purpose: `Workload` from core/config
 * satisfies it, and telemetry does not depend on the config model.
 */
export interface WorkloadLike {
  readonly name?: string;
  /** Istio's workload name (the Deployment, not the pod); preferred over `name`. */
  readonly workloadName?: string;
  readonly namespace?: string;
  readonly canonicalName?: string;
  readonly canonicalRevision?: string;
  readonly clusterId?: string;
  /** SPIFFE id the workload is expected to present. */
  readonly identity?: string;
}

export interface ServiceLike {
  readonly hostname: string;
  readonly namespace: string;
  readonly name: string;
}

export interface LabelsForInput {
  reporter: Reporter;
  source?: WorkloadLike;
  /** Only ever the identity verified in the TLS handshake (Istio never derives it from the workload). */
  sourcePrincipal?: string;
  destination?: WorkloadLike;
  /** Defaults to the destination workload's identity, as ztunnel does. */
  destinationPrincipal?: string;
  destinationService?: ServiceLike;
  mtls: boolean;
}

export function labelsFor(input: LabelsForInput): TcpLabels {
  const labels: TcpLabels = {
    reporter: input.reporter,
    request_protocol: "tcp",
    connection_security_policy: input.mtls ? "mutual_tls" : "unknown",
  };
  if (input.source) setWorkloadLabels(labels, "source", input.source);
  if (input.sourcePrincipal) labels.source_principal = input.sourcePrincipal;
  if (input.destination) {
    setWorkloadLabels(labels, "destination", input.destination);
    labels.destination_principal = input.destination.identity;
  }
  if (input.destinationPrincipal) labels.destination_principal = input.destinationPrincipal;
  const svc = input.destinationService;
  if (svc) {
    labels.destination_service = svc.hostname;
    labels.destination_service_namespace = svc.namespace;
    labels.destination_service_name = svc.name;
  }
  return labels;
}

/** The workload labels of one side (all but the principal, which the two sides derive differently). */
function setWorkloadLabels(labels: TcpLabels, side: "source" | "destination", w: WorkloadLike): void {
  labels[`${side}_workload`] = w.workloadName || w.name;
  labels[`${side}_canonical_service`] = w.canonicalName;
  labels[`${side}_canonical_revision`] = w.canonicalRevision;
  labels[`${side}_workload_namespace`] = w.namespace;
  labels[`${side}_app`] = w.canonicalName;
  labels[`${side}_version`] = w.canonicalRevision;
  labels[`${side}_cluster`] = w.clusterId;
}
