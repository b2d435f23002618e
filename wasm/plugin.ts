// The embedder's view of one Proxy-Wasm plugin: start it, run streams through it, read its
// metrics, stop it. Owns everything asynchronous around the synchronous VM core: the command
// queue and batching, the per-callback budget, VM restarts, HTTP callouts, timers, queue wake-ups
// and the fail strategy.

import { type ErrorCode, ErrorCodes, MeshError } from "../core/errors/index.ts";
import { LOG_LEVEL_NAMES, type LogLevelName, type LogLevelValue } from "./abi.ts";
import { type ServiceHandlers } from "./channel.ts";
import { compiledModule, type CompiledModule } from "./compiled.ts";
import { type PluginMetric, PluginMetricStore } from "./metrics.ts";
import { type ModuleReport, toBytes } from "./module-info.ts";
import type { PropertyValue, StreamCompletion, StreamProperties } from "./properties.ts";
import {
  type BatchEffects,
  type BatchReply,
  type Command,
  Direction,
  type DirectionValue,
  type Emission,
  EmissionKind,
  type Failure,
  type HttpCallRequest,
  GrpcEvent,
  type GrpcStreamOp,
  isGrpcCallToken,
  Op,
  type VmConfig,
} from "./protocol.ts";
import { GrpcStreamReader, type GrpcStreamEventData } from "./grpc.ts";
import { type FlatPairs, flatten, unflatten } from "./serialization.ts";
import { processSharedState, type SharedState } from "./shared.ts";
import { defaultWorkerUrl, runAsync, spawnInline, spawnWorker, type SpawnOptions, VmDead, type VmHandle } from "./vm-handle.ts";

export type HeaderPairs = readonly (readonly [string, string])[];
export type FailStrategy = "FAIL_CLOSE" | "FAIL_OPEN" | "FAIL_RELOAD";
export type PluginIsolation = "auto" | "worker" | "inline";

export type HttpCallResult =
  | { readonly headers: HeaderPairs; readonly body?: Uint8Array; readonly trailers?: HeaderPairs }
  | { readonly failure: string };

/** An HTTP/2 request stream the embedder opened for a plugin's gRPC stream (proxy_grpc_stream). */
export interface CalloutStream {
  /** Sends bytes (framed gRPC messages); `end` half-closes. */
  write(chunk: Uint8Array, end: boolean): void;
  /** Half-closes: nothing more is sent; the answer still comes. */
  end(): void;
  /** Resets the stream; nothing more is reported. */
  cancel(): void;
}

/** What the embedder reports of a CalloutStream's answer, in order. */
export interface CalloutStreamEvents {
  /** the response head, with :status */
  headers(headers: HeaderPairs): void;
  data(chunk: Uint8Array): void;
  end(trailers: HeaderPairs | undefined): void;
  error(reason: string): void;
}

/**
 * Opens a streaming callout: `headers` are a gRPC request's (POST /service/method,
 * application/grpc); it must go over HTTP/2 and report the answer as it arrives.
 */
export type StreamCallFn = (upstream: string, headers: HeaderPairs, events: CalloutStreamEvents) => CalloutStream;

/** Performs a plugin's HTTP callout (proxy_http_call). `upstream` is the plugin's cluster name. */
/**
 * `kind` "grpc": a proxy_grpc_call, already shaped as gRPC over HTTP/2 (POST /service/method,
 * application/grpc, the framed message); the embedder must send it over HTTP/2 and return the
 * trailers (grpc-status).
 */
export type HttpCallFn = (
  upstream: string,
  headers: HeaderPairs,
  body: Uint8Array,
  trailers: HeaderPairs,
  timeoutMs: number,
  kind: "http" | "grpc",
) => Promise<HttpCallResult>;

export interface PluginLogEntry {
  readonly plugin: string;
  readonly level: LogLevelName;
  readonly message: string;
  /** "plugin" for proxy_log/WASI output, "host" for what the host reports about the plugin. */
  readonly source: "plugin" | "host";
}

export interface WasmPluginOptions {
  /** Plugin name (Istio: `<namespace>.<WasmPlugin name>`); `plugin_name`, metric label. */
  readonly name: string;
  /** Root id (Istio: `spec.pluginName`); `plugin_root_id`, which AssemblyScript modules require. */
  readonly rootId: string;
  /** VM id (shared data and queues are scoped by it). Default: the name. */
  readonly vmId?: string;
  readonly bytes: Uint8Array | ArrayBuffer;
  /** Plugin configuration (Istio `pluginConfig` as JSON text), read via PLUGIN_CONFIGURATION. */
  readonly configuration?: string;
  readonly vmConfiguration?: string;
  /** WASI environment (Istio `vmConfig.env`). */
  readonly env?: Readonly<Record<string, string>>;
  /** Linear memory limit in 64 KiB pages. Default 256 (16 MiB). */
  readonly maxMemoryPages?: number;
  /** Time one callback may run. Default 5 ms. */
  readonly callbackBudgetMs?: number;
  /** Time the start sequence (instantiation, vm_start, configure) may run. Default 2000 ms. */
  readonly startBudgetMs?: number;
  /** Bound for a body the plugin holds, and for any single buffer copied into it. Default 1 MiB. */
  readonly maxBufferBytes?: number;
  /** Bound for one header map. Default 64 KiB. */
  readonly maxHeaderBytes?: number;
  readonly logLevel?: LogLevelName;
  readonly failStrategy?: FailStrategy;
  /**
   * Where the VM runs. "auto" (default): on the calling thread while the plugin behaves, moved to
   * its own worker for good once a callback runs past its budget, its start runs long, or its
   * callbacks keep holding the thread (see AUTO_SLOW_*). "worker": its own thread from the start.
   * "inline": always on the calling thread.
   */
  readonly isolation?: PluginIsolation;
  /** In "auto" mode: the plugin was moved to a worker (`reason` says why). */
  readonly onQuarantine?: (reason: string) => void;
  /**
   * Where the plugin's metrics live. An embedder passes the same store to every version of a
   * plugin (a reload's new VM), so counters continue instead of starting over; default: its own.
   */
  readonly metricStore?: PluginMetricStore;
  readonly httpCall?: HttpCallFn;
  /** Opens gRPC streams (proxy_grpc_stream); without it a stream closes at once with UNAVAILABLE. */
  readonly streamCall?: StreamCallFn;
  /** Upstream names proxy_http_call accepts (others get BAD_ARGUMENT); default: any. */
  readonly httpCallUpstreams?: readonly string[];
  readonly log?: (entry: PluginLogEntry) => void;
  readonly node?: { readonly id?: string; readonly cluster?: string; readonly metadata?: Readonly<Record<string, string>> };
  /** Extra plugin-level properties by dotted path (e.g. `xds.listener_direction`). */
  readonly properties?: Readonly<Record<string, PropertyValue>>;
  /** Shared data/queues; default the process-wide state. */
  readonly sharedState?: SharedState;
  /** Main-thread busy-wait for a worker reply before yielding, in µs. Default 0. */
  readonly spinMicros?: number;
  /** Worker busy-wait for the next batch before parking, in µs. Default 0. */
  readonly workerSpinMicros?: number;
  /** How a worker wakes the main thread: "message" (default, faster here) or "atomics" (waitAsync). */
  readonly wakeMain?: "message" | "atomics";
  /** Time past the budget before the main thread terminates an unresponsive worker. Default 100 ms. */
  readonly killGraceMs?: number;
  /**
   * At stop(): how long a plugin whose proxy_on_done returned false has to call proxy_done
   * (its root context finishing work in flight: callouts, queued data) before the VM goes anyway.
   */
  readonly rootDoneTimeoutMs?: number;
  /** Worker entry; default `./vm-worker.ts` next to this file (see README for compiled binaries). */
  readonly workerUrl?: string | URL;
}

