// Outbound routing decisions (reference/ztunnel.md §5.1, §5.4) as pure functions of the mesh
// state, so every branch is unit-tested without sockets.
import type { GatewayAddress, MeshState, Service, Workload } from "../config/index.ts";
import { ErrorCodes, isMeshError, type ErrorCode } from "../errors/index.ts";
import { isWaypointReplica, pickWaypointReplica, serviceWaypoint, type WaypointHop } from "./waypoints.ts";

/** Our own listener ports: never a valid final destination (loops, trampolining). */
export const ILLEGAL_PORTS: ReadonlySet<number> = new Set([15001, 15006, 15008, 15080]);
export const HBONE_PORT = 15008;

export type OutboundRoute =
  | {
      readonly kind: "hbone";
      readonly address: string;
      readonly port: number;
      readonly authority: string;
      readonly expectedIdentities: readonly string[];
      readonly destination: Workload;
      readonly service?: Service;
      readonly targetPort: number;
      /** set when the tunnel goes to a waypoint replica; `authority` is then the original destination */
      readonly waypoint?: WaypointHop;
    }
  | {
      readonly kind: "tcp";
      readonly address: string;
      readonly port: number;
      /** undefined when the destination is not in the mesh (passthrough) */
      readonly destination?: Workload;
      readonly service?: Service;
    }
  | { readonly kind: "deny"; readonly code: ErrorCode; readonly reason: string; readonly service?: Service };

function formatHostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function isLoopback(ip: string): boolean {
  return ip.startsWith("127.") || ip === "::1";
}

/** Weighted random pick by capacity; `rand` in [0, 1). */
export function pickWeighted<T extends { readonly workload: Workload }>(candidates: readonly T[], rand: () => number): T | undefined {
  let total = 0;
  for (const c of candidates) total += Math.max(0, c.workload.capacity);
  if (total <= 0) return candidates.length > 0 ? candidates[Math.floor(rand() * candidates.length)] : undefined;
  let r = rand() * total;
  for (const c of candidates) {
    r -= Math.max(0, c.workload.capacity);
    if (r < 0) return c;
  }
  return candidates[candidates.length - 1];
}

function workloadIpFor(w: Workload, preferV6: boolean): string | undefined {
  const v4 = w.workloadIps.find((ip) => !ip.includes(":"));
  const v6 = w.workloadIps.find((ip) => ip.includes(":"));
  return preferV6 ? (v6 ?? v4) : (v4 ?? v6);
}

/**
 * HBONE to a replica of the waypoint `gw`, `:authority` = the original destination, untranslated
 * (the waypoint routes it). No replica is an error, never the direct path.
 */
function viaWaypoint(state: MeshState, source: Workload, gw: GatewayAddress, ip: string, port: number, rand: () => number, target: { destination?: Workload; service?: Service; authority?: string }): OutboundRoute {
  let hop: WaypointHop;
  try {
    hop = pickWaypointReplica(state, source.network, gw, ip.includes(":"), rand);
  } catch (e) {
    if (!isMeshError(e)) throw e;
    return { kind: "deny", code: e.code, reason: e.message, ...(target.service ? { service: target.service } : {}) };
  }
  return {
    kind: "hbone",
    address: hop.address,
    port: hop.port,
    authority: target.authority ?? formatHostPort(ip, port),
    expectedIdentities: hop.identities,
    destination: target.destination ?? hop.workload,
    targetPort: port,
    waypoint: hop,
    ...(target.service ? { service: target.service } : {}),
  };
}

function routeToWorkload(w: Workload, ip: string, targetPort: number, service?: Service): OutboundRoute {
  if (w.protocol === "HBONE") {
    const expected = [w.identity, ...(service?.subjectAltNames ?? [])];
    return {
      kind: "hbone",
      address: ip,
      port: HBONE_PORT,
      authority: formatHostPort(ip, targetPort),
      expectedIdentities: [...new Set(expected)],
      destination: w,
      targetPort,
      ...(service ? { service } : {}),
    };
  }
  return { kind: "tcp", address: ip, port: targetPort, destination: w, ...(service ? { service } : {}) };
}

