// The extra headers an HBONE CONNECT carries (reference/ztunnel.md §2.3): baggage describing the
// source workload, forwarded with the client address, and a W3C traceparent.
import { randomBytes } from "node:crypto";

export interface BaggageFields {
  clusterId?: string;
  namespace?: string;
  workloadType?: string; // deployment | cronjob | pod | job
  workloadName?: string;
  canonicalName?: string;
  canonicalRevision?: string;
  region?: string;
  zone?: string;
}

const WORKLOAD_TYPES = new Set(["deployment", "cronjob", "pod", "job"]);

/** Keys in ztunnel's order, empty values omitted. */
export function formatBaggage(b: BaggageFields): string {
  const parts: string[] = [];
  const add = (k: string, v: string | undefined) => {
    if (v) parts.push(`${k}=${v}`);
  };
  add("k8s.cluster.name", b.clusterId);
  add("k8s.namespace.name", b.namespace);
  const type = (b.workloadType ?? "").toLowerCase();
  if (WORKLOAD_TYPES.has(type)) add(`k8s.${type}.name`, b.workloadName);
  add("service.name", b.canonicalName);
  add("service.version", b.canonicalRevision);
  add("cloud.region", b.region);
  add("cloud.availability_zone", b.zone);
  return parts.join(",");
}

/** Lenient parse for telemetry only; never used for identity or policy. Bounded input. */
export function parseBaggage(value: string | undefined): BaggageFields {
  const out: BaggageFields = {};
  if (!value || value.length > 8192) return out;
  for (const item of value.split(",").slice(0, 64)) {
    const eq = item.indexOf("=");
    if (eq < 0) continue;
    const k = item.slice(0, eq).trim();
    const v = item.slice(eq + 1).trim();
    if (k === "k8s.cluster.name") out.clusterId = v;
    else if (k === "k8s.namespace.name") out.namespace = v;
    else if (k === "service.name") out.canonicalName = v;
    else if (k === "service.version") out.canonicalRevision = v;
    else if (k === "cloud.region") out.region = v;
    else if (k === "cloud.availability_zone") out.zone = v;
    else {
      const m = /^k8s\.(deployment|cronjob|pod|job)\.name$/.exec(k);
      if (m) {
        out.workloadType = m[1];
        out.workloadName = v;
      }
    }
  }
  return out;
}

export function formatForwarded(clientAddr: string, clientPort: number, host?: string): string {
  const forAddr = clientAddr.includes(":") ? `[${clientAddr}]:${clientPort}` : `${clientAddr}:${clientPort}`;
  return host ? `for="${forAddr}";host=${host}` : `for="${forAddr}"`;
}

/** `host=` of a forwarded header, as a hint only (ztunnel guess_inbound_service). */
export function forwardedHost(value: string | undefined): string | undefined {
  if (!value || value.length > 2048) return undefined;
  const m = /(?:^|;)\s*host=("?)([A-Za-z0-9.-]{1,253})\1\s*(?:;|$)/.exec(value);
  return m?.[2];
}

/** `for=` of a forwarded header as {ip, port}; undefined when absent or not an address. */
export function forwardedFor(value: string | undefined): { ip: string; port: number } | undefined {
  if (!value || value.length > 2048) return undefined;
  const m = /(?:^|;)\s*for="?(?:\[([0-9a-fA-F:.]{2,45})\]|([0-9.]{7,15})):(\d{1,5})"?\s*(?:;|$)/.exec(value);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { ip: (m[1] ?? m[2])!, port };
}

export function newTraceparent(): string {
  const b = randomBytes(24);
  return `00-${b.subarray(0, 16).toString("hex")}-${b.subarray(16).toString("hex")}-00`;
}

/**
 * CONNECT request header by which a destination's ztunnel, hairpinning a tunnel that skipped the
 * destination's waypoint, states the source identity it verified. A waypoint believes it only from
 * a peer that is the destination workload itself (see core/waypoint); from anyone else it is ignored.
 */
export const SOURCE_PRINCIPAL_HEADER = "x-mesh-source-principal";
