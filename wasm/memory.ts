// Bounds-checked access to a plugin's linear memory. Pointers and lengths arrive from the module as
// i32 (possibly negative in JS); every access converts them to u32 and checks them against the
// memory's *current* size. Views are re-derived whenever the buffer changed (memory.grow detaches
// the old ArrayBuffer, reference/bun.md §7), so a stale view is never used.

import { Status, type StatusCode } from "./abi.ts";

const UTF8_DECODER = new TextDecoder("utf-8", { fatal: false });

export class GuestMemory {
  private buffer: ArrayBuffer | undefined;
  private u8: Uint8Array = new Uint8Array(0);
  /** The same bytes as a Buffer, for its native Latin-1 decoding (never for slice(): a Buffer's is a view). */
  private bytes: Buffer = Buffer.alloc(0);
  private dv: DataView = new DataView(new ArrayBuffer(0));
  /** The module's allocator (`malloc` or `proxy_on_memory_allocate`); set after instantiation. */
  allocate: ((size: number) => number) | undefined;

  constructor(private readonly memory: WebAssembly.Memory | undefined) {}

  private refresh(): void {
    const b = this.memory?.buffer as ArrayBuffer | undefined;
    if (b !== this.buffer) {
      this.buffer = b;
      this.u8 = b === undefined ? new Uint8Array(0) : new Uint8Array(b);
      this.bytes = b === undefined ? Buffer.alloc(0) : Buffer.from(b);
      this.dv = b === undefined ? new DataView(new ArrayBuffer(0)) : new DataView(b);
    }
  }

  get byteLength(): number {
    this.refresh();
    return this.u8.length;
  }

  /** True when [ptr, ptr+len) lies inside the memory (u32 interpretation of both). */
  inBounds(ptr: number, len: number): boolean {
    this.refresh();
    const p = ptr >>> 0;
    const n = len >>> 0;
    return p + n <= this.u8.length;
  }

  /** A copy of guest bytes, or undefined when out of bounds. */
  read(ptr: number, len: number): Uint8Array | undefined {
    if (!this.inBounds(ptr, len)) return undefined;
    const p = ptr >>> 0;
    return this.u8.slice(p, p + (len >>> 0));
  }

  /** A view of guest bytes, valid only until the module runs again; undefined when out of bounds. */
  view(ptr: number, len: number): Uint8Array | undefined {
    if (!this.inBounds(ptr, len)) return undefined;
    const p = ptr >>> 0;
    return this.u8.subarray(p, p + (len >>> 0));
  }

  readString(ptr: number, len: number): string | undefined {
    if (!this.inBounds(ptr, len)) return undefined;
    const p = ptr >>> 0;
    const n = len >>> 0;
    // Header names and values are ASCII: checked without allocating, then decoded natively in one
    // call (~3x cheaper than building the string per character or a view for the UTF-8 decoder).
    const u8 = this.u8;
    for (let i = p, end = p + n; i < end; i++) if (u8[i]! >= 0x80) return UTF8_DECODER.decode(u8.subarray(p, end));
    return this.bytes.toString("latin1", p, p + n);
  }

  readU32(ptr: number): number | undefined {
    if (!this.inBounds(ptr, 4)) return undefined;
    return this.dv.getUint32(ptr >>> 0, true);
  }

  writeU32(ptr: number, value: number): boolean {
    if (!this.inBounds(ptr, 4)) return false;
    this.dv.setUint32(ptr >>> 0, value >>> 0, true);
    return true;
  }

  writeU64(ptr: number, value: bigint): boolean {
    if (!this.inBounds(ptr, 8)) return false;
    this.dv.setBigUint64(ptr >>> 0, BigInt.asUintN(64, value), true);
    return true;
  }

  write(ptr: number, bytes: Uint8Array): boolean {
    if (!this.inBounds(ptr, bytes.length)) return false;
    this.u8.set(bytes, ptr >>> 0);
    return true;
  }

  /**
   * Hands `bytes` to the module the Proxy-Wasm way: allocate inside the module, copy, and write
   * (ptr, size) to the two out-pointers. Size 0 writes (0, 0) without allocating (cpp-host
   * behaviour; the AssemblyScript SDK relies on it). Allocation failure or any bad pointer is
   * INVALID_MEMORY_ACCESS.
   */
  copyOut(bytes: Uint8Array, ptrPtr: number, sizePtr: number): StatusCode {
    if (!this.inBounds(ptrPtr, 4) || !this.inBounds(sizePtr, 4)) return Status.INVALID_MEMORY_ACCESS;
    if (bytes.length === 0) {
      this.writeU32(ptrPtr, 0);
      this.writeU32(sizePtr, 0);
      return Status.OK;
    }
    if (this.allocate === undefined) return Status.INVALID_MEMORY_ACCESS;
    const ptr = this.allocate(bytes.length) >>> 0;
    // malloc may have grown the memory: write() re-derives the views
    if (ptr === 0 || !this.write(ptr, bytes)) return Status.INVALID_MEMORY_ACCESS;
    if (!this.writeU32(ptrPtr, ptr) || !this.writeU32(sizePtr, bytes.length)) return Status.INVALID_MEMORY_ACCESS;
    return Status.OK;
  }
}
