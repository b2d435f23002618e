// Hand-written HTTP/2 frames (RFC 9113 §4, §6) and a frame reader, for tests that must put on the
// wire what a well-behaved client library refuses to send, or record exactly what a peer sent.
// Header blocks use HPACK literals without indexing or Huffman (RFC 7541 §6.2.2), which every
// decoder must accept.

export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const FrameFlag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export interface H2Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export function encodeFrame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.byteLength, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the pattern bits above it. */
function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A header block of literal fields, in the given order (pseudo-headers first is the caller's job). */
export function encodeHeaderBlock(headers: readonly (readonly [string, string])[]): Buffer {
  const parts: number[] = [];
  for (const [name, value] of headers) {
    const n = Buffer.from(name, "latin1");
    const v = Buffer.from(value, "latin1");
    parts.push(0x00, ...hpackInt(n.length, 7, 0x00), ...n, ...hpackInt(v.length, 7, 0x00), ...v);
  }
  return Buffer.from(parts);
}

export function headersFrame(streamId: number, headers: readonly (readonly [string, string])[], endStream = false): Buffer {
  return encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS | (endStream ? FrameFlag.END_STREAM : 0), streamId, encodeHeaderBlock(headers));
}

export function settingsFrame(settings: readonly (readonly [number, number])[] = [], ack = false): Buffer {
  const p = Buffer.alloc(settings.length * 6);
  settings.forEach(([id, v], i) => {
    p.writeUInt16BE(id, i * 6);
    p.writeUInt32BE(v >>> 0, i * 6 + 2);
  });
  return encodeFrame(FrameType.SETTINGS, ack ? FrameFlag.ACK : 0, 0, p);
}

/**
 * Splits a byte stream into frames. `expectPreface`: the stream starts with the client preface
 * (server side); the result says whether it was there. Incomplete trailing bytes are reported,
 * not dropped, so a caller can tell "nothing more" from "a partial frame".
 */
export function parseFrames(data: Buffer, expectPreface: boolean): { preface: boolean; frames: H2Frame[]; trailing: number } {
  let off = 0;
  let preface = false;
  if (expectPreface) {
    if (data.length >= H2_PREFACE.length && data.subarray(0, H2_PREFACE.length).equals(H2_PREFACE)) {
      preface = true;
      off = H2_PREFACE.length;
    } else {
      return { preface: false, frames: [], trailing: data.length };
    }
  }
  const frames: H2Frame[] = [];
  while (data.length - off >= 9) {
    const len = data.readUIntBE(off, 3);
    if (data.length - off - 9 < len) break;
    frames.push({ type: data[off + 3]!, flags: data[off + 4]!, streamId: data.readUInt32BE(off + 5) & 0x7fffffff, payload: data.subarray(off + 9, off + 9 + len) });
    off += 9 + len;
  }
  return { preface, frames, trailing: data.length - off };
}

export function frameTypeName(type: number): string {
  return Object.entries(FrameType).find(([, v]) => v === type)?.[0] ?? `0x${type.toString(16)}`;
}

const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

/** Reads an HPACK integer with an N-bit prefix at `off`; returns [value, next offset]. */
function readHpackInt(b: Buffer, off: number, prefixBits: number): [number, number] | undefined {
  if (off >= b.length) return undefined;
  const max = (1 << prefixBits) - 1;
  let v = b[off]! & max;
  off++;
  if (v < max) return [v, off];
  let m = 0;
  for (;;) {
    if (off >= b.length || m > 28) return undefined;
    const x = b[off++]!;
    v += (x & 0x7f) * 2 ** m;
    m += 7;
    if ((x & 0x80) === 0) return [v, off];
  }
}

/** Huffman-coded decimal digits (RFC 7541 Appendix B: '0'-'2' are 5 bits, '3'-'9' 6 bits). */
function huffmanDigits(b: Buffer): string | undefined {
  let bits = "";
  for (const x of b) bits += x.toString(2).padStart(8, "0");
  let out = "";
  let i = 0;
  while (bits.length - i >= 5) {
    const five = bits.slice(i, i + 5);
    if (five === "00000" || five === "00001" || five === "00010") {
      out += String(parseInt(five, 2));
      i += 5;
      continue;
    }
    const six = bits.slice(i, i + 6);
    if (six.length === 6 && six >= "011001" && six <= "011111") {
      out += String(parseInt(six, 2) - 0b011001 + 3);
      i += 6;
      continue;
    }
    if (/^1+$/.test(bits.slice(i)) && bits.length - i < 8) break; // EOS padding
    return undefined;
  }
  return out;
}

/**
 * The `:status` of a response header block that is the first on its connection (so it cannot
 * refer to earlier dynamic-table entries). Handles indexed, literal and Huffman-coded forms of
 * `:status`; undefined when the block does not start with a `:status` field this can read.
 */
export function decodeStatus(block: Buffer): number | undefined {
  let off = 0;
  while (off < block.length && (block[off]! & 0xe0) === 0x20) {
    const r = readHpackInt(block, off, 5); // dynamic table size update
    if (!r) return undefined;
    off = r[1];
  }
  const b = block[off];
  if (b === undefined) return undefined;
  let nameIndex: number;
  if (b & 0x80) {
    const r = readHpackInt(block, off, 7);
    return r ? STATIC_STATUS[r[0]] : undefined;
  } else if ((b & 0xc0) === 0x40) {
    const r = readHpackInt(block, off, 6);
    if (!r) return undefined;
    [nameIndex, off] = r;
  } else {
    const r = readHpackInt(block, off, 4);
    if (!r) return undefined;
    [nameIndex, off] = r;
  }
  if (nameIndex < 8 || nameIndex > 14) return undefined;
  const huffman = ((block[off] ?? 0) & 0x80) !== 0;
  const lenR = readHpackInt(block, off, 7);
  if (!lenR) return undefined;
  const [len, start] = lenR;
  const raw = block.subarray(start, start + len);
  const text = huffman ? huffmanDigits(raw) : raw.toString("latin1");
  return text && /^[0-9]{3}$/.test(text) ? Number(text) : undefined;
}
