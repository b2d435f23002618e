// A workload entry of the local config: ztunnel's `LocalWorkload` (its `Workload` serde struct
// flattened, plus `services`), plus our `labels`.

import type { ApplicationTunnel, HealthStatus, Locality, PortMap, TunnelProtocol, Workload } from "./model.ts";
import { readGateway, readIp, readName, splitNamespaced } from "./schema-common.ts";
import {
  Fields,
  Issues,
  opt,
  readBool,
  readEnum,
  readInt,
  readList,
  readMap,
  readPort,
  readPortMap,
  readString,
} from "./schema-read.ts";
import type { YNode } from "./yaml-tree.ts";

export const WORKLOAD_KEYS = [
  "uid",
  "name",
  "namespace",
  "serviceAccount",
  "trustDomain",
  "workloadIps",
  "hostname",
  "protocol",
  "networkMode",
  "node",
  "network",
  "clusterId",
  "canonicalName",
  "canonicalRevision",
  "workloadName",
  "workloadType",
  "locality",
  "status",
  "capacity",
  "authorizationPolicies",
  "services",
  "waypoint",
  "networkGateway",
  "nativeTunnel",
  "applicationTunnel",
  "labels",
] as const;

// Defaults as istiod/ztunnel's xDS conversion applies them (src/state/workload.rs): an empty
// trust domain, service account or cluster id means the default. ztunnel's file loader skips
// this step; we apply it so a file that leaves them out still yields a valid SPIFFE identity.
export const DEFAULT_TRUST_DOMAIN = "cluster.local";
export const DEFAULT_SERVICE_ACCOUNT = "default";
export const DEFAULT_CLUSTER_ID = "Kubernetes";

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

function readSpiffeSegment(n: YNode, path: string, issues: Issues, what: string): string | undefined {
  const s = readString(n, path, issues, what);
  if (s === undefined || s === "") return s;
  if (!PATH_SEGMENT.test(s) || s === "." || s === "..") {
    issues.error(path, `expected ${what} (letters, digits, ".", "-", "_"), got ${JSON.stringify(s)}`);
    return undefined;
  }
  return s;
}

const LOCALITY_KEYS = ["region", "zone", "subzone"] as const;

function readLocality(n: YNode, path: string, issues: Issues): Locality | undefined {
  const f = Fields.read(n, path, LOCALITY_KEYS, issues, "a locality {region, zone, subzone}");
  if (!f) return undefined;
  const s = (k: string) => opt(f, k, "", (v, p) => readString(v, p, issues));
  return Object.freeze({ region: s("region"), zone: s("zone"), subzone: s("subzone") });
}

const TUNNEL_KEYS = ["protocol", "port"] as const;

function readApplicationTunnel(n: YNode, path: string, issues: Issues): ApplicationTunnel | undefined {
  const f = Fields.read(n, path, TUNNEL_KEYS, issues, "an application tunnel {protocol, port}");
  if (!f) return undefined;
  const pn = f.required("protocol", issues, "one of NONE, PROXY");
  const protocol = pn ? readEnum(pn, f.at("protocol"), issues, ["NONE", "PROXY"] as const) : undefined;
  const portNode = f.get("port");
  const port = portNode ? readPort(portNode, f.at("port"), issues) : undefined;
  if (protocol === undefined) return undefined;
  return Object.freeze(port === undefined ? { protocol } : { protocol, port });
}

/** A parsed workload; `services` stays mutable until the loader has merged service endpoints. */
export type WorkloadDraft = Omit<Workload, "services"> & { services: Map<string, PortMap> };

