// One request through the waypoint, whatever protocol carried it: trust and forwarding headers,
// L7 authorization, HTTPRoute matching and filters, mirrors, endpoint choice (least request,
// passive ejection), retries and timeouts, the response back through the route's filters, then
// one metric sample and one access-log line. The phases are named in DESIGN.md; plugins hook
// into them through `RequestHooks`.
import { randomUUID } from "node:crypto";
import type { MeshState, Service, Workload } from "../config/index.ts";
import { ErrorCodes, MeshError, asMeshError, l7FailureFor, type ErrorCode } from "../errors/index.ts";
import type { PolicyEngine, PolicyTarget } from "../policy/index.ts";
import { ISTIO_DEFAULT_RETRY, applyRequestFilters, applyResponseFilters, pickBackend, type HeaderOp, type MirrorTarget, type RetryPolicy, type RouteTable, type RouteTimeouts } from "../routes/index.ts";
import { httpLabelsFor, requestLog, type Logger, type MeshMetrics, type RequestRecord } from "../telemetry/index.ts";
import { serviceEndpoints, type Endpoint, type EndpointBalancer } from "./endpoints.ts";
import { BufferedBody, headerValue, headerValues, type BodySource, type HeaderPairs, type L7Request, type L7Responder, type UpstreamResponse } from "./exchange.ts";
import { normalizeRequestPath } from "./normalize.ts";
import { ReplayableBody } from "./replay.ts";
import { HeaderMap, RESPONSE_HOP_BY_HOP, UNTRUSTED, UNTRUSTED_PREFIXES, editPairs, findService, nextTraceparent, retriableFailure, retriableStatus, sleep } from "./request-helpers.ts";
import { PluginReplyError, type HookRequest, type LocalReply, type RequestHooks, type RequestOrigin, type RequestPlugins } from "./plugin-api.ts";
import type { UpstreamCall, UpstreamHead } from "./upstream.ts";

type TryOutcome =
  | { readonly kind: "response"; readonly response: UpstreamResponse & { readonly peerIdentity?: string }; release(): void; discard(): void }
  | { readonly kind: "error"; readonly error: MeshError };

export interface UpstreamClients {
  request(protocol: "h1" | "h2", ep: Endpoint, head: UpstreamHead, body: BodySource): UpstreamCall;
}

export interface PipelineContext {
  readonly state: () => MeshState;
  readonly self: () => Workload;
  readonly routes: () => RouteTable;
  readonly policies: () => PolicyEngine;
  /** Gateway targets of L7 policies: the waypoint's own service names. */
  readonly gateways: () => readonly string[];
  readonly balancer: EndpointBalancer;
  readonly upstream: UpstreamClients;
  readonly metrics: MeshMetrics;
  readonly log: Logger;
  readonly accessLog: Logger;
  readonly hooks?: () => RequestHooks | undefined;
  readonly rand?: () => number;
}

export class RequestPipeline {
  constructor(private readonly ctx: PipelineContext) {}

  /** Resolves once the request is answered and recorded (metrics, access log, plugins' completion). */
  async handle(origin: RequestOrigin, req: L7Request, res: L7Responder): Promise<void> {
    const r = new RequestRun(this.ctx, origin, req, res);
    try {
      await r.run();
    } catch (e) {
      r.failed(asMeshError(e));
    }
    await r.recorded;
  }
}

/** The state of one request; reports exactly once. */
class RequestRun {
  private readonly startTime = Date.now();
  private readonly t0 = performance.now();
  private readonly headers: HeaderPairs;
  private service: Service | undefined;
  private endpoint: Endpoint | undefined;
  private upstreamPeer: string | undefined;
  private routeName: string | undefined;
  /** The service port the request was routed to (for the cluster name plugins see). */
  private servicePort: number | undefined;
  private flags: string[] = [];
  private details = "via_upstream";
  private responseHeaderBytes = 0;
  private bodyOut = 0;
  private body: ReplayableBody;
  private reported = false;
  private downstreamGone = false;
  private call: UpstreamCall | undefined;
  private upstreamServiceTimeMs: number | undefined;
  private readonly hookReq: HookRequest;
  private plugins: RequestPlugins | undefined;

