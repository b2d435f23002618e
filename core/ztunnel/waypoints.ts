// Waypoint selection on the ztunnel side (reference/ztunnel.md §5.1 steps 3 and 7, §5.5), as pure
// functions of the mesh state, and the "sandwich" guard: which waypoints a workload sits behind and
// whether a tunnel came from one of them.
import type { GatewayAddress, MeshState, Service, Workload } from "../config/index.ts";
import { ErrorCodes, MeshError } from "../errors/index.ts";

/** One waypoint replica to send a tunnel to. */
export interface WaypointHop {
  readonly address: string;
  readonly port: number;
  /** the replica's workload (its identity is what the TLS handshake must present) */
  readonly workload: Workload;
  /** SANs the handshake may present: the replica's identity plus its service's SANs */
  readonly identities: readonly string[];
  /** `namespace/hostname` of the waypoint service, when addressed by hostname */
  readonly serviceKey?: string;
}

function ipOf(w: Workload, preferV6: boolean): string | undefined {
  const v4 = w.workloadIps.find((ip) => !ip.includes(":"));
  const v6 = w.workloadIps.find((ip) => ip.includes(":"));
  return preferV6 ? (v6 ?? v4) : (v4 ?? v6);
}

function gatewayName(gw: GatewayAddress): string {
  const d = gw.destination;
  return d.kind === "hostname" ? `${d.namespace}/${d.hostname}` : `${d.network}/${d.ip}`;
}

/** Every replica a gateway address stands for (healthy ones, with an address). */
export function waypointReplicas(state: MeshState, network: string, gw: GatewayAddress, includeUnhealthy = false): Workload[] {
  const d = gw.destination;
  if (d.kind === "address") {
    const w = state.workloadByAddress(d.network || network, d.ip);
    if (w) return [w];
    const svc = state.serviceByVip(d.network || network, d.ip);
    return svc ? endpointWorkloads(state, svc, includeUnhealthy) : [];
  }
  const svc = state.services.get(`${d.namespace}/${d.hostname}`);
  return svc ? endpointWorkloads(state, svc, includeUnhealthy) : [];
}

function endpointWorkloads(state: MeshState, svc: Service, includeUnhealthy: boolean): Workload[] {
  const out: Workload[] = [];
  for (const ep of state.endpointsOf(svc.key)) {
    if ((includeUnhealthy || ep.workload.status === "Healthy") && ep.workload.workloadIps.length > 0) out.push(ep.workload);
  }
  return out;
}

/**
 * Picks one replica of the waypoint at `gw`, weighted by capacity. Unknown or empty waypoint is an
 * error, never a fallback to the direct path: that would skip the waypoint's policy.
 */
export function pickWaypointReplica(state: MeshState, network: string, gw: GatewayAddress, preferV6: boolean, rand: () => number): WaypointHop {
  const replicas = waypointReplicas(state, network, gw);
  let total = 0;
  for (const w of replicas) total += Math.max(0, w.capacity);
  let chosen: Workload | undefined;
  if (replicas.length > 0) {
    if (total <= 0) chosen = replicas[Math.floor(rand() * replicas.length)];
    else {
      let r = rand() * total;
      for (const w of replicas) {
        r -= Math.max(0, w.capacity);
        if (r < 0) {
          chosen = w;
          break;
        }
      }
      chosen ??= replicas[replicas.length - 1];
    }
  }
  const address = chosen ? ipOf(chosen, preferV6) : undefined;
  if (!chosen || !address) {
    throw new MeshError(ErrorCodes.WAYPOINT_UNRESOLVED, `waypoint ${gatewayName(gw)} has no healthy replica`);
  }
  const d = gw.destination;
  const svc = d.kind === "hostname" ? state.services.get(`${d.namespace}/${d.hostname}`) : undefined;
  return {
    address,
    port: gw.hboneMtlsPort,
    workload: chosen,
    identities: [...new Set([chosen.identity, ...(svc?.subjectAltNames ?? [])])],
    ...(svc ? { serviceKey: svc.key } : {}),
  };
}

/** The waypoint a service-addressed connection goes to: weighted waypoints first, else `waypoint`. */
export function serviceWaypoint(service: Service, rand: () => number): GatewayAddress | undefined {
  const weighted = service.weightedWaypoints?.filter((w) => w.weight > 0) ?? [];
  if (weighted.length > 0) {
    let total = 0;
    for (const w of weighted) total += w.weight;
    let r = rand() * total;
    for (const w of weighted) {
      r -= w.weight;
      if (r < 0) return w.destination;
    }
    return weighted[weighted.length - 1]!.destination;
  }
  return service.waypoint;
}

/**
 * The waypoints a workload sits behind: its own (workload-addressed traffic) and those of every
 * service it is an endpoint of (service-addressed traffic). Traffic reaching the workload from
 * anything but one of these is traffic that skipped its L7 policy.
 */
export function waypointsGuarding(state: MeshState, workload: Workload): GatewayAddress[] {
  const out: GatewayAddress[] = [];
  const seen = new Set<string>();
  const add = (gw: GatewayAddress | undefined): void => {
    if (!gw) return;
    const k = gatewayName(gw);
    if (seen.has(k)) return;
    seen.add(k);
    out.push(gw);
  };
  add(workload.waypoint);
  for (const key of workload.services.keys()) {
    const svc = state.services.get(key);
    if (!svc) continue;
    add(svc.waypoint);
    for (const w of svc.weightedWaypoints ?? []) add(w.destination);
  }
  return out;
}

/**
 * True when a peer is a replica of one of `gateways`: its verified identity is the replica's and
 * it connected from the replica's address (ztunnel's `check_from_waypoint`). Identity alone is not
 * enough: every replica shares one service account, and so may an unrelated pod.
 */
export function isFromWaypoint(state: MeshState, network: string, gateways: readonly GatewayAddress[], peerIdentity: string, peerIp: string): boolean {
  for (const gw of gateways) {
    // A replica marked unhealthy (draining) may still be finishing requests: it is still the waypoint.
    for (const w of waypointReplicas(state, network, gw, true)) {
      if (w.identity === peerIdentity && w.workloadIps.includes(peerIp)) return true;
    }
  }
  return false;
}

/** True when `workload` is itself a replica of the waypoint at `gw` (a waypoint never loops to itself). */
export function isWaypointReplica(state: MeshState, network: string, gw: GatewayAddress, workload: Workload): boolean {
  return waypointReplicas(state, network, gw, true).some((w) => w.uid === workload.uid);
}
