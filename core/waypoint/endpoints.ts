// Endpoint choice for the waypoint's upstream: least request by the power of two choices (Envoy's
// LEAST_REQUEST, Istio's default), weighted by capacity, and passive ejection of an endpoint after
// consecutive connect failures (Envoy's outlier detection, consecutive local-origin failures).
import type { MeshState, Service, Workload } from "../config/index.ts";

export interface Endpoint {
  readonly workload: Workload;
  /** an IP, or a DNS name for an endpoint outside the mesh known only by hostname */
  readonly ip: string;
  readonly port: number;
  /** `ip:port`, the balancer's key */
  readonly key: string;
  /** the service it was chosen for (egress TLS is configured per service) */
  readonly service?: Service;
}

export interface EjectionPolicy {
  /** consecutive connect failures that eject an endpoint (Envoy default 5) */
  readonly consecutiveFailures: number;
  /** first ejection; the n-th lasts n times as long (Envoy base_ejection_time 30 s) */
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
}

export const DEFAULT_EJECTION: EjectionPolicy = { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000 };

interface Health {
  consecutive: number;
  ejections: number;
  ejectedUntil: number;
}

/** Bounded: forget state for endpoints not seen in a while so churn cannot grow the maps forever. */
const MAX_TRACKED = 10_000;

export class EndpointBalancer {
  private readonly active = new Map<string, number>();
  private readonly health = new Map<string, Health>();

  constructor(
    private readonly policy: EjectionPolicy = DEFAULT_EJECTION,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Two random candidates, the one with fewer requests in flight per unit of capacity wins.
   * Ejected endpoints are skipped unless every candidate is ejected (Envoy's panic mode: better
   * to try than to fail everything). `exclude`: endpoints a retry should avoid when others exist.
   */
  pick(candidates: readonly Endpoint[], rand: () => number = Math.random, exclude?: ReadonlySet<string>): Endpoint | undefined {
    if (candidates.length === 0) return undefined;
    const t = this.now();
    let usable = candidates.filter((c) => !this.isEjected(c.key, t) && !exclude?.has(c.key));
    if (usable.length === 0) usable = candidates.filter((c) => !this.isEjected(c.key, t));
    if (usable.length === 0) usable = [...candidates];
    if (usable.length === 1) return usable[0];
    const a = usable[Math.floor(rand() * usable.length)]!;
    let b = usable[Math.floor(rand() * (usable.length - 1))]!;
    if (b === a) b = usable[usable.length - 1]!;
    return this.load(b) < this.load(a) ? b : a;
  }

  private load(e: Endpoint): number {
    return ((this.active.get(e.key) ?? 0) + 1) / Math.max(1, e.workload.capacity);
  }

  begin(e: Endpoint): void {
    this.active.set(e.key, (this.active.get(e.key) ?? 0) + 1);
  }

  finish(e: Endpoint): void {
    const n = (this.active.get(e.key) ?? 1) - 1;
    if (n <= 0) this.active.delete(e.key);
    else this.active.set(e.key, n);
  }

  connectSucceeded(e: Endpoint): void {
    const h = this.health.get(e.key);
    if (h) h.consecutive = 0;
  }

  /** True when this failure ejected the endpoint. */
  connectFailed(e: Endpoint): boolean {
    let h = this.health.get(e.key);
    if (!h) {
      if (this.health.size >= MAX_TRACKED) this.forgetHealthy();
      h = { consecutive: 0, ejections: 0, ejectedUntil: 0 };
      this.health.set(e.key, h);
    }
    h.consecutive++;
    if (h.consecutive < this.policy.consecutiveFailures) return false;
    h.consecutive = 0;
    h.ejections++;
    h.ejectedUntil = this.now() + Math.min(this.policy.maxEjectionMs, this.policy.baseEjectionMs * h.ejections);
    return true;
  }

  isEjected(key: string, t = this.now()): boolean {
    const h = this.health.get(key);
    return !!h && h.ejectedUntil > t;
  }

  get ejectedCount(): number {
    const t = this.now();
    let n = 0;
    for (const h of this.health.values()) if (h.ejectedUntil > t) n++;
    return n;
  }

  private forgetHealthy(): void {
    const t = this.now();
    for (const [k, h] of this.health) if (h.ejectedUntil <= t) this.health.delete(k);
  }
}

/** The endpoints of `service` that can take `servicePort`, with the port each one listens on. */
export function serviceEndpoints(state: MeshState, service: Service, servicePort: number): Endpoint[] {
  const allowUnhealthy = service.loadBalancer?.healthPolicy === "AllowAll";
  const out: Endpoint[] = [];
  for (const ep of state.endpointsOf(service.key)) {
    if (!allowUnhealthy && ep.workload.status !== "Healthy") continue;
    // Outside the mesh an endpoint may be a DNS name only (a ServiceEntry with DNS resolution).
    const ip = ep.workload.workloadIps.find((a) => !a.includes(":")) ?? ep.workload.workloadIps[0] ?? (ep.workload.protocol === "TCP" && ep.workload.hostname ? ep.workload.hostname : undefined);
    if (!ip) continue;
    const fromEndpoint = ep.ports.get(servicePort);
    const fromService = service.ports.get(servicePort);
    const port = fromEndpoint && fromEndpoint > 0 ? fromEndpoint : fromService && fromService > 0 ? fromService : fromService === 0 ? 0 : servicePort;
    if (port === 0) continue;
    out.push({ workload: ep.workload, ip, port, key: `${ip}:${port}`, service });
  }
  return out;
}
