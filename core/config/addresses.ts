// IP, CIDR and `network/ip` handling. One canonical text form per address, so map lookups are
// exact string matches: IPv4 dotted quad, IPv6 RFC 5952 (lowercase, compressed), and IPv4-mapped
// IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports) folded to plain IPv4.

export interface ParsedIp {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  /** Canonical text form. */
  readonly text: string;
}

export interface ParsedCidr {
  readonly family: 4 | 6;
  /** Network address (host bits cleared), canonical text. */
  readonly ip: string;
  readonly prefixLength: number;
  readonly bytes: Uint8Array;
}

const V4_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4Bytes(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    // Leading zeros are rejected as Rust's Ipv4Addr does (they read as octal elsewhere).
    if (!V4_OCTET.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseV6Bytes(s: string): Uint8Array | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const toGroups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const pieces = part.split(":");
    const groups: number[] = [];
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (i === pieces.length - 1 && p.includes(".")) {
        const v4 = parseV4Bytes(p);
        if (!v4) return undefined;
        groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!V6_GROUP.test(p)) return undefined;
        groups.push(parseInt(p, 16));
      }
    }
    return groups;
  };
  const head = toGroups(halves[0]!);
  const tail = halves.length === 2 ? toGroups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  // An embedded IPv4 is only allowed at the very end.
  if (halves.length === 2 && halves[0]!.includes(".")) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    if (head.length !== 8) return undefined;
    groups = head;
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = groups[i]! >> 8;
    out[i * 2 + 1] = groups[i]! & 0xff;
  }
  return out;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function formatV4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

function formatV6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((b[i * 2]! << 8) | b[i * 2 + 1]!);
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** Parses an IP address as Rust's `IpAddr::from_str` accepts it; undefined if invalid. */
export function parseIp(text: string): ParsedIp | undefined {
  if (text.includes(":")) {
    const b = parseV6Bytes(text);
    if (!b) return undefined;
    if (isV4Mapped(b)) {
      const v4 = b.slice(12);
      return { family: 4, bytes: v4, text: formatV4(v4) };
    }
    return { family: 6, bytes: b, text: formatV6(b) };
  }
  const b = parseV4Bytes(text);
  return b ? { family: 4, bytes: b, text: formatV4(b) } : undefined;
}

/** Canonical text of an IP, or undefined when it is not one. */
export function canonicalIp(text: string): string | undefined {
  return parseIp(text)?.text;
}

function maskBytes(bytes: Uint8Array, prefixLength: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefixLength - i * 8));
    out[i] = bits === 0 ? 0 : bytes[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** Key of an address masked to a prefix length; used by the CIDR index. */
export function maskedKey(bytes: Uint8Array, prefixLength: number): string {
  const m = maskBytes(bytes, prefixLength);
  let s = "";
  for (const x of m) s += x.toString(16).padStart(2, "0");
  return s;
}

const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

/**
 * Parses `ip/len` (a bare IP is taken as a host prefix). Host bits are cleared, as `ipnet`'s
 * `contains` ignores them anyway. IPv4-mapped IPv6 prefixes of at least /96 fold to IPv4.
 */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf("/");
  const ipText = slash < 0 ? text : text.slice(0, slash);
  const ip = parseIp(ipText);
  if (!ip) return undefined;
  const max = ip.family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!PREFIX.test(lenText)) return undefined;
    len = Number(lenText);
    // A mapped address came in as IPv6: its prefix counts the 96 mapping bits.
    if (ip.family === 4 && ipText.includes(":")) {
      if (len < 96 || len > 128) return undefined;
      len -= 96;
    }
    if (len > max) return undefined;
  }
  const net = maskBytes(ip.bytes, len);
  return {
    family: ip.family,
    ip: ip.family === 4 ? formatV4(net) : formatV6(net),
    prefixLength: len,
    bytes: net,
  };
}

/** True when `ip` (canonical or not) lies inside `cidr`. */
export function cidrContains(cidr: ParsedCidr, ip: string | ParsedIp): boolean {
  const p = typeof ip === "string" ? parseIp(ip) : ip;
  if (!p || p.family !== cidr.family) return false;
  return maskedKey(p.bytes, cidr.prefixLength) === maskedKey(cidr.bytes, cidr.prefixLength);
}

/** The index key of an address on a network: `network/ip` with the IP canonical. */
export function addressKey(network: string, canonicalIpText: string): string {
  return `${network}/${canonicalIpText}`;
}

/**
 * Parses ztunnel's NetworkAddress string `network/ip` (split at the first `/`, empty network
 * allowed, so `/10.0.0.1` is the default network).
 */
export function parseNetworkAddress(text: string): { network: string; ip: string } | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const ip = canonicalIp(text.slice(slash + 1));
  return ip === undefined ? undefined : { network: text.slice(0, slash), ip };
}