  constructor(
    private readonly ctx: PipelineContext,
    private readonly origin: RequestOrigin,
    private readonly req: L7Request,
    private readonly res: L7Responder,
  ) {
    this.service = origin.service;
    this.body = new ReplayableBody(req.body);
    this.headers = [];
    for (const p of req.headers) {
      if (UNTRUSTED.has(p[0]) || UNTRUSTED_PREFIXES.some((x) => p[0].startsWith(x))) continue;
      this.headers.push(p);
    }
    this.hookReq = { origin, method: req.method, path: req.path, authority: req.authority, headers: this.headers, protocol: req.protocol };
    res.onAbort(() => {
      this.downstreamGone = true;
      this.call?.cancel(new MeshError(ErrorCodes.DOWNSTREAM_CLOSED, "the client went away"));
    });
  }

  private get rand(): () => number {
    return this.ctx.rand ?? Math.random;
  }

  async run(): Promise<void> {
    const { ctx, origin, req } = this;
    const h = this.headers;
    // Methods are case-sensitive tokens; a lower-case spelling of a method a policy names would
    // slip past it while many servers treat it as the same method. Refused, as Istio does.
    if (/[a-z]/.test(req.method)) return this.localReply({ status: 400, body: "invalid method", details: "invalid_method" });
    // One spelling of the path for policy, routing and the backend (Istio's default normalization).
    const normalized = normalizeRequestPath(req.path);
    if (!normalized.ok) return this.localReply({ status: 400, body: normalized.why, details: "invalid_path" });
    this.hookReq.path = normalized.path;
    // Forwarding headers: the tunnel's source is appended; ids and trace context are the proxy's.
    const xff = headerValues(h, "x-forwarded-for");
    editPairs(h, [{ op: "set", name: "x-forwarded-for", value: xff ? `${xff}, ${origin.sourceIp}` : origin.sourceIp }]);
    if (!headerValue(h, "x-forwarded-proto")) h.push(["x-forwarded-proto", req.scheme]);
    if (!headerValue(h, "x-request-id")) h.push(["x-request-id", randomUUID()]);
    editPairs(h, [{ op: "set", name: "traceparent", value: nextTraceparent(headerValue(h, "traceparent")) }]);

    // ---- plugins and L7 authorization: the principal is the verified peer (or vouched source), never a header ----
    const svc0 = origin.service;
    const early = svc0
      ? ctx.routes().match({ method: req.method, path: this.hookReq.path, host: this.hookReq.authority, headers: new HeaderMap(h) }, { namespace: svc0.namespace, name: svc0.name, hostname: svc0.hostname }, origin.targetPort)
      : undefined;
    this.plugins = ctx.hooks?.()?.forRequest(origin, early?.route.key);
    if (this.plugins) {
      // (awaited only when it is a promise: a resumption costs ~2 µs on a cold core, and the
      // outcome is usually known at once, every plugin's VM answering on this thread)
      const pending = this.plugins.request(this.hookReq, req.body, () => this.authorize());
      const out = pending instanceof Promise ? await pending : pending;
      if (out.kind === "local") return this.localReply(out.reply);
      if (out.kind === "reset") return this.fail(new MeshError(ErrorCodes.DOWNSTREAM_CLOSED, "a plugin reset the request"));
      this.body = new ReplayableBody(out.body);
    } else {
      const denied = this.authorize();
      if (denied) return this.localReply(denied);
    }

    // ---- routing ----
    const state = ctx.state();
    let servicePort = origin.targetPort;
    let upstreamPath = this.hookReq.path;
    let upstreamAuthority = this.hookReq.authority;
    let responseOps: HeaderOp[] = [];
    let retry: RetryPolicy = ISTIO_DEFAULT_RETRY;
    let timeouts: RouteTimeouts = {};
    let mirrors: readonly MirrorTarget[] = [];
    const svc = origin.service;
    const selection = svc
      ? ctx.routes().match({ method: this.hookReq.method, path: upstreamPath, host: upstreamAuthority, headers: new HeaderMap(h) }, { namespace: svc.namespace, name: svc.name, hostname: svc.hostname }, origin.targetPort)
      : undefined;
    if (selection) {
      this.routeName = `${selection.route.key}.${selection.ruleIndex}`;
      retry = selection.rule.retry;
      timeouts = selection.rule.timeouts;
      const backend = selection.rule.backendRefs.length > 0 ? pickBackend(selection.rule, this.rand) : undefined;
      const filters = [...selection.rule.filters, ...(backend?.filters ?? [])];
      const result = applyRequestFilters(filters, { path: upstreamPath, host: upstreamAuthority, port: origin.targetPort }, selection.match);
      if (result.redirect) {
        return this.localReply({ status: result.redirect.statusCode, body: "", headers: [["location", result.redirect.location]], details: "direct_response" });
      }
      if (!backend) return this.fail(new MeshError(ErrorCodes.ROUTE_BACKEND_MISSING, `route ${this.routeName} has no backend`));
      const target = findService(state, backend.namespace, backend.name);
      if (!target) return this.fail(new MeshError(ErrorCodes.ROUTE_BACKEND_MISSING, `backend service ${backend.namespace}/${backend.name} of route ${this.routeName} is not in the mesh`));
      this.service = target;
      servicePort = backend.port;
      upstreamPath = result.path;
      upstreamAuthority = result.host;
      editPairs(h, result.headers);
      responseOps = applyResponseFilters(filters);
      mirrors = result.mirrors;
    }

    this.servicePort = servicePort;
    const endpoints = (): Endpoint[] => {
      if (this.service) return serviceEndpoints(ctx.state(), this.service, servicePort);
      const w = origin.workload;
      return w ? [{ workload: w, ip: origin.targetIp, port: origin.targetPort, key: `${origin.targetIp}:${origin.targetPort}` }] : [];
    };
    const head: UpstreamHead = { method: this.hookReq.method, path: upstreamPath, authority: upstreamAuthority, scheme: req.scheme, headers: h };
    const protocol = req.protocol === "HTTP/2" ? "h2" : "h1";
    for (const m of mirrors) this.mirror(m, head, protocol);

    // ---- upstream, with retries ----
    const requestDeadline = timeouts.requestMs ? this.t0 + timeouts.requestMs : undefined;
    const tried = new Set<string>();
    let lastError: MeshError | undefined;
    for (let attempt = 0; attempt <= retry.attempts; attempt++) {
      if (attempt > 0) {
        this.addFlag("URX");
        // Envoy's default backoff: 25 ms base, exponential, full jitter.
        const base = retry.backoffMs ?? 25;
        await sleep(Math.floor(this.rand() * base * 2 ** (attempt - 1)));
      }
      if (this.downstreamGone) return this.fail(new MeshError(ErrorCodes.DOWNSTREAM_CLOSED, "the client went away"));
      const ep = ctx.balancer.pick(endpoints(), this.rand, tried);
      if (!ep) return this.fail(new MeshError(ErrorCodes.NO_HEALTHY_UPSTREAM, `no healthy endpoint for ${this.service?.hostname ?? origin.targetIp}:${servicePort}`));
      tried.add(ep.key);
      this.endpoint = ep;
      const outcome = await this.attempt(ep, protocol, head, timeouts, requestDeadline);
      if (outcome.kind === "response") {
        const status = outcome.response.status;
        const retriable = retriableStatus(status, retry);
        if (attempt < retry.attempts && retriable && this.body.replayable && !this.deadlinePassed(requestDeadline)) {
          outcome.discard();
          continue;
        }
        // URX: retries ran out on a response that would have been retried (Envoy's router).
        if (!(retriable && attempt > 0)) this.flags = this.flags.filter((f) => f !== "URX");
        return this.respond(outcome.response, responseOps, outcome.release);
      }
      // A plugin that answered while the body streamed: its reply, not an upstream failure.
      const pluginFailure = this.body.failed;
      if (pluginFailure instanceof PluginReplyError && !this.res.headSent) {
        return this.localReply(pluginFailure.reply);
      }
      lastError = outcome.error;
      if (lastError.code === ErrorCodes.UPSTREAM_TIMEOUT || lastError.code === ErrorCodes.DOWNSTREAM_CLOSED) break;
      if (!(attempt < retry.attempts && this.body.replayable && retriableFailure(lastError, retry) && !this.deadlinePassed(requestDeadline))) break;
    }
    return this.fail(lastError ?? new MeshError(ErrorCodes.NO_HEALTHY_UPSTREAM, "no endpoint answered"));
  }

