// The node's resolver configuration (resolv(5)): where the DNS proxy forwards names that are not
// the mesh's. Read once at start, as istio/ztunnel does.
import { readFileSync } from "node:fs";
import { parseIp } from "../config/index.ts";

export interface ResolverConfig {
  /** upstream name servers, in order (IP literals; port 53) */
  readonly nameservers: readonly string[];
  readonly search: readonly string[];
}

export function parseResolvConf(text: string): ResolverConfig {
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    if (!line) continue;
    const [key, ...rest] = line.split(/\s+/);
    if (key === "nameserver" && rest[0]) {
      // A scoped IPv6 address (fe80::1%eth0) cannot be dialed from another namespace; skip it.
      const ip = parseIp(rest[0]);
      if (ip) nameservers.push(ip.text);
    } else if (key === "search" || key === "domain") {
      search = rest.map((d) => d.toLowerCase().replace(/\.$/, "")).filter(Boolean);
    }
  }
  return { nameservers, search };
}

/** Reads `path`; a missing or unreadable file means no upstream (every forwarded query fails fast). */
export function readResolvConf(path = "/etc/resolv.conf"): ResolverConfig & { readonly error?: string } {
  try {
    return parseResolvConf(readFileSync(path, "utf8"));
  } catch (e) {
    return { nameservers: [], search: [], error: `cannot read ${path}: ${(e as Error).message}` };
  }
}
