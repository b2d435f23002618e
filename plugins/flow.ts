// A message (request or response) through the plugin chain as a sequence of events — headers,
// body chunks, trailers — each passed through every stage in order. A plugin stage may hold what
// it is given (Proxy-Wasm StopIteration) and release it with a later event, change it, answer
// locally or reset. The message's consumer gets the headers as soon as the last stage releases
// them, and the body as it is released after that.
import type { BodySink, BodySource, HeaderPairs, HookRequest, LocalReply, PluginOutcome } from "../core/waypoint/index.ts";
import { PluginReplyError } from "../core/waypoint/index.ts";
import type { PhaseResult, WasmStream } from "../wasm/index.ts";
import type { PluginPhase } from "./config.ts";

type Pairs = readonly (readonly [string, string])[];
type Ev = { readonly t: "h" } | { readonly t: "d"; readonly c: Uint8Array; readonly end: boolean } | { readonly t: "tr"; readonly tr: HeaderPairs };

function mutable(p: Pairs): HeaderPairs {
  return p.map(([k, v]) => [k, v] as [string, string]);
}
type Terminal = { readonly kind: "local"; readonly reply: LocalReply } | { readonly kind: "reset" };
type Stage = { readonly kind: "plugin"; readonly i: number } | { readonly kind: "authz" };

const EMPTY = new Uint8Array(0);
const COLON = 58;
const HEAD: Ev = { t: "h" };
/** Released body queued for a consumer that is not reading: reading from the source stops beyond this. */
const QUEUE_HIGH_WATER = 256 * 1024;

/** One event to a plugin stream: at once when its VM can (phaseNow), else by the named phase call. */
function phaseOf(s: WasmStream, dir: 0 | 1, ev: Ev, headers: HeaderPairs | undefined, eos: boolean): Promise<PhaseResult> | PhaseResult {
  if (typeof s.phaseNow === "function") {
    if (ev.t === "h") return s.phaseNow(dir, 0, headers, undefined, eos);
    if (ev.t === "d") return s.phaseNow(dir, 1, undefined, ev.c, ev.end);
    return s.phaseNow(dir, 2, ev.tr, undefined, true);
  }
  if (ev.t === "h") return dir === 0 ? s.requestHeaders(headers!, eos) : s.responseHeaders(headers!, eos);
  if (ev.t === "d") return dir === 0 ? s.requestBody(ev.c, ev.end) : s.responseBody(ev.c, ev.end);
  return dir === 0 ? s.requestTrailers(ev.tr) : s.responseTrailers(ev.tr);
}

function localOf(r: PhaseResult): LocalReply {
  const resp = r.response;
  return {
    status: resp?.status ?? 503,
    body: resp ? new TextDecoder().decode(resp.body) : "",
    headers: (resp?.headers ?? []).map(([k, v]) => [k, v] as [string, string]),
    details: resp?.details ?? "wasm_local_response",
  };
}

/** The body the consumer reads: fed by the flow, with backpressure back to the source. */
class ReleasedBody implements BodySource {
  private queue: Ev[] = [];
  private queued = 0;
  private sink: BodySink | undefined;
  private paused = false;
  private failure: Error | undefined;
  private ended = false;
  onWant: (() => void) | undefined;

  constructor(readonly empty: boolean) {}

  start(sink: BodySink): void {
    this.sink = sink;
    this.flush();
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.flush();
  }
  get full(): boolean {
    return this.paused || this.queued > QUEUE_HIGH_WATER || !this.sink;
  }
  push(ev: Ev): void {
    if (ev.t === "d") this.queued += ev.c.byteLength;
    this.queue.push(ev);
    this.flush();
  }
  fail(e: Error): void {
    this.failure = e;
    this.flush();
  }
  private trailers: HeaderPairs | undefined;
  private flush(): void {
    const sink = this.sink;
    if (!sink) return;
    while (this.queue.length > 0 && !this.paused) {
      const ev = this.queue.shift()!;
      if (ev.t === "tr") this.trailers = ev.tr;
      else if (ev.t === "d") {
        this.queued -= ev.c.byteLength;
        if (ev.c.byteLength > 0) sink.data(ev.c);
        if (ev.end && !this.ended) {
          this.ended = true;
          sink.end(this.trailers);
        }
      }
    }
    if (this.failure && this.queue.length === 0 && !this.ended) {
      this.ended = true;
      sink.error(this.failure);
    }
    if (!this.full) this.onWant?.();
  }
}