export interface LocalResponse {
  readonly status: number;
  readonly body: Uint8Array;
  readonly headers: HeaderPairs;
  /** gRPC status (0..16) when the plugin answered with one. */
  readonly grpcStatus: number | undefined;
  /** Response code details (Envoy `%RESPONSE_CODE_DETAILS%`). */
  readonly details: string;
}

/**
 * What to do after a phase. Forward the released parts in order headers, body, trailers, with
 * any action: they may include parts of earlier calls that a resume released since (each part is
 * released exactly once, in order).
 * - continue: the plugin holds nothing of this direction;
 * - stop: the plugin holds data (never returned for an end-of-stream call: that waits until
 *   the plugin resumes); feed the next part, held data comes back in a later result;
 * - local: answer with `response` and drop the upstream side;
 * - reset: reset the stream.
 * `failure` is set when the plugin failed and its fail strategy produced this result.
 */
export interface PhaseResult {
  readonly action: "continue" | "stop" | "local" | "reset";
  readonly headers?: HeaderPairs;
  readonly body?: Uint8Array;
  readonly trailers?: HeaderPairs;
  readonly response?: LocalResponse;
  readonly failure?: MeshError;
}

export interface WasmStream {
  requestHeaders(headers: HeaderPairs, endOfStream: boolean): Promise<PhaseResult>;
  requestBody(chunk: Uint8Array, endOfStream: boolean): Promise<PhaseResult>;
  requestTrailers(trailers: HeaderPairs): Promise<PhaseResult>;
  responseHeaders(headers: HeaderPairs, endOfStream: boolean): Promise<PhaseResult>;
  responseBody(chunk: Uint8Array, endOfStream: boolean): Promise<PhaseResult>;
  responseTrailers(trailers: HeaderPairs): Promise<PhaseResult>;
  /**
   * The six phase calls in one, for embedders on a hot path: when the VM runs on the calling
   * thread and is idle, the phase runs at once and its result is returned as is (no promise, no
   * microtask); otherwise the same promise as the named methods. `part`: 0 headers, 1 body, 2
   * trailers, 3 headers and the first body chunk (the plugin sees both callbacks, headers not
   * ending the stream, in one VM call; `endOfStream` ends the body); `dir`: 0 request, 1 response.
   */
  phaseNow(dir: 0 | 1, part: 0 | 1 | 2 | 3, headers: HeaderPairs | undefined, chunk: Uint8Array | undefined, endOfStream: boolean): PhaseResult | Promise<PhaseResult>;
  /**
   * The stream is over: queues proxy_on_done/on_log/on_delete (batched: after this event-loop turn
   * for a VM on the waypoint's thread, within 5 ms for one in a worker) and
   * settles phases still waiting with `reset`. Need not be awaited; the promise resolves once
   * those callbacks ran, or once they never will (the stream never reached the VM, the VM failed,
   * the plugin stopped). It never rejects; later calls return the same promise.
   */
  done(completion?: StreamCompletion): Promise<void>;
}

const DEFAULTS = {
  maxMemoryPages: 256,
  callbackBudgetMs: 5,
  startBudgetMs: 2000,
  maxBufferBytes: 1 << 20,
  maxHeaderBytes: 64 << 10,
  killGraceMs: 100,
  rootDoneTimeoutMs: 5000,
  spinMicros: 0,
  workerSpinMicros: 0,
} as const;
const MAX_BATCH = 64;
/**
 * "auto" isolation: a callback that spends more CPU than this in the module counts as slow (see
 * VmCore.slowestCommandNs: thread CPU, so preemption does not count); this many slow callbacks
 * within the window move the plugin to a worker. More than one: a collection can still land
 * inside a busy callback.
 */
const AUTO_SLOW_NS = 1_000_000;
const AUTO_SLOW_COUNT = 3;
const AUTO_SLOW_WINDOW_MS = 60_000;
/** "auto" isolation: the start sequence's budget on the calling thread; past it, it starts again in a worker. */
const AUTO_INLINE_START_MS = 250;
const DONE_FLUSH_MS = 5;
const DONE_FLUSH_COUNT = 128;
const RESTART_MIN_INTERVAL_MS = 1000;
const EMPTY = new Uint8Array(0);
const ENC = new TextEncoder();

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 0) return EMPTY;
  if (chunks.length === 1) return chunks[0]!;
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

function meshErrorOf(f: Failure): MeshError {
  const code = (Object.hasOwn(ErrorCodes, f.code) ? f.code : ErrorCodes.WASM_TRAP) as ErrorCode;
  return new MeshError(code, f.message);
}

interface Queued {
  readonly cmd: Command;
  readonly stream: PluginStream | undefined;
  seq: number;
}

// ---- stream ---------------------------------------------------------------------------------

interface Released {
  headers?: HeaderPairs;
  body?: Uint8Array;
  trailers?: HeaderPairs;
}

/** The phase call of a direction that waits for the VM. */
/** A phase registered with its direction, its command built (PluginStream.begin). */
interface StartedPhase {
  readonly cmd: Command;
  readonly pending: Pending;
  readonly held: { bytes: Uint8Array; seq: number } | undefined;
}

function numberPhase(p: StartedPhase, seq: number): void {
  p.pending.seq = seq;
  if (p.held !== undefined) p.held.seq = seq;
}

interface Pending {
  resolve: (r: PhaseResult) => void;
  readonly eos: boolean;
  /** What was released for this call so far (including what earlier commands released). */
  readonly acc: Released;
  /** Sequence of this call's own command (Infinity until queued). */
  seq: number;
}

class MainDir {
  headers: HeaderPairs | undefined;
  trailers: HeaderPairs | undefined;
  /** Body chunks sent to the VM and not yet released, tagged with their command's sequence. */
  held: { bytes: Uint8Array; seq: number }[] = [];
  headersReleased = false;
  trailersReleased = false;
  pending: Pending | undefined;
  /** Released while no call was pending (a resume between calls): goes out with the next result. */
  carry: Released | undefined;
  /** Phase calls made while another one of this direction is pending, in order (made on first need). */
  private waiting: (() => void)[] | undefined;

  /** Resolves the pending phase and starts the next waiting one. */
  settle(r: PhaseResult): void {
    const p = this.pending;
    this.pending = undefined;
    p?.resolve(r);
    this.waiting?.shift()?.();
  }

  /** Starts the next waiting phase when none is pending. */
  next(): void {
    if (this.pending === undefined) this.waiting?.shift()?.();
  }

  /** Runs `start` now, or after the phases already pending in this direction. */
  enter<T extends PhaseResult | Promise<PhaseResult>>(start: () => T): T | Promise<PhaseResult> {
    if (this.pending === undefined && (this.waiting === undefined || this.waiting.length === 0)) return start();
    return new Promise<PhaseResult>((resolve) => (this.waiting ??= []).push(() => void Promise.resolve(start()).then(resolve)));
  }

  /** Takes what was released while no call was pending. */
  takeCarry(): Released {
    const c = this.carry ?? {};
    this.carry = undefined;
    return c;
  }

  takeHeld(upTo: number): Uint8Array {
    const held = this.held;
    if (held.length === 0 || held[0]!.seq > upTo) return EMPTY;
    if (held.length === 1) return held.pop()!.bytes; // the common case: the chunk of this very call
    const out: Uint8Array[] = [];
    while (this.held.length > 0 && this.held[0]!.seq <= upTo) out.push(this.held.shift()!.bytes);
    return concat(out);
  }
}

