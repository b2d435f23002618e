// One HBONE tunnel into the waypoint carries HTTP/1.1: each request is authorized (L7 policy with
// the HBONE peer as principal), routed (HTTPRoutes attached to the destination service, else the
// service itself), and forwarded over a fresh CONNECT stream, as the waypoint's identity, to an
// endpoint's HBONE port. Client-supplied identity headers are never trusted: the principal is the
// peer the TLS handshake verified, and the source IP is the tunnel's.
import type { MeshState, Service, Workload } from "../config/index.ts";
import { asMeshError } from "../errors/index.ts";
import { formatForwarded, type HbonePool, type InboundTunnel } from "../hbone/index.ts";
import { TunnelDuplex, createHttp1Server, http1Request, type Http1Headers, type Http1Request, type Http1Response, type Http1Server, type TlsIdentity } from "../net/index.ts";
import type { PolicyEngine, PolicyTarget } from "../policy/index.ts";
import { applyHeaderEdits, applyRequestFilters, applyResponseFilters, pickBackend, type HeaderOp, type RouteTable } from "../routes/index.ts";
import { httpLabelsFor, requestLog, type Logger, type MeshMetrics } from "../telemetry/index.ts";
import { pickWeighted } from "../ztunnel/index.ts";

export const HBONE_PORT = 15008;
/** Istio's (Envoy RBAC filter's) body for a denied request. */
export const RBAC_DENIED_BODY = "RBAC: access denied";

/** Hop-by-hop headers (RFC 9110 §7.6.1) and the ones node:http frames itself. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"]);
/** Identity a client could claim in a header; only the waypoint may state these. */
const UNTRUSTED = new Set(["x-forwarded-client-cert"]);

export interface WaypointContext {
  readonly state: () => MeshState;
  readonly self: () => Workload;
  readonly selfIp: string;
  readonly identity: () => TlsIdentity;
  readonly routes: () => RouteTable;
  readonly policies: () => PolicyEngine;
  /** Gateway targets of L7 policies: the waypoint's own service names. */
  readonly gateways: () => readonly string[];
  readonly pool: HbonePool;
  readonly metrics: MeshMetrics;
  readonly log: Logger;
  readonly accessLog: Logger;
  readonly clusterDomain: string;
  readonly openTunnels: Set<TunnelDuplex>;
}

/** Where a tunnel was addressed: a service (by VIP) or one workload (by its IP). */
interface TunnelTarget {
  readonly tunnel: InboundTunnel;
  readonly ip: string;
  readonly port: number;
  readonly service?: Service;
  readonly workload?: Workload;
}

interface Endpoint {
  readonly workload: Workload;
  readonly ip: string;
  readonly port: number;
}

type Conn = TunnelDuplex & { meshTarget?: TunnelTarget };

export class WaypointProxy {
  private readonly server: Http1Server;

