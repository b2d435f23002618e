// A CONNECT to the waypoint: is the destination one this waypoint serves, who is calling (the
// verified peer, or the source a destination's ztunnel vouched for when hairpinning), and which
// protocol is inside — HTTP/1.x, HTTP/2, or TCP (L4 policy, then bytes relayed to an endpoint).
import type { MeshState, Service, Workload } from "../config/index.ts";
import { asMeshError } from "../errors/index.ts";
import { SOURCE_PRINCIPAL_HEADER, forwardedFor, type InboundTunnel } from "../hbone/index.ts";
import { parseSpiffeId } from "../identity/index.ts";
import { relay, type ByteStream } from "../net/index.ts";
import type { PolicyEngine, PolicyTarget } from "../policy/index.ts";
import { accessLog, labelsFor, type Logger, type MeshMetrics } from "../telemetry/index.ts";
import { isWaypointReplica, serviceWaypoint, waypointsGuarding } from "../ztunnel/index.ts";
import { serviceEndpoints, type Endpoint, type EndpointBalancer } from "./endpoints.ts";
import type { L7Request, L7Responder } from "./exchange.ts";
import { serveH2 } from "./front-h2.ts";
import type { RequestOrigin } from "./plugin-api.ts";
import type { H2GuardLimits } from "./h2-guard.ts";
import type { L7Limits } from "./limits.ts";
import { InspectedStream } from "./inspected-stream.ts";
import { SNIFF_MAX_BYTES, sniffProtocol } from "./sniff.ts";
import type { UpstreamDialer } from "./upstream.ts";

export interface TunnelContext {
  readonly state: () => MeshState;
  readonly self: () => Workload;
  readonly policies: () => PolicyEngine;
  readonly gateways: () => readonly string[];
  readonly balancer: EndpointBalancer;
  readonly dialer: UpstreamDialer;
  readonly limits: L7Limits;
  readonly guard: H2GuardLimits;
  readonly metrics: MeshMetrics;
  readonly log: Logger;
  readonly accessLog: Logger;
  /** every open tunnel, for drain */
  readonly open: Set<{ destroy(): void }>;
  onRequest(origin: RequestOrigin, req: L7Request, res: L7Responder): void;
  /** HTTP/1.x on a tunnel (the strict codec); returns something destroyable */
  serveH1(stream: ByteStream, prefix: readonly Uint8Array[], origin: RequestOrigin): { destroy(): void };
}

/** Does this waypoint serve traffic addressed to `service` / `workload`? */
function servedHere(state: MeshState, self: Workload, service: Service | undefined, workload: Workload | undefined): boolean {
  const network = self.network;
  if (service) {
    const gws = [service.waypoint, ...(service.weightedWaypoints ?? []).map((w) => w.destination)];
    if (serviceWaypoint(service, () => 0) === undefined) return false;
    return gws.some((gw) => gw !== undefined && isWaypointReplica(state, network, gw, self));
  }
  if (workload) return waypointsGuarding(state, workload).some((gw) => isWaypointReplica(state, network, gw, self));
  return false;
}

