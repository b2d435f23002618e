// buildMeshState: one immutable, indexed view over workloads, services and policies. Every
// lookup on the data path is a Map get on a canonical `network/ip` string; only CIDR VIPs need
// more, and those are indexed by prefix length so a lookup costs one Map get per distinct length.

import type { AuthorizationPolicy, MeshState, PortMap, Service, Workload } from "./model.ts";
import { addressKey, canonicalIp, maskedKey, parseCidr, parseIp } from "./addresses.ts";
import { frozenMap } from "./frozen.ts";

export interface MeshStateInput {
  readonly workloads: readonly Workload[];
  readonly services: readonly Service[];
  readonly policies: readonly AuthorizationPolicy[];
}

type Endpoint = { readonly workload: Workload; readonly ports: PortMap };

/** Per network and IP family: prefix lengths longest first, and masked address -> service. */
interface CidrTable {
  lengths: number[];
  byLength: Map<number, Map<string, Service>>;
}

/**
 * ztunnel's tie-break when two workloads claim one address (WorkloadByAddr::get): prefer a Pod
 * (hard to spoof), then one in the mesh (HBONE). Equal rank: the one listed first wins.
 */
function workloadRank(w: Workload): number {
  return (w.uid.includes("//Pod/") ? 2 : 0) + (w.protocol === "HBONE" ? 1 : 0);
}

/** Two services on one VIP: a `canonical` one wins, else the one listed first. */
function preferService(existing: Service, candidate: Service): Service {
  return !existing.canonical && candidate.canonical ? candidate : existing;
}

function withCanonicalRetry<T>(network: string, ip: string, get: (key: string) => T | undefined): T | undefined {
  const hit = get(addressKey(network, ip));
  if (hit !== undefined) return hit;
  const c = canonicalIp(ip);
  return c === undefined || c === ip ? undefined : get(addressKey(network, c));
}

/**
 * Builds the indexes. Total: it never throws. Conflicts (which a validated file never has, but
 * merged sources may) resolve deterministically: the first entry with a key wins, address and
 * VIP ties use ztunnel's preferences above.
 */
export function buildMeshState(input: MeshStateInput): MeshState {
  const workloads = new Map<string, Workload>();
  for (const w of input.workloads) if (!workloads.has(w.uid)) workloads.set(w.uid, w);
  const services = new Map<string, Service>();
  for (const s of input.services) if (!services.has(s.key)) services.set(s.key, s);
  const policies = new Map<string, AuthorizationPolicy>();
  for (const p of input.policies) if (!policies.has(p.key)) policies.set(p.key, p);

  const byAddress = new Map<string, Workload>();
  const endpoints = new Map<string, Endpoint[]>();
  for (const w of workloads.values()) {
    // HostNetwork workloads share the node's IP; ztunnel does not index them by address.
    if (w.networkMode !== "HostNetwork") {
      for (const ip of w.workloadIps) {
        const c = canonicalIp(ip) ?? ip;
        const key = addressKey(w.network, c);
        const prev = byAddress.get(key);
        if (prev === undefined || workloadRank(w) > workloadRank(prev)) byAddress.set(key, w);
      }
    }
    // Unhealthy workloads stay endpoints here (a service with healthPolicy AllowAll may use them);
    // load balancing filters by status.
    for (const [serviceKey, ports] of w.services) {
      let list = endpoints.get(serviceKey);
      if (!list) endpoints.set(serviceKey, (list = []));
      list.push(Object.freeze({ workload: w, ports }));
    }
  }

  const byVip = new Map<string, Service>();
  const byHostname = new Map<string, Service[]>();
  const cidrTables = new Map<string, CidrTable>();
  for (const s of services.values()) {
    for (const vip of s.vips) {
      const key = addressKey(vip.network, canonicalIp(vip.ip) ?? vip.ip);
      const prev = byVip.get(key);
      byVip.set(key, prev ? preferService(prev, s) : s);
    }
    for (const cv of s.cidrVips) {
      const c = parseCidr(cv.cidr);
      if (!c) continue;
      const tableKey = `${cv.network}|${c.family}`;
      let t = cidrTables.get(tableKey);
      if (!t) cidrTables.set(tableKey, (t = { lengths: [], byLength: new Map() }));
      let m = t.byLength.get(c.prefixLength);
      if (!m) {
        t.byLength.set(c.prefixLength, (m = new Map()));
        t.lengths.push(c.prefixLength);
      }
      const mk = maskedKey(c.bytes, c.prefixLength);
      const prev = m.get(mk);
      m.set(mk, prev ? preferService(prev, s) : s);
    }
    let list = byHostname.get(s.hostname);
    if (!list) byHostname.set(s.hostname, (list = []));
    list.push(s);
  }
  for (const t of cidrTables.values()) t.lengths.sort((a, b) => b - a);

  const frozenEndpoints = new Map<string, readonly Endpoint[]>();
  for (const [k, v] of endpoints) frozenEndpoints.set(k, Object.freeze(v));
  const frozenHostnames = new Map<string, readonly Service[]>();
  for (const [k, v] of byHostname) frozenHostnames.set(k, Object.freeze(v));
  const none: readonly never[] = Object.freeze([]);

  const state: MeshState = {
    workloads: frozenMap(workloads),
    services: frozenMap(services),
    policies: frozenMap(policies),
    workloadByAddress: (network, ip) => withCanonicalRetry(network, ip, (k) => byAddress.get(k)),
    serviceByVip(network, ip) {
      const exact = withCanonicalRetry(network, ip, (k) => byVip.get(k));
      if (exact !== undefined || cidrTables.size === 0) return exact;
      const p = parseIp(ip);
      if (!p) return undefined;
      const t = cidrTables.get(`${network}|${p.family}`);
      if (!t) return undefined;
      for (const len of t.lengths) {
        const hit = t.byLength.get(len)!.get(maskedKey(p.bytes, len));
        if (hit !== undefined) return hit;
      }
      return undefined;
    },
    servicesByHostname: (hostname) => frozenHostnames.get(hostname) ?? none,
    endpointsOf: (serviceKey) => frozenEndpoints.get(serviceKey) ?? none,
  };
  return Object.freeze(state);
}

/** The state with nothing in it (before any source has loaded). */
export const EMPTY_MESH_STATE: MeshState = buildMeshState({ workloads: [], services: [], policies: [] });
