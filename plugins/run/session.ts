// Runs simulated requests through one plugin in a real WasmPlugin VM (its own worker, as in the
// waypoint) and records what the plugin did: each phase's action, what it released (and so what
// would go upstream / back to the client), local responses, resets, failures and the fail
// strategy's result, HTTP callouts and the answers they got, log lines and metric changes.
import { asMeshError, type ErrorCode } from "../../core/errors/index.ts";
import {
  WasmPlugin,
  describeModule,
  type FailStrategy,
  grpcFrame,
  type HeaderPairs,
  type HttpCallResult,
  type LogLevelName,
  type PhaseResult,
  type PluginMetric,
  type WasmStream,
} from "../../wasm/index.ts";
import { concatBytes, diffMetrics, type MetricChange } from "./diff.ts";
import type { CalloutAnswer, Pairs, SimRequest } from "./spec.ts";

export interface RunOptions {
  /** plugin name as the waypoint names it (`<namespace>.<name>`): the `plugin` metric label */
  readonly name: string;
  readonly rootId: string;
  readonly bytes: Uint8Array;
  /** pluginConfig as JSON text ("" = none; the VM then gets "{}", as in the waypoint) */
  readonly configuration: string;
  readonly env: Readonly<Record<string, string>>;
  readonly logLevel: LogLevelName;
  readonly callbackBudgetMs: number;
  readonly maxMemoryPages: number;
  readonly failStrategy: FailStrategy;
  /** how long to wait for a plugin to resume a message it holds after its end */
  readonly stallMs: number;
  /** answers for callouts no request answers (--callout flags) */
  readonly callouts?: ReadonlyMap<string, CalloutAnswer>;
}

export interface LogLine {
  readonly level: LogLevelName;
  /** "plugin": proxy_log and WASI output; "host": what the host (or this tool) says about the plugin */
  readonly source: "plugin" | "host";
  readonly message: string;
}

export interface FailureRecord {
  readonly code: ErrorCode;
  readonly message: string;
  readonly failStrategy: FailStrategy;
  /** what the fail strategy made of it */
  readonly result: string;
}

export type PhaseName = "request_headers" | "request_body" | "request_trailers" | "response_headers" | "response_body" | "response_trailers";

export interface PhaseRecord {
  readonly phase: PhaseName;
  readonly endOfStream: boolean;
  /** "stalled": the plugin held the message after its end and never resumed it */
  readonly action: PhaseResult["action"] | "stalled";
  /** parts released by this call (held data may come out of a later call) */
  readonly released: readonly ("headers" | "body" | "trailers")[];
  readonly failure?: FailureRecord;
}

export interface Message {
  /** incl. pseudo-headers (:method :path :authority :scheme, or :status) */
  readonly headers: Pairs;
  readonly body: Uint8Array;
  readonly trailers?: Pairs;
}

export interface LocalReply {
  readonly status: number;
  readonly headers: Pairs;
  readonly body: Uint8Array;
  readonly details: string;
  readonly grpcStatus: number | undefined;
}

export interface CalloutRecord {
  readonly upstream: string;
  readonly headers: Pairs;
  readonly body: Uint8Array;
  readonly timeoutMs: number;
  /** "answered": a configured response; "failed": a configured failure; "unanswered": none configured */
  readonly outcome: "answered" | "failed" | "unanswered";
  readonly response?: Message;
  readonly failure?: string;
}

export interface RequestRecord {
  readonly name: string;
  /** the request as handed to the plugin */
  readonly request: Message;
  readonly phases: PhaseRecord[];
  /**
   * forwarded: the request went upstream and the response back to the client;
   * local: a local response (from the plugin, or a fail strategy) answered the client;
   * reset: the stream was reset; stalled: the plugin never resumed a held message.
   */
  outcome: "forwarded" | "local" | "reset" | "stalled";
  /** what went upstream (after the plugin), when the request got that far */
  upstreamRequest?: Message;
  /** the simulated upstream response, as handed to the plugin */
  upstreamResponse?: Message;
  /** what the client got (after the plugin) when the response was forwarded */
  clientResponse?: Message;
  local?: LocalReply;
  /** the direction the local reply or reset happened in */
  endedIn?: "request" | "response";
  failure?: FailureRecord;
  readonly callouts: CalloutRecord[];
  readonly logs: LogLine[];
  metrics: MetricChange[];
  /** VM starts during this request (a restart after a failure) */
  vmStarts: number;
}

