// The Proxy-Wasm host functions (module `env`), reference/waypoint.md §A.5. This file decodes the
// ABI (pointers, lengths, out-pointers, statuses) and delegates the meaning to HostState, which
// the VM core implements. Rules every function follows:
// - every (ptr, len) from the module is checked against the current memory; a bad one returns
//   INVALID_MEMORY_ACCESS and nothing is read or written outside the module's memory;
// - lengths the host would copy in are capped (maxBufferBytes / maxHeaderBytes): BAD_ARGUMENT;
// - nothing throws back into the module except the deliberate aborts in traps.ts.

import { type AbiVersion, LogLevel, type LogLevelValue, Status, type StatusCode } from "./abi.ts";
import { ENV_IMPORTS } from "./imports.ts";
import type { GuestMemory } from "./memory.ts";
import type { VmMetricTable } from "./metrics.ts";
import type { LocalReply } from "./protocol.ts";
import { callForeign } from "./foreign.ts";
import { decodePairs, encodePairs, encodeString, type FlatPairs, pairsByteSize, pairsFit, splitPropertyPath } from "./serialization.ts";
import { ModuleAbort, VmAbort } from "./traps.ts";

export const LOG_MESSAGE_MAX_BYTES = 65536;

/** A header map as the current callback may see it. */
export interface MapAccess {
  readonly pairs: FlatPairs;
  readonly writable: boolean;
  /** Records that the plugin changed the map (pairs was edited in place or replaced). */
  replace(next: FlatPairs): void;
}

export interface BufferAccess {
  readonly bytes: Uint8Array;
  /** Mutable buffers (request/response body) implement this; others are read-only. */
  set?(start: number, size: number, data: Uint8Array): StatusCode;
}

export interface HostState {
  readonly mem: GuestMemory;
  readonly abi: AbiVersion;
  readonly maxBufferBytes: number;
  readonly maxHeaderBytes: number;
  readonly logLevel: LogLevelValue;
  readonly metrics: VmMetricTable;
  log(level: LogLevelValue, message: string): void;
  setEffectiveContext(id: number): StatusCode;
  done(): StatusCode;
  map(type: number): MapAccess | StatusCode;
  buffer(type: number): BufferAccess | StatusCode;
  continueStream(type: number): StatusCode;
  closeStream(type: number): StatusCode;
  sendLocalResponse(reply: LocalReply): StatusCode;
  callStatus(): { code: number; message: string } | undefined;
  httpCall(upstream: string, headers: FlatPairs, body: Uint8Array, trailers: FlatPairs, timeoutMs: number): { status: StatusCode; token?: number };
  grpcCall(upstream: string, service: string, method: string, metadata: FlatPairs, message: Uint8Array, timeoutMs: number): { status: StatusCode; token?: number };
  grpcStream(upstream: string, service: string, method: string, metadata: FlatPairs): { status: StatusCode; token?: number };
  grpcSend(token: number, message: Uint8Array, end: boolean): StatusCode;
  /** Cancels a pending gRPC call or stream (no callback will come); NOT_FOUND for an unknown id. */
  grpcCancel(token: number): StatusCode;
  /** Ends a call (as cancel) or half-closes a stream. */
  grpcClose(token: number): StatusCode;
  setTickPeriod(ms: number): StatusCode;
  sharedGet(key: string): { value: Uint8Array; cas: number } | undefined;
  sharedSet(key: string, value: Uint8Array, cas: number): StatusCode;
  queueRegister(name: string): number;
  queueResolve(vmId: string, name: string): number | undefined;
  queueEnqueue(queueId: number, value: Uint8Array): StatusCode;
  queueDequeue(queueId: number): { status: StatusCode; value?: Uint8Array };
  getProperty(path: string[]): Uint8Array | undefined;
  setProperty(path: string[], value: Uint8Array): StatusCode;
  /** ABI 0.1.0 proxy_get_configuration: the configuration of the running callback. */
  currentConfiguration(): Uint8Array;
}

const IMA = Status.INVALID_MEMORY_ACCESS;
const EMPTY = new Uint8Array(0);

type HostFn = (...args: never[]) => unknown;

function realtimeNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

