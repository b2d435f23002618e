// A service entry of the local config: ztunnel's `Service` serde struct (src/state/service.rs).

import type { GatewayAddress, LoadBalancer, NetworkAddress, PortMap, Service, WeightedWaypoint } from "./model.ts";
import { parseCidr } from "./addresses.ts";
import { readGateway, readName, readNetworkAddress } from "./schema-common.ts";
import { Fields, Issues, opt, readBool, readEnum, readInt, readList, readMap, readPortMap, readString } from "./schema-read.ts";
import type { YNode } from "./yaml-tree.ts";

export const SERVICE_KEYS = [
  "name",
  "namespace",
  "hostname",
  "vips",
  "cidrVips",
  "ports",
  "endpoints",
  "subjectAltNames",
  "waypoint",
  "weightedWaypoints",
  "loadBalancer",
  "ipFamilies",
  "canonical",
  "visibility",
] as const;

/** An endpoint written inside a service (ztunnel's serde `endpoints` map), to be merged into its workload. */
export interface InlineEndpoint {
  readonly workloadUid: string;
  readonly ports: PortMap;
  readonly path: string;
}

const LB_KEYS = ["routingPreferences", "mode", "healthPolicy"] as const;

function readLoadBalancer(n: YNode, path: string, issues: Issues): LoadBalancer | undefined {
  const f = Fields.read(n, path, LB_KEYS, issues, "a load balancer {routingPreferences, mode, healthPolicy}");
  if (!f) return undefined;
  const routingPreferences = opt<string[]>(f, "routingPreferences", [], (v, p) =>
    readList(v, p, issues, "routing scopes", (item, ip) =>
      readEnum(item, ip, issues, ["Region", "Zone", "Subzone", "Node", "Cluster", "Network"] as const),
    ),
  );
  const mode = opt<string>(f, "mode", "Standard", (v, p) =>
    readEnum(v, p, issues, ["Standard", "Strict", "Failover", "Passthrough"] as const),
  );
  const healthPolicy = opt(f, "healthPolicy", "OnlyHealthy" as const, (v, p) =>
    readEnum(v, p, issues, ["OnlyHealthy", "AllowAll"] as const),
  );
  return Object.freeze({ routingPreferences: Object.freeze(routingPreferences), mode, healthPolicy });
}

const CIDR_VIP_KEYS = ["network", "cidr"] as const;

function readCidrVip(n: YNode, path: string, issues: Issues): { network: string; cidr: string } | undefined {
  const f = Fields.read(n, path, CIDR_VIP_KEYS, issues, "a CIDR VIP {network, cidr}");
  if (!f) return undefined;
  const network = opt(f, "network", "", (v, p) => readString(v, p, issues));
  const cn = f.required("cidr", issues, `a CIDR like "10.96.0.0/16"`);
  if (!cn) return undefined;
  const s = readString(cn, f.at("cidr"), issues, `a CIDR like "10.96.0.0/16"`);
  if (s === undefined) return undefined;
  const c = s.includes("/") ? parseCidr(s) : undefined;
  if (!c) {
    issues.error(f.at("cidr"), `expected a CIDR like "10.96.0.0/16", got ${JSON.stringify(s)}`);
    return undefined;
  }
  return Object.freeze({ network, cidr: `${c.ip}/${c.prefixLength}` });
}

const WEIGHTED_KEYS = ["destination", "weight"] as const;

function readWeightedWaypoint(n: YNode, path: string, issues: Issues): WeightedWaypoint | undefined {
  const f = Fields.read(n, path, WEIGHTED_KEYS, issues, "a weighted waypoint {destination, weight}");
  if (!f) return undefined;
  const dn = f.required("destination", issues, "a gateway address {destination, hboneMtlsPort}");
  const destination = dn ? readGateway(dn, f.at("destination"), issues) : undefined;
  const weight = opt(f, "weight", 0, (v, p) => readInt(v, p, issues, 0, 4294967295, "an integer 0..4294967295"));
  return destination ? Object.freeze({ destination, weight }) : undefined;
}

const ENDPOINT_KEYS = ["workloadUid", "port", "status"] as const;