abstract class Flow {
  protected headersHeld: boolean[];
  protected terminal: Terminal | undefined;
  private released: ReleasedBody | undefined;
  private resolveHead: ((o: PluginOutcome) => void) | undefined;
  private chainTail: Promise<void> = Promise.resolve();
  /** Events passed asynchronously and not finished (chainTail settles after the last). */
  private busy = 0;
  private sourcePaused = false;
  /** The head went through every stage and waits for the body's first event. */
  private headReady = false;
  private bodyPassed = false;

  constructor(
    protected readonly stages: readonly Stage[],
    private readonly pluginCount: number,
  ) {
    this.headersHeld = new Array(pluginCount).fill(false);
  }

  protected abstract headersFor(i: number): HeaderPairs | undefined;
  protected abstract applyReleasedHeaders(h: Pairs): void;
  protected abstract call(i: number, ev: Ev, headers: HeaderPairs | undefined, eos: boolean): Promise<PhaseResult> | PhaseResult | undefined;
  protected abstract authorize(): LocalReply | undefined;
  protected abstract forwardOutcome(body: ReleasedBody): PluginOutcome;

  /**
   * Passes one event through the stages from `from`, depth-first, in order. Synchronous while the
   * stages answer at once (a VM on this thread); a promise from the first stage that does not.
   */
  private pass(from: number, ev: Ev, eos: boolean): void | Promise<void> {
    for (;;) {
      if (this.terminal) return;
      if (from >= this.stages.length) return this.deliver(ev);
      const stage = this.stages[from]!;
      if (stage.kind === "authz") {
        if (ev.t === "h") {
          const reply = this.authorize();
          if (reply) return this.end({ kind: "local", reply });
        }
        from++;
        continue;
      }
      const i = stage.i;
      const r = this.call(i, ev, ev.t === "h" ? this.headersFor(i) : undefined, eos);
      if (r === undefined) {
        from++; // the plugin never saw this message
        continue;
      }
      if (r instanceof Promise) return r.then((res) => this.passed(from, i, ev, eos, res));
      return this.passed(from, i, ev, eos, r);
    }
  }

  /** Stage `from` (plugin `i`) answered `r` for `ev`: what it released goes on to the next stage. */
  private passed(from: number, i: number, ev: Ev, eos: boolean, r: PhaseResult): void | Promise<void> {
    if (this.terminal) return;
    if (r.action === "local") return this.end({ kind: "local", reply: localOf(r) });
    if (r.action === "reset") return this.end({ kind: "reset" });
    const out: Ev[] = [];
    if (r.headers !== undefined) {
      this.applyReleasedHeaders(r.headers);
      this.headersHeld[i] = false;
      out.push(HEAD);
    } else if (ev.t === "h") this.headersHeld[i] = true;
    const last = ev.t === "tr" || (ev.t === "d" && ev.end);
    if (r.body !== undefined || (last && ev.t === "d" && r.action === "continue")) {
      out.push({ t: "d", c: r.body ?? EMPTY, end: last && r.trailers === undefined && ev.t === "d" && r.action === "continue" });
    }
    if (r.trailers !== undefined) out.push({ t: "tr", tr: mutable(r.trailers) }, { t: "d", c: EMPTY, end: true });
    else if (ev.t === "tr" && r.action === "continue") out.push({ t: "d", c: EMPTY, end: true });
    return this.passAll(from + 1, out, 0, eos);
  }

  /** Passes `out[k..]` on from stage `from`, one after the other. */
  private passAll(from: number, out: readonly Ev[], k: number, eos: boolean): void | Promise<void> {
    for (; k < out.length; k++) {
      const p = this.pass(from, out[k]!, eos);
      if (p !== undefined) {
        const next = k + 1;
        return next < out.length ? p.then(() => this.passAll(from, out, next, eos)) : p;
      }
    }
  }

  /** pass() for a caller that wants one promise and no exception. */
  private passSafely(ev: Ev, eos: boolean): Promise<void> | undefined {
    let p: void | Promise<void>;
    try {
      p = this.pass(0, ev, eos);
    } catch (e) {
      this.internalError(e);
      return undefined;
    }
    return p === undefined ? undefined : p.catch((e: unknown) => this.internalError(e));
  }

