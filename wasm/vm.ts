// The synchronous VM core: one instance of one plugin module, its root context and its stream
// contexts (reference/waypoint.md §A.8–A.9). It runs inside a worker (vm-worker.ts) or inline;
// either way the main side feeds it Commands and gets back per-stream Emissions.
//
// Stream semantics follow Envoy with cpp-host defaults:
// - headers: any stop status pauses the whole direction (cpp-host turns StopIteration into
//   StopAllIterationAndWatermark): later body and trailers are held by the host *without* calling
//   the plugin, and handed to it once the stream continues;
// - body: a stop status buffers; the next body callback sees the whole accumulated body
//   (body_size grows) until the plugin continues; StopIterationNoBuffer behaves like
//   StopIterationAndWatermark here;
// - proxy_continue_stream / proxy_send_local_response / proxy_close_stream are deferred until
//   the callback returns; a local response forces "stop" and ends the stream.

import { ErrorCodes } from "../core/errors/index.ts";
import {
  type AbiVersion,
  BufferType,
  CONTEXT_CALLBACKS,
  FilterDataStatus,
  FilterHeadersStatus,
  FilterTrailersStatus,
  LogLevel,
  type LogLevelValue,
  MapType,
  Status,
  type StatusCode,
  StreamType,
} from "./abi.ts";
import { type BufferAccess, createEnv, type HostState, type MapAccess } from "./host-functions.ts";
import { BUDGET_IMPORT, GROW_IMPORT, HOST_MODULE, MEMORY_IMPORT } from "./instrument.ts";
import { GuestMemory } from "./memory.ts";
import { VmMetricTable } from "./metrics.ts";
import { resolveProperty, type StreamCompletion, type StreamProperties, type StreamView } from "./properties.ts";
import {
  type BatchEffects,
  type BatchReply,
  type Command,
  type CommandOutcome,
  Direction,
  type DirectionValue,
  type Emission,
  type EmissionDraft,
  EmissionKind,
  type EmissionKindValue,
  emptyEffects,
  type Failure,
  type LocalReply,
  Op,
  type StartReply,
  type VmConfig,
  type VmServices,
  type HttpCallRequest,
  type GrpcStreamOp,
  noEffects,
  GrpcEvent,
  isGrpcCallToken,
  isGrpcStreamToken,
} from "./protocol.ts";
import type { FlatPairs } from "./serialization.ts";
import { CallbackBudget } from "./budget.ts";
import { grpcAnswerEvents, grpcFrame, grpcName, grpcRequest, GrpcStatus, type GrpcStreamEventData } from "./grpc.ts";
import { BudgetExceeded, ModuleAbort, ProcExit } from "./traps.ts";
import { createWasi } from "./wasi.ts";

/** Iterations between two deadline checks (see instrument.ts). */
const FUEL_PER_CHECK = 1000;
const MAX_LOGS_PER_BATCH = 1000;
const MAX_PENDING_HTTP_CALLS = 1024;
const ROOT_ID = 1;
const EMPTY = new Uint8Array(0);

type Fn = (...args: number[]) => number | undefined;

/** Growable byte buffer for a body the plugin holds. */
class ByteBuf {
  private buf: Uint8Array = EMPTY;
  /** `buf` is ours to write into (not a caller's chunk held by reference). */
  private owned = false;
  length = 0;
  get bytes(): Uint8Array {
    return this.length === this.buf.length ? this.buf : this.buf.subarray(0, this.length);
  }
  append(b: Uint8Array): void {
    if (this.length === 0) {
      // the common case, one chunk: held as is (chunks are never written to), copied only if more come
      this.buf = b;
      this.length = b.length;
      this.owned = false;
      return;
    }
    if (!this.owned || this.length + b.length > this.buf.length) {
      this.owned = true;
      const next = new Uint8Array(Math.max(this.length + b.length, this.buf.length * 2, 1024));
      next.set(this.bytes);
      this.buf = next;
    }
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  replace(b: Uint8Array): void {
    this.buf = b;
    this.length = b.length;
    this.owned = false;
  }
  clear(): void {
    this.buf = EMPTY;
    this.length = 0;
    this.owned = false;
  }
}

/** The root context's end: proxy_on_done returned false (FINISHING) until the plugin calls proxy_done. */
const RootState = { RUNNING: 0, FINISHING: 1, DONE_CALLED: 2, DELETED: 3 } as const;
type RootStateValue = (typeof RootState)[keyof typeof RootState];
const HeadersState = { NONE: 0, HELD: 1, RELEASED: 2 } as const;
const TrailersState = { NONE: 0, UNDELIVERED: 1, HELD: 2, RELEASED: 3 } as const;

class DirState {
  headersState: number = HeadersState.NONE;
  headersModified = false;
  /** The headers as the main side sent them (edits replace the map, never mutate this array). */
  headersOrig: FlatPairs = [];
  readonly body = new ByteBuf();
  bodyModified = false;
  /** Body bytes (or end of stream) arrived while the headers were paused: not yet shown to the plugin. */
  bodyUndelivered = false;
  /** The plugin returned a stop status from its last body callback. */
  bodyStopped = false;
  inBodyCallback = false;
  trailersState: number = TrailersState.NONE;
  trailersModified = false;
  eos = false;