export interface RunRecord {
  readonly plugin: {
    readonly name: string;
    readonly rootId: string;
    readonly abiVersion: string | undefined;
    readonly failStrategy: FailStrategy;
    readonly callbackBudgetMs: number;
    readonly maxMemoryPages: number;
    readonly logLevel: LogLevelName;
    readonly configuration: string;
  };
  readonly start: { ok: boolean; ms: number; error?: { code: ErrorCode; message: string; details: readonly string[] }; logs: LogLine[]; metrics: MetricChange[] };
  readonly requests: RequestRecord[];
  /** logs from stopping the VM (root context on_done/on_delete) */
  readonly stopLogs: LogLine[];
  /** metric values at the end (as /metrics would show them) */
  readonly metrics: PluginMetric[];
  /** a plugin failure happened (start, trap, timeout, memory limit) or a message stalled */
  readonly failed: boolean;
}

/** on_done/on_log/on_delete are sent with the next round trip or after 5 ms; wait past that so their logs stay with their request. */
const SETTLE_MS = 25;

function failureOf(r: PhaseResult, strategy: FailStrategy): FailureRecord | undefined {
  if (!r.failure) return undefined;
  const result =
    r.action === "local" && r.response
      ? `local ${r.response.status} ${r.response.details}`
      : r.action === "continue"
        ? "continue without the plugin, data unmodified"
        : r.action;
  return { code: r.failure.code, message: r.failure.message, failStrategy: strategy, result };
}

function toPairs(h: HeaderPairs): Pairs {
  return h.map(([k, v]) => [k, v]);
}

interface Direction {
  headers: Pairs | undefined;
  body: Uint8Array[];
  trailers: Pairs | undefined;
}

type StepResult = { kind: "done"; released: Direction } | { kind: "ended"; r: PhaseResult } | { kind: "stalled" };