export function acceptWaypointTunnel(ctx: TunnelContext, tunnel: InboundTunnel): void {
  const state = ctx.state();
  const self = ctx.self();
  const network = self.network;
  let service: Service | undefined;
  let workload: Workload | undefined;
  let targetIp: string;
  if (tunnel.target.kind === "ip") {
    targetIp = tunnel.target.ip;
    service = state.serviceByVip(network, targetIp);
    if (!service) workload = state.workloadByAddress(network, targetIp);
  } else {
    const hostname = tunnel.target.hostname;
    targetIp = hostname;
    const found = state.servicesByHostname(hostname);
    service = found.find((s) => s.namespace === self.namespace) ?? found[0];
  }
  const port = tunnel.target.port;
  if (!service && !workload) {
    ctx.log.debug("waypoint tunnel for an unknown destination", { authority: tunnel.authority });
    return tunnel.reject(503);
  }
  if (!servedHere(state, self, service, workload)) {
    // Not a destination bound to this waypoint: relaying it would let a client pick which
    // waypoint's policy applies (or none).
    ctx.log.warn("waypoint tunnel for a destination this waypoint does not serve", { authority: tunnel.authority, src: tunnel.peer.identity });
    return tunnel.reject(400);
  }

  // The caller. A destination's ztunnel hairpinning a tunnel that skipped us states who the
  // original source was; that is believed only from the destination workload itself, for traffic
  // addressed to itself. From anyone else the claim is ignored (and logged).
  let principal = tunnel.peer.identity;
  let sourceIp = tunnel.sourceAddress;
  let sourcePort = tunnel.sourcePort;
  const claim = tunnel.headers[SOURCE_PRINCIPAL_HEADER];
  if (typeof claim === "string") {
    const vouching = workload !== undefined && workload.identity === tunnel.peer.identity && workload.workloadIps.includes(tunnel.sourceAddress);
    let valid = false;
    try {
      parseSpiffeId(claim);
      valid = true;
    } catch {
      valid = false;
    }
    if (vouching && valid) {
      principal = claim;
      const fwd = forwardedFor(typeof tunnel.headers.forwarded === "string" ? tunnel.headers.forwarded : undefined);
      if (fwd) {
        sourceIp = fwd.ip;
        sourcePort = fwd.port;
      }
    } else {
      ctx.log.warn("ignored a source identity claim", { authority: tunnel.authority, peer: tunnel.peer.identity, reason: vouching ? "not a SPIFFE id" : "the peer is not the destination" });
    }
  }
  const candidate = state.workloadByAddress(network, sourceIp);
  const origin: RequestOrigin = {
    targetIp,
    targetPort: port,
    ...(service ? { service } : {}),
    ...(workload ? { workload } : {}),
    principal,
    sourceIp,
    sourcePort,
    ...(candidate && candidate.identity === principal ? { source: candidate } : {}),
  };

  const stream = tunnel.accept();
  sniffThenServe(ctx, stream, origin);
}

function sniffThenServe(ctx: TunnelContext, stream: ByteStream, origin: RequestOrigin): void {
  const seen: Uint8Array[] = [];
  let bytes = 0;
  let decided = false;
  const tracker = { destroy: () => stream.destroy() };
  ctx.open.add(tracker);
  const decide = (proto: "h1" | "h2" | "tcp"): void => {
    if (decided) return;
    decided = true;
    clearTimeout(timer);
    ctx.open.delete(tracker);
    let served: { destroy(): void };
    if (proto === "h2") {
      const t = serveH2(stream, seen, { limits: ctx.limits, guard: ctx.guard, log: ctx.log, onRequest: (req, res) => ctx.onRequest(origin, req, res) });
      served = t;
      void t.closed.then(() => ctx.open.delete(t));
    } else if (proto === "h1") {
      served = ctx.serveH1(stream, seen, origin);
    } else {
      served = tracker;
      void proxyTcp(ctx, stream, seen, origin).finally(() => ctx.open.delete(served));
    }
    ctx.open.add(served);
  };
  const timer = setTimeout(() => decide("tcp"), ctx.limits.sniffTimeoutMs);
  stream.setEvents({
    data(c) {
      seen.push(c);
      bytes += c.byteLength;
      const joined = seen.length === 1 ? c : Buffer.concat(seen);
      const p = sniffProtocol(joined.subarray(0, SNIFF_MAX_BYTES));
      if (p) {
        stream.pause();
        decide(p);
      }
    },
    end() {
      if (!decided) decide("tcp");
    },
    close() {
      clearTimeout(timer);
      ctx.open.delete(tracker);
    },
  });
  void bytes;
}

