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
// "hd": the headers with the body's first chunk, for a plugin to see in one VM call (see runFlow)
type Ev =
  | { readonly t: "h" }
  | { readonly t: "d"; readonly c: Uint8Array; readonly end: boolean }
  | { readonly t: "hd"; readonly c: Uint8Array; readonly end: boolean }
  | { readonly t: "tr"; readonly tr: HeaderPairs };

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
    if (ev.t === "hd") return s.phaseNow(dir, 3, headers, ev.c, ev.end);
    if (ev.t === "d") return s.phaseNow(dir, 1, undefined, ev.c, ev.end);
    return s.phaseNow(dir, 2, ev.tr, undefined, true);
  }
  if (ev.t === "h") return dir === 0 ? s.requestHeaders(headers!, eos) : s.responseHeaders(headers!, eos);
  if (ev.t === "hd") throw new Error("headers with body for a stream without phaseNow"); // Flow.pass splits those
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

/** Cuts `list` to its first `n` entries (setting an array's length is a slow path in JavaScriptCore, even when unchanged). */
function keepFirst(list: HeaderPairs, n: number): void {
  if (list.length !== n) list.length = n;
}

/** `pseudo` followed by the message's headers (a loop: spreading an array goes through its iterator). */
function withPseudoHeaders(pseudo: HeaderPairs, headers: HeaderPairs): HeaderPairs {
  for (let i = 0; i < headers.length; i++) pseudo.push(headers[i]!);
  return pseudo;
}

abstract class Flow {
  protected headersHeld: boolean[];
  protected terminal: Terminal | undefined;
  private released: ReleasedBody | undefined;
  /** The head's outcome is not given yet. */
  private headOpen = true;
  /** The head's outcome when it was settled before runFlow returned (no promise needed). */
  private headEarly: PluginOutcome | undefined;
  private resolveHead: ((o: PluginOutcome) => void) | undefined;
  /** Settles after the last event passed asynchronously; set while `busy` > 0. */
  private chainTail: Promise<void> | undefined;
  /** Events passed asynchronously and not finished. */
  private busy = 0;
  private sourcePaused = false;
  /** The head went through every stage without the body, and waits for the body's first event. */
  private headReady = false;
  /** runFlow has not returned yet. */
  private starting = false;
  /** The head went through the stages without the body, after waiting a turn for it. */
  private headAlone = false;
  private bodyPassed = false;

  constructor(
    protected readonly stages: readonly Stage[],
    private readonly pluginCount: number,
  ) {
    this.headersHeld = new Array(pluginCount).fill(false);
  }

  protected abstract headersFor(i: number): HeaderPairs | undefined;
  /** Applies headers a plugin released from index `from` on: the pairs before it are unchanged. */
  protected abstract applyReleasedHeaders(h: Pairs, from: number): void;
  /** How many pseudo-headers lead the lists headersFor() makes. */
  protected abstract readonly pseudoCount: number;
  /** The last list headersFor() made, and how many message headers it was made from. */
  private given: HeaderPairs | undefined;
  private givenFrom = -1;
  protected abstract messageHeaderCount(): number;
  protected abstract call(i: number, ev: Ev, headers: HeaderPairs | undefined, eos: boolean): Promise<PhaseResult> | PhaseResult | undefined;
  /** Plugin `i`'s stream, once it has one. */
  protected abstract readonly streamOf: (i: number) => WasmStream | undefined;