  constructor(private readonly ctx: WaypointContext) {
    this.server = createHttp1Server((req, res) => {
      const target = (req.socket as unknown as Conn).meshTarget;
      if (!target) {
        res.writeHead(500).end();
        return;
      }
      this.handle(target, req, res).catch((e) => {
        this.ctx.log.error("waypoint request failed", { error: asMeshError(e).message });
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
    });
  }

  /** A CONNECT to the waypoint: resolve what it is for, then serve HTTP/1.1 inside it. */
  onTunnel(tunnel: InboundTunnel): void {
    if (tunnel.target.kind !== "ip") return tunnel.reject(400);
    const { ip, port } = tunnel.target;
    const state = this.ctx.state();
    const network = this.ctx.self().network;
    const service = state.serviceByVip(network, ip);
    const workload = service ? undefined : state.workloadByAddress(network, ip);
    if (!service && !workload) {
      this.ctx.log.debug("waypoint tunnel for an unknown destination", { authority: tunnel.authority });
      return tunnel.reject(503);
    }
    const conn: Conn = new TunnelDuplex(tunnel.accept());
    conn.meshTarget = { tunnel, ip, port, ...(service ? { service } : {}), ...(workload ? { workload } : {}) };
    this.ctx.openTunnels.add(conn);
    conn.once("close", () => this.ctx.openTunnels.delete(conn));
    conn.on("error", () => {});
    this.server.serve(conn);
  }

  private async handle(t: TunnelTarget, req: Http1Request, res: Http1Response): Promise<void> {
    const start = Date.now();
    const state = this.ctx.state();
    const method = req.method ?? "GET";
    const path = req.url ?? "/";
    const host = req.headers.host ?? t.tunnel.authority;
    const headers = lowerHeaders(req);
    const peer = t.tunnel.peer;
    const sourceIp = t.tunnel.sourceAddress;
    const srcCandidate = state.workloadByAddress(this.ctx.self().network, sourceIp);
    // Only a workload whose identity is the verified peer names the source in telemetry.
    const source = srcCandidate && srcCandidate.identity === peer.identity ? srcCandidate : undefined;
    const requestBytes = headerBytes(req);
    let responseBytes = 0;
    let bodyIn = 0;
    let bodyOut = 0;
    let service = t.service;
    let endpoint: Endpoint | undefined;
    let flags = "-";
    let details = "via_upstream";
    let routeName: string | undefined;
    let upstreamPeer: string | undefined;

    let reported = false;
    const finish = (code: number, error?: string): void => {
      if (reported) return;
      reported = true;
      const durationMs = Date.now() - start;
      this.ctx.metrics.requestCompleted(
        httpLabelsFor({
          reporter: "waypoint",
          mtls: true,
          requestProtocol: "http",
          responseCode: code,
          responseFlags: flags,
          ...(source ? { source } : {}),
          sourcePrincipal: peer.identity,
          ...(endpoint ? { destination: endpoint.workload } : t.workload ? { destination: t.workload } : {}),
          ...(upstreamPeer ? { destinationPrincipal: upstreamPeer } : {}),
          ...(service ? { destinationService: service } : {}),
        }),
        { durationMs, requestBytes: requestBytes + bodyIn, responseBytes: responseBytes + bodyOut },
      );
      requestLog(this.ctx.accessLog, {
        startTime: start,
        method,
        path,
        protocol: "HTTP/1.1",
        responseCode: code,
        responseFlags: flags,
        responseCodeDetails: details,
        bytesReceived: bodyIn,
        bytesSent: bodyOut,
        durationMs,
        ...(headers.get("x-forwarded-for") ? { xForwardedFor: headers.get("x-forwarded-for")! } : {}),
        ...(headers.get("user-agent") ? { userAgent: headers.get("user-agent")! } : {}),
        ...(headers.get("x-request-id") ? { requestId: headers.get("x-request-id")! } : {}),
        ...(headers.get("traceparent") ? { traceparent: headers.get("traceparent")! } : {}),
        authority: host,
        ...(endpoint ? { upstreamHost: `${endpoint.ip}:${endpoint.port}`, dstWorkload: endpoint.workload.name, dstNamespace: endpoint.workload.namespace } : {}),
        ...(upstreamPeer ? { dstIdentity: upstreamPeer } : {}),
        ...(service ? { dstService: service.hostname } : {}),
        downstreamRemoteAddress: `${sourceIp}:${t.tunnel.sourcePort}`,
        downstreamLocalAddress: `${t.ip}:${t.port}`,
        ...(routeName ? { routeName } : {}),
        srcIdentity: peer.identity,
        ...(source ? { srcWorkload: source.name, srcNamespace: source.namespace } : {}),
        ...(error ? { error } : {}),
      });
    };
    const local = (code: number, body: string, extra: Record<string, string> = {}): void => {
      req.resume(); // discard any body so the connection stays usable
      const buf = Buffer.from(body);
      res.writeHead(code, { "content-type": "text/plain", "content-length": String(buf.length), ...extra });
      res.end(buf);
      responseBytes = 64 + buf.length;
      bodyOut = buf.length;
      res.once("finish", () => finish(code));
    };

    // ---- L7 authorization ----
    const targets: PolicyTarget[] = this.ctx.gateways().map((name) => ({ kind: "Gateway", name, namespace: this.ctx.self().namespace }));
    if (t.service) targets.push({ kind: "Service", name: t.service.name, namespace: t.service.namespace });
    const decision = this.ctx.policies().evaluate(
      this.ctx.self(),
      { sourceIp, sourcePrincipal: peer.identity, destinationIp: t.ip, destinationPort: t.port, method, path, host, headers, remoteIp: sourceIp },
      "l7",
      targets,
    );
    if (!decision.allowed) {
      details = `rbac_access_denied_matched_policy[${decision.policy ?? "none"}]`;
      return local(403, RBAC_DENIED_BODY);
    }

    // ---- routing ----
    const selection = t.service ? this.ctx.routes().match({ method, path, host, headers }, { namespace: t.service.namespace, name: t.service.name, hostname: t.service.hostname }, t.port) : undefined;
    let upstreamPath = path;
    let upstreamHost = host;
    let requestOps: readonly HeaderOp[] = [];
    let responseOps: HeaderOp[] = [];
    let servicePort = t.port;
    if (selection) {
      routeName = `${selection.route.key}.${selection.ruleIndex}`;
      const backend = selection.rule.backendRefs.length > 0 ? pickBackend(selection.rule, Math.random) : undefined;
      const filters = [...selection.rule.filters, ...(backend?.filters ?? [])];
      const result = applyRequestFilters(filters, { path, host, port: t.port }, selection.match);
      if (result.redirect) {
        details = "direct_response";
        return local(result.redirect.statusCode, "", { location: result.redirect.location });
      }
      if (!backend) {
        details = "route_has_no_backend";
        return local(500, "");
      }
      const svc = findService(state, backend.namespace, backend.name);
      if (!svc) {
        flags = "NR";
        details = "backend_service_not_found";
        return local(500, "");
      }
      service = svc;
      servicePort = backend.port;
      upstreamPath = result.path;
      upstreamHost = result.host;
      requestOps = result.headers;
      responseOps = applyResponseFilters(filters);
    }

    if (service) endpoint = pickEndpoint(state, service, servicePort);
    else if (t.workload) endpoint = { workload: t.workload, ip: t.ip, port: t.port };
    if (!endpoint) {
      flags = "UH";
      details = "no_healthy_upstream";
      return local(503, "no healthy upstream");
    }

    // ---- upstream ----
    const out = forwardHeaders(req, sourceIp);
    out.host = upstreamHost;
    applyHeaderEdits(editable(out), requestOps);
    out.connection = "close"; // one CONNECT stream per request; the HBONE connection is pooled
    const self = this.ctx.self();
    let tunnel;
    try {
      tunnel = await this.ctx.pool.open({
        key: { sourceIdentity: self.identity, destinationIdentities: [endpoint.workload.identity], address: endpoint.ip, port: HBONE_PORT, sourceIp: this.ctx.selfIp },
        identity: this.ctx.identity(),
        authority: endpoint.ip.includes(":") ? `[${endpoint.ip}]:${endpoint.port}` : `${endpoint.ip}:${endpoint.port}`,
        headers: { forwarded: formatForwarded(sourceIp, t.tunnel.sourcePort, service?.hostname) },
        bindAddress: this.ctx.selfIp,
      });
    } catch (e) {
      flags = "UF";
      details = "upstream_reset_before_response_started{connection_failure}";
      const err = asMeshError(e);
      this.ctx.log.debug("waypoint upstream connect failed", { endpoint: `${endpoint.ip}:${endpoint.port}`, code: err.code, error: err.message });
      return local(503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure");
    }
    upstreamPeer = tunnel.peer.identity;
    const upstream = new TunnelDuplex(tunnel.stream);
    upstream.on("error", () => {});
    await new Promise<void>((resolve) => {
      let done = false;
      const settle = (): void => {
        if (!done) {
          done = true;
          resolve();
        }
      };
      const ureq = http1Request({ method, path: upstreamPath, headers: out }, upstream);
      ureq.on("response", (ures) => {
        const code = ures.statusCode ?? 502;
        const resHeaders = forwardResponseHeaders(ures);
        applyHeaderEdits(editable(resHeaders), responseOps);
        res.writeHead(code, resHeaders);
        responseBytes = headerBytes(ures);
        ures.on("data", (c: Buffer) => {
          bodyOut += c.length;
          if (!res.write(c)) ures.pause();
        });
        res.on("drain", () => ures.resume());
        ures.once("end", () => {
          res.end();
          res.once("finish", () => {
            finish(code);
            settle();
          });
        });
        ures.once("error", () => res.destroy());
      });
      ureq.once("error", (e) => {
        if (res.headersSent) {
          flags = "UC";
          res.destroy();
          finish(0, e.message);
        } else {
          flags = "UC";
          details = "upstream_reset_before_response_started";
          local(503, "upstream connect error or disconnect/reset before headers. reset reason: connection termination");
        }
        settle();
      });
      // The client went away before the response was complete: stop the upstream too.
      res.once("close", () => {
        if (res.writableFinished) return;
        flags = "DC";
        ureq.destroy();
        finish(res.headersSent ? res.statusCode : 0, "downstream closed before the response completed");
        settle();
      });
      req.on("data", (c: Buffer) => {
        bodyIn += c.length;
        if (!ureq.write(c)) req.pause();
      });
      ureq.on("drain", () => req.resume());
      req.once("end", () => ureq.end());
      req.once("error", () => ureq.destroy());
    });
  }
}

function lowerHeaders(req: Http1Request): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    m.set(k, Array.isArray(v) ? v.join(",") : v);
  }
  return m;
}

function headerBytes(msg: Http1Request): number {
  let n = (msg.method?.length ?? 0) + (msg.url?.length ?? 0) + 12;
  const raw = msg.rawHeaders;
  for (let i = 0; i < raw.length; i++) n += raw[i]!.length + 2;
  return n;
}

/** End-to-end request headers for the upstream, with x-forwarded-for extended by the tunnel's source. */
function forwardHeaders(req: Http1Request, sourceIp: string): Http1Headers {
  const out: Http1Headers = {};
  const named = connectionTokens(req.headers.connection);
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || UNTRUSTED.has(k) || named.has(k)) continue;
    out[k] = v;
  }
  const xff = req.headers["x-forwarded-for"];
  out["x-forwarded-for"] = xff ? `${Array.isArray(xff) ? xff.join(", ") : xff}, ${sourceIp}` : sourceIp;
  if (req.headers["content-length"] !== undefined) out["content-length"] = req.headers["content-length"];
  return out;
}