function mergeInto(acc: Released, r: Released): void {
  if (r.headers !== undefined) acc.headers = r.headers;
  if (r.body !== undefined) acc.body = acc.body === undefined ? r.body : concat([acc.body, r.body]);
  if (r.trailers !== undefined) acc.trailers = r.trailers;
}

/** Consecutive calls' results as one: the first that ended the stream, else all they released, the last action. */
function combinedResult(results: readonly PhaseResult[]): PhaseResult {
  const ended = results.find((r) => r.action === "local" || r.action === "reset");
  if (ended !== undefined) return ended;
  const acc: Released = {};
  for (const r of results) mergeInto(acc, r);
  const failure = results.find((r) => r.failure !== undefined)?.failure;
  return { action: results.at(-1)!.action, ...acc, ...(failure ? { failure } : {}) };
}

class PluginStream implements WasmStream {
  id = 0;
  /** Generation of the VM that received this stream's first command. */
  sentGen: number | undefined;
  created = false;
  finished: PhaseResult | undefined;
  failure: MeshError | undefined;
  doneQueued = false;
  readonly req = new MainDir();
  readonly resp = new MainDir();
  private resolveCompleted: () => void = () => {};
  private readonly completed = new Promise<void>((resolve) => (this.resolveCompleted = resolve));

  constructor(
    private readonly plugin: WasmPlugin,
    private readonly props: StreamProperties,
  ) {}

  private dir(d: DirectionValue): MainDir {
    return d === Direction.REQUEST ? this.req : this.resp;
  }

  /** Creation properties travel with the first command of the stream. */
  private createProps(): StreamProperties | undefined {
    if (this.created) return undefined;
    this.created = true;
    return this.props;
  }

  /**
   * A phase run at once when the VM is on this thread and idle: its result, or a promise when the
   * plugin keeps the call waiting (it holds end-of-stream data) or the VM is not free.
   */
  private phaseNowOr(
    d: DirectionValue,
    eos: boolean,
    build: (create: StreamProperties | undefined) => Command,
    chunk?: Uint8Array,
  ): PhaseResult | Promise<PhaseResult> {
    const dir = this.dir(d);
    if (dir.pending !== undefined || this.finished !== undefined || this.doneQueued || this.failure !== undefined || !this.plugin.idleOnThisThread()) {
      return this.phase(d, eos, build, chunk);
    }
    if (!this.plugin.adopt(this)) return this.phase(d, eos, build, chunk);
    let result: PhaseResult | undefined;
    const started = this.begin(dir, (r) => (result = r), eos, build, chunk);
    if (started === undefined) return result ?? { action: "reset" };
    // the sequence is known before the VM runs: deliver() compares against it
    const seq = this.plugin.nextSeq();
    numberPhase(started, seq);
    this.plugin.runNow(started.cmd, this, seq);
    if (result !== undefined) return result;
    // still waiting (a stop at end of stream, until the plugin resumes): settle later
    return new Promise<PhaseResult>((resolve) => {
      if (result !== undefined) resolve(result);
      else started.pending.resolve = resolve;
    });
  }

  phaseNow(dir: 0 | 1, part: 0 | 1 | 2 | 3, headers: HeaderPairs | undefined, chunk: Uint8Array | undefined, endOfStream: boolean): PhaseResult | Promise<PhaseResult> {
    const d = dir === 0 ? Direction.REQUEST : Direction.RESPONSE;
    const side = this.dir(d);
    if (part === 3) {
      const h = headers ?? [];
      const c = chunk ?? EMPTY;
      if (c.length > this.plugin.maxBufferBytes) return this.headersThenBody(dir, h, c, endOfStream);
      side.headers = h;
      return this.phaseNowOr(d, endOfStream, this.headersCommand(d, h, endOfStream, c), c);
    }
    if (part === 0) {
      const h = headers ?? [];
      side.headers = h;
      return this.phaseNowOr(d, endOfStream, this.headersCommand(d, h, endOfStream));
    }
    if (part === 1) {
      const c = chunk ?? EMPTY;
      if (c.length > this.plugin.maxBufferBytes) return this.body(d, c, endOfStream);
      return this.phaseNowOr(d, endOfStream, this.bodyCommand(d, c, endOfStream), c);
    }
    const t = headers ?? [];
    side.trailers = t;
    return this.phaseNowOr(d, true, this.trailersCommand(d, t));
  }

  /**
   * Registers a phase of `dir` as pending (its chunk held) and builds its command; undefined when
   * the command cannot be built (the stream then failed, which settled the phase). numberPhase()
   * gives the pending phase and its chunk the command's sequence number once it has one.
   */
  private begin(
    dir: MainDir,
    resolve: (r: PhaseResult) => void,
    eos: boolean,
    build: (create: StreamProperties | undefined) => Command,
    chunk: Uint8Array | undefined,
  ): StartedPhase | undefined {
    const pending: Pending = { resolve, eos, acc: dir.takeCarry(), seq: Infinity };
    dir.pending = pending;
    const held = chunk === undefined ? undefined : { bytes: chunk, seq: Infinity };
    if (held !== undefined) dir.held.push(held);
    let cmd: Command;
    try {
      cmd = build(this.createProps());
    } catch (e) {
      this.fail(new MeshError(ErrorCodes.INTERNAL, `cannot pass the phase to plugin ${this.plugin.name}: ${String(e)}`, { cause: e }));
      return undefined;
    }
    return { cmd, pending, held };
  }

  private phase(
    d: DirectionValue,
    eos: boolean,
    build: (create: StreamProperties | undefined) => Command,
    chunk?: Uint8Array,
  ): Promise<PhaseResult> {
    const dir = this.dir(d);
    // one phase per direction at a time: a second call waits for the first
    const run = (): Promise<PhaseResult> => {
      if (this.finished !== undefined) return this.settled(dir, this.finished);
      if (this.doneQueued) return this.settled(dir, { action: "reset" });
      if (!this.plugin.adopt(this) || this.failure !== undefined) return this.settled(dir, this.failedResult(d, chunk));
      return new Promise<PhaseResult>((resolve) => {
        // registered before queueing: a failure while queueing (FAIL_OPEN) must still release it
        const started = this.begin(dir, resolve, eos, build, chunk);
        if (started !== undefined) numberPhase(started, this.plugin.enqueue(started.cmd, this));
      });
    };
    return dir.enter(run) as Promise<PhaseResult>;
  }

  /** An immediate result; lets the next waiting phase of the direction start. */
  private settled(dir: MainDir, r: PhaseResult): Promise<PhaseResult> {
    queueMicrotask(() => dir.next());
    return Promise.resolve(r);
  }

  // The commands of the three phase kinds (creation properties ride on a stream's first one).
  private headersCommand(d: DirectionValue, headers: HeaderPairs, eos: boolean, body?: Uint8Array): (create: StreamProperties | undefined) => Command {
    if (body !== undefined) return (create) => ({ op: Op.HEADERS, stream: this.id, dir: d, headers: flatten(headers), body, eos, create });
    return (create) => ({ op: Op.HEADERS, stream: this.id, dir: d, headers: flatten(headers), eos, create });
  }

  /** Headers, then a first chunk too big for one VM call (it goes piece by piece): one result. */
  private async headersThenBody(dir: 0 | 1, headers: HeaderPairs, chunk: Uint8Array, eos: boolean): Promise<PhaseResult> {
    const first = await this.phaseNow(dir, 0, headers, undefined, false);
    if (first.action === "local" || first.action === "reset") return first;
    return combinedResult([first, await this.phaseNow(dir, 1, undefined, chunk, eos)]);
  }