  holding(): boolean {
    return (
      this.headersState === HeadersState.HELD ||
      this.bodyUndelivered ||
      this.bodyStopped ||
      this.body.length > 0 ||
      this.trailersState === TrailersState.UNDELIVERED ||
      this.trailersState === TrailersState.HELD
    );
  }
}

class StreamCtx {
  readonly view: StreamView;
  readonly req = new DirState();
  readonly resp = new DirState();
  /** Properties the plugin set on this stream (proxy_set_property); most streams have none. */
  own: Map<string, Uint8Array> | undefined;
  ended: EmissionKindValue | undefined;
  constructor(
    readonly id: number,
    props: StreamProperties,
  ) {
    this.view = {
      props,
      completion: undefined,
      requestHeaders: undefined,
      requestTrailers: undefined,
      responseHeaders: undefined,
      responseTrailers: undefined,
      requestBodyBytes: 0,
      responseBodyBytes: 0,
    };
  }
  dir(d: DirectionValue): DirState {
    return d === Direction.REQUEST ? this.req : this.resp;
  }
}

interface Deferred {
  readonly kind: "continue" | "reset" | "local";
  readonly stream: StreamCtx;
  readonly dir: DirectionValue;
  readonly reply?: LocalReply;
}

interface EmissionBuilder {
  stream: StreamCtx;
  dir: DirectionValue;
  kind: EmissionKindValue;
  headersKeep?: number;
  headers?: FlatPairs | null;
  body?: Uint8Array | null;
  trailers?: FlatPairs | null;
  local?: LocalReply;
}

interface CallResponse {
  readonly headers: FlatPairs;
  readonly body: Uint8Array;
  readonly trailers: FlatPairs;
  readonly failure: string | undefined;
}

function failureOf(code: string, message: string): Failure {
  return { code, message };
}

/** A stream's header maps by Proxy-Wasm map type: where the map lives and what marks it changed. */
const STREAM_MAPS: Readonly<Record<number, { field: "requestHeaders" | "requestTrailers" | "responseHeaders" | "responseTrailers"; dir: "req" | "resp"; flag: "headersModified" | "trailersModified" }>> = {
  [MapType.HTTP_REQUEST_HEADERS]: { field: "requestHeaders", dir: "req", flag: "headersModified" },
  [MapType.HTTP_REQUEST_TRAILERS]: { field: "requestTrailers", dir: "req", flag: "trailersModified" },
  [MapType.HTTP_RESPONSE_HEADERS]: { field: "responseHeaders", dir: "resp", flag: "headersModified" },
  [MapType.HTTP_RESPONSE_TRAILERS]: { field: "responseTrailers", dir: "resp", flag: "trailersModified" },
};

export class VmCore implements HostState {
  readonly mem: GuestMemory;
  readonly abi: AbiVersion;
  readonly maxBufferBytes: number;
  readonly maxHeaderBytes: number;
  readonly logLevel: LogLevelValue;
  readonly metrics: VmMetricTable;
  private readonly memory: WebAssembly.Memory | undefined;
  private exports: Record<string, unknown> = {};
  private cb: Record<string, Fn | undefined> = {};
  private readonly streams = new Map<number, StreamCtx>();
  private readonly rootOwn = new Map<string, Uint8Array>();
  private effects: BatchEffects = emptyEffects();
  private failed: Failure | undefined;
  private readonly budget = new CallbackBudget();
  private budgetMs: number;
  private memoryLimitHit = false;
  // per callback
  private current: StreamCtx | undefined;
  private effective: StreamCtx | undefined;
  private deferred: Deferred[] = [];
  private readOnly = false;
  private inVmStart = false;
  private callResponse: CallResponse | undefined;
  // per command
  /** This command's emissions, usually one: a list (reused) rather than a Map, whose clear() allocates. */
  private readonly emissions: EmissionBuilder[] = [];
  private readonly pendingCalls = new Set<number>();
  private nextToken = 0;
  private nextGrpcToken = 1;
  private nextGrpcStreamToken = 2;
  /** Open gRPC streams by id; `sending` until the plugin half-closes (or cancels) it. */
  private readonly grpcStreams = new Map<number, { sending: boolean }>();
  private rootState: RootStateValue = RootState.RUNNING;
  /** What the running gRPC callback reads: its metadata (map 4 or 5), its message (buffer 5), the status. */
  private grpcNow: { initial?: FlatPairs; trailing?: FlatPairs; message?: Uint8Array; status?: { code: number; message: string } } | undefined;

  private constructor(
    private readonly cfg: VmConfig,
    private readonly services: VmServices,
    abi: AbiVersion,
    memoryPages: { initialPages: number; maximumPages: number } | undefined,
  ) {
    this.abi = abi;
    this.maxBufferBytes = cfg.maxBufferBytes;
    this.maxHeaderBytes = cfg.maxHeaderBytes;
    this.logLevel = cfg.logLevel;
    this.metrics = new VmMetricTable(cfg.metricSeed);
    this.budgetMs = cfg.callbackBudgetMs;
    this.memory =
      memoryPages === undefined
        ? undefined
        : new WebAssembly.Memory({ initial: memoryPages.initialPages, maximum: memoryPages.maximumPages });
    this.mem = new GuestMemory(this.memory);
  }

  /**
   * Instantiates an instrumented module (instrument.ts) and drives the start sequence:
   * _initialize/main or _start, proxy_on_context_create(root, 0), proxy_on_vm_start,
   * proxy_on_configure. The VM is usable only when `reply.ok`.
   */
  static start(
    module: WebAssembly.Module,
    abi: AbiVersion,
    memoryPages: { initialPages: number; maximumPages: number } | undefined,
    cfg: VmConfig,
    services: VmServices,
  ): { vm: VmCore; reply: StartReply } {
    const vm = new VmCore(cfg, services, abi, memoryPages);
    const reply = vm.boot(module);
    return { vm, reply };
  }