  /** The built-in L7 AuthorizationPolicy check; a reply when denied. */
  private authorize(): LocalReply | undefined {
    const { ctx, origin } = this;
    const self = ctx.self();
    const targets: PolicyTarget[] = ctx.gateways().map((name) => ({ kind: "Gateway", name, namespace: self.namespace }));
    for (const s of this.policyServices()) targets.push({ kind: "Service", name: s.name, namespace: s.namespace });
    const decision = ctx.policies().evaluate(
      self,
      {
        sourceIp: origin.sourceIp,
        sourcePrincipal: origin.principal,
        destinationIp: origin.targetIp,
        destinationPort: origin.targetPort,
        method: this.hookReq.method,
        path: this.hookReq.path,
        host: this.hookReq.authority,
        headers: new HeaderMap(this.headers),
        remoteIp: origin.sourceIp,
      },
      "l7",
      targets,
    );
    if (decision.allowed) return undefined;
    const f = l7FailureFor(ErrorCodes.AUTHZ_DENIED);
    return { status: f.status, body: f.body, details: `rbac_access_denied_matched_policy[${decision.policy ?? "none"}]` };
  }

  private deadlinePassed(deadline: number | undefined): boolean {
    return deadline !== undefined && performance.now() >= deadline;
  }

  /** Services whose Service-targeted policies apply: the addressed one, or those of the addressed pod served here. */
  private policyServices(): Service[] {
    if (this.origin.service) return [this.origin.service];
    const w = this.origin.workload;
    if (!w) return [];
    const out: Service[] = [];
    const state = this.ctx.state();
    for (const key of w.services.keys()) {
      const s = state.services.get(key);
      if (s) out.push(s);
    }
    return out;
  }

