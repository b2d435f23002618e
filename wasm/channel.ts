// The main-thread <-> VM-worker channel: two SharedArrayBuffers, no postMessage on the request
// path. `ctl` (Int32Array) holds the state word the two sides hand control over with
// (Atomics.store + notify; the worker blocks in Atomics.wait, the main side awaits
// Atomics.waitAsync); `data` is a growable SAB carrying one binary message at a time (commands,
// the reply, or a synchronous service call the worker makes while a callback runs).
//
// Measured on the dev VM (see README): one round trip costs ~10 µs at p50 when the worker is
// parked, most of it the futex wake; postMessage costs about the same, but a worker blocked in
// Atomics.wait cannot receive messages, and the VM needs synchronous calls to the main thread
// (shared data, queues) in the middle of a callback.

import type { MetricTypeValue } from "./abi.ts";
import type {
  BatchEffects,
  BatchReply,
  Command,
  CommandOutcome,
  DirectionValue,
  Emission,
  EmissionDraft,
  EmissionKindValue,
  Failure,
  GrpcEventValue,
  StartReply,
} from "./protocol.ts";
import { Op } from "./protocol.ts";
import type { FlatPairs } from "./serialization.ts";

const EMPTY_BYTES = new Uint8Array(0);

export const State = {
  IDLE: 0,
  COMMANDS: 1,
  REPLY: 2,
  CALL: 3,
  CALL_REPLY: 4,
  EXIT: 5,
} as const;

export const CTL_STATE = 0;
export const CTL_LENGTH = 1;
export const CTL_WORDS = 4;

export class ChannelOverflow extends Error {
  constructor(need: number, max: number) {
    super(`a channel message needs ${need} bytes; the channel's limit is ${max}`);
    this.name = "ChannelOverflow";
  }
}

export interface ChannelBuffers {
  readonly ctl: SharedArrayBuffer;
  readonly data: SharedArrayBuffer;
}

type GrowableSab = SharedArrayBuffer & { grow(n: number): void; readonly maxByteLength: number; readonly growable: boolean };

export function createChannelBuffers(initialBytes: number, maxBytes: number): ChannelBuffers {
  const Ctor = SharedArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => SharedArrayBuffer;
  return {
    ctl: new SharedArrayBuffer(CTL_WORDS * 4),
    data: new Ctor(Math.min(initialBytes, maxBytes), { maxByteLength: maxBytes }),
  };
}

const DEC = new TextDecoder("utf-8", { fatal: false });

/** Node Buffer's native string helpers (present in Bun); avoid a view allocation per string. */
interface NativeStrings {
  utf8Write(s: string, offset: number): number;
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}
const native = (sab: SharedArrayBuffer): NativeStrings => Buffer.from(sab) as unknown as NativeStrings;
/** Set in a string's length word when every byte is ASCII (the reader can skip UTF-8 decoding). */
const ASCII = 0x80000000;

export class MessageWriter {
  pos = 0;
  private u8: Uint8Array;
  private dv: DataView;
  private buf: NativeStrings;
  constructor(private readonly sab: GrowableSab) {
    this.u8 = new Uint8Array(sab);
    this.dv = new DataView(sab);
    this.buf = native(sab);
  }
  reset(): this {
    this.pos = 0;
    return this;
  }
  private reserve(n: number): void {
    const need = this.pos + n;
    if (need <= this.u8.length) return;
    const max = this.sab.maxByteLength;
    if (need > max) throw new ChannelOverflow(need, max);
    this.sab.grow(Math.min(max, Math.max(need, this.u8.length * 2)));
    // length-tracking views follow the growth; re-derive in case the engine does not track
    this.u8 = new Uint8Array(this.sab);
    this.dv = new DataView(this.sab);
    this.buf = native(this.sab);
  }
  u8v(v: number): void {
    this.reserve(1);
    this.u8[this.pos++] = v;
  }
  u32(v: number): void {
    this.reserve(4);
    this.dv.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.dv.setInt32(this.pos, v | 0, true);
    this.pos += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.dv.setFloat64(this.pos, v, true);
    this.pos += 8;
  }
  str(s: string): void {
    this.reserve(4 + s.length * 3);
    const written = this.buf.utf8Write(s, this.pos + 4);
    // UTF-8 is longer than the UTF-16 length exactly when a character is not ASCII
    this.dv.setUint32(this.pos, written === s.length ? written | ASCII : written, true);
    this.pos += 4 + written;
  }
  bytes(b: Uint8Array): void {
    this.reserve(4 + b.length);
    this.dv.setUint32(this.pos, b.length, true);
    this.u8.set(b, this.pos + 4);
    this.pos += 4 + b.length;
  }
  pairs(p: FlatPairs): void {
    this.u32(p.length);
    for (let i = 0; i < p.length; i++) this.str(p[i]!);
  }
  /** A generic value: plain objects, strings, numbers, bigints, booleans, bytes. */
  value(v: unknown): void {
    if (v === undefined || v === null) this.u8v(0);
    else if (typeof v === "string") {
      this.u8v(1);
      this.str(v);
    } else if (typeof v === "number") {
      this.u8v(2);
      this.f64(v);
    } else if (typeof v === "bigint") {
      this.u8v(3);
      this.str(v.toString());
    } else if (typeof v === "boolean") {
      this.u8v(4);
      this.u8v(v ? 1 : 0);
    } else if (v instanceof Uint8Array) {
      this.u8v(5);
      this.bytes(v);
    } else if (typeof v === "object") {
      const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
      this.u8v(6);
      this.u32(entries.length);
      for (const [k, x] of entries) {
        this.str(k);
        this.value(x);
      }
    } else this.u8v(0);
  }
}