  private boot(module: WebAssembly.Module): StartReply {
    this.effects = emptyEffects();
    this.budgetMs = this.cfg.startBudgetMs;
    this.budget.begin(this.budgetMs);
    const wasi = createWasi({
      mem: this.mem,
      env: this.cfg.env,
      log: (l, m) => this.log(l, m),
      wantsLog: (l) => l >= this.logLevel,
    });
    const hostModule: Record<string, unknown> = {
      [BUDGET_IMPORT]: () => {
        this.budget.check();
        return FUEL_PER_CHECK;
      },
      [GROW_IMPORT]: (delta: number) => {
        if (this.memory === undefined) return -1;
        try {
          return this.memory.grow(delta >>> 0);
        } catch {
          this.memoryLimitHit = true;
          return -1;
        }
      },
    };
    if (this.memory !== undefined) hostModule[MEMORY_IMPORT] = this.memory;
    try {
      const imports: Record<string, Record<string, unknown>> = {
        env: createEnv(this),
        wasi_snapshot_preview1: wasi,
        wasi_unstable: wasi,
        [HOST_MODULE]: hostModule,
      };
      const instance = new WebAssembly.Instance(module, imports as Bun.WebAssembly.Imports);
      this.exports = instance.exports as Record<string, unknown>;
      const fn = (name: string): Fn | undefined =>
        typeof this.exports[name] === "function" ? (this.exports[name] as Fn) : undefined;
      for (const name of CONTEXT_CALLBACKS) {
        this.cb[name] = fn(name);
      }
      const alloc = fn("malloc") ?? fn("proxy_on_memory_allocate");
      this.mem.allocate = alloc === undefined ? undefined : (n: number) => alloc(n) ?? 0;
      const init = fn("_initialize");
      if (init !== undefined) {
        init();
        const main = fn("main") ?? fn("__main_void");
        if (main !== undefined) main(0, 0);
      } else {
        const start = fn("_start");
        if (start !== undefined) {
          try {
            start();
          } catch (e) {
            if (!(e instanceof ProcExit && e.exitCode === 0)) throw e;
          }
        }
      }
      this.invoke(undefined, "proxy_on_context_create", ROOT_ID, 0);
      this.inVmStart = true;
      const started = this.invoke(undefined, "proxy_on_vm_start", ROOT_ID, this.cfg.vmConfiguration.length);
      this.inVmStart = false;
      if (started === 0) {
        return this.startFailure(failureOf(ErrorCodes.WASM_CONFIG_REJECTED, "proxy_on_vm_start returned false"));
      }
      const configured = this.invoke(undefined, "proxy_on_configure", ROOT_ID, this.cfg.configuration.length);
      if (configured === 0) {
        return this.startFailure(
          failureOf(ErrorCodes.WASM_CONFIG_REJECTED, "proxy_on_configure returned false: the plugin rejected its configuration"),
        );
      }
    } catch (e) {
      return this.startFailure(this.classify(e));
    } finally {
      this.budgetMs = this.cfg.callbackBudgetMs;
    }
    this.effects.metrics = this.metrics.drain(this.effects.metrics);
    return { ok: true, effects: this.effects };
  }

  private startFailure(f: Failure): StartReply {
    this.failed = f;
    this.effects.metrics = this.metrics.drain(this.effects.metrics);
    return { ok: false, failure: f, effects: this.effects };
  }

  private classify(e: unknown): Failure {
    if (e instanceof BudgetExceeded) return failureOf(ErrorCodes.WASM_TIMEOUT, e.message);
    // JSC appends the JS expression that was running ("(evaluating 'f(a, b, c)')"): not useful here
    const msg = (e instanceof Error ? e.message : String(e)).replace(/ \(evaluating '.*'\)$/, "");
    if (this.memoryLimitHit) {
      return failureOf(
        ErrorCodes.WASM_MEMORY_LIMIT,
        `plugin reached its memory limit of ${this.cfg.maxMemoryPages} pages and failed: ${msg}`,
      );
    }
    if (e instanceof ProcExit || e instanceof ModuleAbort) return failureOf(ErrorCodes.WASM_TRAP, msg);
    if (e instanceof WebAssembly.RuntimeError) return failureOf(ErrorCodes.WASM_TRAP, `trap: ${msg}`);
    if (e instanceof WebAssembly.LinkError || e instanceof WebAssembly.CompileError) {
      return failureOf(ErrorCodes.WASM_MODULE_INVALID, msg);
    }
    if (e instanceof RangeError) return failureOf(ErrorCodes.WASM_TRAP, `trap: ${msg}`);
    return failureOf(ErrorCodes.WASM_TRAP, `plugin failed: ${msg}`);
  }

  // ---- calling into the module --------------------------------------------------------------

  /**
   * Calls an exported callback with `ctx` as current and effective context; undefined when the
   * module does not export it. Throws what the module throws (the caller classifies it).
   */
  private invoke(ctx: StreamCtx | undefined, name: string, a = 0, b = 0, c = 0, d = 0, e = 0): number | undefined {
    const f = this.cb[name];
    if (f === undefined) return undefined;
    const savedCurrent = this.current;
    const savedEffective = this.effective;
    this.current = ctx;
    this.effective = ctx;
    try {
      return f(a, b, c, d, e);
    } finally {
      this.current = savedCurrent;
      this.effective = savedEffective;
    }
  }

  // ---- batch execution ----------------------------------------------------------------------

  /**
   * The most CPU one command of the last execute() spent in the module, in ns
   * (CallbackBudget.moduleCpuNs). Not wall time: a short callback that took long was the process
   * being preempted or collecting garbage, not the plugin holding the thread.
   */
  slowestCommandNs = 0;

  execute(commands: readonly Command[]): BatchReply {
    this.effects = noEffects();
    const outcomes: CommandOutcome[] = [];
    let slowest = 0;
    for (const cmd of commands) {
      outcomes.push(this.executeOne(cmd));
      const took = this.budget.moduleCpuNs();
      if (took > slowest) slowest = took;
    }
    if (this.rootState === RootState.DONE_CALLED && this.failed === undefined) {
      try {
        this.budget.begin(this.budgetMs);
        this.deleteRoot();
      } catch (e) {
        this.failed = this.classify(e);
      }
    }
    this.slowestCommandNs = slowest;
    this.effects.metrics = this.metrics.drain(this.effects.metrics);
    return this.failed === undefined
      ? { outcomes, effects: this.effects }
      : { outcomes, effects: this.effects, vmFailure: this.failed };
  }

