// Octet classes and small grammars of RFC 9110/9112/3986 shared by the parser and the serializer.

/** tchar (RFC 9110 §5.6.2): the only octets allowed in a method or field name. */
export const TCHAR = new Uint8Array(256);
/** field-vchar / SP / HTAB (RFC 9110 §5.5): octets allowed in a field value. No CTL, no DEL. */
export const FIELD_CHAR = new Uint8Array(256);
/** request-target octets: VCHAR except `#` (a fragment is never sent; Envoy rejects it too). */
export const TARGET_CHAR = new Uint8Array(256);
/** Hex digit values, -1 for anything else. */
export const HEX = new Int8Array(256).fill(-1);
{
  for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
  for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
  for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;
  for (const ch of "!#$%&'*+-.^_`|~") TCHAR[ch.charCodeAt(0)] = 1;
  FIELD_CHAR[0x09] = 1;
  for (let c = 0x20; c <= 0x7e; c++) FIELD_CHAR[c] = 1;
  for (let c = 0x80; c <= 0xff; c++) FIELD_CHAR[c] = 1;
  for (let c = 0x21; c <= 0x7e; c++) TARGET_CHAR[c] = 1;
  TARGET_CHAR[0x23] = 0;
  for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
  for (let c = 0; c < 6; c++) {
    HEX[0x41 + c] = 10 + c;
    HEX[0x61 + c] = 10 + c;
  }
}

/** Buffer's native latin1 decoder works on any Uint8Array and is ~4x faster than toString(). */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }).latin1Slice;

/** Octets [start, end) as a latin1 string: one char per octet, so obs-text round-trips. */
export function latin1(src: Uint8Array, start: number, end: number): string {
  return latin1Slice.call(src, start, end);
}

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || TCHAR[c] !== 1) return false;
  }
  return true;
}

/** A value that can be written verbatim: field chars only, no leading/trailing whitespace. */
export function isFieldValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || FIELD_CHAR[c] !== 1) return false;
  }
  if (s.length === 0) return true;
  const first = s.charCodeAt(0);
  const last = s.charCodeAt(s.length - 1);
  return first !== 0x20 && first !== 0x09 && last !== 0x20 && last !== 0x09;
}

/** A request-target we would write: target octets only, non-empty. */
export function isRequestTarget(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || TARGET_CHAR[c] !== 1) return false;
  }
  return true;
}

/** reg-name octets (RFC 3986 §3.2.2): unreserved and sub-delims; `%` is handled separately. */
const REG_NAME = new Uint8Array(256);
{
  for (let c = 0x30; c <= 0x39; c++) REG_NAME[c] = 1;
  for (let c = 0x41; c <= 0x5a; c++) REG_NAME[c] = 1;
  for (let c = 0x61; c <= 0x7a; c++) REG_NAME[c] = 1;
  for (const ch of "-._~!$&'()*+,;=") REG_NAME[ch.charCodeAt(0)] = 1;
}

/**
 * uri-host [":" port] (RFC 3986 §3.2.2-3), no userinfo: an IP-literal in brackets, or a reg-name /
 * IPv4 of unreserved, sub-delims and pct-encoded octets. `requirePort` for CONNECT's authority-form.
 */
export function isValidAuthority(s: string, requirePort = false): boolean {
  const n = s.length;
  if (n === 0) return false;
  let i = 0;
  if (s.charCodeAt(0) === 0x5b) {
    const close = s.indexOf("]");
    if (close < 3) return false;
    for (let k = 1; k < close; k++) {
      const c = s.charCodeAt(k);
      if (c > 0xff || (HEX[c]! < 0 && c !== 0x3a && c !== 0x2e)) return false;
    }
    i = close + 1;
  } else {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 0x3a) break;
      if (c > 0xff || REG_NAME[c] !== 1) {
        if (c !== 0x25 || i + 2 >= n || HEX[s.charCodeAt(i + 1) & 0xff]! < 0 || HEX[s.charCodeAt(i + 2) & 0xff]! < 0) return false;
        i += 2;
      }
      i++;
    }
    if (i === 0) return false;
  }
  if (i === n) return !requirePort;
  if (s.charCodeAt(i) !== 0x3a) return false;
  const port = s.slice(i + 1);
  if (port.length === 0) return !requirePort;
  if (port.length > 5) return false;
  for (let k = 0; k < port.length; k++) {
    const c = port.charCodeAt(k);
    if (c < 0x30 || c > 0x39) return false;
  }
  return Number(port) <= 65535;
}