export class MessageReader {
  pos = 0;
  private u8: Uint8Array;
  private dv: DataView;
  private buf: NativeStrings;
  constructor(private readonly sab: SharedArrayBuffer) {
    this.u8 = new Uint8Array(sab);
    this.dv = new DataView(sab);
    this.buf = native(sab);
  }
  reset(): this {
    this.pos = 0;
    if (this.u8.length !== this.sab.byteLength) {
      this.u8 = new Uint8Array(this.sab);
      this.dv = new DataView(this.sab);
      this.buf = native(this.sab);
    }
    return this;
  }
  u8v(): number {
    return this.u8[this.pos++]!;
  }
  u32(): number {
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(): number {
    const v = this.dv.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f64(): number {
    const v = this.dv.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
  str(): string {
    const raw = this.u32();
    const n = raw & ~ASCII;
    const start = this.pos;
    this.pos += n;
    if (n === 0) return "";
    if (raw & ASCII) return this.buf.latin1Slice(start, start + n);
    return DEC.decode(this.u8.slice(start, start + n));
  }
  bytes(): Uint8Array {
    const n = this.u32();
    const out = this.u8.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  pairs(): FlatPairs {
    const n = this.u32();
    const out: FlatPairs = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.str();
    return out;
  }
  value(): unknown {
    switch (this.u8v()) {
      case 1:
        return this.str();
      case 2:
        return this.f64();
      case 3:
        return BigInt(this.str());
      case 4:
        return this.u8v() === 1;
      case 5:
        return this.bytes();
      case 6: {
        const n = this.u32();
        const o: Record<string, unknown> = {};
        for (let i = 0; i < n; i++) {
          const k = this.str();
          o[k] = this.value();
        }
        return o;
      }
      default:
        return undefined;
    }
  }
}

// ---- commands -------------------------------------------------------------------------------

export function writeCommands(w: MessageWriter, cmds: readonly Command[]): void {
  w.u32(cmds.length);
  for (const c of cmds) {
    w.u8v(c.op);
    switch (c.op) {
      case Op.HEADERS:
        w.u32(c.stream);
        w.u8v(c.dir);
        w.pairs(c.headers);
        w.u8v((c.eos ? 1 : 0) | (c.body !== undefined ? 2 : 0));
        if (c.body !== undefined) w.bytes(c.body);
        w.value(c.create);
        break;
      case Op.BODY:
        w.u32(c.stream);
        w.u8v(c.dir);
        w.bytes(c.body);
        w.u8v(c.eos ? 1 : 0);
        w.value(c.create);
        break;
      case Op.TRAILERS:
        w.u32(c.stream);
        w.u8v(c.dir);
        w.pairs(c.trailers);
        w.value(c.create);
        break;
      case Op.DONE:
        w.u32(c.stream);
        w.value(c.completion);
        break;
      case Op.HTTP_CALL_RESPONSE:
        w.u32(c.token);
        if (c.response !== undefined) {
          w.u8v(1);
          w.pairs(c.response.headers);
          w.bytes(c.response.body);
          w.pairs(c.response.trailers);
        } else {
          w.u8v(0);
          w.str(c.failure ?? "call failed");
        }
        break;
      case Op.QUEUE_READY:
        w.u32(c.queueId);
        break;
      case Op.GRPC_STREAM_EVENT:
        w.u32(c.token);
        w.u8v(c.event);
        w.pairs(c.pairs ?? []);
        w.bytes(c.message ?? EMPTY_BYTES);
        w.u32(c.status ?? 0);
        w.str(c.statusMessage ?? "");
        break;
      case Op.TICK:
      case Op.SHUTDOWN:
        break;
    }
  }
}

export function readCommands(r: MessageReader): Command[] {
  const n = r.u32();
  const out: Command[] = [];
  for (let i = 0; i < n; i++) {
    const op = r.u8v();
    switch (op) {
      case Op.HEADERS: {
        const stream = r.u32();
        const dir = r.u8v() as DirectionValue;
        const headers = r.pairs();
        const flags = r.u8v();
        const eos = (flags & 1) === 1;
        const body = (flags & 2) === 2 ? r.bytes() : undefined;
        const create = r.value() as Record<string, unknown> | undefined;
        const cmd = { op, stream, dir, headers, eos, ...(body !== undefined ? { body } : {}) };
        out.push(create === undefined ? cmd : { ...cmd, create });
        break;
      }
      case Op.BODY: {
        const stream = r.u32();
        const dir = r.u8v() as DirectionValue;
        const body = r.bytes();
        const eos = r.u8v() === 1;
        const create = r.value() as Record<string, unknown> | undefined;
        out.push(create === undefined ? { op, stream, dir, body, eos } : { op, stream, dir, body, eos, create });
        break;
      }
      case Op.TRAILERS: {
        const stream = r.u32();
        const dir = r.u8v() as DirectionValue;
        const trailers = r.pairs();
        const create = r.value() as Record<string, unknown> | undefined;
        out.push(create === undefined ? { op, stream, dir, trailers } : { op, stream, dir, trailers, create });
        break;
      }
      case Op.DONE: {
        const stream = r.u32();
        const completion = r.value() as Record<string, unknown> | undefined;
        out.push(completion === undefined ? { op, stream } : { op, stream, completion });
        break;
      }
      case Op.HTTP_CALL_RESPONSE: {
        const token = r.u32();
        if (r.u8v() === 1) {
          const headers = r.pairs();
          const body = r.bytes();
          const trailers = r.pairs();
          out.push({ op, token, response: { headers, body, trailers } });
        } else out.push({ op, token, failure: r.str() });
        break;
      }
      case Op.QUEUE_READY:
        out.push({ op, queueId: r.u32() });
        break;
      case Op.TICK:
        out.push({ op });
        break;
      case Op.SHUTDOWN:
        out.push({ op });
        break;
      case Op.GRPC_STREAM_EVENT: {
        const token = r.u32();
        const event = r.u8v() as GrpcEventValue;
        out.push({ op, token, event, pairs: r.pairs(), message: r.bytes(), status: r.u32(), statusMessage: r.str() });
        break;
      }
      default:
        throw new Error(`unknown command op ${op}`);
    }
  }
  return out;
}

// ---- replies --------------------------------------------------------------------------------

function writeFailure(w: MessageWriter, f: Failure | undefined): void {
  if (f === undefined) w.u8v(0);
  else {
    w.u8v(1);
    w.str(f.code);
    w.str(f.message);
  }
}

function readFailure(r: MessageReader): Failure | undefined {
  if (r.u8v() === 0) return undefined;
  const code = r.str();
  return { code, message: r.str() };
}

function writeEffects(w: MessageWriter, e: BatchEffects): void {
  w.u32(e.logs.length);
  for (const l of e.logs) {
    w.u8v(l.level);
    w.str(l.message);
  }
  w.u32(e.droppedLogs);
  w.u32(e.httpCalls.length);
  for (const c of e.httpCalls) {
    w.u32(c.token);
    w.str(c.upstream);
    w.pairs(c.headers);
    w.bytes(c.body);
    w.pairs(c.trailers);
    w.u32(c.timeoutMs);
  }
  w.u32(e.grpcStreams.length);
  for (const g of e.grpcStreams) {
    w.u32(g.token);
    w.str(g.op);
    if (g.op === "open") {
      w.str(g.upstream);
      w.pairs(g.headers);
    } else if (g.op === "send") {
      w.bytes(g.message);
      w.u8v(g.end ? 1 : 0);
    }
  }
  w.i32(e.tickPeriodMs);
  w.u8v(e.rootDone);
  w.u32(e.metrics.length);
  for (const m of e.metrics) {
    w.str(m.name);
    w.u8v(m.type);
    w.f64(m.value);
    w.u32(m.samples.length);
    for (const s of m.samples) w.f64(s);
  }
}

function readEffects(r: MessageReader): BatchEffects {
  const e: BatchEffects = { logs: [], droppedLogs: 0, httpCalls: [], grpcStreams: [], tickPeriodMs: -1, metrics: [], rootDone: 0 };
  const nl = r.u32();
  for (let i = 0; i < nl; i++) {
    const level = r.u8v() as BatchEffects["logs"][number]["level"];
    e.logs.push({ level, message: r.str() });
  }
  e.droppedLogs = r.u32();
  const nc = r.u32();
  for (let i = 0; i < nc; i++) {
    const token = r.u32();
    const upstream = r.str();
    const headers = r.pairs();
    const body = r.bytes();
    const trailers = r.pairs();
    e.httpCalls.push({ token, upstream, headers, body, trailers, timeoutMs: r.u32() });
  }
  const ng = r.u32();
  for (let i = 0; i < ng; i++) {
    const token = r.u32();
    const op = r.str();
    if (op === "open") e.grpcStreams.push({ token, op, upstream: r.str(), headers: r.pairs() });
    else if (op === "send") e.grpcStreams.push({ token, op, message: r.bytes(), end: r.u8v() === 1 });
    else if (op === "close" || op === "cancel") e.grpcStreams.push({ token, op });
  }
  e.tickPeriodMs = r.i32();
  e.rootDone = r.u8v() as BatchEffects["rootDone"];
  const nm = r.u32();
  for (let i = 0; i < nm; i++) {
    const name = r.str();
    const type = r.u8v() as MetricTypeValue;
    const value = r.f64();
    const ns = r.u32();
    const samples: number[] = new Array(ns);
    for (let j = 0; j < ns; j++) samples[j] = r.f64();
    e.metrics.push({ name, type, value, samples });
  }
  return e;
}

const F_HEADERS = 1;
const F_HEADERS_NULL = 2;
const F_BODY = 4;
const F_BODY_NULL = 8;
const F_TRAILERS = 16;
const F_TRAILERS_NULL = 32;
const F_LOCAL = 64;

function writeEmission(w: MessageWriter, e: Emission): void {
  w.u32(e.stream);
  w.u8v(e.dir);
  w.u8v(e.kind);
  let flags = 0;
  if (e.headers !== undefined) flags |= e.headers === null ? F_HEADERS | F_HEADERS_NULL : F_HEADERS;
  if (e.body !== undefined) flags |= e.body === null ? F_BODY | F_BODY_NULL : F_BODY;
  if (e.trailers !== undefined) flags |= e.trailers === null ? F_TRAILERS | F_TRAILERS_NULL : F_TRAILERS;
  if (e.local !== undefined) flags |= F_LOCAL;
  w.u8v(flags);
  if (e.headers) {
    w.u32(e.headersKeep ?? 0);
    w.pairs(e.headers);
  }
  if (e.body) w.bytes(e.body);
  if (e.trailers) w.pairs(e.trailers);
  if (e.local) {
    w.u32(e.local.status);
    w.str(e.local.details);
    w.bytes(e.local.body);
    w.pairs(e.local.headers);
    w.i32(e.local.grpcStatus ?? -1);
  }
}

function readEmission(r: MessageReader): Emission {
  const stream = r.u32();
  const dir = r.u8v() as DirectionValue;
  const kind = r.u8v() as EmissionKindValue;
  const flags = r.u8v();
  const e: EmissionDraft = { stream, dir, kind };
  if (flags & F_HEADERS) {
    if (flags & F_HEADERS_NULL) e.headers = null;
    else {
      const keep = r.u32();
      if (keep > 0) e.headersKeep = keep;
      e.headers = r.pairs();
    }
  }
  if (flags & F_BODY) e.body = flags & F_BODY_NULL ? null : r.bytes();
  if (flags & F_TRAILERS) e.trailers = flags & F_TRAILERS_NULL ? null : r.pairs();
  if (flags & F_LOCAL) {
    const status = r.u32();
    const details = r.str();
    const body = r.bytes();
    const headers = r.pairs();
    const g = r.i32();
    e.local = { status, details, body, headers, grpcStatus: g < 0 ? undefined : g };
  }
  return e;
}

export function writeReply(w: MessageWriter, reply: BatchReply): void {
  w.u32(reply.outcomes.length);
  for (const o of reply.outcomes) {
    writeFailure(w, o.failure);
    w.u8v(o.skipped ? 1 : 0);
    w.u32(o.emissions.length);
    for (const e of o.emissions) writeEmission(w, e);
  }
  writeEffects(w, reply.effects);
  writeFailure(w, reply.vmFailure);
}

export function readReply(r: MessageReader): BatchReply {
  const n = r.u32();
  const outcomes: CommandOutcome[] = [];
  for (let i = 0; i < n; i++) {
    const failure = readFailure(r);
    const skipped = r.u8v() === 1;
    const ne = r.u32();
    const emissions: Emission[] = [];
    for (let j = 0; j < ne; j++) emissions.push(readEmission(r));
    outcomes.push(failure === undefined ? { emissions } : skipped ? { emissions, failure, skipped } : { emissions, failure });
  }
  const effects = readEffects(r);
  const vmFailure = readFailure(r);
  return vmFailure === undefined ? { outcomes, effects } : { outcomes, effects, vmFailure };
}

export function writeStartReply(w: MessageWriter, reply: StartReply): void {
  w.u8v(reply.ok ? 1 : 0);
  writeFailure(w, reply.failure);
  writeEffects(w, reply.effects);
}

export function readStartReply(r: MessageReader): StartReply {
  const ok = r.u8v() === 1;
  const failure = readFailure(r);
  const effects = readEffects(r);
  return failure === undefined ? { ok, effects } : { ok, failure, effects };
}

// ---- synchronous service calls (worker -> main) ---------------------------------------------

export const Service = {
  SHARED_GET: 1,
  SHARED_SET: 2,
  QUEUE_REGISTER: 3,
  QUEUE_RESOLVE: 4,
  QUEUE_ENQUEUE: 5,
  QUEUE_DEQUEUE: 6,
} as const;

export interface ServiceHandlers {
  sharedGet(key: string): { value: Uint8Array; cas: number } | undefined;
  sharedSet(key: string, value: Uint8Array, cas: number): number;
  queueRegister(name: string): number;
  queueResolve(vmId: string, name: string): number | undefined;
  queueEnqueue(queueId: number, value: Uint8Array): number;
  queueDequeue(queueId: number): { status: number; value?: Uint8Array };
}

/** Main side: answers one service call that the worker wrote into the data buffer. */
export function serveCall(r: MessageReader, w: MessageWriter, h: ServiceHandlers): void {
  const op = r.u8v();
  w.reset();
  switch (op) {
    case Service.SHARED_GET: {
      const v = h.sharedGet(r.str());
      if (v === undefined) w.u8v(0);
      else {
        w.u8v(1);
        w.bytes(v.value);
        w.u32(v.cas);
      }
      break;
    }
    case Service.SHARED_SET: {
      const key = r.str();
      const value = r.bytes();
      w.u32(h.sharedSet(key, value, r.u32()));
      break;
    }
    case Service.QUEUE_REGISTER:
      w.u32(h.queueRegister(r.str()));
      break;
    case Service.QUEUE_RESOLVE: {
      const vm = r.str();
      const id = h.queueResolve(vm, r.str());
      w.u32(id ?? 0);
      break;
    }
    case Service.QUEUE_ENQUEUE: {
      const id = r.u32();
      w.u32(h.queueEnqueue(id, r.bytes()));
      break;
    }
    case Service.QUEUE_DEQUEUE: {
      const v = h.queueDequeue(r.u32());
      w.u32(v.status);
      w.bytes(v.value ?? new Uint8Array(0));
      break;
    }
    default:
      w.u32(10); // INTERNAL_FAILURE
  }
}