  private internalError(e: unknown): void {
    this.end({ kind: "local", reply: { status: 500, body: "", details: `wasm_internal_error: ${String(e)}` } });
  }

  private deliver(ev: Ev): void {
    if (ev.t === "h") {
      // With a body whose first event is not through the chain yet, the head waits for it, at most
      // until the next event-loop turn: head and body then leave in one write (one tunnel frame)
      // instead of two, and a body still on its way does not hold the head back.
      if (this.bodyPassed || this.released!.empty) this.releaseHead();
      else {
        this.headReady = true;
        setImmediate(() => this.releaseHead());
      }
      return;
    }
    this.released!.push(ev);
  }

  private releaseHead(): void {
    const resolve = this.resolveHead;
    this.resolveHead = undefined;
    resolve?.(this.forwardOutcome(this.released!));
  }

  /** A body event went through every stage. */
  private bodyEventPassed(): void {
    this.bodyPassed = true;
    if (this.headReady) this.releaseHead();
  }

  private end(t: Terminal): void {
    if (this.terminal) return;
    this.terminal = t;
    const resolve = this.resolveHead;
    this.resolveHead = undefined;
    if (resolve) resolve(t);
    else this.released?.fail(t.kind === "local" ? new PluginReplyError(t.reply) : new Error("a plugin reset the stream"));
  }

  protected runFlow(body: BodySource): Promise<PluginOutcome> {
    this.released = new ReleasedBody(body.empty);
    const head = new Promise<PluginOutcome>((resolve) => (this.resolveHead = resolve));
    const first = this.passSafely(HEAD, body.empty);
    if (first !== undefined) this.track(first);
    if (!body.empty) {
      const enqueue = (ev: Ev): void => {
        body.pause();
        this.sourcePaused = true;
        const after = (): void => {
          this.bodyEventPassed();
          if (!this.released!.full && !this.terminal) this.resumeSource(body);
        };
        if (this.busy === 0) {
          // nothing ahead of it: straight through while the stages answer at once (the source
          // is resumed from a microtask, not from inside its own callback)
          const p = this.passSafely(ev, false);
          if (p === undefined) queueMicrotask(after);
          else this.track(p.then(after));
        } else this.track(this.chainTail.then(() => this.passSafely(ev, false)).then(after));
      };
      this.released.onWant = () => this.resumeSource(body);
      // The last chunk is held for a few microtasks (no event-loop turn): when the end follows at
      // once (a small body read to its end), chunk and end reach each plugin in one call — one VM
      // round trip, not two. A body still streaming is released unchanged.
      let held: Uint8Array | undefined;
      let holdId = 0;
      const release = (): void => {
        const c = held;
        held = undefined;
        if (c) enqueue({ t: "d", c, end: false });
      };
      const releaseLater = (id: number, hops: number): void => {
        queueMicrotask(() => {
          if (id !== holdId) return;
          if (hops > 0) releaseLater(id, hops - 1);
          else release();
        });
      };
      body.start({
        data: (c) => {
          if (held) release();
          held = c;
          releaseLater(++holdId, 3);
        },
        end: (t) => {
          holdId++;
          const c = held;
          held = undefined;
          if (t) {
            if (c) enqueue({ t: "d", c, end: false });
            enqueue({ t: "tr", tr: t });
          } else enqueue({ t: "d", c: c ?? EMPTY, end: true });
        },
        error: (e) => {
          if (this.busy === 0) this.released!.fail(e);
          else this.track(this.chainTail.then(() => this.released!.fail(e)));
        },
      });
    }
    return head;
  }

  /** An event still on its way through the stages; later events queue behind it. */
  private track(p: Promise<void>): void {
    this.busy++;
    this.chainTail = p.then(() => {
      this.busy--;
    });
  }

  private resumeSource(body: BodySource): void {
    if (!this.sourcePaused || this.terminal) return;
    this.sourcePaused = false;
    body.resume();
  }
}

/** The request through AUTHN and AUTHZ plugins, the built-in authorization, then the rest. */
export class RequestFlow extends Flow {
  private req: HookRequest | undefined;
  private authorizeFn: (() => LocalReply | undefined) | undefined;

