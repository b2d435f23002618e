// Header fields as received (ordered, original case) with case-insensitive lookup, the character
// classes of RFC 9110 §5 the parser and serializer share, and the proxy helpers (hop-by-hop
// stripping, X-Forwarded-For). Values are latin1 strings: one char per octet, so obs-text survives a
// parse/serialize round trip byte for byte.

import { isFieldValue, isToken } from "./syntax.ts";

export { isFieldValue, isToken };

export type HeaderInit = HeaderList | Iterable<readonly [string, string]>;

/** Ordered header fields; lookups are case-insensitive, iteration yields the original case. */
export class HeaderList implements Iterable<[string, string]> {
  private readonly names: string[] = [];
  private readonly lower: string[] = [];
  private readonly values: string[] = [];

  static from(init?: HeaderInit): HeaderList {
    if (init instanceof HeaderList) return init.clone();
    const h = new HeaderList();
    if (init) for (const [n, v] of init) h.append(n, v);
    return h;
  }

  get size(): number {
    return this.names.length;
  }

  nameAt(i: number): string {
    return this.names[i] ?? "";
  }

  lowerNameAt(i: number): string {
    return this.lower[i] ?? "";
  }

  valueAt(i: number): string {
    return this.values[i] ?? "";
  }

  /** Parser fast path: `lower` is already `name.toLowerCase()`. */
  push(name: string, lower: string, value: string): void {
    this.names.push(name);
    this.lower.push(lower);
    this.values.push(value);
  }

  append(name: string, value: string): void {
    this.push(name, name.toLowerCase(), value);
  }

  /** The field's value; several lines are combined with ", " (RFC 9110 §5.3; use getAll for set-cookie). */
  get(name: string): string | undefined {
    const key = name.toLowerCase();
    let found: string | undefined;
    for (let i = 0; i < this.lower.length; i++) {
      if (this.lower[i] !== key) continue;
      found = found === undefined ? this.values[i] : `${found}, ${this.values[i]}`;
    }
    return found;
  }

  getAll(name: string): string[] {
    const key = name.toLowerCase();
    const out: string[] = [];
    for (let i = 0; i < this.lower.length; i++) if (this.lower[i] === key) out.push(this.values[i]!);
    return out;
  }

  has(name: string): boolean {
    return this.lower.indexOf(name.toLowerCase()) !== -1;
  }

  /** Number of field lines with this name. */
  count(name: string): number {
    const key = name.toLowerCase();
    let n = 0;
    for (const l of this.lower) if (l === key) n++;
    return n;
  }

  /** Replaces every line of `name` with one line (at the first one's position, else appended). */
  set(name: string, value: string): void {
    const key = name.toLowerCase();
    const first = this.lower.indexOf(key);
    if (first === -1) {
      this.push(name, key, value);
      return;
    }
    this.names[first] = name;
    this.values[first] = value;
    this.removeWhere((l, i) => l === key && i > first);
  }

  /** Removes every line of `name`; returns how many were removed. */
  delete(name: string): number {
    const key = name.toLowerCase();
    return this.removeWhere((l) => l === key);
  }

  /** Removes every line whose lower-case name is in `names`. */
  deleteAll(names: ReadonlySet<string>): number {
    return this.removeWhere((l) => names.has(l));
  }

  private removeWhere(pred: (lower: string, i: number) => boolean): number {
    let w = 0;
    const n = this.lower.length;
    for (let r = 0; r < n; r++) {
      if (pred(this.lower[r]!, r)) continue;
      if (w !== r) {
        this.names[w] = this.names[r]!;
        this.lower[w] = this.lower[r]!;
        this.values[w] = this.values[r]!;
      }
      w++;
    }
    this.names.length = w;
    this.lower.length = w;
    this.values.length = w;
    return n - w;
  }

  clone(): HeaderList {
    const h = new HeaderList();
    for (let i = 0; i < this.names.length; i++) h.push(this.names[i]!, this.lower[i]!, this.values[i]!);
    return h;
  }

  *[Symbol.iterator](): IterableIterator<[string, string]> {
    for (let i = 0; i < this.names.length; i++) yield [this.names[i]!, this.values[i]!];
  }

  /** Raw size as it would be written: `name: value\r\n` per line. */
  byteLength(): number {
    let n = 0;
    for (let i = 0; i < this.names.length; i++) n += this.names[i]!.length + this.values[i]!.length + 4;
    return n;
  }
}

/** Comma-separated list elements of every line of `name`, trimmed and lower-cased, empties skipped. */
export function listTokens(headers: HeaderList, name: string): string[] {
  const out: string[] = [];
  for (const line of headers.getAll(name)) {
    for (const part of line.split(",")) {
      const t = part.trim().toLowerCase();
      if (t) out.push(t);
    }
  }
  return out;
}

/**
 * Trailer fields that would change framing, routing or connection handling if honoured (RFC 9110
 * §6.5.1): the parser refuses them and the serializer never writes them.
 */
export const FORBIDDEN_TRAILERS: ReadonlySet<string> = new Set([
  "content-length",
  "transfer-encoding",
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
]);

/** RFC 9110 §7.6.1: fields that describe one connection and never travel past a proxy. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(["connection", "proxy-connection", "keep-alive", "te", "transfer-encoding", "upgrade"]);

/**
 * Fields a peer may not remove by naming them in `Connection` (the "hop-by-hop abuse" trick to make
 * a proxy drop a field the next hop depends on).
 */
const NOT_NOMINATABLE: ReadonlySet<string> = new Set(["host", "content-length"]);

/** A copy without hop-by-hop fields and without the fields the `Connection` header names. */
export function stripHopByHop(headers: HeaderList): HeaderList {
  const out = headers.clone();
  const named = new Set(HOP_BY_HOP);
  for (const t of listTokens(headers, "connection")) if (!NOT_NOMINATABLE.has(t)) named.add(t);
  out.deleteAll(named);
  return out;
}

/** Appends the client's address to `x-forwarded-for` (one line, comma-separated, oldest first). */
export function appendForwardedFor(headers: HeaderList, clientIp: string): void {
  const prior = headers.get("x-forwarded-for");
  headers.set("x-forwarded-for", prior === undefined || prior.trim() === "" ? clientIp : `${prior}, ${clientIp}`);
}
