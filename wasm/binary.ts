// A small reader/writer for the WebAssembly binary format: enough to list a module's imports,
// exports and memory, and to rewrite it (instrument.ts). Every read is bounds-checked; malformed
// input raises BinaryError, which callers turn into WASM_MODULE_INVALID.

export class BinaryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BinaryError";
  }
}

export class Reader {
  pos: number;
  readonly end: number;
  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    end = bytes.length,
  ) {
    this.pos = start;
    this.end = end;
  }
  get done(): boolean {
    return this.pos >= this.end;
  }
  byte(): number {
    if (this.pos >= this.end) throw new BinaryError(`unexpected end of data at offset ${this.pos}`);
    return this.bytes[this.pos++]!;
  }
  peek(): number {
    if (this.pos >= this.end) throw new BinaryError(`unexpected end of data at offset ${this.pos}`);
    return this.bytes[this.pos]!;
  }
  /** Unsigned LEB128 up to 32 bits. */
  u32(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
    throw new BinaryError(`LEB128 u32 too long at offset ${this.pos}`);
  }
  /** Skips a signed LEB128 of up to `maxBytes` bytes (s32: 5, s33: 5, s64: 10). */
  skipLeb(maxBytes: number): void {
    for (let i = 0; i < maxBytes; i++) if ((this.byte() & 0x80) === 0) return;
    throw new BinaryError(`LEB128 too long at offset ${this.pos}`);
  }
  /** Signed LEB128 up to 33 bits, returned as a JS number. */
  s33(): number {
    let result = 0;
    let mul = 1;
    let b = 0;
    for (let i = 0; i < 5; i++) {
      b = this.byte();
      result += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        if (b & 0x40) result -= mul;
        return result;
      }
    }
    throw new BinaryError(`LEB128 s33 too long at offset ${this.pos}`);
  }
  take(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.end) throw new BinaryError(`length ${n} at offset ${this.pos} runs past the end`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(n: number): void {
    this.take(n);
  }
  name(): string {
    const n = this.u32();
    return UTF8.decode(this.take(n));
  }
}

const UTF8 = new TextDecoder("utf-8", { fatal: false });
const UTF8_ENC = new TextEncoder();