  /** Plugin `i` can take the headers and the first body chunk in one call ("hd"). */
  private takesHeadWithBody(i: number): boolean {
    const s = this.streamOf(i);
    return s === undefined || typeof s.phaseNow === "function";
  }
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
        if (ev.t === "h" || ev.t === "hd") {
          const reply = this.authorize();
          if (reply) return this.end({ kind: "local", reply });
        }
        from++;
        continue;
      }
      const i = stage.i;
      if (ev.t === "hd" && !this.takesHeadWithBody(i)) return this.passAll(from, [HEAD, { t: "d", c: ev.c, end: ev.end }], 0, eos);
      let headers: HeaderPairs | undefined;
      if (ev.t === "h" || ev.t === "hd") {
        headers = this.headersFor(i);
        this.given = headers;
        this.givenFrom = this.messageHeaderCount();
      }
      const r = this.call(i, ev, headers, eos);
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
      this.applyReleasedHeaders(r.headers, this.unchangedPrefix(r.headers));
      this.headersHeld[i] = false;
      out.push(HEAD);
    } else if (ev.t === "h" || ev.t === "hd") this.headersHeld[i] = true;
    const data = ev.t === "d" || ev.t === "hd";
    const last = ev.t === "tr" || (data && ev.end);
    if (r.body !== undefined || (last && data && r.action === "continue")) {
      const d: Ev = { t: "d", c: r.body ?? EMPTY, end: last && r.trailers === undefined && data && r.action === "continue" };
      // headers and body released together go on together
      if (out.length === 1 && ev.t === "hd") out[0] = { t: "hd", c: d.c, end: d.end };
      else out.push(d);
    }
    if (r.trailers !== undefined) out.push({ t: "tr", tr: mutable(r.trailers) }, { t: "d", c: EMPTY, end: true });
    else if (ev.t === "tr" && r.action === "continue") out.push({ t: "d", c: EMPTY, end: true });
    return this.passAll(from + 1, out, 0, eos);
  }

  /**
   * How many leading pairs of released headers are the very pairs of the last list given to a
   * plugin (plugins release the pairs they kept, and the message still matches that list): those
   * need not be applied again. 0 when the pseudo-headers are not all among them.
   */
  private unchangedPrefix(h: Pairs): number {
    const g = this.given;
    if (g === undefined || this.givenFrom !== this.messageHeaderCount() || g.length !== this.givenFrom + this.pseudoCount) return 0;
    const n = Math.min(h.length, g.length);
    let k = 0;
    while (k < n && h[k] === g[k]) k++;
    return k < this.pseudoCount ? 0 : k;
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
    if (ev.t === "hd") {
      this.released!.push({ t: "d", c: ev.c, end: ev.end });
      this.bodyPassed = true;
      this.releaseHead();
      return;
    }
    if (ev.t === "h") {
      // a head that went alone after waiting a turn for the body (runFlow) waits no more
      if (this.bodyPassed || this.released!.empty || this.headAlone) this.releaseHead();
      else {
        this.headReady = true;
        // during runFlow, the body may still pass at once: runFlow schedules this if not
        if (!this.starting) this.releaseHeadSoon();
      }
      return;
    }
    this.released!.push(ev);
  }

  /**
   * With a body whose first event is not through the chain yet, the head waits for it, at most
   * until the next event-loop turn: head and body then leave in one write (one tunnel frame)
   * instead of two, and a body still on its way does not hold the head back.
   */
  private releaseHeadSoon(): void {
    setImmediate(() => this.releaseHead());
  }

  private releaseHead(): void {
    if (this.headOpen) this.settleHead(this.forwardOutcome(this.released!));
  }

  private settleHead(o: PluginOutcome): void {
    this.headOpen = false;
    const resolve = this.resolveHead;
    this.resolveHead = undefined;
    if (resolve) resolve(o);
    else this.headEarly = o;
  }

  /** A body event went through every stage. */
  private bodyEventPassed(): void {
    this.bodyPassed = true;
    if (this.headReady) this.releaseHead();
  }

  private end(t: Terminal): void {
    if (this.terminal) return;
    this.terminal = t;
    if (this.headOpen) this.settleHead(t);
    else this.released?.fail(t.kind === "local" ? new PluginReplyError(t.reply) : new Error("a plugin reset the stream"));
  }

  /** The head's outcome: a value when every stage answered at once, else a promise. */
  protected runFlow(body: BodySource): PluginOutcome | Promise<PluginOutcome> {
    this.starting = true;
    this.released = new ReleasedBody(body.empty);
    // With a body, the headers wait for its first event (at most until the next event-loop turn)
    // and go through each plugin together with it: one VM call for both, so a small message costs
    // one call per plugin and direction.
    let headWaits = !body.empty;
    const passHead = (): void => {
      headWaits = false;
      const p = this.passSafely(HEAD, body.empty);
      if (p !== undefined) this.track(p);
    };
    if (!headWaits) passHead();
    else {
      const enqueue = (first: Ev): void => {
        let ev = first;
        if (headWaits) {
          if (ev.t === "d") {
            headWaits = false;
            ev = { t: "hd", c: ev.c, end: ev.end };
          } else passHead();
        }
        body.pause();
        this.sourcePaused = true;
        const resume = (): void => {
          if (!this.released!.full && !this.terminal) this.resumeSource(body);
        };
        const after = (): void => {
          this.bodyEventPassed();
          resume();
        };
        if (this.busy === 0) {
          // nothing ahead of it: straight through while the stages answer at once (the source
          // is resumed from a microtask, not from inside its own callback)
          const p = this.passSafely(ev, false);
          if (p === undefined) {
            this.bodyEventPassed();
            queueMicrotask(resume);
          } else this.track(p.then(after));
        } else this.track(this.chainTail!.then(() => this.passSafely(ev, false)).then(after));
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
          if (headWaits) passHead();
          if (this.busy === 0) this.released!.fail(e);
          else this.track(this.chainTail!.then(() => this.released!.fail(e)));
        },
      });
      if (headWaits)
        setImmediate(() => {
          if (!headWaits || this.terminal) return;
          this.headAlone = true;
          passHead();
        });
    }
    this.starting = false;
    if (!this.headOpen) return this.headEarly!;
    if (this.headReady) this.releaseHeadSoon();
    return new Promise<PluginOutcome>((resolve) => (this.resolveHead = resolve));
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
    protected readonly streamOf: (i: number) => WasmStream | undefined,
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

  run(req: HookRequest, body: BodySource, authorize: () => LocalReply | undefined): PluginOutcome | Promise<PluginOutcome> {
    this.req = req;
    this.authorizeFn = authorize;
    return this.runFlow(body);
  }

  protected headersFor(): HeaderPairs {
    const r = this.req!;
    return withPseudoHeaders([[":method", r.method], [":path", r.path], [":authority", r.authority], [":scheme", "http"]], r.headers);
  }

  protected readonly pseudoCount = 4;
  protected messageHeaderCount(): number {
    return this.req!.headers.length;
  }

  protected applyReleasedHeaders(h: Pairs, from: number): void {
    const r = this.req!;
    // h is a new list (never r.headers); its pairs are the request's own or the plugin's new ones
    const out = r.headers;
    keepFirst(out, from === 0 ? 0 : from - this.pseudoCount);
    for (let i = from; i < h.length; i++) {
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
      if (ev.t === "h") return { action: "continue", headers: headers! };
      if (ev.t === "hd") return { action: "continue", headers: headers!, body: ev.c };
      return ev.t === "d" ? { action: "continue", body: ev.c } : { action: "continue", trailers: ev.tr };
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
    protected readonly streamOf: (i: number) => WasmStream | undefined,
    private readonly unusable: (i: number) => PhaseResult | undefined,
  ) {
    const stages: Stage[] = [];
    for (let i = n - 1; i >= 0; i--) stages.push({ kind: "plugin", i });
    super(stages, n);
  }

  run(status: number, headers: HeaderPairs, body: BodySource): PluginOutcome | Promise<PluginOutcome> {
    this.status = status;
    this.headers = headers;
    return this.runFlow(body);
  }

  protected headersFor(): HeaderPairs {
    return withPseudoHeaders([[":status", String(this.status)]], this.headers);
  }

  protected readonly pseudoCount = 1;
  protected messageHeaderCount(): number {
    return this.headers.length;
  }

  protected applyReleasedHeaders(h: Pairs, from: number): void {
    const out = this.headers;
    keepFirst(out, from === 0 ? 0 : from - this.pseudoCount);
    for (let i = from; i < h.length; i++) {
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
