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
/** `waypoint`: the waypoint reports both its HTTP requests and the TCP it proxies (Istio does). */
export type Reporter = "source" | "destination" | "waypoint";
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

/** Who the two ends are: the part of the labels TCP and HTTP metrics derive the same way. */
export interface PeerLabelsInput {
  source?: WorkloadLike;
  /** Only ever the identity verified in the TLS handshake (Istio never derives it from the workload). */
  sourcePrincipal?: string;
  destination?: WorkloadLike;
  /** Defaults to the destination workload's identity, as ztunnel does. */
  destinationPrincipal?: string;
  destinationService?: ServiceLike;
}

export interface LabelsForInput extends PeerLabelsInput {
  reporter: Reporter;
  mtls: boolean;
}

export function labelsFor(input: LabelsForInput): TcpLabels {
  const labels: TcpLabels = {
    reporter: input.reporter,
    request_protocol: "tcp",
    connection_security_policy: input.mtls ? "mutual_tls" : "unknown",
  };
  setPeerLabels(labels, input);
  return labels;
}

/** The labels naming the two ends, shared by every protocol's label set. */
type PeerLabelName = Exclude<TcpLabelName, "reporter" | "request_protocol" | "response_flags" | "connection_security_policy">;
type PeerLabels = { [K in PeerLabelName]?: string };

function setPeerLabels(labels: PeerLabels, input: PeerLabelsInput): void {
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
}

/** The workload labels of one side (all but the principal, which the two sides derive differently). */
function setWorkloadLabels(labels: PeerLabels, side: "source" | "destination", w: WorkloadLike): void {
  labels[`${side}_workload`] = w.workloadName || w.name;
  labels[`${side}_canonical_service`] = w.canonicalName;
  labels[`${side}_canonical_revision`] = w.canonicalRevision;
  labels[`${side}_workload_namespace`] = w.namespace;
  labels[`${side}_app`] = w.canonicalName;
  labels[`${side}_version`] = w.canonicalRevision;
  labels[`${side}_cluster`] = w.clusterId;
}

// ---- HTTP / gRPC request metrics (reference/waypoint.md §C.5) ----

/** Istio's HTTP label set: the TCP one plus the response code and gRPC status. */
export type HttpLabelName = TcpLabelName | "response_code" | "grpc_response_status";
export const HTTP_LABEL_NAMES: readonly HttpLabelName[] = [
  ...TCP_LABEL_NAMES.slice(0, TCP_LABEL_NAMES.indexOf("request_protocol") + 1),
  "response_code",
  "grpc_response_status",
  ...TCP_LABEL_NAMES.slice(TCP_LABEL_NAMES.indexOf("request_protocol") + 1),
];
/** A waypoint reports as `waypoint` (Envoy's SERVER_GATEWAY); sidecar-style proxies as source or destination. */
export type HttpReporter = Reporter | "waypoint";
export type RequestProtocol = "http" | "grpc";

/** Labels of one request. Anything left out (or empty) renders as `unknown`, except as noted. */
export type HttpLabels = {
  reporter?: HttpReporter;
  request_protocol?: RequestProtocol;
  connection_security_policy?: ConnectionSecurityPolicy;
  /** HTTP status sent downstream; 0 when no response was sent (Envoy's convention). */
  response_code?: number | string;
  /** gRPC status code as a number string; left empty for plain HTTP, as Istio does. */
  grpc_response_status?: number | string;
} & { [K in Exclude<TcpLabelName, "reporter" | "request_protocol" | "connection_security_policy">]?: string };

export type ResolvedHttpLabels = Record<HttpLabelName, string>;

export function resolveHttpLabels(labels: HttpLabels): ResolvedHttpLabels {
  const out = {} as ResolvedHttpLabels;
  for (const name of HTTP_LABEL_NAMES) {
    const v = labels[name];
    out[name] = v === undefined || v === "" ? UNKNOWN : String(v);
  }
  if (labels.request_protocol !== "grpc") out.request_protocol = "http";
  if (labels.response_flags === undefined || labels.response_flags === "") out.response_flags = NO_RESPONSE_FLAGS;
  // Istio leaves the gRPC status empty on plain HTTP requests rather than `unknown`.
  if (out.request_protocol === "http" && (labels.grpc_response_status === undefined || labels.grpc_response_status === "")) {
    out.grpc_response_status = "";
  }
  return out;
}

export interface HttpLabelsInput extends PeerLabelsInput {
  reporter: HttpReporter;
  mtls: boolean;
  requestProtocol: RequestProtocol;
  /** HTTP status sent downstream; 0 when none was (client reset, timeout before headers). */
  responseCode: number;
  /** Envoy response flags (`-` or absent when none; `UF`, `UH`, `URX`, `UT`, `DC`, ...). */
  responseFlags?: string;
  /** gRPC status (from `grpc-status`); for gRPC without one it is derived from the HTTP status. */
  grpcStatus?: number;
}

export function httpLabelsFor(input: HttpLabelsInput): HttpLabels {
  const labels: HttpLabels = {
    reporter: input.reporter,
    request_protocol: input.requestProtocol,
    connection_security_policy: input.mtls ? "mutual_tls" : "unknown",
    response_code: input.responseCode,
  };
  if (input.responseFlags) labels.response_flags = input.responseFlags;
  if (input.requestProtocol === "grpc") {
    const status = input.grpcStatus ?? grpcStatusFromHttp(input.responseCode);
    if (status !== undefined) labels.grpc_response_status = status;
  }
  setPeerLabels(labels, input);
  return labels;
}

/**
 * gRPC status for a response that carried no `grpc-status`, per gRPC's HTTP-to-gRPC status
 * mapping (what Envoy's `Grpc::Utility::httpToGrpcStatus` applies). A 200 without a status, or no
 * response at all, stays unknown.
 */
function grpcStatusFromHttp(code: number): number | undefined {
  switch (code) {
    case 0:
    case 200:
      return undefined;
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}