/** Picks an endpoint of `service` for `servicePort` and routes to it. */
export function routeToService(
  state: MeshState,
  service: Service,
  servicePort: number,
  preferV6: boolean,
  rand: () => number,
  illegalPorts: ReadonlySet<number> = ILLEGAL_PORTS,
  source?: Workload,
): OutboundRoute {
  const allowUnhealthy = service.loadBalancer?.healthPolicy === "AllowAll";
  const candidates: { workload: Workload; ip: string; targetPort: number }[] = [];
  for (const ep of state.endpointsOf(service.key)) {
    if (!allowUnhealthy && ep.workload.status !== "Healthy") continue;
    const ip = workloadIpFor(ep.workload, preferV6);
    if (!ip) continue;
    const fromEndpoint = ep.ports.get(servicePort);
    const fromService = service.ports.get(servicePort);
    const targetPort = fromEndpoint && fromEndpoint > 0 ? fromEndpoint : fromService && fromService > 0 ? fromService : fromService === 0 ? 0 : servicePort;
    if (targetPort === 0) continue; // named port with no mapping on this endpoint
    if (illegalPorts.has(targetPort) && ep.workload.protocol === "HBONE") continue;
    candidates.push({ workload: ep.workload, ip, targetPort });
  }
  const chosen = pickWeighted(candidates, rand);
  if (!chosen) {
    return { kind: "deny", code: ErrorCodes.NO_HEALTHY_UPSTREAM, reason: `no healthy endpoint for service ${service.hostname}:${servicePort}`, service };
  }
  // An endpoint with its own waypoint is reached through it (ztunnel would go direct and leave the
  // destination's ztunnel to hairpin; going there first saves the detour).
  const wp = chosen.workload.waypoint;
  if (wp && source && !isWaypointReplica(state, source.network, wp, source)) {
    return viaWaypoint(state, source, wp, chosen.ip, chosen.targetPort, rand, { destination: chosen.workload, service });
  }
  return routeToWorkload(chosen.workload, chosen.ip, chosen.targetPort, service);
}

/** Route for a connection from `source` to the original destination `ip:port`. */
export function decideOutbound(
  state: MeshState,
  source: Workload,
  ip: string,
  port: number,
  rand: () => number = Math.random,
  illegalPorts: ReadonlySet<number> = ILLEGAL_PORTS,
): OutboundRoute {
  if (isLoopback(ip) && illegalPorts.has(port)) {
    return { kind: "deny", code: ErrorCodes.HBONE_SELF_CALL, reason: `refusing to connect to our own port ${port} on loopback` };
  }
  const w = state.workloadByAddress(source.network, ip);
  if (w) {
    if (illegalPorts.has(port) && w.protocol === "HBONE") {
      return { kind: "deny", code: ErrorCodes.HBONE_SELF_CALL, reason: `port ${port} of a mesh workload is a mesh port, not an application port` };
    }
    // Workload-addressed with a waypoint, unless the caller is that waypoint (§5.1 step 7).
    if (w.waypoint && !isWaypointReplica(state, source.network, w.waypoint, source)) {
      return viaWaypoint(state, source, w.waypoint, ip, port, rand, { destination: w });
    }
    return routeToWorkload(w, ip, port);
  }
  const svc = state.serviceByVip(source.network, ip);
  if (svc) {
    // Service-addressed with a waypoint (§5.1 step 3): even a passthrough service goes there.
    const gw = serviceWaypoint(svc, rand);
    if (gw && !isWaypointReplica(state, source.network, gw, source)) return viaWaypoint(state, source, gw, ip, port, rand, { service: svc });
    if (svc.loadBalancer?.mode === "Passthrough") return { kind: "tcp", address: ip, port, service: svc };
    return routeToService(state, svc, port, ip.includes(":"), rand, illegalPorts, source);
  }
  // Not in the mesh: plain TCP passthrough, as ztunnel does for unknown destinations.
  return { kind: "tcp", address: ip, port };
}

/** A service reached by name with no VIP (headless): its waypoint by `hostname:port`, else an endpoint. */
export function routeToServiceByName(state: MeshState, source: Workload, service: Service, port: number, rand: () => number = Math.random, illegalPorts: ReadonlySet<number> = ILLEGAL_PORTS): OutboundRoute {
  const gw = serviceWaypoint(service, rand);
  if (gw && !isWaypointReplica(state, source.network, gw, source)) {
    return viaWaypoint(state, source, gw, "", port, rand, { service, authority: `${service.hostname}:${port}` });
  }
  return routeToService(state, service, port, false, rand, illegalPorts, source);
}

/**
 * Resolves a name against the mesh's service hostnames, with the Kubernetes search forms
 * relative to the source namespace: `echo`, `echo.ns`, `echo.ns.svc`, full FQDN.
 */
export function resolveMeshHostname(state: MeshState, source: Workload, name: string, clusterDomain = "cluster.local"): Service | undefined {
  const n = name.toLowerCase().replace(/\.$/, "");
  const candidates = [n];
  const dots = n.split(".").length - 1;
  if (dots === 0) candidates.push(`${n}.${source.namespace}.svc.${clusterDomain}`);
  if (dots === 1) candidates.push(`${n}.svc.${clusterDomain}`);
  if (n.endsWith(".svc")) candidates.push(`${n}.${clusterDomain}`);
  for (const c of candidates) {
    const found = state.servicesByHostname(c);
    if (found.length === 0) continue;
    // Same-namespace service wins a tie, as ztunnel prefers the client's namespace.
    return found.find((s) => s.namespace === source.namespace) ?? found[0];
  }
  return undefined;
}