export function readWorkload(n: YNode, path: string, issues: Issues): WorkloadDraft | undefined {
  const f = Fields.read(n, path, WORKLOAD_KEYS, issues, "a workload (a map)");
  if (!f) return undefined;
  const before = issues.errors.length;
  const str = (k: string) => opt(f, k, "", (v, p) => readString(v, p, issues));

  const nsNode = f.required("namespace", issues, "a namespace name");
  const namespace = nsNode ? readSpiffeSegment(nsNode, f.at("namespace"), issues, "a namespace name") : undefined;
  if (namespace === "") issues.error(f.at("namespace"), `expected a namespace name, got ""`);

  const ipsNode = f.required("workloadIps", issues, "a list of IP addresses (may be empty)");
  const workloadIps = ipsNode
    ? readList(ipsNode, f.at("workloadIps"), issues, "IP addresses", (v, p) => readIp(v, p, issues))
    : undefined;

  const trustDomainRaw = opt(f, "trustDomain", "", (v, p) => readString(v, p, issues));
  if (trustDomainRaw !== "" && !TRUST_DOMAIN.test(trustDomainRaw)) {
    issues.error(
      f.at("trustDomain"),
      `expected a trust domain (lowercase letters, digits, ".", "-", "_"), got ${JSON.stringify(trustDomainRaw)}`,
    );
  }
  const trustDomain = trustDomainRaw || DEFAULT_TRUST_DOMAIN;
  const serviceAccount =
    opt(f, "serviceAccount", "", (v, p) => readSpiffeSegment(v, p, issues, "a service account name")) ||
    DEFAULT_SERVICE_ACCOUNT;
  const clusterId = str("clusterId") || DEFAULT_CLUSTER_ID;
  const name = str("name");

  let uid = str("uid");
  if (uid === "") {
    if (name === "") issues.error(f.at("uid"), "required field is missing (expected a uid, or a name to derive one from)");
    // istiod's uid form for a pod; keeps workloads without an explicit uid distinct.
    else uid = `${clusterId}//Pod/${namespace ?? ""}/${name}`;
  }

  const protocol = opt<TunnelProtocol>(f, "protocol", "TCP", (v, p) => readEnum(v, p, issues, ["HBONE", "TCP"] as const));
  const networkMode = opt(f, "networkMode", "Standard" as const, (v, p) =>
    readEnum(v, p, issues, ["Standard", "HostNetwork"] as const),
  );
  const status = opt<HealthStatus>(f, "status", "Healthy", (v, p) =>
    readEnum(v, p, issues, ["Healthy", "Unhealthy"] as const),
  );
  const capacity = opt(f, "capacity", 1, (v, p) => readInt(v, p, issues, 0, 4294967295, "an integer 0..4294967295"));
  const locality = opt<Locality>(f, "locality", Object.freeze({ region: "", zone: "", subzone: "" }), (v, p) =>
    readLocality(v, p, issues),
  );

  const authorizationPolicies = opt<string[]>(f, "authorizationPolicies", [], (v, p) =>
    readList(v, p, issues, `policy keys "namespace/name"`, (item, ip) => {
      const s = readString(item, ip, issues, `a policy key "namespace/name"`);
      if (s === undefined) return undefined;
      if (!splitNamespaced(s)) {
        issues.error(ip, `expected a policy key "namespace/name", got ${JSON.stringify(s)}`);
        return undefined;
      }
      return s;
    }),
  );

  const services = new Map<string, PortMap>();
  const servicesNode = f.get("services");
  if (servicesNode) {
    readMap(servicesNode, f.at("services"), issues, `a map of "namespace/hostname": {servicePort: targetPort}`, (key, value, p) => {
      if (!splitNamespaced(key)) {
        issues.error(p, `expected a service key "namespace/hostname", got ${JSON.stringify(key)}`);
        return;
      }
      const ports = readPortMap(value, p, issues);
      if (ports) services.set(key, ports);
    });
  }

  const labels = new Map<string, string>();
  const labelsNode = f.get("labels");
  if (labelsNode) {
    readMap(labelsNode, f.at("labels"), issues, "a map of label: value", (key, value, p) => {
      if (key === "") {
        issues.error(p, "expected a non-empty label name");
        return;
      }
      const v = readString(value, p, issues, "a label value (a string)");
      if (v !== undefined) labels.set(key, v);
    });
  }

  const waypointNode = f.get("waypoint");
  const waypoint = waypointNode ? readGateway(waypointNode, f.at("waypoint"), issues) : undefined;
  const gatewayNode = f.get("networkGateway");
  const networkGateway = gatewayNode ? readGateway(gatewayNode, f.at("networkGateway"), issues) : undefined;
  const tunnelNode = f.get("applicationTunnel");
  const applicationTunnel = tunnelNode ? readApplicationTunnel(tunnelNode, f.at("applicationTunnel"), issues) : undefined;
  const nativeTunnel = opt(f, "nativeTunnel", false, (v, p) => readBool(v, p, issues));
  const hostname = str("hostname");
  const node = str("node");
  const network = str("network");
  const canonicalName = str("canonicalName");
  const canonicalRevision = str("canonicalRevision");
  const workloadName = str("workloadName");
  const workloadType = str("workloadType");

  if (issues.errors.length > before || namespace === undefined || workloadIps === undefined) return undefined;

  const w: WorkloadDraft = {
    uid,
    name,
    namespace,
    serviceAccount,
    trustDomain,
    workloadIps: Object.freeze(workloadIps),
    hostname,
    protocol,
    node,
    network,
    clusterId,
    canonicalName,
    canonicalRevision,
    workloadName,
    workloadType,
    locality,
    status,
    capacity,
    authorizationPolicies: Object.freeze(authorizationPolicies),
    services,
    labels,
    identity: `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`,
    networkMode,
    nativeTunnel,
    ...(waypoint ? { waypoint } : {}),
    ...(networkGateway ? { networkGateway } : {}),
    ...(applicationTunnel ? { applicationTunnel } : {}),
  };
  return w;
}