  private executeOne(cmd: Command): CommandOutcome {
    this.budget.begin(this.budgetMs);
    if (this.failed !== undefined) return { emissions: [], failure: this.failed, skipped: true };
    // (setting an array's length is a slow path in JavaScriptCore even when it is already empty)
    if (this.emissions.length > 0) this.emissions.length = 0;
    if (this.deferred.length > 0) this.deferred.length = 0;
    try {
      switch (cmd.op) {
        case Op.HEADERS: {
          const s = this.stream(cmd.stream, cmd.create);
          if (cmd.body === undefined) this.onHeaders(s, cmd.dir, cmd.headers, cmd.eos);
          else {
            this.onHeaders(s, cmd.dir, cmd.headers, false);
            // the body callback as a command of its own: deferred actions first, its own budget
            this.runDeferred();
            this.budget.begin(this.budgetMs);
            this.onBody(s, cmd.dir, cmd.body, cmd.eos);
          }
          this.finish(s, cmd.dir);
          break;
        }
        case Op.BODY: {
          const s = this.stream(cmd.stream, cmd.create);
          this.onBody(s, cmd.dir, cmd.body, cmd.eos);
          this.finish(s, cmd.dir);
          break;
        }
        case Op.TRAILERS: {
          const s = this.stream(cmd.stream, cmd.create);
          this.onTrailers(s, cmd.dir, cmd.trailers);
          this.finish(s, cmd.dir);
          break;
        }
        case Op.DONE:
          this.onDone(cmd.stream, cmd.completion);
          break;
        case Op.HTTP_CALL_RESPONSE:
          this.onHttpCallResponse(cmd);
          this.finish(undefined, Direction.REQUEST);
          break;
        case Op.TICK:
          this.invoke(undefined, "proxy_on_tick", ROOT_ID);
          this.finish(undefined, Direction.REQUEST);
          break;
        case Op.QUEUE_READY:
          this.invoke(undefined, "proxy_on_queue_ready", ROOT_ID, cmd.queueId);
          this.finish(undefined, Direction.REQUEST);
          break;
        case Op.GRPC_STREAM_EVENT:
          this.onGrpcStreamEvent(cmd);
          this.finish(undefined, Direction.REQUEST);
          break;
        case Op.SHUTDOWN: {
          // false from proxy_on_done: the plugin has work in flight and calls proxy_done when it is over
          const done = this.invoke(undefined, "proxy_on_done", ROOT_ID);
          if (done === 0) {
            this.rootState = RootState.FINISHING;
            this.effects.rootDone = 1;
          } else this.deleteRoot();
          break;
        }
      }
    } catch (e) {
      this.failed = this.classify(e);
      this.readOnly = false;
      this.callResponse = undefined;
      return { emissions: [], failure: this.failed };
    }
    const emissions: Emission[] = [];
    for (const b of this.emissions) {
      const e: EmissionDraft = { stream: b.stream.id, dir: b.dir, kind: b.kind };
      if (b.headersKeep !== undefined) e.headersKeep = b.headersKeep;
      if (b.headers !== undefined) e.headers = b.headers;
      if (b.body !== undefined) e.body = b.body;
      if (b.trailers !== undefined) e.trailers = b.trailers;
      if (b.local !== undefined) e.local = b.local;
      emissions.push(e);
    }
    return { emissions };
  }

  private stream(id: number, create: StreamProperties | undefined): StreamCtx {
    let s = this.streams.get(id);
    if (s === undefined) {
      s = new StreamCtx(id, create ?? {});
      this.streams.set(id, s);
      this.invoke(s, "proxy_on_context_create", id, ROOT_ID);
    }
    return s;
  }

  private builder(s: StreamCtx, dir: DirectionValue): EmissionBuilder {
    for (const b of this.emissions) if (b.stream === s && b.dir === dir) return b;
    const b: EmissionBuilder = { stream: s, dir, kind: EmissionKind.STOP };
    this.emissions.push(b);
    return b;
  }

  /** Applies deferred actions, then settles the emission of the command's own stream direction. */
  private finish(s: StreamCtx | undefined, dir: DirectionValue): void {
    this.runDeferred();
    for (const b of this.emissions) {
      if (b.kind === EmissionKind.LOCAL || b.kind === EmissionKind.RESET) continue;
      b.kind = b.stream.dir(b.dir).holding() ? EmissionKind.STOP : EmissionKind.CONTINUE;
    }
    if (s !== undefined) {
      const b = this.builder(s, dir);
      if (b.kind !== EmissionKind.LOCAL && b.kind !== EmissionKind.RESET) {
        b.kind = s.dir(dir).holding() ? EmissionKind.STOP : EmissionKind.CONTINUE;
      }
    }
  }

  private runDeferred(): void {
    while (this.deferred.length > 0) {
      const d = this.deferred.shift()!;
      if (d.stream.ended !== undefined) continue;
      if (d.kind === "continue") this.advance(d.stream, d.dir);
      else this.end(d.stream, d.kind === "local" ? EmissionKind.LOCAL : EmissionKind.RESET, d.reply);
    }
  }

  /** Ends a stream with a local reply or a reset (a reply after response headers went out is a reset). */
  private end(s: StreamCtx, kind: EmissionKindValue, reply: LocalReply | undefined): void {
    const k = kind === EmissionKind.LOCAL && s.resp.headersState === HeadersState.RELEASED ? EmissionKind.RESET : kind;
    s.ended = k;
    for (const dir of [Direction.REQUEST, Direction.RESPONSE] as const) {
      const b = this.builder(s, dir);
      b.kind = k;
      delete b.headers;
      delete b.headersKeep;
      delete b.body;
      delete b.trailers;
      if (k === EmissionKind.LOCAL && reply !== undefined) b.local = reply;
    }
  }

  /** True when a deferred local reply/reset for this stream is queued (forces "stop"). */
  private endingRequested(s: StreamCtx): boolean {
    for (const d of this.deferred) if (d.stream === s && d.kind !== "continue") return true;
    return false;
  }

  // ---- stream events ------------------------------------------------------------------------

  private headersMapOf(s: StreamCtx, dir: DirectionValue): FlatPairs {
    return (dir === Direction.REQUEST ? s.view.requestHeaders : s.view.responseHeaders) ?? [];
  }