  private addFlag(f: string): void {
    if (!this.flags.includes(f)) this.flags.push(f);
  }

  /** One try: resolves with the response head (body still streaming) or the failure. */
  private async attempt(ep: Endpoint, protocol: "h1" | "h2", head: UpstreamHead, timeouts: RouteTimeouts, requestDeadline: number | undefined): Promise<TryOutcome> {
    const ctx = this.ctx;
    ctx.balancer.begin(ep);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      ctx.balancer.finish(ep);
      if (timer) clearTimeout(timer);
    };
    const tryStart = performance.now();
    const call = ctx.upstream.request(protocol, ep, head, this.body.reader());
    this.call = call;
    // The per-try and whole-request budgets run until the response is complete (Envoy's semantics).
    const budgets: number[] = [];
    if (timeouts.backendRequestMs) budgets.push(timeouts.backendRequestMs);
    if (requestDeadline !== undefined) budgets.push(Math.max(0, requestDeadline - performance.now()));
    if (budgets.length > 0) {
      const ms = Math.min(...budgets);
      timer = setTimeout(() => call.cancel(new MeshError(ErrorCodes.UPSTREAM_TIMEOUT, `upstream did not complete the response within ${Math.round(ms)} ms`)), ms);
    }
    try {
      const response = await call.response;
      this.upstreamPeer = response.peerIdentity ?? call.peerIdentity;
      this.upstreamServiceTimeMs = performance.now() - tryStart;
      ctx.balancer.connectSucceeded(ep);
      return {
        kind: "response",
        response,
        release,
        discard: () => {
          this.body.detach();
          call.cancel(new MeshError(ErrorCodes.UPSTREAM_RESET, "response discarded for a retry"));
          release();
        },
      };
    } catch (e) {
      release();
      this.body.detach();
      const err = asMeshError(e, ErrorCodes.UPSTREAM_RESET);
      if (err.code === ErrorCodes.UPSTREAM_CONNECT && ctx.balancer.connectFailed(ep)) {
        ctx.log.warn("endpoint ejected after consecutive connect failures", { endpoint: ep.key, workload: ep.workload.name });
      }
      ctx.log.debug("upstream try failed", { endpoint: ep.key, code: err.code, error: err.message });
      return { kind: "error", error: err };
    }
  }

  /** Streams the upstream response to the client through the route's response filters. */
  private async respond(up: UpstreamResponse, responseOps: HeaderOp[], release: () => void): Promise<void> {
    const headers: HeaderPairs = [];
    for (const p of up.headers) if (!RESPONSE_HOP_BY_HOP.has(p[0])) headers.push(p);
    editPairs(headers, responseOps);
    let status = up.status;
    let upBody = up.body;
    if (this.plugins) {
      const pending = this.plugins.response(status, headers, up.body);
      const out = pending instanceof Promise ? await pending : pending;
      if (out.kind !== "forward") {
        this.call?.cancel(new MeshError(ErrorCodes.UPSTREAM_RESET, "response replaced by a plugin"));
        release();
        if (out.kind === "local") return this.localReply(out.reply);
        return this.fail(new MeshError(ErrorCodes.DOWNSTREAM_CLOSED, "a plugin reset the response"));
      }
      upBody = out.body;
      if (out.status !== undefined) status = out.status;
    }
    this.responseHeaderBytes = up.headerBytes;
    const res = this.res;
    const noBody = upBody.empty || this.req.method === "HEAD";
    res.head(status, headers, noBody);
    if (noBody) {
      if (!upBody.empty) upBody.start({ data() {}, end: release, error: release });
      else release();
      return this.report(status);
    }
    await new Promise<void>((resolve) => {
      res.onDrain(() => upBody.resume());
      upBody.start({
        data: (c) => {
          this.bodyOut += c.byteLength;
          if (!res.write(c)) upBody.pause();
        },
        end: (trailers) => {
          res.end(trailers);
          release();
          resolve();
        },
        error: (e) => {
          const err = asMeshError(e, ErrorCodes.UPSTREAM_RESET);
          this.addFlag(err.code === ErrorCodes.UPSTREAM_TIMEOUT ? "UT" : err.code === ErrorCodes.DOWNSTREAM_CLOSED ? "DC" : "UPE");
          res.reset();
          release();
          resolve();
        },
      });
    });
    this.report(status, this.flags.some((f) => f === "UPE" || f === "UT" || f === "DC") ? "upstream response did not complete" : undefined);
  }

  /** Copies the request to a mirror backend; its response is dropped (Envoy appends "-shadow" to the host). */
  private mirror(m: MirrorTarget, head: UpstreamHead, protocol: "h1" | "h2"): void {
    if (this.rand() * 100 >= m.percent) return;
    const svc = findService(this.ctx.state(), m.backendRef.namespace, m.backendRef.name);
    if (!svc) return;
    const ep = this.ctx.balancer.pick(serviceEndpoints(this.ctx.state(), svc, m.backendRef.port), this.rand);
    if (!ep) return;
    const host = head.authority.replace(/^([^:]+)(:\d+)?$/, (_, h: string, p?: string) => `${h}-shadow${p ?? ""}`);
    const headers = head.headers.slice();
    void this.body.whenComplete().then(() => {
      const chunks = this.body.bufferedChunks;
      if (this.body.empty || !chunks) {
        if (!this.body.empty) return; // too large to copy: not mirrored
      }
      const call = this.ctx.upstream.request(protocol, ep, { ...head, authority: host, headers }, new BufferedBody(chunks ?? []));
      call.response.then(
        (r) => r.body.start({ data() {}, end() {}, error() {} }),
        () => {},
      );
    });
  }

  private localReply(reply: LocalReply): void {
    this.details = reply.details ?? "direct_response";
    this.drainRequestBody();
    const body = new TextEncoder().encode(reply.body);
    const headers: HeaderPairs = (reply.headers ?? []).filter(([k]) => k !== "content-length" && k !== "transfer-encoding");
    if (body.byteLength > 0 && !headers.some(([k]) => k === "content-type")) headers.push(["content-type", "text/plain"]);
    // The whole body is known: say its length rather than chunk it.
    if (body.byteLength > 0) headers.push(["content-length", String(body.byteLength)]);
    this.res.head(reply.status, headers, body.byteLength === 0);
    if (body.byteLength > 0) {
      this.res.write(body);
      this.res.end();
    }
    this.bodyOut = body.byteLength;
    this.report(reply.status);
  }

  private drainRequestBody(): void {
    if (this.req.body.empty) return;
    // Read and drop what the client still sends, so the connection stays usable (bounded by the front end).
    this.body.reader().start({ data() {}, end() {}, error() {} });
  }

  private fail(err: MeshError): void {
    const f = l7FailureFor(err.code as ErrorCode);
    this.addFlag(f.flag);
    this.flags = this.flags.filter((x) => x !== "-");
    this.details = f.details;
    if (err.code === ErrorCodes.DOWNSTREAM_CLOSED || this.res.headSent) {
      this.res.reset();
      return this.report(this.res.headSent ? 0 : 0, err.message);
    }
    this.drainRequestBody();
    const body = new TextEncoder().encode(f.body);
    this.res.head(f.status, body.byteLength ? [["content-type", "text/plain"], ["content-length", String(body.byteLength)]] : [], body.byteLength === 0);
    if (body.byteLength) {
      this.res.write(body);
      this.res.end();
    }
    this.bodyOut = body.byteLength;
    this.report(f.status, err.message);
  }

  /** Called by the pipeline when something threw outside the expected paths. */
  failed(err: MeshError): void {
    if (this.reported) return;
    this.ctx.log.error("waypoint request failed", { code: err.code, error: err.message });
    if (this.res.headSent) {
      this.res.reset();
      this.report(0, err.message);
    } else this.fail(err);
  }

  /** Settles once report() has recorded the request. */
  recorded: Promise<void> | undefined;

  /**
   * Records the request once: metrics, the access-log line, the plugins' completion. They run after
   * this event-loop turn: Bun's HTTP/2 layer sends the frames written in a turn when it ends, so
   * work done here synchronously would hold back the response's last bytes.
   */
  private report(code: number, error?: string): void {
    if (this.reported) return;
    this.reported = true;
    const durationMs = performance.now() - this.t0;
    this.recorded = new Promise<void>((resolve) =>
      setImmediate(() => {
        try {
          this.record(code, durationMs, error);
        } catch (e) {
          this.ctx.log.error("recording a request failed", { error: asMeshError(e).message });
        }
        resolve();
      }),
    );
  }

  private record(code: number, durationMs: number, error: string | undefined): void {
    const { ctx, origin, req } = this;
    const flags = this.flags.filter((f) => f && f !== "-").join(",") || "-";
    const destination = this.endpoint?.workload ?? origin.workload;
    const grpc = (headerValue(req.headers, "content-type") ?? "").startsWith("application/grpc");
    ctx.metrics.requestCompleted(
      httpLabelsFor({
        reporter: "waypoint",
        mtls: true,
        requestProtocol: grpc ? "grpc" : "http",
        responseCode: code,
        responseFlags: flags,
        ...(origin.source ? { source: origin.source } : {}),
        sourcePrincipal: origin.principal,
        ...(destination ? { destination } : {}),
        ...(this.upstreamPeer ? { destinationPrincipal: this.upstreamPeer } : {}),
        ...(this.service ? { destinationService: this.service } : {}),
      }),
      { durationMs, requestBytes: req.headerBytes + this.body.received, responseBytes: this.responseHeaderBytes + this.bodyOut },
    );
    const h = this.headers;
    const record: RequestRecord = {
      startTime: this.startTime,
      method: req.method,
      path: req.path,
      protocol: req.protocol,
      responseCode: code,
      responseFlags: flags,
      responseCodeDetails: this.details,
      bytesReceived: this.body.received,
      bytesSent: this.bodyOut,
      durationMs,
      ...(this.upstreamServiceTimeMs !== undefined ? { upstreamServiceTimeMs: this.upstreamServiceTimeMs } : {}),
      xForwardedFor: headerValue(h, "x-forwarded-for"),
      userAgent: headerValue(h, "user-agent"),
      requestId: headerValue(h, "x-request-id"),
      traceparent: headerValue(h, "traceparent"),
      authority: req.authority,
      ...(this.endpoint ? { upstreamHost: this.endpoint.key, dstWorkload: this.endpoint.workload.name, dstNamespace: this.endpoint.workload.namespace } : {}),
      ...(this.upstreamPeer ? { dstIdentity: this.upstreamPeer } : {}),
      ...(this.service ? { dstService: this.service.hostname } : {}),
      downstreamRemoteAddress: `${origin.sourceIp}:${origin.sourcePort}`,
      downstreamLocalAddress: `${origin.targetIp}:${origin.targetPort}`,
      ...(this.routeName ? { routeName: this.routeName } : {}),
      srcIdentity: origin.principal,
      ...(origin.source ? { srcWorkload: origin.source.name, srcNamespace: origin.source.namespace } : {}),
      ...(error ? { error } : {}),
    };
    requestLog(ctx.accessLog, record);
    if (this.plugins) {
      const ep = this.endpoint;
      const svc = this.service;
      this.plugins.done({
        details: this.details,
        flags,
        ...(ep ? { upstream: { address: ep.ip, port: ep.port, ...(this.upstreamPeer ? { principal: this.upstreamPeer } : {}) } } : {}),
        ...(this.routeName ? { routeName: this.routeName } : {}),
        ...(svc && this.servicePort !== undefined ? { clusterName: `inbound-vip|${this.servicePort}|http|${svc.hostname}` } : {}),
      });
    }
  }
}