/** Not HTTP: L4 policy only (an L7 rule fails closed here), then bytes to an endpoint. */
async function proxyTcp(ctx: TunnelContext, stream: ByteStream, prefix: Uint8Array[], origin: RequestOrigin): Promise<void> {
  const started = Date.now();
  const self = ctx.self();
  const targets: PolicyTarget[] = ctx.gateways().map((name) => ({ kind: "Gateway", name, namespace: self.namespace }));
  if (origin.service) targets.push({ kind: "Service", name: origin.service.name, namespace: origin.service.namespace });
  const base = {
    direction: "inbound" as const,
    srcAddr: `${origin.sourceIp}:${origin.sourcePort}`,
    srcIdentity: origin.principal,
    ...(origin.source ? { srcWorkload: origin.source.name, srcNamespace: origin.source.namespace } : {}),
    ...(origin.service ? { dstService: origin.service.hostname } : {}),
  };
  const decision = ctx.policies().evaluate(self, { sourceIp: origin.sourceIp, sourcePrincipal: origin.principal, destinationIp: origin.targetIp, destinationPort: origin.targetPort }, "l4", targets);
  if (!decision.allowed) {
    stream.destroy();
    accessLog(ctx.accessLog, { ...base, dstAddr: `${origin.targetIp}:${origin.targetPort}`, clientToServerBytes: 0, serverToClientBytes: 0, durationMs: Date.now() - started, responseFlags: "DENY", error: `denied by ${decision.policy ?? "policy"} (TCP: HTTP rules cannot match)` });
    return;
  }
  const candidates: Endpoint[] = origin.service
    ? serviceEndpoints(ctx.state(), origin.service, origin.targetPort)
    : origin.workload
      ? [{ workload: origin.workload, ip: origin.targetIp, port: origin.targetPort, key: `${origin.targetIp}:${origin.targetPort}` }]
      : [];
  const ep = ctx.balancer.pick(candidates);
  if (!ep) {
    stream.destroy();
    accessLog(ctx.accessLog, { ...base, dstAddr: `${origin.targetIp}:${origin.targetPort}`, clientToServerBytes: 0, serverToClientBytes: 0, durationMs: Date.now() - started, responseFlags: "NO_HEALTHY_UPSTREAM", error: "no healthy upstream" });
    return;
  }
  let up: { stream: ByteStream; peerIdentity?: string };
  ctx.balancer.begin(ep);
  try {
    up = await ctx.dialer.dial(ep);
    ctx.balancer.connectSucceeded(ep);
  } catch (e) {
    ctx.balancer.finish(ep);
    ctx.balancer.connectFailed(ep);
    stream.destroy();
    accessLog(ctx.accessLog, { ...base, dstAddr: ep.key, clientToServerBytes: 0, serverToClientBytes: 0, durationMs: Date.now() - started, responseFlags: "CONNECT", error: asMeshError(e).message });
    return;
  }
  const metrics = ctx.metrics.connectionOpened(
    labelsFor({
      reporter: "waypoint",
      mtls: true,
      ...(origin.source ? { source: origin.source } : {}),
      sourcePrincipal: origin.principal,
      destination: ep.workload,
      ...(up.peerIdentity ? { destinationPrincipal: up.peerIdentity } : {}),
      ...(origin.service ? { destinationService: origin.service } : {}),
    }),
  );
  // The bytes read to detect the protocol go first, through the relay so they are counted.
  const result = await relay(new InspectedStream(stream, prefix), up.stream, metrics).done;
  ctx.balancer.finish(ep);
  metrics.closed();
  accessLog(ctx.accessLog, {
    ...base,
    dstAddr: ep.key,
    dstWorkload: ep.workload.name,
    dstNamespace: ep.workload.namespace,
    ...(up.peerIdentity ? { dstIdentity: up.peerIdentity } : {}),
    clientToServerBytes: result.aToB,
    serverToClientBytes: result.bToA,
    durationMs: Date.now() - started,
    responseFlags: "-",
  });
}