  private bodyCommand(d: DirectionValue, body: Uint8Array, eos: boolean): (create: StreamProperties | undefined) => Command {
    return (create) => ({ op: Op.BODY, stream: this.id, dir: d, body, eos, create });
  }

  private trailersCommand(d: DirectionValue, trailers: HeaderPairs): (create: StreamProperties | undefined) => Command {
    return (create) => ({ op: Op.TRAILERS, stream: this.id, dir: d, trailers: flatten(trailers), create });
  }

  requestHeaders(headers: HeaderPairs, endOfStream: boolean): Promise<PhaseResult> {
    this.req.headers = headers;
    return this.phase(Direction.REQUEST, endOfStream, this.headersCommand(Direction.REQUEST, headers, endOfStream));
  }

  responseHeaders(headers: HeaderPairs, endOfStream: boolean): Promise<PhaseResult> {
    this.resp.headers = headers;
    return this.phase(Direction.RESPONSE, endOfStream, this.headersCommand(Direction.RESPONSE, headers, endOfStream));
  }

  private body(d: DirectionValue, chunk: Uint8Array, endOfStream: boolean): Promise<PhaseResult> {
    const max = this.plugin.maxBufferBytes;
    if (chunk.length > max) return this.bodyPieces(d, chunk, endOfStream, max);
    return this.phase(d, endOfStream, this.bodyCommand(d, chunk, endOfStream), chunk);
  }

  /**
   * One VM call never carries more than the buffer bound: feed a big chunk piece by piece. The
   * pieces enter the direction's queue together, so a call made meanwhile comes after all of them.
   */
  private async bodyPieces(d: DirectionValue, chunk: Uint8Array, endOfStream: boolean, max: number): Promise<PhaseResult> {
    const pieces: Promise<PhaseResult>[] = [];
    for (let o = 0; o < chunk.length; o += max) {
      const end = Math.min(chunk.length, o + max);
      pieces.push(this.body(d, chunk.subarray(o, end), endOfStream && end === chunk.length));
    }
    return combinedResult(await Promise.all(pieces));
  }

  requestBody(chunk: Uint8Array, endOfStream: boolean): Promise<PhaseResult> {
    return this.body(Direction.REQUEST, chunk, endOfStream);
  }

  responseBody(chunk: Uint8Array, endOfStream: boolean): Promise<PhaseResult> {
    return this.body(Direction.RESPONSE, chunk, endOfStream);
  }

  private trailersPhase(d: DirectionValue, trailers: HeaderPairs): Promise<PhaseResult> {
    this.dir(d).trailers = trailers;
    return this.phase(d, true, this.trailersCommand(d, trailers));
  }

  requestTrailers(trailers: HeaderPairs): Promise<PhaseResult> {
    return this.trailersPhase(Direction.REQUEST, trailers);
  }

  responseTrailers(trailers: HeaderPairs): Promise<PhaseResult> {
    return this.trailersPhase(Direction.RESPONSE, trailers);
  }

  done(completion?: StreamCompletion): Promise<void> {
    if (this.doneQueued) return this.completed;
    this.doneQueued = true;
    if (this.req.pending !== undefined) this.req.settle({ action: "reset" });
    if (this.resp.pending !== undefined) this.resp.settle({ action: "reset" });
    this.plugin.streamDone(this, completion);
    return this.completed;
  }

  /** on_done/on_log/on_delete ran, or never will: resolves what done() returned. */
  complete(): void {
    this.resolveCompleted();
  }

  /** Applies one emission from the VM. `seq` is the command that produced it. */
  deliver(e: Emission, seq: number): void {
    if (this.finished !== undefined || this.doneQueued) return;
    if (e.kind === EmissionKind.LOCAL || e.kind === EmissionKind.RESET) {
      const r: PhaseResult =
        e.kind === EmissionKind.RESET || e.local === undefined
          ? { action: "reset" }
          : {
              action: "local",
              response: {
                status: e.local.status,
                body: e.local.body,
                headers: unflatten(e.local.headers),
                grpcStatus: e.local.grpcStatus,
                details: e.local.details,
              },
            };
      this.finish(r);
      return;
    }
    const dir = this.dir(e.dir);
    const p = dir.pending;
    // the common case, the first release for a pending call: straight into its result object
    const acc = p?.acc;
    const direct = acc !== undefined && acc.headers === undefined && acc.body === undefined && acc.trailers === undefined;
    const rel: Released = direct ? acc : {};
    if (e.headers !== undefined) {
      if (e.headers === null) rel.headers = dir.headers ?? [];
      else {
        const keep = e.headersKeep ?? 0;
        const rest = unflatten(e.headers);
        if (keep > 0) {
          const out = (dir.headers ?? []).slice(0, keep);
          for (let i = 0; i < rest.length; i++) out.push(rest[i]!);
          rel.headers = out;
        } else rel.headers = rest;
      }
      dir.headersReleased = true;
    }
    if (e.body !== undefined) {
      const held = dir.takeHeld(seq);
      rel.body = e.body === null ? held : e.body;
    }
    if (e.trailers !== undefined) {
      rel.trailers = e.trailers === null ? (dir.trailers ?? []) : unflatten(e.trailers);
      dir.trailersReleased = true;
    }
    if (p === undefined) {
      if (rel.headers !== undefined || rel.body !== undefined || rel.trailers !== undefined) {
        dir.carry ??= {};
        mergeInto(dir.carry, rel);
      }
      return;
    }
    if (!direct) mergeInto(p.acc, rel);
    // An earlier command (a root context resuming the stream: callout response, tick, queue)
    // released data while this call's own command is still queued behind it: that command may
    // release more (its chunk), so the call waits for its own answer.
    if (seq < p.seq) return;
    if (e.kind === EmissionKind.STOP && p.eos) return; // nothing more will come: wait for a resume
    // the accumulated release is this call's own object: it becomes the result
    const r = p.acc as Released & { action?: PhaseResult["action"] };
    r.action = e.kind === EmissionKind.CONTINUE ? "continue" : "stop";
    dir.settle(r as PhaseResult);
  }

  private finish(r: PhaseResult): void {
    this.finished = r;
    for (const d of [this.req, this.resp]) d.settle(r);
  }

  /** What a failed plugin's strategy makes of a phase. */
  private failedResult(d: DirectionValue, current: Uint8Array | undefined): PhaseResult {
    const failure = this.failure ?? new MeshError(ErrorCodes.WASM_TRAP, "plugin VM unavailable");
    if (this.plugin.failStrategy !== "FAIL_OPEN") {
      return {
        action: "local",
        response: { status: 503, body: EMPTY, headers: [], grpcStatus: 14, details: "wasm_fail_stream" },
        failure,
      };
    }
    // continue without the plugin: release everything not yet released, unmodified
    const dir = this.dir(d);
    const out: { action: "continue"; headers?: HeaderPairs; body?: Uint8Array; trailers?: HeaderPairs; failure: MeshError } = {
      action: "continue",
      failure,
    };
    const acc = dir.pending?.acc ?? dir.takeCarry();
    if (acc.headers !== undefined) out.headers = acc.headers;
    else if (!dir.headersReleased && dir.headers !== undefined) {
      out.headers = dir.headers;
      dir.headersReleased = true;
    }
    const body = concat([...(acc.body ? [acc.body] : []), ...dir.held.map((h) => h.bytes), ...(current ? [current] : [])]);
    dir.held = [];
    if (body.length > 0) out.body = body;
    if (acc.trailers !== undefined) out.trailers = acc.trailers;
    else if (!dir.trailersReleased && dir.trailers !== undefined) {
      out.trailers = dir.trailers;
      dir.trailersReleased = true;
    }
    return out;
  }

