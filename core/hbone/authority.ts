// The CONNECT `:authority` of an HBONE request: `ip:port`, `[v6]:port` or `hostname:port`
// (reference/ztunnel.md §2.3). Parsing is strict; anything else is a 400.
import { isIP } from "node:net";
import { MeshError, ErrorCodes } from "../errors/index.ts";

export type HboneTarget =
  | { readonly kind: "ip"; readonly ip: string; readonly port: number }
  | { readonly kind: "hostname"; readonly hostname: string; readonly port: number };

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

function bad(authority: string, why: string): MeshError {
  return new MeshError(ErrorCodes.HBONE_BAD_AUTHORITY, `invalid CONNECT authority ${JSON.stringify(authority.slice(0, 300))}: ${why}`);
}

export function parseAuthority(authority: string | undefined): HboneTarget {
  if (authority === undefined || authority === "") throw bad("", "missing");
  let host: string;
  let portText: string;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0 || authority[close + 1] !== ":") throw bad(authority, "expected [ipv6]:port");
    host = authority.slice(1, close);
    portText = authority.slice(close + 2);
    if (isIP(host) !== 6) throw bad(authority, "bracketed host is not an IPv6 address");
  } else {
    const colon = authority.lastIndexOf(":");
    if (colon <= 0) throw bad(authority, "expected host:port");
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
    if (host.includes(":")) throw bad(authority, "IPv6 addresses must be bracketed");
  }
  if (!/^[0-9]{1,5}$/.test(portText)) throw bad(authority, "port must be a number");
  const port = Number(portText);
  if (port < 1 || port > 65535) throw bad(authority, "port must be 1-65535");
  if (isIP(host) === 4 || isIP(host) === 6) return { kind: "ip", ip: host.toLowerCase(), port };
  if (!HOSTNAME.test(host)) throw bad(authority, "host is neither an IP address nor a DNS name");
  return { kind: "hostname", hostname: host.toLowerCase(), port };
}

export function formatAuthority(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}