/** Runs `requests` through the plugin; never throws for plugin failures (they are in the record). */
export async function runPlugin(opts: RunOptions, requests: readonly SimRequest[]): Promise<RunRecord> {
  let logs: LogLine[] = [];
  let current: RequestRecord | undefined;
  let answers: ReadonlyMap<string, CalloutAnswer> = opts.callouts ?? new Map();
  const httpCall = async (upstream: string, headers: HeaderPairs, body: Uint8Array, _trailers: HeaderPairs, timeoutMs: number, kind: "http" | "grpc"): Promise<HttpCallResult> => {
    const answer = answers.get(upstream) ?? answers.get("*");
    const base = { upstream, headers: toPairs(headers), body, timeoutMs };
    if (answer === undefined) {
      const why = `${kind === "grpc" ? "grpc_call" : "http_call"} to ${JSON.stringify(upstream)} has no answer (give one with --callout '${upstream}=200 name:value' or callouts: in the requests file); the plugin gets a failed callout`;
      logs.push({ level: "warn", source: "host", message: why });
      current?.callouts.push({ ...base, outcome: "unanswered", failure: "no answer configured" });
      return { failure: `no answer configured for ${upstream}` };
    }
    if ("failure" in answer) {
      current?.callouts.push({ ...base, outcome: "failed", failure: answer.failure });
      return { failure: answer.failure };
    }
    const r = answer.response;
    const respHeaders: Pairs = [[":status", String(r.status)], ...r.headers];
    let respBody = concatBytes(r.body);
    let trailers = r.trailers;
    if (kind === "grpc") {
      // the answer's body is the reply message; a 200 without grpc-status means OK
      if (respBody.length > 0) respBody = grpcFrame(respBody);
      const statusGiven = [...r.headers, ...(trailers ?? [])].some(([k]) => k === "grpc-status");
      if (!statusGiven && r.status === 200) trailers = [...(trailers ?? []), ["grpc-status", "0"]];
    }
    current?.callouts.push({ ...base, outcome: "answered", response: { headers: respHeaders, body: respBody, ...(trailers ? { trailers } : {}) } });
    return { headers: respHeaders, body: respBody, ...(trailers ? { trailers } : {}) };
  };

  const plugin = new WasmPlugin({
    name: opts.name,
    rootId: opts.rootId,
    bytes: opts.bytes,
    // as the waypoint: the AssemblyScript SDK 0.1.8 traps on an empty configuration
    configuration: opts.configuration || "{}",
    env: opts.env,
    logLevel: opts.logLevel,
    callbackBudgetMs: opts.callbackBudgetMs,
    maxMemoryPages: opts.maxMemoryPages,
    failStrategy: opts.failStrategy,
    httpCall,
    node: { id: "waypoint~127.0.0.1~waypoint.default", metadata: { NAMESPACE: "default" } },
    log: (e) => logs.push({ level: e.level, source: e.source, message: e.message }),
  });

  const startLogs = logs;
  const t0 = performance.now();
  let startError: RunRecord["start"]["error"];
  try {
    await plugin.start();
  } catch (e) {
    const err = asMeshError(e);
    startError = { code: err.code, message: err.message, details: err.details };
  }
  const start = { ok: startError === undefined, ms: Math.round(performance.now() - t0), ...(startError ? { error: startError } : {}), logs: startLogs, metrics: diffMetrics([], plugin.metrics()) };
  const record = {
    plugin: {
      name: opts.name,
      rootId: opts.rootId,
      abiVersion: plugin.moduleReport?.abiVersion ?? abiOf(opts.bytes),
      failStrategy: opts.failStrategy,
      callbackBudgetMs: opts.callbackBudgetMs,
      maxMemoryPages: opts.maxMemoryPages,
      logLevel: opts.logLevel,
      configuration: opts.configuration,
    },
    start,
    requests: [] as RequestRecord[],
    stopLogs: [] as LogLine[],
    metrics: [] as PluginMetric[],
    failed: !start.ok,
  };
  if (!start.ok) {
    await plugin.stop();
    return { ...record, metrics: plugin.metrics() };
  }

  for (const req of requests) {
    const rec: RequestRecord = {
      name: req.name,
      request: { headers: requestHeaders(req), body: concatBytes(req.body), ...(req.trailers ? { trailers: req.trailers } : {}) },
      phases: [],
      outcome: "forwarded",
      callouts: [],
      logs: [],
      metrics: [],
      vmStarts: 0,
    };
    current = rec;
    logs = rec.logs;
    answers = req.callouts.size > 0 ? new Map([...(opts.callouts ?? []), ...req.callouts]) : (opts.callouts ?? new Map());
    const metricsBefore = plugin.metrics();
    const startsBefore = plugin.starts;
    await runRequest(plugin, req, rec, opts);
    await Bun.sleep(SETTLE_MS);
    rec.metrics = diffMetrics(metricsBefore, plugin.metrics());
    rec.vmStarts = plugin.starts - startsBefore;
    record.requests.push(rec);
    if (rec.failure || rec.outcome === "stalled") record.failed = true;
  }
  current = undefined;
  logs = record.stopLogs;
  await plugin.stop();
  return { ...record, metrics: plugin.metrics() };
}

function abiOf(bytes: Uint8Array): string | undefined {
  try {
    return describeModule(bytes).abiVersion;
  } catch {
    return undefined; // not a module: start() said so
  }
}

function requestHeaders(req: SimRequest): Pairs {
  return [[":method", req.method], [":path", req.path], [":authority", req.authority], [":scheme", req.scheme], ...req.headers];
}

async function runRequest(plugin: WasmPlugin, req: SimRequest, rec: RequestRecord, opts: RunOptions): Promise<void> {
  const s = plugin.stream({
    requestId: req.headers.find(([k]) => k === "x-request-id")?.[1],
    protocol: "HTTP/1.1",
    startTimeMs: Date.now(),
    source: { address: req.source.address, port: req.source.port, ...(req.source.principal ? { principal: req.source.principal } : {}) },
    destination: { address: req.destination.address, port: req.destination.port },
    connection: { mtls: true, ...(req.source.principal ? { uriSanPeerCertificate: req.source.principal } : {}) },
  });
  let details = "via_upstream";
  try {
    const up = await drive(s, "request", rec.request.headers, req.body, req.trailers, rec, opts);
    if (up.kind !== "done") {
      details = ended(up, "request", rec);
      return;
    }
    rec.upstreamRequest = message(up.released);
    const resp = req.response;
    const respHeaders: Pairs = [[":status", String(resp.status)], ...resp.headers];
    rec.upstreamResponse = { headers: respHeaders, body: concatBytes(resp.body), ...(resp.trailers ? { trailers: resp.trailers } : {}) };
    const down = await drive(s, "response", respHeaders, resp.body, resp.trailers, rec, opts);
    if (down.kind !== "done") {
      details = ended(down, "response", rec);
      return;
    }
    rec.clientResponse = message(down.released);
  } finally {
    s.done({ responseCodeDetails: details, responseFlags: "-" });
  }
}

