// Wire formats of the Proxy-Wasm ABI (reference/waypoint.md §A.6): header maps ("pairs"),
// property paths, property values.
//
// Header maps inside the host are flat string arrays [name0, value0, name1, value1, ...]: cheap
// to copy, edit and ship between threads.

export type FlatPairs = string[];

const ENC = new TextEncoder();
const DEC = new TextDecoder("utf-8", { fatal: false });

/** cpp-host limits (limits.h): larger or longer pair lists are refused. */
export const PAIRS_MAX_BYTES = 1 << 20;
export const PAIRS_MAX_COUNT = 1024;

/**
 * Encodes pairs: u32 N, N × (u32 key_len, u32 value_len), then N × (key, 0, value, 0); all
 * integers little-endian. {a:"1", b:"22"} is the 29-byte vector of the reference.
 */
export function encodePairs(pairs: readonly string[]): Uint8Array {
  const n = pairs.length >> 1;
  const parts: Uint8Array[] = new Array(n * 2);
  let size = 4 + n * 8;
  for (let i = 0; i < n * 2; i++) {
    const b = ENC.encode(pairs[i]!);
    parts[i] = b;
    size += b.length + 1;
  }
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, n, true);
  let off = 4 + n * 8;
  for (let i = 0; i < n; i++) {
    const k = parts[2 * i]!;
    const v = parts[2 * i + 1]!;
    dv.setUint32(4 + i * 8, k.length, true);
    dv.setUint32(8 + i * 8, v.length, true);
    out.set(k, off);
    off += k.length + 1;
    out.set(v, off);
    off += v.length + 1;
  }
  return out;
}

/**
 * Decodes pairs; undefined when malformed (truncated, missing NUL, trailing bytes, too large or
 * too many). Empty input, a single 0x00 and a bare N=0 all mean the empty map.
 */
export function decodePairs(bytes: Uint8Array): FlatPairs | undefined {
  if (bytes.length === 0 || (bytes.length === 1 && bytes[0] === 0)) return [];
  if (bytes.length < 4 || bytes.length > PAIRS_MAX_BYTES) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(0, true);
  if (n > PAIRS_MAX_COUNT) return undefined;
  let off = 4 + n * 8;
  if (off > bytes.length) return undefined;
  const out: FlatPairs = new Array(n * 2);
  for (let i = 0; i < n; i++) {
    const kl = dv.getUint32(4 + i * 8, true);
    const vl = dv.getUint32(8 + i * 8, true);
    if (off + kl + 1 + vl + 1 > bytes.length) return undefined;
    if (bytes[off + kl] !== 0) return undefined;
    out[2 * i] = DEC.decode(bytes.subarray(off, off + kl));
    off += kl + 1;
    if (bytes[off + vl] !== 0) return undefined;
    out[2 * i + 1] = DEC.decode(bytes.subarray(off, off + vl));
    off += vl + 1;
  }
  if (off !== bytes.length) return undefined;
  return out;
}

/** Converts [[name, value], ...] to the flat form. */
export function flatten(pairs: readonly (readonly [string, string])[]): FlatPairs {
  const out: FlatPairs = new Array(pairs.length * 2);
  for (let i = 0; i < pairs.length; i++) {
    const p = pairs[i]!;
    out[2 * i] = p[0];
    out[2 * i + 1] = p[1];
  }
  return out;
}

export function unflatten(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = new Array(flat.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = [flat[2 * i]!, flat[2 * i + 1]!];
  return out;
}

/** The first value of `name` in a flat map, or undefined. */
export function pairValue(flat: readonly string[] | undefined, name: string): string | undefined {
  if (flat === undefined) return undefined;
  for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] === name) return flat[i + 1];
  return undefined;
}

/** UTF-8 size of a header map in the serialized form (what proxy_get_header_map_size reports). */
export function pairsByteSize(flat: readonly string[]): number {
  let size = 4 + (flat.length >> 1) * 8;
  for (const s of flat) size += utf8Length(s) + 1;
  return size;
}

/**
 * pairsByteSize(flat) <= max, without counting UTF-8 bytes when the UTF-16 lengths already show it
 * (a string takes at most 3 bytes per unit): a map well under the bound costs one pass of lengths.
 */
export function pairsFit(flat: readonly string[], max: number): boolean {
  let bound = 4 + (flat.length >> 1) * 8;
  for (const s of flat) bound += 3 * s.length + 1;
  return bound <= max || pairsByteSize(flat) <= max;
}

export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2; // 4 bytes for the pair (2 units already counted)
        i++;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

/**
 * Splits a property path into segments. Segments are NUL-separated; the C++ SDK terminates every
 * segment, the Rust SDK does not, AssemblyScript sends one segment: a trailing empty segment is
 * dropped (Envoy does the same).
 */
export function splitPropertyPath(bytes: Uint8Array): string[] {
  const segs = DEC.decode(bytes).split("\0");
  if (segs.length > 1 && segs[segs.length - 1] === "") segs.pop();
  return segs;
}

export function encodeString(s: string): Uint8Array {
  return ENC.encode(s);
}

export function decodeString(b: Uint8Array): string {
  return DEC.decode(b);
}

/** Envoy serializes integers (and timestamps/durations, as nanoseconds) as 8 raw little-endian bytes. */
export function encodeInt64(v: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, typeof v === "bigint" ? v : BigInt(Math.trunc(v)), true);
  return out;
}

export function encodeBool(v: boolean): Uint8Array {
  return new Uint8Array([v ? 1 : 0]);
}