/** Growable byte sink with LEB128 encoders. */
export class Writer {
  private buf = new Uint8Array(256);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  byte(b: number): this {
    this.ensure(1);
    this.buf[this.length++] = b & 0xff;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }
  u32(v: number): this {
    let x = v >>> 0;
    do {
      let b = x & 0x7f;
      x >>>= 7;
      if (x !== 0) b |= 0x80;
      this.byte(b);
    } while (x !== 0);
    return this;
  }
  s32(v: number): this {
    let x = v | 0;
    for (;;) {
      const b = x & 0x7f;
      x >>= 7;
      if ((x === 0 && (b & 0x40) === 0) || (x === -1 && (b & 0x40) !== 0)) {
        this.byte(b);
        return this;
      }
      this.byte(b | 0x80);
    }
  }
  name(s: string): this {
    const b = UTF8_ENC.encode(s);
    return this.u32(b.length).bytes(b);
  }
  /** A vector/section payload prefixed with its byte length. */
  sized(inner: Writer): this {
    return this.u32(inner.length).bytes(inner.finish());
  }
  finish(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

export const SectionId = {
  CUSTOM: 0,
  TYPE: 1,
  IMPORT: 2,
  FUNCTION: 3,
  TABLE: 4,
  MEMORY: 5,
  GLOBAL: 6,
  EXPORT: 7,
  START: 8,
  ELEMENT: 9,
  CODE: 10,
  DATA: 11,
  DATA_COUNT: 12,
  TAG: 13,
} as const;

/** Canonical order of known sections in a module (custom sections may appear anywhere). */
export const SECTION_ORDER: readonly number[] = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];

export interface RawSection {
  readonly id: number;
  /** Payload (without id and size). */
  readonly body: Uint8Array;
  /** Offset of the payload in the module, for error messages. */
  readonly offset: number;
}

export function splitSections(bytes: Uint8Array): RawSection[] {
  if (bytes.length < 8) throw new BinaryError("too short to be a WebAssembly module");
  if (bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new BinaryError("missing the \\0asm magic number (not a WebAssembly binary)");
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new BinaryError("unsupported binary version (only version 1 modules; components are not supported)");
  }
  const r = new Reader(bytes, 8);
  const out: RawSection[] = [];
  while (!r.done) {
    const id = r.byte();
    if (id > 13) throw new BinaryError(`unknown section id ${id} at offset ${r.pos - 1}`);
    const size = r.u32();
    const offset = r.pos;
    out.push({ id, body: r.take(size), offset });
  }
  return out;
}

export type ValType = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref";

export function valType(b: number): ValType {
  switch (b) {
    case 0x7f:
      return "i32";
    case 0x7e:
      return "i64";
    case 0x7d:
      return "f32";
    case 0x7c:
      return "f64";
    case 0x7b:
      return "v128";
    case 0x70:
      return "funcref";
    case 0x6f:
      return "externref";
    default:
      throw new BinaryError(`unsupported value type 0x${b.toString(16)} (typed references / GC are not supported)`);
  }
}

export interface FuncType {
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
}

export function signature(t: FuncType): string {
  return `(${t.params.join(",")})->(${t.results.join(",")})`;
}

export function readTypes(body: Uint8Array): FuncType[] {
  const r = new Reader(body);
  const n = r.u32();
  const out: FuncType[] = [];
  for (let i = 0; i < n; i++) {
    const form = r.byte();
    if (form !== 0x60) throw new BinaryError(`type ${i}: only function types are supported (form 0x${form.toString(16)})`);
    const np = r.u32();
    const params: ValType[] = [];
    for (let j = 0; j < np; j++) params.push(valType(r.byte()));
    const nr = r.u32();
    const results: ValType[] = [];
    for (let j = 0; j < nr; j++) results.push(valType(r.byte()));
    out.push({ params, results });
  }
  return out;
}

export interface Limits {
  readonly min: number;
  readonly max: number | undefined;
  readonly shared: boolean;
  readonly is64: boolean;
}

export function readLimits(r: Reader): Limits {
  const flags = r.byte();
  if (flags > 7) throw new BinaryError(`bad limits flags 0x${flags.toString(16)}`);
  const is64 = (flags & 4) !== 0;
  if (is64) throw new BinaryError("64-bit memories/tables are not supported");
  const min = r.u32();
  const max = flags & 1 ? r.u32() : undefined;
  return { min, max, shared: (flags & 2) !== 0, is64 };
}

export function writeLimits(w: Writer, l: { min: number; max: number | undefined }): void {
  if (l.max === undefined) w.byte(0).u32(l.min);
  else w.byte(1).u32(l.min).u32(l.max);
}

export type ImportKind = "func" | "table" | "memory" | "global" | "tag";

export interface ImportEntry {
  readonly module: string;
  readonly name: string;
  readonly kind: ImportKind;
  /** Function imports: the type index. */
  readonly typeIndex?: number;
  /** Memory imports: the limits. */
  readonly limits?: Limits;
  /** Raw descriptor bytes (after the kind byte), for copying verbatim. */
  readonly desc: Uint8Array;
}

export function readImports(body: Uint8Array): ImportEntry[] {
  const r = new Reader(body);
  const n = r.u32();
  const out: ImportEntry[] = [];
  for (let i = 0; i < n; i++) {
    const module = r.name();
    const name = r.name();
    const kindByte = r.byte();
    const start = r.pos;
    switch (kindByte) {
      case 0: {
        const typeIndex = r.u32();
        out.push({ module, name, kind: "func", typeIndex, desc: body.subarray(start, r.pos) });
        break;
      }
      case 1: {
        valType(r.byte());
        readLimits(r);
        out.push({ module, name, kind: "table", desc: body.subarray(start, r.pos) });
        break;
      }
      case 2: {
        const limits = readLimits(r);
        out.push({ module, name, kind: "memory", limits, desc: body.subarray(start, r.pos) });
        break;
      }
      case 3: {
        valType(r.byte());
        r.byte();
        out.push({ module, name, kind: "global", desc: body.subarray(start, r.pos) });
        break;
      }
      case 4: {
        r.byte();
        r.u32();
        out.push({ module, name, kind: "tag", desc: body.subarray(start, r.pos) });
        break;
      }
      default:
        throw new BinaryError(`import ${module}.${name}: unknown kind ${kindByte}`);
    }
  }
  if (!r.done) throw new BinaryError("trailing bytes in the import section");
  return out;
}

export type ExportKind = "func" | "table" | "memory" | "global" | "tag";
const EXPORT_KINDS: readonly ExportKind[] = ["func", "table", "memory", "global", "tag"];

export interface ExportEntry {
  readonly name: string;
  readonly kind: ExportKind;
  readonly index: number;
}

export function readExports(body: Uint8Array): ExportEntry[] {
  const r = new Reader(body);
  const n = r.u32();
  const out: ExportEntry[] = [];
  for (let i = 0; i < n; i++) {
    const name = r.name();
    const k = r.byte();
    const kind = EXPORT_KINDS[k];
    if (kind === undefined) throw new BinaryError(`export ${name}: unknown kind ${k}`);
    out.push({ name, kind, index: r.u32() });
  }
  if (!r.done) throw new BinaryError("trailing bytes in the export section");
  return out;
}

export function readFunctionTypeIndices(body: Uint8Array): number[] {
  const r = new Reader(body);
  const n = r.u32();
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.u32());
  return out;
}

export function readMemories(body: Uint8Array): Limits[] {
  const r = new Reader(body);
  const n = r.u32();
  const out: Limits[] = [];
  for (let i = 0; i < n; i++) out.push(readLimits(r));
  return out;
}