  /** The VM failed while this stream lived in it: resolve what waits per the fail strategy. */
  fail(error: MeshError): void {
    if (this.failure !== undefined || this.finished !== undefined) return;
    this.failure = error;
    for (const d of [Direction.REQUEST, Direction.RESPONSE] as const) {
      const dir = this.dir(d);
      const p = dir.pending;
      if (p === undefined) continue;
      dir.settle(this.failedResult(d, undefined));
    }
    if (this.plugin.failStrategy !== "FAIL_OPEN") this.finished = this.failedResult(Direction.REQUEST, undefined);
  }
}

/** Rough encoded size of a command on the channel (UTF-8 worst case for strings). */
function commandBytes(cmd: Command): number {
  const pairs = (p: FlatPairs): number => {
    let n = 4;
    for (const s of p) n += 4 + 3 * s.length;
    return n;
  };
  const create = "create" in cmd && cmd.create !== undefined ? 4096 : 0;
  switch (cmd.op) {
    case Op.HEADERS:
      return 32 + pairs(cmd.headers) + (cmd.body?.length ?? 0) + create;
    case Op.BODY:
      return 32 + cmd.body.length + create;
    case Op.TRAILERS:
      return 32 + pairs(cmd.trailers) + create;
    case Op.HTTP_CALL_RESPONSE: {
      const r = cmd.response;
      return 32 + (r === undefined ? 3 * (cmd.failure?.length ?? 0) : pairs(r.headers) + r.body.length + pairs(r.trailers));
    }
    default:
      return 256;
  }
}

function isCreate(cmd: Command): boolean {
  return (cmd.op === Op.HEADERS || cmd.op === Op.BODY || cmd.op === Op.TRAILERS) && cmd.create !== undefined;
}

// ---- plugin ---------------------------------------------------------------------------------

export class WasmPlugin {
  readonly name: string;
  readonly failStrategy: FailStrategy;
  readonly maxBufferBytes: number;
  private readonly o: WasmPluginOptions;
  private readonly bytes: Uint8Array;
  private readonly logLevel: LogLevelValue;
  private readonly shared: SharedState;
  private readonly store: PluginMetricStore;
  /** The module's facts, kept after a failed start (for reports). */
  private report: ModuleReport | undefined;
  /** Set once started; held while this plugin uses it, as the shared cache keeps compiled modules weakly. */
  private compiled: CompiledModule | undefined;
  private vm: VmHandle | undefined;
  private gen = 0;
  private starting: Promise<void> | undefined;
  private lastStartFailure: { at: number; error: MeshError } | undefined;
  private stopped = false;
  private readonly queue: Queued[] = [];
  private doneQueue: Queued[] = [];
  private doneTimer: ReturnType<typeof setTimeout> | undefined;
  private doneSoon = false;
  /** Open gRPC stream callouts by the VM's stream id. */
  private readonly grpcCallouts = new Map<number, CalloutStream>();
  /** stop() began: no new streams, no restarts; the root context may still be finishing. */
  private stopping = false;
  /** Set while stop() waits for proxy_done: called when the root context was deleted or the VM died. */
  private rootDeleted: (() => void) | undefined;
  private inFlight = false;
  /** Commands still to be sent one per round trip (after a batch did not fit the channel). */
  private soloLeft = 0;
  /** Capacity of the channel to the worker (bounds the bytes of one batch). */
  private maxChannelBytes = Number.POSITIVE_INFINITY;
  private seq = 0;
  private nextStreamId = 2;
  private readonly streams = new Map<number, PluginStream>();
  private tickTimer: ReturnType<typeof setInterval> | undefined;
  private tickQueued = false;
  private readonly queuesReady = new Set<number>();
  private readonly onQueueReady = (queueId: number): void => {
    if (this.stopped || this.queuesReady.has(queueId)) return;
    this.queuesReady.add(queueId);
    this.enqueue({ op: Op.QUEUE_READY, queueId }, undefined);
  };
  /** VM (re)starts so far, including the first. */
  starts = 0;
  /** Where the current (or next) VM runs. */
  private runsIn: "inline" | "worker";
  private slowSince: number[] = [];

  constructor(options: WasmPluginOptions) {
    this.o = options;
    this.name = options.name;
    this.failStrategy = options.failStrategy ?? "FAIL_CLOSE";
    this.store = options.metricStore ?? new PluginMetricStore();
    this.maxBufferBytes = options.maxBufferBytes ?? DEFAULTS.maxBufferBytes;
    this.bytes = toBytes(options.bytes);
    const level = LOG_LEVEL_NAMES.indexOf(options.logLevel ?? "info");
    this.logLevel = (level < 0 ? 2 : level) as LogLevelValue;
    this.shared = options.sharedState ?? processSharedState;
    this.runsIn = options.isolation === "worker" ? "worker" : "inline";
  }

  /** Where the VM runs now: on the calling thread or in its own worker. */
  get isolation(): "inline" | "worker" {
    return this.runsIn;
  }

  /** "auto" mode: from now on the VM runs in a worker (the current one, if inline, until replaced). */
  private quarantine(reason: string): void {
    if (this.o.isolation === "inline" || this.o.isolation === "worker" || this.runsIn === "worker") return;
    this.runsIn = "worker";
    this.hostLog("warn", `plugin moved to its own worker: ${reason}`);
    try {
      this.o.onQuarantine?.(reason);
    } catch {
      // the embedder's reaction must not take the plugin down
    }
  }

  /** "auto" mode: a batch that ran on the calling thread; slow callbacks, repeated, quarantine the plugin. */
  private noteInlineTime(slowestNs: number | undefined): void {
    if (slowestNs === undefined || slowestNs <= AUTO_SLOW_NS || this.runsIn === "worker" || this.o.isolation !== undefined && this.o.isolation !== "auto") return;
    const now = Date.now();
    this.slowSince = this.slowSince.filter((t) => now - t < AUTO_SLOW_WINDOW_MS);
    this.slowSince.push(now);
    if (this.slowSince.length >= AUTO_SLOW_COUNT) {
      this.quarantine(`${AUTO_SLOW_COUNT} callbacks within ${AUTO_SLOW_WINDOW_MS / 1000} s each spent over ${AUTO_SLOW_NS / 1e6} ms of the waypoint's CPU in the module (the last ${(slowestNs / 1e6).toFixed(1)} ms)`);
    }
  }

