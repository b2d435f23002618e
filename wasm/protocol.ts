// Messages between the main-thread plugin (plugin.ts) and the VM core (vm.ts), whether the core
// runs in a worker (encoded by channel.ts) or inline. Header maps are flat [name, value, ...].

import type { LogLevelValue, MetricTypeValue } from "./abi.ts";
import type { PluginProperties, PropertyValue, StreamCompletion, StreamProperties } from "./properties.ts";
import type { FlatPairs } from "./serialization.ts";

export const Op = {
  HEADERS: 1,
  BODY: 2,
  TRAILERS: 3,
  DONE: 4,
  HTTP_CALL_RESPONSE: 5,
  TICK: 6,
  QUEUE_READY: 7,
  SHUTDOWN: 8,
  GRPC_STREAM_EVENT: 9,
} as const;

/** What a gRPC stream reports, in order: initial metadata, messages, trailing metadata, close. */
export const GrpcEvent = { INITIAL: 0, MESSAGE: 1, TRAILING: 2, CLOSE: 3 } as const;
export type GrpcEventValue = (typeof GrpcEvent)[keyof typeof GrpcEvent];

export const Direction = { REQUEST: 0, RESPONSE: 1 } as const;
export type DirectionValue = (typeof Direction)[keyof typeof Direction];

export type Command =
  | {
      readonly op: typeof Op.HEADERS;
      readonly stream: number;
      readonly dir: DirectionValue;
      readonly headers: FlatPairs;
      /**
       * The message's first body chunk, when it was there with the headers: the VM runs the body
       * callback right after the headers callback (one round trip for both). `eos` then ends the
       * body, and the headers do not end the stream.
       */
      readonly body?: Uint8Array;
      readonly eos: boolean;
      readonly create?: StreamProperties;
    }
  | {
      readonly op: typeof Op.BODY;
      readonly stream: number;
      readonly dir: DirectionValue;
      readonly body: Uint8Array;
      readonly eos: boolean;
      readonly create?: StreamProperties;
    }
  | {
      readonly op: typeof Op.TRAILERS;
      readonly stream: number;
      readonly dir: DirectionValue;
      readonly trailers: FlatPairs;
      readonly create?: StreamProperties;
    }
  | { readonly op: typeof Op.DONE; readonly stream: number; readonly completion?: StreamCompletion }
  | {
      readonly op: typeof Op.HTTP_CALL_RESPONSE;
      readonly token: number;
      readonly response?: { readonly headers: FlatPairs; readonly body: Uint8Array; readonly trailers: FlatPairs };
      readonly failure?: string;
    }
  | { readonly op: typeof Op.TICK }
  | { readonly op: typeof Op.QUEUE_READY; readonly queueId: number }
  | { readonly op: typeof Op.SHUTDOWN }
  | {
      readonly op: typeof Op.GRPC_STREAM_EVENT;
      readonly token: number;
      readonly event: GrpcEventValue;
      /** INITIAL / TRAILING: the metadata */
      readonly pairs?: FlatPairs;
      /** MESSAGE: one message, unframed */
      readonly message?: Uint8Array;
      /** CLOSE: the gRPC status and its message */
      readonly status?: number;
      readonly statusMessage?: string;
    };

export const EmissionKind = { CONTINUE: 0, STOP: 1, LOCAL: 2, RESET: 3 } as const;
export type EmissionKindValue = (typeof EmissionKind)[keyof typeof EmissionKind];

export interface LocalReply {
  readonly status: number;
  readonly details: string;
  readonly body: Uint8Array;
  readonly headers: FlatPairs;
  /** 0..16 when the reply is a gRPC status; undefined otherwise. */
  readonly grpcStatus: number | undefined;
}

/**
 * A decision about one direction of one stream. For CONTINUE, each of headers/body/trailers is
 * `undefined` when not released by this emission, `null` when released unchanged (the main side
 * forwards what it holds), or the new value when the plugin changed it.
 */
export interface Emission {
  readonly stream: number;
  readonly dir: DirectionValue;
  readonly kind: EmissionKindValue;
  /**
   * With changed headers: how many leading pairs are unchanged from the headers the main side
   * sent (it reuses its own); `headers` then holds only the pairs after them.
   */
  readonly headersKeep?: number;
  readonly headers?: FlatPairs | null;
  readonly body?: Uint8Array | null;
  readonly trailers?: FlatPairs | null;
  readonly local?: LocalReply;
}

/** An Emission while it is being assembled (decoded or collected), field by field. */
export type EmissionDraft = { -readonly [K in keyof Emission]: Emission[K] };

export interface Failure {
  /** One of the WASM_* error codes. */
  readonly code: string;
  readonly message: string;
}

export interface CommandOutcome {
  readonly emissions: Emission[];
  /** Set when the command could not run (the VM failed during it or before it). */
  readonly failure?: Failure;
  /** The VM had already failed: the command was not run at all. */
  readonly skipped?: boolean;
}