/** Reads a UTF-16 AssemblyScript string (length in bytes at ptr-4). */
function asString(mem: GuestMemory, ptr: number): string {
  if (ptr === 0) return "";
  const len = mem.readU32((ptr >>> 0) - 4);
  if (len === undefined || len > 4096) return "";
  const v = mem.view(ptr, len & ~1);
  if (v === undefined) return "";
  let s = "";
  for (let i = 0; i + 1 < v.length; i += 2) s += String.fromCharCode(v[i]! | (v[i + 1]! << 8));
  return s;
}

/** Builds the `env` import object for one VM. */
export function createEnv(h: HostState): Record<string, HostFn> {
  const mem = h.mem;

  /** Reads module bytes up to `cap`; IMA when out of bounds, BAD_ARGUMENT when over the cap. */
  const bytesIn = (ptr: number, len: number, cap: number): Uint8Array | StatusCode => {
    if (len >>> 0 > cap) return Status.BAD_ARGUMENT;
    const b = mem.read(ptr, len);
    return b === undefined ? IMA : b;
  };
  const stringIn = (ptr: number, len: number, cap: number): string | StatusCode => {
    if (len >>> 0 > cap) return Status.BAD_ARGUMENT;
    const s = mem.readString(ptr, len);
    return s === undefined ? IMA : s;
  };
  const pairsIn = (ptr: number, len: number): FlatPairs | StatusCode => {
    const b = bytesIn(ptr, len, h.maxHeaderBytes);
    if (typeof b === "number") return b;
    const p = decodePairs(b);
    if (p === undefined) return Status.BAD_ARGUMENT;
    for (let i = 0; i < p.length; i += 2) p[i] = p[i]!.toLowerCase();
    return p;
  };
  /** The upstream, service, method and metadata a gRPC call or stream names, or the status to return. */
  const grpcTarget = (up: number, ul: number, sp: number, sl: number, mp: number, ml: number, hp: number, hl: number): { upstream: string; service: string; method: string; metadata: FlatPairs } | StatusCode => {
    const upstream = stringIn(up, ul, h.maxHeaderBytes);
    if (typeof upstream === "number") return upstream;
    const service = stringIn(sp, sl, h.maxHeaderBytes);
    if (typeof service === "number") return service;
    const method = stringIn(mp, ml, h.maxHeaderBytes);
    if (typeof method === "number") return method;
    const metadata = pairsIn(hp, hl);
    if (typeof metadata === "number") return metadata;
    return { upstream, service, method, metadata };
  };
  /** A callout the host accepted: its id goes to the module (the pointer was checked before). */
  const callStarted = (r: { status: StatusCode; token?: number }, tokenPtr: number): StatusCode => {
    if (r.status !== Status.OK || r.token === undefined) return r.status;
    mem.writeU32(tokenPtr, r.token);
    return Status.OK;
  };
  const mapFor = (type: number): MapAccess | StatusCode => (type >>> 0 > 7 ? Status.BAD_ARGUMENT : h.map(type >>> 0));
  /** The writable map and the key/value a set-style call names, or the status to return. */
  const entryEdit = (type: number, kp: number, kl: number, vp: number, vl: number): { m: MapAccess; key: string; value: string } | StatusCode => {
    const m = mapFor(type);
    if (typeof m === "number") return m;
    const key = stringIn(kp, kl, h.maxHeaderBytes);
    if (typeof key === "number") return key;
    const value = stringIn(vp, vl, h.maxHeaderBytes);
    if (typeof value === "number") return value;
    if (!m.writable) return Status.BAD_ARGUMENT;
    return { m, key, value };
  };

  const impl: Record<string, HostFn> = {
    proxy_log(level: number, ptr: number, len: number): StatusCode {
      if (level >>> 0 > LogLevel.CRITICAL) return Status.BAD_ARGUMENT;
      if (level < h.logLevel) return Status.OK;
      const n = Math.min(len >>> 0, LOG_MESSAGE_MAX_BYTES);
      if (!mem.inBounds(ptr, len)) return IMA;
      h.log(level as LogLevelValue, mem.readString(ptr, n)!);
      return Status.OK;
    },
    proxy_get_log_level(out: number): StatusCode {
      return mem.writeU32(out, h.logLevel) ? Status.OK : IMA;
    },
    proxy_get_current_time_nanoseconds(out: number): StatusCode {
      return mem.writeU64(out, realtimeNs()) ? Status.OK : IMA;
    },
    proxy_set_tick_period_milliseconds(ms: number): StatusCode {
      return h.setTickPeriod(ms >>> 0);
    },
    proxy_set_effective_context(id: number): StatusCode {
      return h.setEffectiveContext(id >>> 0);
    },
    proxy_done(): StatusCode {
      return h.done();
    },
    proxy_call_foreign_function(np: number, nl: number, ap: number, al: number, rp: number, rs: number): StatusCode {
      const name = stringIn(np, nl, h.maxHeaderBytes);
      if (typeof name === "number") return name;
      const args = bytesIn(ap, al, h.maxBufferBytes);
      if (typeof args === "number") return args;
      if (!mem.inBounds(rp, 4) || !mem.inBounds(rs, 4)) return IMA;
      const r = callForeign(name, args, h.maxBufferBytes);
      if (!r.ok) return r.why === "not_found" ? Status.NOT_FOUND : Status.BAD_ARGUMENT;
      return mem.copyOut(r.bytes, rp, rs);
    },

    proxy_get_buffer_bytes(type: number, start: number, max: number, outPtr: number, outSize: number): StatusCode {
      if (type >>> 0 > 8) return Status.BAD_ARGUMENT;
      const s = start >>> 0;
      const m = max >>> 0;
      if (s + m > 0xffffffff) return Status.BAD_ARGUMENT;
      const b = h.buffer(type >>> 0);
      if (typeof b === "number") return b;
      const end = Math.min(b.bytes.length, s + m);
      return mem.copyOut(s < end ? b.bytes.subarray(s, end) : EMPTY, outPtr, outSize);
    },
    proxy_get_buffer_status(type: number, outSize: number, outFlags: number): StatusCode {
      if (type >>> 0 > 8) return Status.BAD_ARGUMENT;
      if (!mem.inBounds(outSize, 4) || !mem.inBounds(outFlags, 4)) return IMA;
      const b = h.buffer(type >>> 0);
      if (typeof b === "number") return b;
      mem.writeU32(outSize, b.bytes.length);
      mem.writeU32(outFlags, 0);
      return Status.OK;
    },
    proxy_set_buffer_bytes(type: number, start: number, size: number, ptr: number, len: number): StatusCode {
      if (type >>> 0 > 8) return Status.BAD_ARGUMENT;
      const data = bytesIn(ptr, len, h.maxBufferBytes);
      if (typeof data === "number") return data;
      const b = h.buffer(type >>> 0);
      if (typeof b === "number") return b;
      if (b.set === undefined) return Status.BAD_ARGUMENT;
      return b.set(start >>> 0, size >>> 0, data);
    },

    proxy_get_header_map_size(type: number, out: number): StatusCode {
      const m = mapFor(type);
      if (typeof m === "number") return m;
      return mem.writeU32(out, pairsByteSize(m.pairs)) ? Status.OK : IMA;
    },
    proxy_get_header_map_pairs(type: number, outPtr: number, outSize: number): StatusCode {
      const m = mapFor(type);
      if (typeof m === "number") return m;
      return mem.copyOut(m.pairs.length === 0 ? EMPTY : encodePairs(m.pairs), outPtr, outSize);
    },
    proxy_set_header_map_pairs(type: number, ptr: number, len: number): StatusCode {
      const m = mapFor(type);
      if (typeof m === "number") return m;
      const p = pairsIn(ptr, len);
      if (typeof p === "number") return p;
      if (!m.writable) return Status.BAD_ARGUMENT;
      m.replace(p);
      return Status.OK;
    },
    proxy_get_header_map_value(type: number, kp: number, kl: number, outPtr: number, outSize: number): StatusCode {
      const m = mapFor(type);
      if (typeof m === "number") return m;
      const key = stringIn(kp, kl, h.maxHeaderBytes);
      if (typeof key === "number") return key;
      const k = key.toLowerCase();
      const pairs = m.pairs;
      for (let i = 0; i < pairs.length; i += 2) {
        if (pairs[i] === k) return mem.copyOut(encodeString(pairs[i + 1]!), outPtr, outSize);
      }
      if (h.abi === "0.1.0") return mem.copyOut(EMPTY, outPtr, outSize);
      return Status.NOT_FOUND;
    },
    proxy_add_header_map_value(type: number, kp: number, kl: number, vp: number, vl: number): StatusCode {
      const e = entryEdit(type, kp, kl, vp, vl);
      if (typeof e === "number") return e;
      const { m, key, value } = e;
      const next = m.pairs.slice();
      next.push(key.toLowerCase(), value);
      if (!pairsFit(next, h.maxHeaderBytes)) return Status.BAD_ARGUMENT;
      m.replace(next);
      return Status.OK;
    },
    proxy_replace_header_map_value(type: number, kp: number, kl: number, vp: number, vl: number): StatusCode {
      const e = entryEdit(type, kp, kl, vp, vl);
      if (typeof e === "number") return e;
      const { m, key, value } = e;
      const k = key.toLowerCase();
      const next: FlatPairs = [];
      let placed = false;
      const pairs = m.pairs;
      for (let i = 0; i < pairs.length; i += 2) {
        if (pairs[i] !== k) next.push(pairs[i]!, pairs[i + 1]!);
        else if (!placed) {
          next.push(k, value); // first occurrence keeps its position; later ones go
          placed = true;
        }
      }
      if (!placed) next.push(k, value);
      if (!pairsFit(next, h.maxHeaderBytes)) return Status.BAD_ARGUMENT;
      m.replace(next);
      return Status.OK;
    },
    proxy_remove_header_map_value(type: number, kp: number, kl: number): StatusCode {
      const m = mapFor(type);
      if (typeof m === "number") return m;
      const key = stringIn(kp, kl, h.maxHeaderBytes);
      if (typeof key === "number") return key;
      if (!m.writable) return Status.BAD_ARGUMENT;
      const k = key.toLowerCase();
      const pairs = m.pairs;
      let found = false;
      for (let i = 0; i < pairs.length; i += 2) if (pairs[i] === k) found = true;
      if (!found) return Status.OK;
      const next: FlatPairs = [];
      for (let i = 0; i < pairs.length; i += 2) if (pairs[i] !== k) next.push(pairs[i]!, pairs[i + 1]!);
      m.replace(next);
      return Status.OK;
    },

    proxy_continue_stream(type: number): StatusCode {
      return h.continueStream(type >>> 0);
    },
    proxy_close_stream(type: number): StatusCode {
      return h.closeStream(type >>> 0);
    },
    proxy_send_local_response(
      status: number,
      dp: number,
      dl: number,
      bp: number,
      bl: number,
      hp: number,
      hl: number,
      grpc: number,
    ): StatusCode {
      const details = stringIn(dp, dl, h.maxHeaderBytes);
      if (typeof details === "number") return details;
      const body = bytesIn(bp, bl, h.maxBufferBytes);
      if (typeof body === "number") return body;
      const headers = pairsIn(hp, hl);
      if (typeof headers === "number") return headers;
      const code = status >>> 0;
      if (code < 100 || code > 599) return Status.BAD_ARGUMENT;
      return h.sendLocalResponse({
        status: code,
        details: details.replace(/ /g, "_"),
        body,
        headers,
        grpcStatus: grpc >= 0 && grpc <= 16 ? grpc : undefined,
      });
    },
    proxy_get_status(codePtr: number, msgPtr: number, msgSize: number): StatusCode {
      if (!mem.inBounds(codePtr, 4) || !mem.inBounds(msgPtr, 4) || !mem.inBounds(msgSize, 4)) return IMA;
      const s = h.callStatus();
      if (s === undefined) return Status.NOT_FOUND;
      mem.writeU32(codePtr, s.code);
      return mem.copyOut(encodeString(s.message), msgPtr, msgSize);
    },

    proxy_http_call(
      up: number,
      ul: number,
      hp: number,
      hl: number,
      bp: number,
      bl: number,
      tp: number,
      tl: number,
      timeout: number,
      tokenPtr: number,
    ): StatusCode {
      const upstream = stringIn(up, ul, h.maxHeaderBytes);
      if (typeof upstream === "number") return upstream;
      const headers = pairsIn(hp, hl);
      if (typeof headers === "number") return headers;
      const body = bytesIn(bp, bl, h.maxBufferBytes);
      if (typeof body === "number") return body;
      const trailers = pairsIn(tp, tl);
      if (typeof trailers === "number") return trailers;
      if (!mem.inBounds(tokenPtr, 4)) return IMA;
      return callStarted(h.httpCall(upstream, headers, body, trailers, timeout >>> 0), tokenPtr);
    },
    proxy_grpc_call(
      up: number,
      ul: number,
      sp: number,
      sl: number,
      mp: number,
      ml: number,
      hp: number,
      hl: number,
      bp: number,
      bl: number,
      timeout: number,
      tokenPtr: number,
    ): StatusCode {
      const t = grpcTarget(up, ul, sp, sl, mp, ml, hp, hl);
      if (typeof t === "number") return t;
      const message = bytesIn(bp, bl, h.maxBufferBytes);
      if (typeof message === "number") return message;
      if (!mem.inBounds(tokenPtr, 4)) return IMA;
      return callStarted(h.grpcCall(t.upstream, t.service, t.method, t.metadata, message, timeout >>> 0), tokenPtr);
    },
    proxy_grpc_stream(up: number, ul: number, sp: number, sl: number, mp: number, ml: number, hp: number, hl: number, tokenPtr: number): StatusCode {
      const t = grpcTarget(up, ul, sp, sl, mp, ml, hp, hl);
      if (typeof t === "number") return t;
      if (!mem.inBounds(tokenPtr, 4)) return IMA;
      return callStarted(h.grpcStream(t.upstream, t.service, t.method, t.metadata), tokenPtr);
    },
    proxy_grpc_send(token: number, mp: number, ml: number, end: number): StatusCode {
      const message = bytesIn(mp, ml, h.maxBufferBytes);
      if (typeof message === "number") return message;
      return h.grpcSend(token >>> 0, message, end !== 0);
    },
    proxy_grpc_cancel(token: number): StatusCode {
      return h.grpcCancel(token >>> 0);
    },
    proxy_grpc_close(token: number): StatusCode {
      return h.grpcClose(token >>> 0);
    },

    proxy_get_shared_data(kp: number, kl: number, outPtr: number, outSize: number, casPtr: number): StatusCode {
      const key = stringIn(kp, kl, h.maxHeaderBytes);
      if (typeof key === "number") return key;
      if (!mem.inBounds(casPtr, 4) || !mem.inBounds(outPtr, 4) || !mem.inBounds(outSize, 4)) return IMA;
      const v = h.sharedGet(key);
      if (v === undefined) return Status.NOT_FOUND;
      const st = mem.copyOut(v.value, outPtr, outSize);
      if (st !== Status.OK) return st;
      return mem.writeU32(casPtr, v.cas) ? Status.OK : IMA;
    },
    proxy_set_shared_data(kp: number, kl: number, vp: number, vl: number, cas: number): StatusCode {
      const key = stringIn(kp, kl, h.maxHeaderBytes);
      if (typeof key === "number") return key;
      const value = bytesIn(vp, vl, h.maxBufferBytes);
      if (typeof value === "number") return value;
      return h.sharedSet(key, value, cas >>> 0);
    },
    proxy_register_shared_queue(np: number, nl: number, out: number): StatusCode {
      const name = stringIn(np, nl, h.maxHeaderBytes);
      if (typeof name === "number") return name;
      if (!mem.inBounds(out, 4)) return IMA;
      const id = h.queueRegister(name);
      if (id === 0) return Status.INTERNAL_FAILURE;
      mem.writeU32(out, id);
      return Status.OK;
    },
    proxy_resolve_shared_queue(vp: number, vl: number, np: number, nl: number, out: number): StatusCode {
      const vmId = stringIn(vp, vl, h.maxHeaderBytes);
      if (typeof vmId === "number") return vmId;
      const name = stringIn(np, nl, h.maxHeaderBytes);
      if (typeof name === "number") return name;
      if (!mem.inBounds(out, 4)) return IMA;
      const id = h.queueResolve(vmId, name);
      if (id === undefined) return Status.NOT_FOUND;
      mem.writeU32(out, id);
      return Status.OK;
    },
    proxy_enqueue_shared_queue(id: number, vp: number, vl: number): StatusCode {
      const value = bytesIn(vp, vl, h.maxBufferBytes);
      if (typeof value === "number") return value;
      return h.queueEnqueue(id >>> 0, value);
    },
    proxy_dequeue_shared_queue(id: number, outPtr: number, outSize: number): StatusCode {
      if (!mem.inBounds(outPtr, 4) || !mem.inBounds(outSize, 4)) return IMA;
      const r = h.queueDequeue(id >>> 0);
      if (r.status !== Status.OK || r.value === undefined) return r.status;
      return mem.copyOut(r.value, outPtr, outSize);
    },

    proxy_define_metric(type: number, np: number, nl: number, out: number): StatusCode {
      const name = stringIn(np, nl, h.maxHeaderBytes);
      if (typeof name === "number") return name;
      if (!mem.inBounds(out, 4)) return IMA;
      const r = h.metrics.define(type >>> 0, name);
      if (r.status !== Status.OK || r.id === undefined) return r.status;
      mem.writeU32(out, r.id);
      return Status.OK;
    },
    proxy_increment_metric(id: number, delta: bigint): StatusCode {
      return h.metrics.increment(id >>> 0, Number(BigInt.asIntN(64, BigInt(delta))));
    },
    proxy_record_metric(id: number, value: bigint): StatusCode {
      return h.metrics.record(id >>> 0, Number(BigInt.asUintN(64, BigInt(value))));
    },
    proxy_get_metric(id: number, out: number): StatusCode {
      if (!mem.inBounds(out, 8)) return IMA;
      const r = h.metrics.value(id >>> 0);
      if (r.status !== Status.OK || r.value === undefined) return r.status;
      mem.writeU64(out, BigInt(Math.trunc(r.value)));
      return Status.OK;
    },

    proxy_get_property(pp: number, pl: number, outPtr: number, outSize: number): StatusCode {
      const path = bytesIn(pp, pl, h.maxHeaderBytes);
      if (typeof path === "number") return path;
      if (!mem.inBounds(outPtr, 4) || !mem.inBounds(outSize, 4)) return IMA;
      const v = h.getProperty(splitPropertyPath(path));
      if (v === undefined) return Status.NOT_FOUND;
      return mem.copyOut(v, outPtr, outSize);
    },
    proxy_set_property(pp: number, pl: number, vp: number, vl: number): StatusCode {
      const path = bytesIn(pp, pl, h.maxHeaderBytes);
      if (typeof path === "number") return path;
      const value = bytesIn(vp, vl, h.maxHeaderBytes);
      if (typeof value === "number") return value;
      if (path.length === 0) return Status.BAD_ARGUMENT;
      return h.setProperty(splitPropertyPath(path), value);
    },

    // ABI 0.1.0
    proxy_get_configuration(outPtr: number, outSize: number): StatusCode {
      return mem.copyOut(h.currentConfiguration(), outPtr, outSize);
    },
    proxy_continue_request(): StatusCode {
      return h.continueStream(0);
    },
    proxy_continue_response(): StatusCode {
      return h.continueStream(1);
    },
    proxy_clear_route_cache(): StatusCode {
      return Status.OK;
    },

    // toolchain extras
    emscripten_notify_memory_growth(): void {},
    pthread_equal(a: number, b: number): number {
      return a === b ? 1 : 0;
    },
    abort(msg: number, file: number, line: number, col: number): never {
      const text = `abort: ${asString(mem, msg)} at: ${asString(mem, file)}(${line >>> 0}:${col >>> 0})`;
      h.log(LogLevel.CRITICAL, text);
      throw new ModuleAbort(text);
    },
    trace(msg: number, n: number, a0: number, a1: number, a2: number, a3: number, a4: number): void {
      const args = [a0, a1, a2, a3, a4].slice(0, Math.max(0, Math.min(5, n >>> 0)));
      h.log(LogLevel.INFO, `trace: ${asString(mem, msg)}${args.length ? ` ${args.join(", ")}` : ""}`);
    },
    seed(): number {
      return Date.now();
    },
  };

  const out: Record<string, HostFn> = {};
  for (const name of Object.keys(ENV_IMPORTS)) {
    const f = impl[name] as ((...a: unknown[]) => unknown) | undefined;
    if (f === undefined) throw new Error(`host function ${name} has no implementation`);
    const returnsStatus = ENV_IMPORTS[name]!.results.length === 1 && ENV_IMPORTS[name]!.results[0] === "i32";
    // fixed arity (no rest arrays on the per-call path; 12 = proxy_grpc_call, the longest); a
    // host bug becomes INTERNAL_FAILURE
    out[name] = (a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown, g?: unknown, i?: unknown, j?: unknown, k?: unknown, l?: unknown, m?: unknown, n?: unknown) => {
      try {
        return f(a, b, c, d, e, g, i, j, k, l, m, n);
      } catch (err) {
        if (err instanceof VmAbort) throw err;
        return returnsStatus ? Status.INTERNAL_FAILURE : undefined;
      }
    };
  }
  return out;
}