  /** Waits for the root context to call proxy_done (its work runs meanwhile), at most rootDoneTimeoutMs. */
  private rootFinished(): Promise<void> {
    const ms = this.o.rootDoneTimeoutMs ?? DEFAULTS.rootDoneTimeoutMs;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.hostLog("warn", `proxy_on_done returned false and proxy_done did not come within ${ms} ms; the VM is stopped anyway`);
        end();
      }, ms);
      const end = (): void => {
        clearTimeout(timer);
        this.rootDeleted = undefined;
        resolve();
      };
      this.rootDeleted = end;
      this.pump();
    });
  }

  /** Static facts about the module (available after start()). */
  get moduleReport(): ModuleReport | undefined {
    return this.report;
  }

  /**
   * Checks and instantiates the module, runs proxy_on_vm_start and proxy_on_configure. Throws a
   * MeshError: WASM_MODULE_INVALID, WASM_ABI_UNSUPPORTED, WASM_MEMORY_LIMIT, WASM_CONFIG_REJECTED,
   * WASM_TRAP, WASM_TIMEOUT.
   */
  async start(): Promise<void> {
    if (this.compiled !== undefined) return;
    const c = compiledModule(this.bytes, this.o.maxMemoryPages ?? DEFAULTS.maxMemoryPages);
    this.compiled = c;
    this.report = c.report;
    try {
      await this.spawn(true);
    } catch (e) {
      this.compiled = undefined; // start() may be retried
      throw e;
    }
  }

  private vmConfig(): VmConfig {
    const o = this.o;
    return {
      plugin: {
        name: o.name,
        rootId: o.rootId,
        vmId: o.vmId ?? o.name,
        ...(o.node ? { node: o.node } : {}),
        ...(o.properties ? { extra: o.properties } : {}),
      },
      configuration: ENC.encode(o.configuration ?? ""),
      vmConfiguration: ENC.encode(o.vmConfiguration ?? ""),
      env: o.env ?? {},
      logLevel: this.logLevel,
      maxMemoryPages: o.maxMemoryPages ?? DEFAULTS.maxMemoryPages,
      maxBufferBytes: this.maxBufferBytes,
      maxHeaderBytes: o.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes,
      callbackBudgetMs: o.callbackBudgetMs ?? DEFAULTS.callbackBudgetMs,
      startBudgetMs: o.startBudgetMs ?? DEFAULTS.startBudgetMs,
      httpCallUpstreams: o.httpCallUpstreams,
      metricSeed: this.store.seed(),
    };
  }

  private services(): ServiceHandlers {
    const vmId = this.o.vmId ?? this.o.name;
    return {
      sharedGet: (key) => this.shared.getData(vmId, key),
      sharedSet: (key, value, cas) => this.shared.setData(vmId, key, value, cas),
      queueRegister: (name) => this.shared.registerQueue(vmId, name, this.onQueueReady),
      queueResolve: (vm, name) => this.shared.resolveQueue(vm, name),
      queueEnqueue: (id, value) => this.shared.enqueue(id, value),
      queueDequeue: (id) => this.shared.dequeue(id),
    };
  }

  /** Starts a VM. The first start throws; restarts report through the log and fail streams. */
  private async spawn(first: boolean): Promise<void> {
    const c = this.compiled;
    if (c === undefined) throw new MeshError(ErrorCodes.INTERNAL, `plugin ${this.name} is not started`);
    const cfg = this.vmConfig();
    const auto = this.o.isolation === undefined || this.o.isolation === "auto";
    const inline = this.runsIn === "inline";
    const o: SpawnOptions = {
      module: c.module,
      abi: c.report.abiVersion!,
      memory: c.memory,
      // an "auto" start on the calling thread gets a short budget; past it, it runs again in a worker
      config: inline && auto && cfg.startBudgetMs > AUTO_INLINE_START_MS ? { ...cfg, startBudgetMs: AUTO_INLINE_START_MS } : cfg,
      services: this.services(),
      killGraceMs: this.o.killGraceMs ?? DEFAULTS.killGraceMs,
      spinMicros: this.o.spinMicros ?? DEFAULTS.spinMicros,
      workerSpinMicros: this.o.workerSpinMicros ?? DEFAULTS.workerSpinMicros,
      wakeMain: this.o.wakeMain ?? "message",
      workerUrl: this.o.workerUrl ?? defaultWorkerUrl(),
    };
    const maxChannel = 4 * cfg.maxBufferBytes + 64 * cfg.maxHeaderBytes + (8 << 20);
    this.maxChannelBytes = inline ? Number.POSITIVE_INFINITY : maxChannel;
    const { vm, start } = inline ? await spawnInline(o) : await spawnWorker(o, maxChannel);
    this.starts++;
    if (!start.ok && inline && auto && start.failure?.code === ErrorCodes.WASM_TIMEOUT) {
      vm.close();
      this.quarantine(`its start ran past ${AUTO_INLINE_START_MS} ms on the waypoint's thread`);
      return this.spawn(first);
    }
    this.applyEffects(start.effects);
    if (!start.ok) {
      vm.close();
      const err = meshErrorOf(start.failure ?? { code: ErrorCodes.WASM_TRAP, message: "plugin failed to start" });
      this.lastStartFailure = { at: Date.now(), error: err };
      if (first) throw err;
      this.hostLog("error", `plugin VM failed to restart: [${err.code}] ${err.message}`);
      throw err;
    }
    if (this.stopped) {
      vm.close();
      return;
    }
    this.lastStartFailure = undefined;
    this.vm = vm;
    this.gen++;
  }

  /** A new stream. Cheap: nothing reaches the VM until the first phase call. */
  stream(properties: StreamProperties = {}): WasmStream {
    return new PluginStream(this, properties);
  }

  /** Gives a stream its id on first use; false when the plugin is stopped. */
  adopt(s: PluginStream): boolean {
    // a plugin stopping finishes the streams it has but takes no new ones
    const stopped = this.stopped || (this.stopping && s.id === 0);
    if (stopped || this.compiled === undefined) {
      s.failure ??= new MeshError(
        stopped ? ErrorCodes.WASM_TRAP : ErrorCodes.INTERNAL,
        `plugin ${this.name} is ${stopped ? "stopped" : "not started"}`,
      );
      return false;
    }
    if (s.id === 0) {
      // ids are never reused, also across VM restarts, so a stream moved to a new VM keeps its id
      s.id = this.nextStreamId++;
      this.streams.set(s.id, s);
    }
    return true;
  }

  /** The VM runs on this thread and nothing is queued or running: a command may run at once. */
  idleOnThisThread(): boolean {
    return this.vm?.runNow !== undefined && !this.inFlight && this.queue.length === 0 && !this.stopped && this.starting === undefined;
  }

  nextSeq(): number {
    return ++this.seq;
  }

  /** Runs one command at once (see idleOnThisThread); its emissions are delivered before this returns. */
  runNow(cmd: Command, stream: PluginStream, seq: number): void {
    const vm = this.vm!;
    const gen = this.gen;
    const q: Queued = { cmd, stream, seq };
    if (stream.sentGen === undefined) stream.sentGen = gen;
    this.inFlight = true;
    const { reply, slowestNs } = vm.runNow!([cmd]);
    this.inFlight = false;
    this.noteInlineTime(slowestNs);
    this.onReply([q], reply, gen);
    // what the plugin queued meanwhile (callout responses, queue wake-ups) runs as usual
    if (this.queue.length > 0) this.pump();
    else this.notifyIdle();
  }

  /** Queues a command for the VM; returns its sequence number. */
  enqueue(cmd: Command, stream: PluginStream | undefined): number {
    const q: Queued = { cmd, stream, seq: ++this.seq };
    this.queue.push(q);
    this.pump();
    return q.seq;
  }

  streamDone(s: PluginStream, completion: StreamCompletion | undefined): void {
    if (s.sentGen !== this.gen || s.failure !== undefined || this.vm === undefined) {
      // no live context in a VM: nothing will run on_done/on_log/on_delete
      this.streams.delete(s.id);
      s.complete();
      return;
    }
    this.doneQueue.push({ cmd: { op: Op.DONE, stream: s.id, completion }, stream: s, seq: ++this.seq });
    if (this.doneQueue.length >= DONE_FLUSH_COUNT) this.flushDone();
    // A VM on this thread finishes the streams after this event-loop turn, while the thread is
    // awake anyway: a 5 ms timer woke it once more per batch (measured: ~17 µs of waypoint CPU per
    // request at 1 000 req/s). A worker batches over the timer: each flush is a thread round trip.
    else if (this.vm.runNow !== undefined) {
      if (!this.doneSoon) {
        this.doneSoon = true;
        setImmediate(() => {
          this.doneSoon = false;
          this.flushDone();
        });
      }
    } else this.doneTimer ??= setTimeout(() => this.flushDone(), DONE_FLUSH_MS);
  }

  private flushDone(): void {
    if (this.doneTimer !== undefined) clearTimeout(this.doneTimer);
    this.doneTimer = undefined;
    if (this.doneQueue.length === 0) return;
    this.queue.unshift(...this.doneQueue);
    this.doneQueue = [];
    this.pump();
  }

  private pump(): void {
    if (this.inFlight || this.stopped || this.queue.length === 0) return;
    if (this.vm === undefined) {
      this.ensureVm();
      return;
    }
    // piggyback finished streams on this round trip
    if (this.doneQueue.length > 0) {
      if (this.doneTimer !== undefined) clearTimeout(this.doneTimer);
      this.doneTimer = undefined;
      this.queue.unshift(...this.doneQueue);
      this.doneQueue = [];
    }
    const batch = this.queue.splice(0, this.batchLength());
    const vm = this.vm;
    const gen = this.gen;
    this.inFlight = true;
    for (const q of batch) {
      if (q.cmd.op === Op.TICK) this.tickQueued = false;
      if (q.cmd.op === Op.QUEUE_READY) this.queuesReady.delete(q.cmd.queueId);
      if (q.stream !== undefined && q.stream.sentGen === undefined) q.stream.sentGen = gen;
    }
    try {
      vm.run(
        batch.map((q) => q.cmd),
        (error, reply, slowestNs) => {
          this.inFlight = false;
          this.noteInlineTime(slowestNs);
          if (error !== undefined || reply === undefined) this.onDead(batch, error, gen);
          else this.onReply(batch, reply, gen);
          this.pump();
          this.notifyIdle();
        },
      );
    } catch (e) {
      // the batch could not be handed over (it does not fit the channel); the VM is untouched
      this.inFlight = false;
      this.unsendable(batch, e);
      queueMicrotask(() => {
        this.pump();
        this.notifyIdle();
      });
    }
  }

  /** Commands for the next round trip: at most MAX_BATCH, and about half the channel in bytes. */
  private batchLength(): number {
    if (this.soloLeft > 0) {
      this.soloLeft--;
      return 1;
    }
    const budget = this.maxChannelBytes / 2;
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < MAX_BATCH) {
      bytes += commandBytes(this.queue[n]!.cmd);
      if (n > 0 && bytes > budget) break;
      n++;
    }
    return n;
  }

  /**
   * A batch that cannot be sent: retried one command at a time; a single command that cannot be
   * sent fails its stream (a callout response becomes a failed callout for the plugin).
   */
  private unsendable(batch: readonly Queued[], e: unknown): void {
    if (batch.length > 1) {
      // streams whose first command went nowhere are not in the VM yet
      for (const q of batch) if (q.stream !== undefined && isCreate(q.cmd)) q.stream.sentGen = undefined;
      this.queue.unshift(...batch);
      this.soloLeft = batch.length;
      return;
    }
    const q = batch[0]!;
    const why = e instanceof Error ? e.message : String(e);
    this.hostLog("error", `cannot pass a command to the plugin: ${why}`);
    if (q.cmd.op === Op.HTTP_CALL_RESPONSE && q.cmd.response !== undefined) {
      this.queue.unshift({ cmd: { op: Op.HTTP_CALL_RESPONSE, token: q.cmd.token, failure: `response too large for the plugin: ${why}` }, stream: undefined, seq: q.seq });
      return;
    }
    this.dropped(q, new MeshError(ErrorCodes.WASM_BUFFER_LIMIT, `cannot pass a command to plugin ${this.name}: ${why}`));
  }

  /** A command that will never run: its stream fails, a finished stream completes. */
  private dropped(q: Queued, err: MeshError): void {
    if (q.stream === undefined) return;
    if (q.cmd.op === Op.DONE) {
      this.streams.delete(q.stream.id);
      q.stream.complete();
    } else q.stream.fail(err);
  }

  private idleWaiters: (() => void)[] = [];

  private notifyIdle(): void {
    if (this.idleWaiters.length === 0 || this.inFlight || this.queue.length > 0 || this.starting !== undefined) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Resolves once nothing is queued or running (or after `ms`). */
  private idle(ms: number): Promise<void> {
    if (!this.inFlight && this.queue.length === 0 && this.starting === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private ensureVm(): void {
    if (this.starting !== undefined || this.compiled === undefined) return;
    const last = this.lastStartFailure;
    if (last !== undefined && Date.now() - last.at < RESTART_MIN_INTERVAL_MS) {
      this.failQueued(last.error);
      return;
    }
    this.starting = this.spawn(false)
      .catch((e: unknown) => this.failQueued(e instanceof MeshError ? e : new MeshError(ErrorCodes.WASM_TRAP, String(e))))
      .finally(() => {
        this.starting = undefined;
        this.pump();
        this.notifyIdle();
      });
  }

  private failQueued(err: MeshError): void {
    const queued = this.queue.splice(0);
    for (const q of queued) this.dropped(q, err);
  }

  private onReply(batch: readonly Queued[], reply: BatchReply, gen: number): void {
    this.applyEffects(reply.effects);
    let retry: Queued[] | undefined;
    for (let i = 0; i < batch.length; i++) {
      const q = batch[i]!;
      const out = reply.outcomes[i];
      if (out === undefined) {
        this.dropped(q, new MeshError(ErrorCodes.INTERNAL, `plugin ${this.name}: the VM returned no outcome for a command`));
        continue;
      }
      if (out.failure !== undefined && q.stream !== undefined) {
        // a stream whose first command never ran (the VM had already failed) moves to the next VM
        if (out.skipped && isCreate(q.cmd)) {
          q.stream.sentGen = undefined;
          (retry ??= []).push(q);
        } else q.stream.fail(meshErrorOf(out.failure));
      }
      if (q.cmd.op === Op.DONE) {
        this.streams.delete(q.cmd.stream);
        q.stream?.complete();
      }
      for (const e of out.emissions) {
        const s = this.streams.get(e.stream);
        if (s !== undefined && s.sentGen === gen) s.deliver(e, q.seq);
      }
    }
    if (reply.vmFailure !== undefined && gen === this.gen) this.vmFailed(meshErrorOf(reply.vmFailure));
    if (retry !== undefined) this.queue.unshift(...retry);
  }

  private onDead(batch: readonly Queued[], e: unknown, gen: number): void {
    const err =
      e instanceof VmDead ? meshErrorOf(e.failure) : new MeshError(ErrorCodes.WASM_TRAP, `plugin VM failed: ${String(e)}`);
    if (gen === this.gen) this.vmFailed(err);
    for (const q of batch) this.dropped(q, err);
  }

  /**
   * The VM is unusable: streams that lived in it fail per the strategy, commands that would have
   * started a stream move to the next VM, and a fresh VM starts (now for FAIL_RELOAD, else on the
   * next command).
   */
  private vmFailed(err: MeshError): void {
    this.hostLog("error", `plugin failed: [${err.code}] ${err.message}`);
    if (err.code === ErrorCodes.WASM_TIMEOUT && this.runsIn === "inline") this.quarantine("a callback ran past its time budget on the waypoint's thread");
    this.vm?.close();
    this.vm = undefined;
    if (this.tickTimer !== undefined) clearInterval(this.tickTimer);
    this.tickTimer = undefined;
    this.tickQueued = false;
    this.queuesReady.clear();
    for (const [id, s] of this.streams) {
      if (s.sentGen === undefined) continue; // not in the dead VM yet: it will run in the next one
      s.fail(err);
      this.streams.delete(id);
    }
    for (const q of this.doneQueue) this.dropped(q, err);
    this.doneQueue = [];
    // root commands (ticks, callout responses, queue wake-ups) were for the dead VM, and so was
    // what the failed streams still had queued
    const keep: Queued[] = [];
    for (const q of this.queue) {
      if (q.stream !== undefined && q.stream.failure === undefined) keep.push(q);
      else this.dropped(q, err);
    }
    this.queue.length = 0;
    this.queue.push(...keep);
    this.rootDeleted?.();
    this.cancelGrpcCallouts();
    if (this.failStrategy === "FAIL_RELOAD" && !this.stopped && !this.stopping) this.ensureVm();
  }

  private applyEffects(e: BatchEffects): void {
    const log = this.o.log;
    if (log !== undefined) {
      try {
        for (const l of e.logs) log({ plugin: this.name, level: LOG_LEVEL_NAMES[l.level] ?? "info", message: l.message, source: "plugin" });
      } catch {
        // the embedder's logger failing must not take the plugin down
      }
      if (e.droppedLogs > 0) this.hostLog("warn", `${e.droppedLogs} plugin log lines dropped (more than 1000 in one batch)`);
    }
    if (e.metrics.length > 0) this.store.apply(e.metrics);
    for (const c of e.httpCalls) this.startHttpCall(c, this.gen);
    for (const g of e.grpcStreams) this.grpcStreamOp(g, this.gen);
    if (e.tickPeriodMs >= 0) this.setTick(e.tickPeriodMs);
    if (e.rootDone === 2) this.rootDeleted?.();
  }

  private hostLog(level: LogLevelName, message: string): void {
    try {
      this.o.log?.({ plugin: this.name, level, message, source: "host" });
    } catch {
      // see applyEffects
    }
  }

  /** Carries out what the VM asked of a gRPC stream; its answer comes back as GRPC_STREAM_EVENT commands. */
  private grpcStreamOp(op: GrpcStreamOp, gen: number): void {
    if (op.op !== "open") {
      const st = this.grpcCallouts.get(op.token);
      if (op.op === "send") st?.write(op.message, op.end);
      else if (op.op === "close") st?.end();
      else {
        this.grpcCallouts.delete(op.token);
        st?.cancel();
      }
      return;
    }
    // events leave the embedder's call stack (never re-entering the VM from inside a reply)
    const deliver = (e: GrpcStreamEventData): void =>
      queueMicrotask(() => {
        if (e.event === GrpcEvent.CLOSE) this.grpcCallouts.delete(op.token);
        if (gen === this.gen && !this.stopped) this.enqueue({ op: Op.GRPC_STREAM_EVENT, token: op.token, ...e }, undefined);
      });
    const fn = this.o.streamCall;
    let handle: CalloutStream | undefined;
    const reader = new GrpcStreamReader(deliver, () => handle?.cancel(), this.maxBufferBytes);
    if (fn === undefined) {
      reader.error("no gRPC stream handler configured");
      return;
    }
    try {
      handle = fn(op.upstream, unflatten(op.headers), {
        headers: (h) => reader.headers(flatten(h)),
        data: (c) => reader.data(c),
        end: (t) => reader.end(t === undefined ? undefined : flatten(t)),
        error: (why) => reader.error(why),
      });
    } catch (e) {
      reader.error(e instanceof Error ? e.message : String(e));
      return;
    }
    this.grpcCallouts.set(op.token, handle);
  }

  /** Resets every gRPC stream callout (the VM that owned them is gone). */
  private cancelGrpcCallouts(): void {
    for (const st of this.grpcCallouts.values()) st.cancel();
    this.grpcCallouts.clear();
  }

  private startHttpCall(c: HttpCallRequest, gen: number): void {
    const fn = this.o.httpCall;
    const deliver = (cmd: Command): void => {
      if (gen === this.gen && !this.stopped) this.enqueue(cmd, undefined);
    };
    if (fn === undefined) {
      queueMicrotask(() => deliver({ op: Op.HTTP_CALL_RESPONSE, token: c.token, failure: "no HTTP callout handler configured" }));
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout =
      c.timeoutMs > 0
        ? new Promise<HttpCallResult>((resolve) => {
            timer = setTimeout(() => resolve({ failure: "timeout" }), c.timeoutMs);
          })
        : undefined;
    const call = Promise.resolve()
      .then(() => fn(c.upstream, unflatten(c.headers), c.body, unflatten(c.trailers), c.timeoutMs, isGrpcCallToken(c.token) ? "grpc" : "http"))
      .catch(
      (e: unknown): HttpCallResult => ({ failure: e instanceof Error ? e.message : String(e) }),
    );
    (timeout ? Promise.race([call, timeout]) : call).then((r) => {
      if (timer !== undefined) clearTimeout(timer);
      if ("failure" in r) deliver({ op: Op.HTTP_CALL_RESPONSE, token: c.token, failure: r.failure });
      else {
        deliver({
          op: Op.HTTP_CALL_RESPONSE,
          token: c.token,
          response: {
            headers: flatten(r.headers),
            body: r.body ?? EMPTY,
            trailers: r.trailers ? flatten(r.trailers) : [],
          },
        });
      }
    });
  }

  private setTick(ms: number): void {
    if (this.tickTimer !== undefined) clearInterval(this.tickTimer);
    this.tickTimer = undefined;
    if (ms <= 0) return;
    this.tickTimer = setInterval(() => {
      if (this.tickQueued || this.vm === undefined) return;
      this.tickQueued = true;
      this.enqueue({ op: Op.TICK }, undefined);
    }, ms);
    this.tickTimer.unref();
  }

  /** The plugin's metrics (values survive VM restarts). Render with renderPrometheus(). */
  metrics(): PluginMetric[] {
    return this.store.snapshot();
  }

  /**
   * Lets queued work (including finished streams' on_done/on_log/on_delete) run, then runs the
   * root context's on_done/on_delete and ends the VM. Phases still waiting resolve as failed.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.flushDone();
    const budget = (this.o.callbackBudgetMs ?? DEFAULTS.callbackBudgetMs) * MAX_BATCH + (this.o.killGraceMs ?? DEFAULTS.killGraceMs);
    await this.idle(budget);
    this.stopping = true;
    if (this.vm !== undefined && !this.inFlight) {
      this.inFlight = true;
      let finishing = false;
      try {
        const reply = await runAsync(this.vm, [{ op: Op.SHUTDOWN }]);
        this.applyEffects(reply.effects);
        finishing = reply.effects.rootDone === 1 && reply.vmFailure === undefined;
      } catch {
        // a VM that fails while shutting down is stopped anyway
      }
      this.inFlight = false;
      if (finishing) await this.rootFinished();
    }
    this.stopped = true;
    this.cancelGrpcCallouts();
    if (this.tickTimer !== undefined) clearInterval(this.tickTimer);
    if (this.doneTimer !== undefined) clearTimeout(this.doneTimer);
    this.shared.releaseOwner(this.onQueueReady);
    this.vm?.close();
    this.vm = undefined;
    const err = new MeshError(ErrorCodes.WASM_TRAP, `plugin ${this.name} was stopped`);
    for (const q of this.doneQueue) this.dropped(q, err);
    this.doneQueue = [];
    this.failQueued(err);
    for (const s of this.streams.values()) {
      s.fail(err);
      s.complete();
    }
    this.streams.clear();
  }
}

/** What a fail strategy makes of a failure for one phase (for embedders that run phases themselves). */
export function failStrategyResult(strategy: FailStrategy, error: MeshError): PhaseResult {
  return strategy === "FAIL_OPEN"
    ? { action: "continue", failure: error }
    : {
        action: "local",
        response: { status: 503, body: EMPTY, headers: [], grpcStatus: 14, details: "wasm_fail_stream" },
        failure: error,
      };
}

export type { FlatPairs };