  constructor(
    n: number,
    phaseOf: (i: number) => PluginPhase,
    private readonly streamOf: (i: number) => WasmStream | undefined,
    private readonly unusable: (i: number) => PhaseResult,
  ) {
    const stages: Stage[] = [];
    let authzPlaced = false;
    for (let i = 0; i < n; i++) {
      const phase = phaseOf(i);
      if (!authzPlaced && phase !== "AUTHN" && phase !== "AUTHZ") {
        stages.push({ kind: "authz" });
        authzPlaced = true;
      }
      stages.push({ kind: "plugin", i });
    }
    if (!authzPlaced) stages.push({ kind: "authz" });
    super(stages, n);
  }

  run(req: HookRequest, body: BodySource, authorize: () => LocalReply | undefined): Promise<PluginOutcome> {
    this.req = req;
    this.authorizeFn = authorize;
    return this.runFlow(body);
  }

  protected headersFor(): HeaderPairs {
    const r = this.req!;
    return [[":method", r.method], [":path", r.path], [":authority", r.authority], [":scheme", "http"], ...r.headers];
  }

  protected applyReleasedHeaders(h: Pairs): void {
    const r = this.req!;
    // h is a new list (never r.headers); its pairs are the request's own or the plugin's new ones
    const out = r.headers;
    out.length = 0;
    for (let i = 0; i < h.length; i++) {
      const p = h[i]!;
      const k = p[0];
      if (k.charCodeAt(0) !== COLON) out.push(p as [string, string]);
      else if (k === ":method") r.method = p[1];
      else if (k === ":path") r.path = p[1];
      else if (k === ":authority") r.authority = p[1];
    }
  }

  protected call(i: number, ev: Ev, headers: HeaderPairs | undefined, eos: boolean): Promise<PhaseResult> | PhaseResult {
    const s = this.streamOf(i);
    if (!s) {
      const u = this.unusable(i);
      if (u.action !== "continue") return u;
      // FAIL_OPEN without a VM: pass the event through unchanged
      return ev.t === "h" ? { action: "continue", headers: headers! } : ev.t === "d" ? { action: "continue", body: ev.c } : { action: "continue", trailers: ev.tr };
    }
    return phaseOf(s, 0, ev, headers, eos);
  }

  protected authorize(): LocalReply | undefined {
    return this.authorizeFn?.();
  }

  protected forwardOutcome(body: BodySource): PluginOutcome {
    return { kind: "forward", body };
  }
}

/** The response back through the plugins that saw the request, last one first. */
export class ResponseFlow extends Flow {
  private status = 0;
  private headers: HeaderPairs = [];

  constructor(
    n: number,
    private readonly streamOf: (i: number) => WasmStream | undefined,
    private readonly unusable: (i: number) => PhaseResult | undefined,
  ) {
    const stages: Stage[] = [];
    for (let i = n - 1; i >= 0; i--) stages.push({ kind: "plugin", i });
    super(stages, n);
  }

  run(status: number, headers: HeaderPairs, body: BodySource): Promise<PluginOutcome> {
    this.status = status;
    this.headers = headers;
    return this.runFlow(body);
  }

  protected headersFor(): HeaderPairs {
    return [[":status", String(this.status)], ...this.headers];
  }

  protected applyReleasedHeaders(h: Pairs): void {
    const out = this.headers;
    out.length = 0;
    for (let i = 0; i < h.length; i++) {
      const p = h[i]!;
      if (p[0].charCodeAt(0) !== COLON) out.push(p as [string, string]);
      else if (p[0] === ":status") {
        const n = Number(p[1]);
        if (Number.isInteger(n) && n >= 100 && n <= 999) this.status = n;
      }
    }
  }

  protected call(i: number, ev: Ev, headers: HeaderPairs | undefined, eos: boolean): Promise<PhaseResult> | PhaseResult | undefined {
    const u = this.unusable(i);
    if (u) return u.action === "continue" ? undefined : u;
    const s = this.streamOf(i);
    if (!s) return undefined;
    return phaseOf(s, 1, ev, headers, eos);
  }

  protected authorize(): undefined {
    return undefined;
  }

  protected forwardOutcome(body: BodySource): PluginOutcome {
    return { kind: "forward", body, status: this.status };
  }
}