export interface LogRecord {
  readonly level: LogLevelValue;
  readonly message: string;
}

/**
 * Call ids as cpp-host numbers them: HTTP calls ≡ 0 (mod 4), gRPC calls ≡ 1. A gRPC call travels as
 * an HTTP call (an HTTP/2 POST the embedder sends; see VmCore.grpcCall) with such a token.
 */
export function isGrpcCallToken(token: number): boolean {
  return (token & 3) === 1;
}

/** gRPC streams are numbered ≡ 2 (mod 4), as in cpp-host. */
export function isGrpcStreamToken(token: number): boolean {
  return (token & 3) === 2;
}

/** What the VM asks of a gRPC stream; `send` carries one framed message. */
export type GrpcStreamOp =
  | { readonly token: number; readonly op: "open"; readonly upstream: string; readonly headers: FlatPairs }
  | { readonly token: number; readonly op: "send"; readonly message: Uint8Array; readonly end: boolean }
  | { readonly token: number; readonly op: "close" }
  | { readonly token: number; readonly op: "cancel" };

export interface HttpCallRequest {
  readonly token: number;
  readonly upstream: string;
  readonly headers: FlatPairs;
  readonly body: Uint8Array;
  readonly trailers: FlatPairs;
  readonly timeoutMs: number;
}

export interface MetricUpdate {
  readonly name: string;
  readonly type: MetricTypeValue;
  /**
   * A counter: what it grew by during the batch (two VMs of one plugin — a reload's old and new —
   * may count into one store at once). A gauge: its value after the batch.
   */
  readonly value: number;
  /** Histogram samples recorded during the batch. */
  readonly samples: number[];
}

/** Side effects of a batch of commands that are not tied to one stream. */
export interface BatchEffects {
  logs: LogRecord[];
  droppedLogs: number;
  httpCalls: HttpCallRequest[];
  grpcStreams: GrpcStreamOp[];
  /** New tick period in ms (0 disables), or -1 when unchanged. */
  tickPeriodMs: number;
  metrics: MetricUpdate[];
  /**
   * The root context's end (SHUTDOWN): 1 = proxy_on_done returned false, the plugin finishes its
   * work and calls proxy_done; 2 = proxy_on_delete ran, the VM may go. 0 = nothing happened.
   */
  rootDone: 0 | 1 | 2;
}

export function emptyEffects(): BatchEffects {
  return { logs: [], droppedLogs: 0, httpCalls: [], grpcStreams: [], tickPeriodMs: -1, metrics: [], rootDone: 0 };
}

// Shared empty lists for the VM's per-batch effects: nearly every batch has none, so a list is
// allocated only when something is added (see VmCore.effect*). Never pushed to.
const NONE: never[] = [];
Object.freeze(NONE);

/** Effects with no lists allocated yet (NONE until the first entry). */
export function noEffects(): BatchEffects {
  return { logs: NONE, droppedLogs: 0, httpCalls: NONE, grpcStreams: NONE, tickPeriodMs: -1, metrics: NONE, rootDone: 0 };
}

export interface BatchReply {
  readonly outcomes: CommandOutcome[];
  readonly effects: BatchEffects;
  /** Set once the VM is unusable (trap, timeout, memory limit); every later command fails. */
  readonly vmFailure?: Failure;
}

/** Everything the VM core needs to start. */
export interface VmConfig {
  readonly plugin: PluginProperties;
  readonly configuration: Uint8Array;
  readonly vmConfiguration: Uint8Array;
  readonly env: Readonly<Record<string, string>>;
  readonly logLevel: LogLevelValue;
  readonly maxMemoryPages: number;
  readonly maxBufferBytes: number;
  readonly maxHeaderBytes: number;
  readonly callbackBudgetMs: number;
  readonly startBudgetMs: number;
  /** When set, proxy_http_call refuses other upstream names with BAD_ARGUMENT (Envoy: unknown cluster). */
  readonly httpCallUpstreams: readonly string[] | undefined;
  /** Counter/gauge values carried over from a previous VM of the same plugin. */
  readonly metricSeed: readonly { readonly name: string; readonly type: MetricTypeValue; readonly value: number }[];
}

export interface StartReply {
  readonly ok: boolean;
  readonly failure?: Failure;
  readonly effects: BatchEffects;
}

/** Synchronous services the VM core uses that live on the main thread (process-wide state). */
export interface VmServices {
  sharedGet(key: string): { value: Uint8Array; cas: number } | undefined;
  sharedSet(key: string, value: Uint8Array, cas: number): number;
  queueRegister(name: string): number;
  queueResolve(vmId: string, name: string): number | undefined;
  queueEnqueue(queueId: number, value: Uint8Array): number;
  queueDequeue(queueId: number): { status: number; value?: Uint8Array };
}

export type { PropertyValue };