  private onHeaders(s: StreamCtx, dir: DirectionValue, headers: FlatPairs, eos: boolean): void {
    if (s.ended !== undefined) return;
    const d = s.dir(dir);
    if (dir === Direction.REQUEST) s.view.requestHeaders = headers;
    else s.view.responseHeaders = headers;
    d.headersOrig = headers;
    d.headersState = HeadersState.HELD;
    d.headersModified = false;
    d.eos = eos;
    const name = dir === Direction.REQUEST ? "proxy_on_request_headers" : "proxy_on_response_headers";
    const status = this.invoke(s, name, s.id, headers.length >> 1, eos ? 1 : 0) ?? FilterHeadersStatus.Continue;
    if (this.endingRequested(s)) return;
    if (status === FilterHeadersStatus.Continue || status === FilterHeadersStatus.ContinueAndEndStream) {
      this.advance(s, dir);
    }
  }

  private onBody(s: StreamCtx, dir: DirectionValue, chunk: Uint8Array, eos: boolean): void {
    if (s.ended !== undefined) return;
    const d = s.dir(dir);
    if (d.body.length + chunk.length > this.maxBufferBytes) {
      this.bufferOverflow(s, dir);
      return;
    }
    d.body.append(chunk);
    d.eos = eos;
    if (dir === Direction.REQUEST) s.view.requestBodyBytes += chunk.length;
    else s.view.responseBodyBytes += chunk.length;
    if (d.headersState === HeadersState.HELD) {
      d.bodyUndelivered = true; // paused in headers: hold without calling the plugin
      return;
    }
    this.deliverBody(s, dir);
  }

  private bufferOverflow(s: StreamCtx, dir: DirectionValue): void {
    this.log(
      LogLevel.WARN,
      `${dir === Direction.REQUEST ? "request" : "response"} body held for the plugin exceeds ${this.maxBufferBytes} bytes`,
    );
    const reply: LocalReply =
      dir === Direction.REQUEST
        ? { status: 413, details: "request_payload_too_large", body: EMPTY, headers: [], grpcStatus: undefined }
        : { status: 500, details: "response_payload_too_large", body: EMPTY, headers: [], grpcStatus: undefined };
    this.end(s, EmissionKind.LOCAL, reply);
  }

  /** Calls on_*_body with everything held; continue releases, stop keeps holding. */
  private deliverBody(s: StreamCtx, dir: DirectionValue): void {
    const d = s.dir(dir);
    d.bodyUndelivered = false;
    const name = dir === Direction.REQUEST ? "proxy_on_request_body" : "proxy_on_response_body";
    const eos = d.eos && d.trailersState === TrailersState.NONE;
    d.inBodyCallback = true;
    let status: number;
    try {
      status = this.invoke(s, name, s.id, d.body.length, eos ? 1 : 0) ?? FilterDataStatus.Continue;
    } finally {
      d.inBodyCallback = false;
    }
    if (this.endingRequested(s)) return;
    if (status === FilterDataStatus.Continue) {
      d.bodyStopped = false;
      this.advance(s, dir);
    } else d.bodyStopped = true;
  }

  private onTrailers(s: StreamCtx, dir: DirectionValue, trailers: FlatPairs): void {
    if (s.ended !== undefined) return;
    const d = s.dir(dir);
    if (dir === Direction.REQUEST) s.view.requestTrailers = trailers;
    else s.view.responseTrailers = trailers;
    d.eos = true;
    d.trailersModified = false;
    d.trailersState = TrailersState.UNDELIVERED;
    if (d.headersState === HeadersState.HELD || d.bodyUndelivered) return;
    this.deliverTrailers(s, dir);
  }

  private deliverTrailers(s: StreamCtx, dir: DirectionValue): void {
    const d = s.dir(dir);
    const trailers = (dir === Direction.REQUEST ? s.view.requestTrailers : s.view.responseTrailers) ?? [];
    d.trailersState = TrailersState.HELD;
    const name = dir === Direction.REQUEST ? "proxy_on_request_trailers" : "proxy_on_response_trailers";
    const status = this.invoke(s, name, s.id, trailers.length >> 1) ?? FilterTrailersStatus.Continue;
    if (this.endingRequested(s)) return;
    if (status === FilterTrailersStatus.Continue) this.advance(s, dir);
  }

  /**
   * The plugin let this direction continue: release the headers, show held body and trailers
   * to the plugin (Envoy hands data buffered during a header pause to the filter on resume),
   * and release whatever it lets through.
   */
  private advance(s: StreamCtx, dir: DirectionValue): void {
    if (s.ended !== undefined) return;
    const d = s.dir(dir);
    const b = this.builder(s, dir);
    if (d.headersState === HeadersState.HELD) {
      d.headersState = HeadersState.RELEASED;
      if (d.headersModified) {
        // send only what follows the unchanged leading pairs (an added header is one pair)
        const cur = this.headersMapOf(s, dir);
        const orig = d.headersOrig;
        let k = 0;
        while (2 * k + 1 < cur.length && 2 * k + 1 < orig.length && cur[2 * k] === orig[2 * k] && cur[2 * k + 1] === orig[2 * k + 1]) k++;
        b.headersKeep = k;
        b.headers = k === 0 ? cur : cur.slice(2 * k);
      } else b.headers = null;
      if (d.bodyUndelivered) {
        this.deliverBody(s, dir); // continues into advance() again if the plugin lets it through
        // a body held by the plugin does not hold back trailers that arrived during the pause:
        // the plugin sees them next, as Envoy calls decodeTrailers after a buffering decodeData
        if (d.bodyStopped && d.trailersState === TrailersState.UNDELIVERED && s.ended === undefined && !this.endingRequested(s)) {
          this.deliverTrailers(s, dir);
        }
        return;
      }
    }
    if (d.body.length > 0 || d.bodyStopped) {
      if (d.inBodyCallback) return; // released when the callback returns Continue
      const prev = b.body;
      const out = d.bodyModified ? d.body.bytes.slice() : null;
      b.body = prev === undefined ? out : concatRelease(prev, out, d.body.bytes);
      d.body.clear();
      d.bodyModified = false;
      d.bodyStopped = false;
    }
    if (d.trailersState === TrailersState.UNDELIVERED) {
      this.deliverTrailers(s, dir);
      return;
    }
    if (d.trailersState === TrailersState.HELD) {
      d.trailersState = TrailersState.RELEASED;
      b.trailers = d.trailersModified
        ? ((dir === Direction.REQUEST ? s.view.requestTrailers : s.view.responseTrailers) ?? [])
        : null;
    }
  }

