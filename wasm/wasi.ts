// WASI preview-1 for plugins, the subset Proxy-Wasm SDKs use (reference/waypoint.md §A.5, as
// cpp-host): stdout/stderr become log lines, clocks and randomness work, the environment is the
// plugin's configured env, there are no args, files or sockets. Everything else returns NOSYS.

import { cpuClock } from "../core/os/index.ts";
import { Errno, LogLevel, type LogLevelValue } from "./abi.ts";
import { WASI_IMPLEMENTED, WASI_IMPORTS } from "./imports.ts";
import type { GuestMemory } from "./memory.ts";
import { ProcExit, VmAbort } from "./traps.ts";

const ENC = new TextEncoder();
const DEC = new TextDecoder("utf-8", { fatal: false });
const RANDOM_MAX_BYTES = 65536;
const FD_WRITE_MAX_BYTES = 65536;

export interface WasiHost {
  readonly mem: GuestMemory;
  readonly env: Readonly<Record<string, string>>;
  log(level: LogLevelValue, message: string): void;
  wantsLog(level: LogLevelValue): boolean;
}

function realtimeNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

/** Builds the WASI import object (the same object serves wasi_snapshot_preview1 and wasi_unstable). */
export function createWasi(h: WasiHost): Record<string, (...args: never[]) => unknown> {
  // WASI's process and thread CPU-time clocks (ids 2 and 3), where the OS gives them
  const cpu = [cpuClock("process"), cpuClock("thread")];
  const envStrings = Object.entries(h.env).map(([k, v]) => ENC.encode(`${k}=${v}\0`));
  const envBytes = envStrings.reduce((n, b) => n + b.length, 0);

  const impl: Record<string, (...args: never[]) => unknown> = {
    args_sizes_get(argc: number, bufSize: number): number {
      return h.mem.writeU32(argc, 0) && h.mem.writeU32(bufSize, 0) ? Errno.SUCCESS : Errno.FAULT;
    },
    args_get(): number {
      return Errno.SUCCESS;
    },
    environ_sizes_get(count: number, bufSize: number): number {
      return h.mem.writeU32(count, envStrings.length) && h.mem.writeU32(bufSize, envBytes) ? Errno.SUCCESS : Errno.FAULT;
    },
    environ_get(ptrs: number, buf: number): number {
      if (!h.mem.inBounds(ptrs, envStrings.length * 4) || !h.mem.inBounds(buf, envBytes)) return Errno.FAULT;
      let at = buf >>> 0;
      for (let i = 0; i < envStrings.length; i++) {
        h.mem.writeU32((ptrs >>> 0) + i * 4, at);
        h.mem.write(at, envStrings[i]!);
        at += envStrings[i]!.length;
      }
      return Errno.SUCCESS;
    },
    clock_res_get(id: number, out: number): number {
      if (id > 3 || (id >= 2 && cpu[id - 2] === undefined)) return Errno.NOTSUP;
      return h.mem.writeU64(out, 1000n) ? Errno.SUCCESS : Errno.FAULT;
    },
    clock_time_get(id: number, _precision: bigint, out: number): number {
      let t: bigint;
      if (id === 0) t = realtimeNs();
      else if (id === 1) t = process.hrtime.bigint();
      else if (id === 2 || id === 3) {
        const clock = cpu[id - 2];
        if (clock === undefined) return Errno.NOTSUP;
        t = BigInt(clock());
      } else return Errno.NOTSUP;
      return h.mem.writeU64(out, t) ? Errno.SUCCESS : Errno.FAULT;
    },
    fd_write(fd: number, iovs: number, iovsLen: number, nwritten: number): number {
      if (fd !== 1 && fd !== 2) return Errno.BADF;
      const n = iovsLen >>> 0;
      if (n > 1024 || !h.mem.inBounds(iovs, n * 8) || !h.mem.inBounds(nwritten, 4)) return Errno.FAULT;
      const parts: Uint8Array[] = [];
      let total = 0;
      for (let i = 0; i < n; i++) {
        const p = h.mem.readU32((iovs >>> 0) + i * 8)!;
        const len = h.mem.readU32((iovs >>> 0) + i * 8 + 4)!;
        const v = h.mem.view(p, len);
        if (v === undefined) return Errno.FAULT;
        total += len;
        if (total <= FD_WRITE_MAX_BYTES) parts.push(v.slice());
      }
      const level = fd === 1 ? LogLevel.INFO : LogLevel.ERROR;
      if (h.wantsLog(level)) {
        let text = parts.map((p) => DEC.decode(p)).join("");
        if (text.endsWith("\n")) text = text.slice(0, -1);
        h.log(level, text);
      }
      h.mem.writeU32(nwritten, total);
      return Errno.SUCCESS;
    },
    fd_fdstat_get(fd: number, out: number): number {
      if (fd !== 1 && fd !== 2) return Errno.BADF;
      if (!h.mem.inBounds(out, 24)) return Errno.FAULT;
      h.mem.write(out, new Uint8Array(24));
      h.mem.write(out, new Uint8Array([2])); // filetype: character device
      h.mem.writeU64((out >>> 0) + 8, 64n); // rights: fd_write
      return Errno.SUCCESS;
    },
    fd_prestat_get(): number {
      return Errno.BADF; // no preopened directories; wasi-libc stops enumerating at BADF
    },
    poll_oneoff(_in: number, _out: number, _n: number, nevents: number): number {
      return h.mem.writeU32(nevents, 0) ? Errno.SUCCESS : Errno.FAULT;
    },
    proc_exit(code: number): never {
      h.log(LogLevel.ERROR, `proc_exit(${code >>> 0}) called`);
      throw new ProcExit(code >>> 0);
    },
    sched_yield(): number {
      return Errno.SUCCESS;
    },
    random_get(buf: number, len: number): number {
      const n = len >>> 0;
      if (n > RANDOM_MAX_BYTES) return Errno.INVAL;
      if (!h.mem.inBounds(buf, n)) return Errno.FAULT;
      const bytes = new Uint8Array(n);
      crypto.getRandomValues(bytes);
      h.mem.write(buf, bytes);
      return Errno.SUCCESS;
    },
  };
  const out: Record<string, (...args: never[]) => unknown> = {};
  for (const name of Object.keys(WASI_IMPORTS)) {
    const f = WASI_IMPLEMENTED.includes(name) ? impl[name] : undefined;
    if (f === undefined) {
      out[name] = () => Errno.NOSYS;
      continue;
    }
    // a host function never throws into the module except to abort it on purpose
    out[name] = (a?: never, b?: never, c?: never, d?: never) => {
      try {
        return f(a as never, b as never, c as never, d as never);
      } catch (e) {
        if (e instanceof VmAbort) throw e;
        return Errno.FAULT;
      }
    };
  }
  return out;
}