function readEndpoints(n: YNode, path: string, issues: Issues): InlineEndpoint[] {
  const out: InlineEndpoint[] = [];
  readMap(n, path, issues, "a map of endpoint uid: {workloadUid, port, status}", (_key, value, p) => {
    const f = Fields.read(value, p, ENDPOINT_KEYS, issues, "an endpoint {workloadUid, port, status}");
    if (!f) return;
    const un = f.required("workloadUid", issues, "a workload uid");
    const workloadUid = un ? readString(un, f.at("workloadUid"), issues) : undefined;
    const ports = opt<PortMap>(f, "port", new Map(), (v, pp) => readPortMap(v, pp, issues));
    // The workload's own status governs health; the field is accepted for compatibility.
    opt(f, "status", "Healthy", (v, pp) => readEnum(v, pp, issues, ["Healthy", "Unhealthy"] as const));
    if (workloadUid !== undefined) out.push({ workloadUid, ports, path: p });
  });
  return out;
}

export interface ServiceDraft {
  readonly service: Service;
  readonly endpoints: readonly InlineEndpoint[];
}

export function readService(n: YNode, path: string, issues: Issues): ServiceDraft | undefined {
  const f = Fields.read(n, path, SERVICE_KEYS, issues, "a service (a map)");
  if (!f) return undefined;
  const before = issues.errors.length;

  const nameNode = f.required("name", issues, "a service name");
  const name = nameNode ? readString(nameNode, f.at("name"), issues, "a service name") : undefined;
  const nsNode = f.required("namespace", issues, "a namespace name");
  const namespace = nsNode ? readName(nsNode, f.at("namespace"), issues, "a namespace name") : undefined;
  const hostNode = f.required("hostname", issues, "a hostname");
  const hostname = hostNode ? readName(hostNode, f.at("hostname"), issues, "a hostname") : undefined;

  const vipsNode = f.required("vips", issues, `a list of "network/ip" (may be empty)`);
  const vips = vipsNode
    ? readList<NetworkAddress>(vipsNode, f.at("vips"), issues, `network addresses "network/ip"`, (v, p) =>
        readNetworkAddress(v, p, issues),
      )
    : undefined;
  const cidrVips = opt<{ network: string; cidr: string }[]>(f, "cidrVips", [], (v, p) =>
    readList(v, p, issues, "CIDR VIPs {network, cidr}", (item, ip) => readCidrVip(item, ip, issues)),
  );
  const portsNode = f.required("ports", issues, "a map of servicePort: targetPort");
  const ports = portsNode ? readPortMap(portsNode, f.at("ports"), issues) : undefined;
  const endpointsNode = f.get("endpoints");
  const endpoints = endpointsNode ? readEndpoints(endpointsNode, f.at("endpoints"), issues) : [];
  const subjectAltNames = opt<string[]>(f, "subjectAltNames", [], (v, p) =>
    readList(v, p, issues, "strings", (item, ip) => readString(item, ip, issues)),
  );
  const waypointNode = f.get("waypoint");
  const waypoint: GatewayAddress | undefined = waypointNode ? readGateway(waypointNode, f.at("waypoint"), issues) : undefined;
  const weightedNode = f.get("weightedWaypoints");
  const weightedWaypoints = weightedNode
    ? readList(weightedNode, f.at("weightedWaypoints"), issues, "weighted waypoints", (v, p) =>
        readWeightedWaypoint(v, p, issues),
      )
    : undefined;
  const lbNode = f.get("loadBalancer");
  const loadBalancer = lbNode ? readLoadBalancer(lbNode, f.at("loadBalancer"), issues) : undefined;
  const ipFamiliesNode = f.get("ipFamilies");
  const ipFamilies = ipFamiliesNode
    ? readEnum(ipFamiliesNode, f.at("ipFamilies"), issues, ["Dual", "IPv4", "IPv6"] as const)
    : undefined;
  const canonical = opt(f, "canonical", false, (v, p) => readBool(v, p, issues));
  const visibility = opt(f, "visibility", "Public" as const, (v, p) =>
    readEnum(v, p, issues, ["Public", "Namespace"] as const),
  );

  if (
    issues.errors.length > before ||
    name === undefined ||
    namespace === undefined ||
    hostname === undefined ||
    vips === undefined ||
    ports === undefined
  ) {
    return undefined;
  }
  const service: Service = Object.freeze({
    name,
    namespace,
    hostname,
    key: `${namespace}/${hostname}`,
    vips: Object.freeze(vips),
    cidrVips: Object.freeze(cidrVips),
    ports,
    subjectAltNames: Object.freeze(subjectAltNames),
    canonical,
    visibility,
    ...(waypoint ? { waypoint } : {}),
    ...(weightedWaypoints ? { weightedWaypoints: Object.freeze(weightedWaypoints) } : {}),
    ...(loadBalancer ? { loadBalancer } : {}),
    ...(ipFamilies ? { ipFamilies } : {}),
  });
  return { service, endpoints };
}