  private onDone(id: number, completion: StreamCompletion | undefined): void {
    const s = this.streams.get(id);
    if (s === undefined) return;
    s.view.completion = completion;
    this.readOnly = true;
    try {
      this.invoke(s, "proxy_on_done", id);
      this.invoke(s, "proxy_on_log", id);
      this.invoke(s, "proxy_on_delete", id);
    } finally {
      this.readOnly = false;
      this.streams.delete(id);
    }
  }

  private onHttpCallResponse(cmd: Extract<Command, { op: typeof Op.HTTP_CALL_RESPONSE }>): void {
    if (!this.pendingCalls.delete(cmd.token)) return;
    if (isGrpcCallToken(cmd.token)) {
      this.onGrpcAnswer(cmd.token, grpcAnswerEvents(cmd.response, cmd.failure));
      return;
    }
    const r = cmd.response;
    this.callResponse =
      r === undefined
        ? { headers: [], body: EMPTY, trailers: [], failure: cmd.failure ?? "call failed" }
        : { headers: r.headers, body: r.body, trailers: r.trailers, failure: undefined };
    try {
      this.invoke(
        undefined,
        "proxy_on_http_call_response",
        ROOT_ID,
        cmd.token,
        r === undefined ? 0 : r.headers.length >> 1,
        r === undefined ? 0 : r.body.length,
        r === undefined ? 0 : r.trailers.length >> 1,
      );
    } finally {
      this.callResponse = undefined;
    }
  }

  /** A unary gRPC call's answer: the events a stream would report, in Envoy's order. */
  private onGrpcAnswer(token: number, events: readonly GrpcStreamEventData[]): void {
    for (const e of events) this.grpcEvent(token, e);
  }

  /** One gRPC callback on the root context; what it may read is set for its duration only. */
  private grpcEvent(token: number, e: GrpcStreamEventData): void {
    try {
      switch (e.event) {
        case GrpcEvent.INITIAL:
          this.grpcNow = { initial: e.pairs ?? [] };
          this.invoke(undefined, "proxy_on_grpc_receive_initial_metadata", ROOT_ID, token, (e.pairs?.length ?? 0) >> 1);
          break;
        case GrpcEvent.MESSAGE:
          this.grpcNow = { message: e.message ?? EMPTY };
          this.invoke(undefined, "proxy_on_grpc_receive", ROOT_ID, token, e.message?.length ?? 0);
          break;
        case GrpcEvent.TRAILING:
          this.grpcNow = { trailing: e.pairs ?? [] };
          this.invoke(undefined, "proxy_on_grpc_receive_trailing_metadata", ROOT_ID, token, (e.pairs?.length ?? 0) >> 1);
          break;
        case GrpcEvent.CLOSE: {
          const code = e.status ?? GrpcStatus.UNKNOWN;
          this.grpcNow = { status: { code, message: e.statusMessage ?? "" } };
          this.invoke(undefined, "proxy_on_grpc_close", ROOT_ID, token, code);
          break;
        }
      }
    } finally {
      this.grpcNow = undefined;
    }
  }

  /** An event of an open gRPC stream (ignored once the plugin cancelled it). */
  private onGrpcStreamEvent(cmd: Extract<Command, { op: typeof Op.GRPC_STREAM_EVENT }>): void {
    if (!this.grpcStreams.has(cmd.token)) return;
    if (cmd.event === GrpcEvent.CLOSE) this.grpcStreams.delete(cmd.token);
    this.grpcEvent(cmd.token, cmd);
  }

  // ---- HostState ----------------------------------------------------------------------------

  log(level: LogLevelValue, message: string): void {
    if (Object.isFrozen(this.effects.logs)) this.effects.logs = [];
    if (this.effects.logs.length >= MAX_LOGS_PER_BATCH) {
      this.effects.droppedLogs++;
      return;
    }
    this.effects.logs.push({ level, message });
  }

  setEffectiveContext(id: number): StatusCode {
    if (id === ROOT_ID) {
      this.effective = undefined;
      return Status.OK;
    }
    const s = this.streams.get(id);
    if (s === undefined) return Status.BAD_ARGUMENT;
    this.effective = s;
    return Status.OK;
  }

  done(): StatusCode {
    if (this.rootState !== RootState.FINISHING) return Status.NOT_FOUND;
    // the root context goes once the current callback has returned (as Envoy's doneContext)
    this.rootState = RootState.DONE_CALLED;
    return Status.OK;
  }

  private deleteRoot(): void {
    this.rootState = RootState.DELETED;
    this.invoke(undefined, "proxy_on_delete", ROOT_ID);
    this.effects.rootDone = 2;
  }

  map(type: number): MapAccess | StatusCode {
    if (type === MapType.GRPC_CALL_INITIAL_METADATA || type === MapType.GRPC_CALL_TRAILING_METADATA) {
      const pairs = type === MapType.GRPC_CALL_INITIAL_METADATA ? this.grpcNow?.initial : this.grpcNow?.trailing;
      if (pairs === undefined) return Status.BAD_ARGUMENT;
      return { pairs, writable: false, replace: () => {} };
    }
    if (type === MapType.HTTP_CALL_RESPONSE_HEADERS || type === MapType.HTTP_CALL_RESPONSE_TRAILERS) {
      const r = this.callResponse;
      if (r === undefined) return Status.BAD_ARGUMENT;
      const pairs = type === MapType.HTTP_CALL_RESPONSE_HEADERS ? r.headers : r.trailers;
      return { pairs, writable: false, replace: () => {} };
    }
    const s = this.effective;
    if (s === undefined) return Status.BAD_ARGUMENT;
    const v = s.view;
    const writable = !this.readOnly;
    const slot = STREAM_MAPS[type];
    if (slot === undefined) return Status.BAD_ARGUMENT;
    const pairs = v[slot.field];
    if (pairs === undefined) return Status.BAD_ARGUMENT;
    return {
      pairs,
      writable,
      replace: (next) => {
        v[slot.field] = next;
        s[slot.dir][slot.flag] = true;
      },
    };
  }

