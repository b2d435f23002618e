// Protocol detection on the first bytes of a tunnel: the HTTP/2 connection preface (prior
// knowledge), an HTTP/1.x request line, or anything else (proxied as TCP). A protocol where the
// server speaks first sends nothing: after the sniff timeout it is TCP.

export type SniffedProtocol = "h2" | "h1" | "tcp";

const H2_PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** Longest method token we wait for before deciding (e.g. "PROPPATCH", "MKCALENDAR"). */
const MAX_METHOD = 20;

function isTchar(b: number): boolean {
  // RFC 9110 tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~"
  return (
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x21 ||
    (b >= 0x23 && b <= 0x27) ||
    b === 0x2a ||
    b === 0x2b ||
    b === 0x2d ||
    b === 0x2e ||
    b === 0x5e ||
    b === 0x5f ||
    b === 0x60 ||
    b === 0x7c ||
    b === 0x7e
  );
}

/** Bytes of a first line we wait for while it is still plausible text. */
export const SNIFF_MAX_BYTES = 8192;

/**
 * The protocol, or undefined when more bytes are needed to tell. A first line that ends in an
 * HTTP version is HTTP/1.x even when its method is malformed, so the HTTP parser rejects it (400)
 * rather than it slipping through as TCP; binary bytes decide "tcp" at once.
 */
export function sniffProtocol(bytes: Uint8Array): SniffedProtocol | undefined {
  if (bytes.byteLength === 0) return undefined;
  let h2 = true;
  const n = Math.min(bytes.byteLength, H2_PREFACE.byteLength);
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== H2_PREFACE[i]) {
      h2 = false;
      break;
    }
  }
  if (h2) return bytes.byteLength >= H2_PREFACE.byteLength ? "h2" : undefined;
  const limit = Math.min(bytes.byteLength, SNIFF_MAX_BYTES);
  let lf = -1;
  for (let i = 0; i < limit; i++) {
    const b = bytes[i]!;
    if (b === 0x0a) {
      lf = i;
      break;
    }
    if ((b < 0x20 && b !== 0x09 && b !== 0x0d) || b >= 0x7f) return "tcp";
  }
  if (lf >= 0) {
    const line = new TextDecoder().decode(bytes.subarray(0, lf)).replace(/\r$/, "");
    if (/ HTTP\/\d(\.\d)?$/.test(line)) return "h1";
  }
  // An upper-case method token, then SP: HTTP/1.x even before the line is complete.
  for (let i = 0; i < Math.min(bytes.byteLength, MAX_METHOD + 1); i++) {
    const b = bytes[i]!;
    if (b === 0x20) return i > 0 ? "h1" : "tcp";
    if (!isTchar(b) || (b >= 0x61 && b <= 0x7a)) return lf >= 0 || bytes.byteLength >= SNIFF_MAX_BYTES ? "tcp" : undefined;
  }
  return lf >= 0 || bytes.byteLength >= SNIFF_MAX_BYTES ? "tcp" : undefined;
}
