// The mesh state model: validated, immutable values. Loaders (the local file now, Istio's xDS
// later) produce these; the roles only ever read them.

export type TunnelProtocol = "HBONE" | "TCP";
export type HealthStatus = "Healthy" | "Unhealthy";

/** An IP on a network. `ip` is in canonical text form (IPv6 compressed, lowercase). */
export interface NetworkAddress {
  readonly network: string;
  readonly ip: string;
}

export interface NamespacedHostname {
  readonly namespace: string;
  readonly hostname: string;
}

/** istio.workload.GatewayAddress: where a waypoint (or network gateway) is reached. */
export interface GatewayAddress {
  readonly destination:
    | { readonly kind: "hostname"; readonly namespace: string; readonly hostname: string }
    | { readonly kind: "address"; readonly network: string; readonly ip: string };
  readonly hboneMtlsPort: number;
}

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subzone: string;
}

export interface ApplicationTunnel {
  readonly protocol: "NONE" | "PROXY";
  readonly port?: number;
}

/** servicePort -> targetPort (0 means "named port, use the endpoint's map"). */
export type PortMap = ReadonlyMap<number, number>;

export interface Workload {
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly trustDomain: string;
  /** Canonical IP strings; the workload's `network` applies to all of them. */
  readonly workloadIps: readonly string[];
  readonly hostname: string;
  readonly protocol: TunnelProtocol;
  readonly node: string;
  readonly network: string;
  readonly clusterId: string;
  readonly canonicalName: string;
  readonly canonicalRevision: string;
  readonly workloadName: string;
  readonly workloadType: string;
  readonly locality: Locality;
  readonly status: HealthStatus;
  readonly capacity: number;
  readonly authorizationPolicies: readonly string[];
  /** "namespace/hostname" -> port map: the services this workload is an endpoint of. */
  readonly services: ReadonlyMap<string, PortMap>;
  readonly waypoint?: GatewayAddress;
  readonly networkGateway?: GatewayAddress;
  readonly applicationTunnel?: ApplicationTunnel;
  readonly labels: ReadonlyMap<string, string>;
  /** spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount> */
  readonly identity: string;
  /** HostNetwork workloads share the node's IP and are not indexed by address (as in ztunnel). */
  readonly networkMode?: "Standard" | "HostNetwork";
  /** ztunnel's `nativeTunnel`: the workload speaks HBONE itself. */
  readonly nativeTunnel?: boolean;
}

export interface LoadBalancer {
  readonly routingPreferences: readonly string[];
  readonly mode: string;
  readonly healthPolicy: "OnlyHealthy" | "AllowAll";
}

export interface WeightedWaypoint {
  readonly destination: GatewayAddress;
  readonly weight: number;
}

export interface Service {
  readonly name: string;
  readonly namespace: string;
  readonly hostname: string;
  /** `namespace/hostname`, the resource key. */
  readonly key: string;
  readonly vips: readonly NetworkAddress[];
  readonly cidrVips: readonly { readonly network: string; readonly cidr: string }[];
  readonly ports: PortMap;
  readonly subjectAltNames: readonly string[];
  readonly waypoint?: GatewayAddress;
  /** Waypoints picked at random by weight when any weight is > 0 (else `waypoint`). */
  readonly weightedWaypoints?: readonly WeightedWaypoint[];
  readonly loadBalancer?: LoadBalancer;
  readonly ipFamilies?: "Dual" | "IPv4" | "IPv6";
  readonly canonical: boolean;
  readonly visibility: "Public" | "Namespace";
}

// ---- authorization (istio.security.Authorization, local-config shape) ----------------------

export type StringMatch =
  | { readonly kind: "Exact"; readonly value: string }
  | { readonly kind: "Prefix"; readonly value: string }
  | { readonly kind: "Suffix"; readonly value: string }
  | { readonly kind: "Presence" };

export interface CidrMatch {
  readonly ip: string;
  readonly prefixLength: number;
}

export interface ServiceAccountMatch {
  readonly namespace: string;
  readonly serviceAccount: string;
}

export interface PolicyMatch {
  readonly namespaces: readonly StringMatch[];
  readonly notNamespaces: readonly StringMatch[];
  readonly principals: readonly StringMatch[];
  readonly notPrincipals: readonly StringMatch[];
  readonly serviceAccounts: readonly ServiceAccountMatch[];
  readonly notServiceAccounts: readonly ServiceAccountMatch[];
  readonly sourceIps: readonly CidrMatch[];
  readonly notSourceIps: readonly CidrMatch[];
  readonly destinationIps: readonly CidrMatch[];
  readonly notDestinationIps: readonly CidrMatch[];
  readonly destinationPorts: readonly number[];
  readonly notDestinationPorts: readonly number[];
}

/** rules[] are OR'd; a rule's clauses are AND'd; a clause's matches are OR'd. */
export interface AuthorizationPolicy {
  readonly name: string;
  readonly namespace: string;
  /** `namespace/name`, the resource key. */
  readonly key: string;
  readonly scope: "Global" | "Namespace" | "WorkloadSelector";
  readonly action: "Allow" | "Deny";
  readonly dryRun: boolean;
  readonly rules: readonly (readonly (readonly PolicyMatch[])[])[];
}

/** One immutable, indexed view of everything the mesh knows. */
export interface MeshState {
  readonly workloads: ReadonlyMap<string, Workload>; // by uid
  readonly services: ReadonlyMap<string, Service>; // by namespace/hostname
  readonly policies: ReadonlyMap<string, AuthorizationPolicy>; // by namespace/name
  /** "network/ip" -> workload */
  workloadByAddress(network: string, ip: string): Workload | undefined;
  /** "network/ip" -> service (exact VIPs first, then CIDR VIPs by longest prefix) */
  serviceByVip(network: string, ip: string): Service | undefined;
  /** FQDN (e.g. echo.default.svc.cluster.local) -> services with that hostname */
  servicesByHostname(hostname: string): readonly Service[];
  /** Endpoints of a service: workloads that list it in their `services` map. */
  endpointsOf(serviceKey: string): readonly { readonly workload: Workload; readonly ports: PortMap }[];
}