  buffer(type: number): BufferAccess | StatusCode {
    switch (type) {
      case BufferType.HTTP_REQUEST_BODY:
      case BufferType.HTTP_RESPONSE_BODY: {
        const s = this.effective;
        if (s === undefined) return Status.NOT_FOUND;
        const d = type === BufferType.HTTP_REQUEST_BODY ? s.req : s.resp;
        if (!d.inBodyCallback && d.body.length === 0) return Status.NOT_FOUND;
        return {
          bytes: d.body.bytes,
          set: (start, size, data) => {
            if (this.readOnly) return Status.BAD_ARGUMENT;
            const cur = d.body.bytes;
            let next: Uint8Array;
            if (start === 0) {
              const rest = cur.subarray(Math.min(size, cur.length));
              next = new Uint8Array(data.length + rest.length);
              next.set(data);
              next.set(rest, data.length);
            } else if (start >= cur.length) {
              next = new Uint8Array(cur.length + data.length);
              next.set(cur);
              next.set(data, cur.length);
            } else return Status.BAD_ARGUMENT;
            if (next.length > this.maxBufferBytes) return Status.BAD_ARGUMENT;
            d.body.replace(next);
            d.bodyModified = true;
            return Status.OK;
          },
        };
      }
      case BufferType.HTTP_CALL_RESPONSE_BODY:
        return this.callResponse === undefined ? Status.NOT_FOUND : { bytes: this.callResponse.body };
      case BufferType.GRPC_CALL_MESSAGE: {
        const m = this.grpcNow?.message;
        return m === undefined ? Status.NOT_FOUND : { bytes: m };
      }
      case BufferType.VM_CONFIGURATION:
        return { bytes: this.cfg.vmConfiguration };
      case BufferType.PLUGIN_CONFIGURATION:
        return { bytes: this.cfg.configuration };
      default:
        return Status.NOT_FOUND;
    }
  }

  private streamControl(type: number, kind: "continue" | "reset"): StatusCode {
    if (type === StreamType.DOWNSTREAM || type === StreamType.UPSTREAM) return Status.UNIMPLEMENTED;
    if (type !== StreamType.HTTP_REQUEST && type !== StreamType.HTTP_RESPONSE) return Status.BAD_ARGUMENT;
    const s = this.effective;
    if (s === undefined) return Status.BAD_ARGUMENT;
    if (s.ended !== undefined) return Status.NOT_FOUND;
    this.deferred.push({ kind, stream: s, dir: type === StreamType.HTTP_REQUEST ? Direction.REQUEST : Direction.RESPONSE });
    return Status.OK;
  }

  continueStream(type: number): StatusCode {
    return this.streamControl(type, "continue");
  }

  closeStream(type: number): StatusCode {
    return this.streamControl(type, "reset");
  }

  sendLocalResponse(reply: LocalReply): StatusCode {
    const s = this.effective;
    if (s === undefined || s.ended !== undefined || this.endingRequested(s)) return Status.BAD_ARGUMENT;
    this.deferred.push({ kind: "local", stream: s, dir: Direction.REQUEST, reply });
    return Status.OK;
  }

  callStatus(): { code: number; message: string } | undefined {
    const g = this.grpcNow?.status;
    if (g !== undefined) return g;
    const r = this.callResponse;
    if (r === undefined) return undefined;
    return r.failure === undefined ? { code: 0, message: "" } : { code: 14, message: r.failure };
  }

  httpCall(
    upstream: string,
    headers: FlatPairs,
    body: Uint8Array,
    trailers: FlatPairs,
    timeoutMs: number,
  ): { status: StatusCode; token?: number } {
    const allowed = this.cfg.httpCallUpstreams;
    if (allowed !== undefined && !allowed.includes(upstream)) return { status: Status.BAD_ARGUMENT };
    let method = false;
    let path = false;
    let authority = false;
    let contentLength = false;
    for (let i = 0; i < headers.length; i += 2) {
      const k = headers[i];
      if (k === ":method") method = true;
      else if (k === ":path") path = true;
      else if (k === ":authority") authority = true;
      else if (k === "content-length") contentLength = true;
    }
    if (!method || !path || !authority) return { status: Status.BAD_ARGUMENT };
    if (this.pendingCalls.size >= MAX_PENDING_HTTP_CALLS) return { status: Status.INTERNAL_FAILURE };
    const h = body.length > 0 && !contentLength ? [...headers, "content-length", String(body.length)] : headers;
    this.nextToken = this.nextToken >= 0x7ffffff0 ? 4 : this.nextToken + 4;
    const token = this.nextToken;
    this.pendingCalls.add(token);
    this.effectHttpCall({ token, upstream, headers: h, body, trailers, timeoutMs });
    return { status: Status.OK, token };
  }

  private effectHttpCall(c: HttpCallRequest): void {
    if (Object.isFrozen(this.effects.httpCalls)) this.effects.httpCalls = [];
    this.effects.httpCalls.push(c);
  }

  private effectGrpcStream(op: GrpcStreamOp): void {
    if (Object.isFrozen(this.effects.grpcStreams)) this.effects.grpcStreams = [];
    this.effects.grpcStreams.push(op);
  }

  /** Why a gRPC call or stream cannot start (an upstream not allowed, a bad name, too many open), or undefined. */
  private grpcRefusal(upstream: string, service: string, method: string, open: number): StatusCode | undefined {
    const allowed = this.cfg.httpCallUpstreams;
    if (allowed !== undefined && !allowed.includes(upstream)) return Status.PARSE_FAILURE;
    if (!grpcName(service) || !grpcName(method)) return Status.BAD_ARGUMENT;
    if (open >= MAX_PENDING_HTTP_CALLS) return Status.INTERNAL_FAILURE;
    return undefined;
  }