function forwardResponseHeaders(res: Http1Request): Http1Headers {
  const out: Http1Headers = {};
  const named = connectionTokens(res.headers.connection);
  for (const [k, v] of Object.entries(res.headers)) {
    if (v === undefined || named.has(k) || (HOP_BY_HOP.has(k) && k !== "content-length")) continue;
    out[k] = v;
  }
  return out;
}

function connectionTokens(v: string | string[] | undefined): Set<string> {
  const s = new Set<string>();
  if (!v) return s;
  for (const part of (Array.isArray(v) ? v.join(",") : v).split(",")) {
    const t = part.trim().toLowerCase();
    if (t) s.add(t);
  }
  return s;
}

/** Header edits over plain node header objects (names are lower-case there). */
function editable(h: Http1Headers): { set(n: string, v: string): void; append(n: string, v: string): void; delete(n: string): void } {
  return {
    set: (n, v) => void (h[n.toLowerCase()] = v),
    append: (n, v) => {
      const k = n.toLowerCase();
      const cur = h[k];
      h[k] = cur === undefined ? v : `${Array.isArray(cur) ? cur.join(",") : String(cur)},${v}`;
    },
    delete: (n) => void delete h[n.toLowerCase()],
  };
}

function findService(state: MeshState, namespace: string, name: string): Service | undefined {
  for (const s of state.services.values()) if (s.namespace === namespace && s.name === name) return s;
  return undefined;
}

/** A healthy endpoint of the service for this port, picked at random weighted by capacity. */
export function pickEndpoint(state: MeshState, service: Service, servicePort: number, rand: () => number = Math.random): Endpoint | undefined {
  const allowUnhealthy = service.loadBalancer?.healthPolicy === "AllowAll";
  const candidates: Endpoint[] = [];
  for (const ep of state.endpointsOf(service.key)) {
    if (!allowUnhealthy && ep.workload.status !== "Healthy") continue;
    const ip = ep.workload.workloadIps.find((a) => !a.includes(":")) ?? ep.workload.workloadIps[0];
    if (!ip) continue;
    const fromEndpoint = ep.ports.get(servicePort);
    const fromService = service.ports.get(servicePort);
    const port = fromEndpoint && fromEndpoint > 0 ? fromEndpoint : fromService && fromService > 0 ? fromService : fromService === 0 ? 0 : servicePort;
    if (port === 0) continue;
    candidates.push({ workload: ep.workload, ip, port });
  }
  return pickWeighted(candidates, rand);
}
