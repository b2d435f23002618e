// The seam for native calls: libc through bun:ffi, opened lazily on first use (a static import
// would load bun:ffi for every command on every platform). Socket calls built on it live in
// core/net; the thread CPU clock serves the Wasm host's time budgets.
import { ErrorCodes, MeshError } from "../errors/index.ts";

/** glibc first; the musl names let a musl build of Bun find its libc too. */
const LIBC_NAMES = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"];

function openLibc() {
  // require, not import: a static import would load bun:ffi for every command on every platform.
  const { dlopen, FFIType, read, ptr } = require("bun:ffi") as typeof import("bun:ffi");
  const symbols = {
    getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    setns: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
    __errno_location: { args: [], returns: FFIType.ptr },
    clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  } as const;
  let lastError: unknown;
  for (const name of LIBC_NAMES) {
    try {
      const lib = dlopen(name, symbols);
      const errnoAt = lib.symbols.__errno_location();
      if (errnoAt === null) throw new Error("__errno_location returned NULL");
      // errno lives per thread: every call that reads it happens on the JS thread, so one address
      // serves (the CPU clock, also read in plugin workers, never needs errno).
      return { fn: lib.symbols, errno: () => read.i32(errnoAt, 0), ptr };
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

export type Libc = ReturnType<typeof openLibc>;
let libcCache: Libc | undefined;

/** libc's functions through bun:ffi, opened on first use; NOT_IMPLEMENTED where there is none. */
export function libc(): Libc {
  if (libcCache) return libcCache;
  if (process.platform !== "linux") {
    throw new MeshError(ErrorCodes.NOT_IMPLEMENTED, `this needs Linux (libc through bun:ffi); this is ${process.platform}`);
  }
  try {
    libcCache = openLibc();
  } catch (e) {
    throw new MeshError(ErrorCodes.NOT_IMPLEMENTED, `cannot load libc through bun:ffi: ${(e as Error).message}`, { cause: e });
  }
  return libcCache;
}

export function errnoText(lc: Libc, errno: number): string {
  const text = lc.fn.strerror(errno);
  return `${text === null ? "unknown error" : String(text)} (errno ${errno})`;
}

// ---- clocks -------------------------------------------------------------------------------

const CPU_CLOCK_IDS = { process: 2, thread: 3 } as const;

/**
 * A reader of the process's or the calling thread's CPU time in ns (CLOCK_PROCESS_CPUTIME_ID /
 * CLOCK_THREAD_CPUTIME_ID), or undefined where there is none (not Linux, no libc). Not
 * process.threadCpuUsage(): on this kernel that is getrusage, counted in 4 ms ticks. ~0.4 µs per
 * read (a system call through FFI), so read it where a callback is already long.
 */
export function cpuClock(of: keyof typeof CPU_CLOCK_IDS): (() => number) | undefined {
  let lc: Libc;
  try {
    lc = libc();
  } catch {
    return undefined;
  }
  const id = CPU_CLOCK_IDS[of];
  const ts = new BigInt64Array(2);
  const at = lc.ptr(ts);
  if (lc.fn.clock_gettime(id, at) !== 0) return undefined;
  return () => {
    lc.fn.clock_gettime(id, at);
    return Number(ts[0]) * 1e9 + Number(ts[1]);
  };
}
