// Readers for value types shared by workloads, services and policies.

import type { GatewayAddress, NetworkAddress } from "./model.ts";
import { canonicalIp, parseNetworkAddress } from "./addresses.ts";
import { Fields, Issues, readPort, readString } from "./schema-read.ts";
import type { YNode } from "./yaml-tree.ts";

export function readIp(n: YNode, path: string, issues: Issues): string | undefined {
  const s = readString(n, path, issues, "an IPv4 or IPv6 address");
  if (s === undefined) return undefined;
  const ip = canonicalIp(s);
  if (ip === undefined) issues.error(path, `expected an IPv4 or IPv6 address, got ${JSON.stringify(s)}`);
  return ip;
}

/** ztunnel's NetworkAddress string: `network/ip`, network may be empty (`/10.0.0.1`). */
export function readNetworkAddress(n: YNode, path: string, issues: Issues): NetworkAddress | undefined {
  const expected = `a network address "network/ip" (e.g. "/10.96.0.1")`;
  const s = readString(n, path, issues, expected);
  if (s === undefined) return undefined;
  const a = parseNetworkAddress(s);
  if (a === undefined) {
    issues.error(path, `expected ${expected}, got ${JSON.stringify(s)}`);
    return undefined;
  }
  return Object.freeze(a);
}

/** `namespace/name` with both parts non-empty and no further `/`. */
export function splitNamespaced(s: string): { namespace: string; name: string } | undefined {
  const slash = s.indexOf("/");
  if (slash <= 0 || slash === s.length - 1) return undefined;
  const namespace = s.slice(0, slash);
  const name = s.slice(slash + 1);
  if (name.includes("/")) return undefined;
  return { namespace, name };
}

/** A plain identifier-like name (namespace, service account): non-empty, no `/`. */
export function readName(n: YNode, path: string, issues: Issues, what: string): string | undefined {
  const s = readString(n, path, issues, what);
  if (s === undefined) return undefined;
  if (s === "" || s.includes("/")) {
    issues.error(path, `expected ${what}, got ${JSON.stringify(s)}`);
    return undefined;
  }
  return s;
}

const GATEWAY_KEYS = ["destination", "hboneMtlsPort"] as const;

/**
 * GatewayAddress `{destination, hboneMtlsPort}`. serde reads `destination` as an untagged enum:
 * a NetworkAddress `network/ip` when the part after the first `/` is an IP, else a
 * NamespacedHostname `namespace/hostname`.
 */
export function readGateway(n: YNode, path: string, issues: Issues): GatewayAddress | undefined {
  const f = Fields.read(n, path, GATEWAY_KEYS, issues, "a gateway address {destination, hboneMtlsPort}");
  if (!f) return undefined;
  const destNode = f.required("destination", issues, `"network/ip" or "namespace/hostname"`);
  const portNode = f.required("hboneMtlsPort", issues, "a port number 1..65535");
  let destination: GatewayAddress["destination"] | undefined;
  if (destNode) {
    const p = f.at("destination");
    const s = readString(destNode, p, issues, `"network/ip" or "namespace/hostname"`);
    if (s !== undefined) {
      const addr = parseNetworkAddress(s);
      const slash = s.indexOf("/");
      const host = s.slice(slash + 1);
      if (addr) destination = Object.freeze({ kind: "address" as const, network: addr.network, ip: addr.ip });
      else if (slash > 0 && host !== "" && !host.includes("/")) {
        destination = Object.freeze({ kind: "hostname" as const, namespace: s.slice(0, slash), hostname: host });
      } else issues.error(p, `expected "network/ip" or "namespace/hostname", got ${JSON.stringify(s)}`);
    }
  }
  const port = portNode ? readPort(portNode, f.at("hboneMtlsPort"), issues) : undefined;
  if (destination === undefined || port === undefined) return undefined;
  return Object.freeze({ destination, hboneMtlsPort: port });
}