  grpcCall(upstream: string, service: string, method: string, metadata: FlatPairs, message: Uint8Array, timeoutMs: number): { status: StatusCode; token?: number } {
    const refused = this.grpcRefusal(upstream, service, method, this.pendingCalls.size);
    if (refused !== undefined) return { status: refused };
    const { headers, body } = grpcRequest(upstream, service, method, metadata, message, timeoutMs);
    this.nextGrpcToken = this.nextGrpcToken >= 0x7ffffff0 ? 1 : this.nextGrpcToken + 4;
    const token = this.nextGrpcToken;
    this.pendingCalls.add(token);
    this.effectHttpCall({ token, upstream, headers, body, trailers: [], timeoutMs });
    return { status: Status.OK, token };
  }

  grpcStream(upstream: string, service: string, method: string, metadata: FlatPairs): { status: StatusCode; token?: number } {
    const refused = this.grpcRefusal(upstream, service, method, this.pendingCalls.size + this.grpcStreams.size);
    if (refused !== undefined) return { status: refused };
    const { headers } = grpcRequest(upstream, service, method, metadata, EMPTY, 0);
    this.nextGrpcStreamToken = this.nextGrpcStreamToken >= 0x7ffffff0 ? 2 : this.nextGrpcStreamToken + 4;
    const token = this.nextGrpcStreamToken;
    this.grpcStreams.set(token, { sending: true });
    this.effectGrpcStream({ token, op: "open", upstream, headers });
    return { status: Status.OK, token };
  }

  grpcSend(token: number, message: Uint8Array, end: boolean): StatusCode {
    if (!isGrpcStreamToken(token)) return Status.BAD_ARGUMENT;
    const st = this.grpcStreams.get(token);
    if (st === undefined) return Status.NOT_FOUND;
    if (!st.sending) return Status.BAD_ARGUMENT; // already half-closed
    if (end) st.sending = false;
    this.effectGrpcStream({ token, op: "send", message: grpcFrame(message), end });
    return Status.OK;
  }

  /** Cancels a call or a stream: nothing more is sent, no callback comes. */
  grpcCancel(token: number): StatusCode {
    if (isGrpcCallToken(token)) return this.pendingCalls.delete(token) ? Status.OK : Status.NOT_FOUND;
    if (!this.grpcStreams.delete(token)) return Status.NOT_FOUND;
    this.effectGrpcStream({ token, op: "cancel" });
    return Status.OK;
  }

  /** Closes a call (as cancel) or half-closes a stream: the answer still comes. */
  grpcClose(token: number): StatusCode {
    if (isGrpcCallToken(token)) return this.grpcCancel(token);
    const st = this.grpcStreams.get(token);
    if (st === undefined) return Status.NOT_FOUND;
    if (st.sending) {
      st.sending = false;
      this.effectGrpcStream({ token, op: "close" });
    }
    return Status.OK;
  }

  setTickPeriod(ms: number): StatusCode {
    this.effects.tickPeriodMs = ms;
    return Status.OK;
  }

  sharedGet(key: string): { value: Uint8Array; cas: number } | undefined {
    return this.services.sharedGet(key);
  }

  sharedSet(key: string, value: Uint8Array, cas: number): StatusCode {
    return this.services.sharedSet(key, value, cas) as StatusCode;
  }

  queueRegister(name: string): number {
    return this.services.queueRegister(name);
  }

  queueResolve(vmId: string, name: string): number | undefined {
    return this.services.queueResolve(vmId === "" ? this.cfg.plugin.vmId : vmId, name);
  }

  queueEnqueue(queueId: number, value: Uint8Array): StatusCode {
    return this.services.queueEnqueue(queueId, value) as StatusCode;
  }

  queueDequeue(queueId: number): { status: StatusCode; value?: Uint8Array } {
    return this.services.queueDequeue(queueId) as { status: StatusCode; value?: Uint8Array };
  }

  getProperty(path: string[]): Uint8Array | undefined {
    const s = this.effective;
    return resolveProperty(path, this.cfg.plugin, s?.view, s === undefined ? this.rootOwn : s.own);
  }

  setProperty(path: string[], value: Uint8Array): StatusCode {
    const s = this.effective;
    (s === undefined ? this.rootOwn : (s.own ??= new Map())).set(path.join("."), value);
    return Status.OK;
  }

  currentConfiguration(): Uint8Array {
    return this.inVmStart ? this.cfg.vmConfiguration : this.cfg.configuration;
  }

  // ---- introspection for conformance tests and diagnostics ----------------------------------

  /**
   * Calls any export with a stream (or, without `streamId`, the root) as the current and effective
   * context, outside the normal event flow. Deferred actions it queues are dropped.
   */
  callExport(name: string, args: readonly (number | bigint)[], streamId?: number): unknown {
    const f = this.exports[name];
    if (typeof f !== "function") throw new Error(`module does not export ${name}`);
    const s = streamId === undefined ? undefined : this.streams.get(streamId);
    if (streamId !== undefined && s === undefined) throw new Error(`no stream ${streamId}`);
    const savedCurrent = this.current;
    const savedEffective = this.effective;
    this.current = s;
    this.effective = s;
    this.budget.begin(this.budgetMs);
    try {
      return (f as (...a: (number | bigint)[]) => unknown)(...args);
    } finally {
      this.current = savedCurrent;
      this.effective = savedEffective;
      this.deferred = [];
    }
  }

  /** Effects (logs, callouts, ...) produced outside execute(), e.g. by callExport(). */
  drainEffects(): BatchEffects {
    const e = this.effects;
    this.effects = emptyEffects();
    this.metrics.drain(e.metrics);
    return e;
  }

  get failure(): Failure | undefined {
    return this.failed;
  }

  get liveStreams(): number {
    return this.streams.size;
  }
}

/** Joins two body releases within one command (rare: only when a resume releases twice). */
function concatRelease(prev: Uint8Array | null, next: Uint8Array | null, current: Uint8Array): Uint8Array | null {
  if (prev === null && next === null) return null;
  const a = prev ?? EMPTY;
  const b = next ?? current;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
