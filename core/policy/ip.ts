// Address and CIDR matching for the hot path. An address is parsed into a reusable slot (IPv4 as
// one unsigned 32-bit number, IPv6 as four), so matching a connection allocates nothing; the
// strict parsing rules are those of core/config (IPv4-mapped IPv6 folds to IPv4).

import { parseCidr, parseIp } from "../config/index.ts";

/** A parsed address, overwritten in place per evaluation. family 0 = not parsed / invalid. */
export class AddressSlot {
  family: 0 | 4 | 6 = 0;
  v4 = 0;
  w0 = 0;
  w1 = 0;
  w2 = 0;
  w3 = 0;
}

export interface CompiledCidr {
  readonly family: 4 | 6;
  readonly text: string;
  readonly net: readonly [number, number, number, number];
  readonly mask: readonly [number, number, number, number];
}

function maskWord(prefixLength: number, wordIndex: number): number {
  const bits = Math.max(0, Math.min(32, prefixLength - wordIndex * 32));
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

function word(bytes: Uint8Array, i: number): number {
  return ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
}

/** Compiles `ip` or `ip/len`; undefined when invalid. Host bits are ignored, as Istio does. */
export function compileCidr(text: string): CompiledCidr | undefined {
  const c = parseCidr(text);
  if (!c) return undefined;
  const len = c.prefixLength;
  if (c.family === 4) {
    const m = maskWord(len, 0);
    return { family: 4, text: `${c.ip}/${len}`, net: [(word(c.bytes, 0) & m) >>> 0, 0, 0, 0], mask: [m, 0, 0, 0] };
  }
  const mask: [number, number, number, number] = [maskWord(len, 0), maskWord(len, 1), maskWord(len, 2), maskWord(len, 3)];
  const net: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) net[i] = (word(c.bytes, i * 4) & mask[i]!) >>> 0;
  return { family: 6, text: `${c.ip}/${len}`, net, mask };
}

export function cidrHas(c: CompiledCidr, a: AddressSlot): boolean {
  if (a.family !== c.family) return false;
  if (a.family === 4) return ((a.v4 & c.mask[0]) >>> 0) === c.net[0];
  return (
    ((a.w0 & c.mask[0]) >>> 0) === c.net[0] &&
    ((a.w1 & c.mask[1]) >>> 0) === c.net[1] &&
    ((a.w2 & c.mask[2]) >>> 0) === c.net[2] &&
    ((a.w3 & c.mask[3]) >>> 0) === c.net[3]
  );
}

/** Dotted quad without allocation; rejects leading zeros like Rust's Ipv4Addr (and core/config). */
function parseV4Into(s: string, out: AddressSlot): boolean {
  let acc = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  const n = s.length;
  if (n < 7 || n > 15) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return false;
      acc = acc * 256 + octet;
      dots++;
      octet = 0;
      digits = 0;
      continue;
    }
    if (c < 48 || c > 57) return false;
    if (digits > 0 && octet === 0) return false;
    octet = octet * 10 + (c - 48);
    if (octet > 255) return false;
    digits++;
  }
  if (dots !== 3 || digits === 0) return false;
  out.family = 4;
  out.v4 = acc * 256 + octet;
  return true;
}

interface V6Parsed {
  readonly family: 4 | 6;
  readonly v4: number;
  readonly w: readonly [number, number, number, number];
}

// IPv6 text needs the general parser (which allocates); remember the few addresses a node sees.
const V6_CACHE_MAX = 4096;
const v6Cache = new Map<string, V6Parsed | null>();

function parseV6Slow(s: string): V6Parsed | null {
  const p = parseIp(s);
  if (!p) return null;
  if (p.family === 4) return { family: 4, v4: word(p.bytes, 0), w: [0, 0, 0, 0] };
  return { family: 6, v4: 0, w: [word(p.bytes, 0), word(p.bytes, 4), word(p.bytes, 8), word(p.bytes, 12)] };
}

/** Parses `s` into `out`; false (and family 0) when it is not an IP address. */
export function parseAddressInto(s: string, out: AddressSlot): boolean {
  if (parseV4Into(s, out)) return true;
  out.family = 0;
  if (s.indexOf(":") < 0) return false;
  let p = v6Cache.get(s);
  if (p === undefined) {
    p = parseV6Slow(s);
    if (v6Cache.size >= V6_CACHE_MAX) v6Cache.clear();
    v6Cache.set(s, p);
  }
  if (p === null) return false;
  out.family = p.family;
  out.v4 = p.v4;
  out.w0 = p.w[0];
  out.w1 = p.w[1];
  out.w2 = p.w[2];
  out.w3 = p.w[3];
  return true;
}