function message(d: Direction): Message {
  return { headers: d.headers ?? [], body: concatBytes(d.body), ...(d.trailers ? { trailers: d.trailers } : {}) };
}

/** Records how the stream ended early; returns the response code details for on_log. */
function ended(step: Exclude<StepResult, { kind: "done" }>, dir: "request" | "response", rec: RequestRecord): string {
  rec.endedIn = dir;
  if (step.kind === "stalled") {
    rec.outcome = "stalled";
    return "wasm_stalled";
  }
  const r = step.r;
  if (r.action === "local" && r.response) {
    rec.outcome = "local";
    rec.local = { status: r.response.status, headers: toPairs(r.response.headers), body: r.response.body, details: r.response.details, grpcStatus: r.response.grpcStatus };
    return r.response.details;
  }
  rec.outcome = "reset";
  return "wasm_stream_reset";
}

/** Headers, body chunks, trailers of one direction through the plugin; stops at local/reset/stall. */
async function drive(
  s: WasmStream,
  dir: "request" | "response",
  headers: Pairs,
  body: readonly Uint8Array[],
  trailers: Pairs | undefined,
  rec: RequestRecord,
  opts: RunOptions,
): Promise<StepResult> {
  const released: Direction = { headers: undefined, body: [], trailers: undefined };
  const calls: { phase: PhaseName; eos: boolean; call: () => Promise<PhaseResult> }[] = [];
  const noMore = (i: number) => i === body.length - 1 && trailers === undefined;
  calls.push({
    phase: `${dir}_headers`,
    eos: body.length === 0 && trailers === undefined,
    call: () => (dir === "request" ? s.requestHeaders(headers, body.length === 0 && trailers === undefined) : s.responseHeaders(headers, body.length === 0 && trailers === undefined)),
  });
  body.forEach((chunk, i) =>
    calls.push({ phase: `${dir}_body`, eos: noMore(i), call: () => (dir === "request" ? s.requestBody(chunk, noMore(i)) : s.responseBody(chunk, noMore(i))) }),
  );
  if (trailers !== undefined) calls.push({ phase: `${dir}_trailers`, eos: true, call: () => (dir === "request" ? s.requestTrailers(trailers) : s.responseTrailers(trailers)) });

  for (const c of calls) {
    const r = await withStall(c.call(), opts.stallMs);
    if (r === undefined) {
      rec.phases.push({ phase: c.phase, endOfStream: c.eos, action: "stalled", released: [] });
      rec.logs.push({
        level: "error",
        source: "host",
        message: `the plugin held the ${dir} after its end (${c.phase}) and did not resume it within ${opts.stallMs} ms (no proxy_continue_stream or local response)`,
      });
      return { kind: "stalled" };
    }
    const failure = failureOf(r, opts.failStrategy);
    if (failure && !rec.failure) rec.failure = failure;
    const parts: ("headers" | "body" | "trailers")[] = [];
    if (r.headers !== undefined) {
      released.headers = toPairs(r.headers);
      parts.push("headers");
    }
    if (r.body !== undefined) {
      released.body.push(r.body);
      parts.push("body");
    }
    if (r.trailers !== undefined) {
      released.trailers = toPairs(r.trailers);
      parts.push("trailers");
    }
    rec.phases.push({ phase: c.phase, endOfStream: c.eos, action: r.action, released: parts, ...(failure ? { failure } : {}) });
    if (r.action === "local" || r.action === "reset") return { kind: "ended", r };
  }
  if (released.headers === undefined) return { kind: "stalled" };
  return { kind: "done", released };
}

function withStall(p: Promise<PhaseResult>, ms: number): Promise<PhaseResult | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stall = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([p, stall]).finally(() => clearTimeout(timer));
}
