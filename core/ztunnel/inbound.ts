// Inbound HBONE for one local workload (reference/ztunnel.md §5.2): the CONNECT target must be
// this workload, never one of our own ports; the app connection is made first and only then is
// the tunnel answered 200.
import type { Workload } from "../config/index.ts";
import { ErrorCodes, MeshError, asMeshError, hboneStatusFor } from "../errors/index.ts";
import { forwardedHost, formatBaggage, formatForwarded, SOURCE_PRINCIPAL_HEADER, type InboundTunnel } from "../hbone/index.ts";
import { connectTcp } from "../net/index.ts";
import { labelsFor } from "../telemetry/index.ts";
import { ProxiedConnection } from "./connection.ts";
import type { ZtunnelContext } from "./context.ts";
import type { Decision } from "../policy/index.ts";
import { reportFailure } from "./report.ts";
import type { PodDialer } from "./inpod/index.ts";
import { isFromWaypoint, pickWaypointReplica, waypointReplicas, waypointsGuarding } from "./waypoints.ts";
import type { GatewayAddress, Service } from "../config/index.ts";
import type { ByteStream } from "../net/index.ts";

/** Where an accepted tunnel goes: the app port on this workload's address. */
export function inboundUpstream(ctx: ZtunnelContext, local: Workload, tunnel: InboundTunnel): { ip: string; port: number } {
  const t = tunnel.target;
  let port: number;
  if (t.kind === "ip") {
    // The target must be the address this connection arrived on (ztunnel validate_destination).
    if (t.ip !== tunnel.localAddress) {
      throw new MeshError(ErrorCodes.HBONE_IP_MISMATCH, `CONNECT target ${t.ip} is not the connection's destination ${tunnel.localAddress}`);
    }
    port = t.port;
  } else {
    const state = ctx.state();
    const svc = state.servicesByHostname(t.hostname).find((s) => local.services.has(s.key));
    if (!svc) throw new MeshError(ErrorCodes.HBONE_BAD_AUTHORITY, `CONNECT hostname ${t.hostname} is not a service of this workload`);
    const mapped = local.services.get(svc.key)?.get(t.port) ?? svc.ports.get(t.port) ?? 0;
    if (!mapped) throw new MeshError(ErrorCodes.HBONE_UNKNOWN_WORKLOAD, `service ${t.hostname} has no target port for ${t.port}`);
    port = mapped;
  }
  if (ctx.ownPorts().has(port)) {
    throw new MeshError(ErrorCodes.HBONE_SELF_CALL, `CONNECT target port ${port} is one of the mesh's own ports`);
  }
  // Upstream IP is always the connection's destination, never the authority's (ztunnel §5.2 step 4).
  return { ip: tunnel.localAddress, port };
}

/** `dialer`: captured mode, where the app is reached inside the pod's namespace from the client's own address. */
export async function serveInboundTunnel(ctx: ZtunnelContext, local: Workload, tunnel: InboundTunnel, dialer?: PodDialer): Promise<void> {
  const started = Date.now();
  const state = ctx.state();
  const srcWorkload = state.workloadByAddress(local.network, tunnel.sourceAddress);
  const hostHint = forwardedHost(typeof tunnel.headers.forwarded === "string" ? tunnel.headers.forwarded : undefined);
  const service = hostHint ? state.servicesByHostname(hostHint).find((s) => local.services.has(s.key)) : undefined;
  const labels = labelsFor({
    reporter: "destination",
    ...(srcWorkload ? { source: srcWorkload } : {}),
    sourcePrincipal: tunnel.peer.identity,
    destination: local,
    destinationPrincipal: local.identity,
    ...(service ? { destinationService: { hostname: service.hostname, namespace: service.namespace, name: service.name } } : {}),
    mtls: true,
  });
  const srcAddr = `${tunnel.sourceAddress}:${tunnel.sourcePort}`;
  const live = new ProxiedConnection(ctx, "inbound", local.uid);
  const base = {
    direction: "inbound" as const,
    srcAddr,
    ...(srcWorkload ? { srcWorkload: srcWorkload.name, srcNamespace: srcWorkload.namespace } : {}),
    srcIdentity: tunnel.peer.identity,
    dstHboneAddr: tunnel.authority,
    ...(service ? { dstService: service.hostname } : {}),
    dstWorkload: local.name,
    dstNamespace: local.namespace,
    tlsVersion: tunnel.tlsVersion,
  };
  let dstAddr = `${tunnel.localAddress}:?`;
  let decision: Decision | undefined;
  let denied: MeshError | undefined;
  try {
    if (ctx.draining()) throw new MeshError(ErrorCodes.HBONE_DRAINING, "ztunnel is draining");
    const up = inboundUpstream(ctx, local, tunnel);
    dstAddr = `${up.ip.includes(":") ? `[${up.ip}]` : up.ip}:${up.port}`;
    const guards = waypointsGuarding(state, local);
    if (guards.length > 0 && !isFromWaypoint(state, local.network, guards, tunnel.peer.identity, tunnel.sourceAddress)) {
      // It skipped the waypoint: send it there (the hairpin), then it comes back from the waypoint.
      const via = await hairpinToWaypoint(ctx, local, tunnel, up, guards, service, dialer);
      const stream = tunnel.accept();
      live.run(stream, via.stream, ctx.metrics.connectionOpened(labels), {
        ...base,
        dstAddr: `${via.address}:${via.port}`,
        dstIdentity: via.identity,
      });
      ctx.log.debug("tunnel hairpinned through the waypoint", { workload: local.name, src: tunnel.peer.identity, waypoint: `${via.address}:${via.port}` });
      return;
    }
    // Source identity is the verified peer certificate; the port is the target (pod) port.
    const attrs = { sourceIp: tunnel.sourceAddress, sourcePrincipal: tunnel.peer.identity, destinationIp: up.ip, destinationPort: up.port };
    try {
      decision = ctx.authorizer.authorize(local, attrs);
    } catch (e) {
      denied = e as MeshError;
      throw e;
    }
    live.authz = { workloadUid: local.uid, attrs };
    const app = await (dialer ? dialer.tcp(up.ip, up.port, tunnel.sourceAddress) : connectTcp({ hostname: up.ip, port: up.port, timeoutMs: ctx.upstreamConnectTimeoutMs })).catch((e) => {
      throw new MeshError(ErrorCodes.HBONE_UPSTREAM_CONNECT, `cannot connect to the app at ${dstAddr}: ${asMeshError(e).message}`, { cause: e });
    });
    if (tunnel.signal.aborted) {
      app.destroy();
      throw new MeshError(ErrorCodes.HBONE_H2_FAILURE, "the peer reset the stream before it was answered");
    }
    const stream = tunnel.accept({
      baggage: formatBaggage({
        clusterId: local.clusterId,
        namespace: local.namespace,
        workloadType: local.workloadType,
        workloadName: local.workloadName || local.name,
        canonicalName: local.canonicalName,
        canonicalRevision: local.canonicalRevision,
      }),
    });
    live.run(stream, app, ctx.metrics.connectionOpened(labels), {
      ...base,
      dstAddr,
      dstIdentity: local.identity,
      ...(decision?.policy ? { authzPolicy: decision.policy, authzRule: decision.ruleIndex } : {}),
    });
  } catch (e) {
    live.forget();
    const err = asMeshError(e, ErrorCodes.HBONE_UPSTREAM_CONNECT);
    tunnel.reject(hboneStatusFor(err.code));
    const policy = denied?.details.find((d) => d.startsWith("policy="))?.slice(7);
    const rule = denied?.details.find((d) => d.startsWith("rule="))?.slice(5);
    reportFailure(ctx, labels, { ...base, dstAddr, ...(policy && policy !== "-" ? { authzPolicy: policy } : {}), ...(rule && rule !== "-" ? { authzRule: Number(rule) } : {}) }, err, started);
  }
}

/**
 * The sandwich guard. A tunnel reached a workload behind a waypoint without passing it (a client
 * whose ztunnel did not steer, or one that dialed the pod directly). Rather than deliver it, this
 * ztunnel opens a tunnel to the waypoint as the destination workload, `:authority` = the pod
 * address, stating the source identity it verified in SOURCE_PRINCIPAL_HEADER and its address in
 * `forwarded`. The waypoint believes those only because the peer is the destination itself — a
 * workload can vouch only for traffic addressed to itself — then applies its policy and routes,
 * and its own tunnel back arrives from a waypoint replica, which is delivered. A peer that presents
 * a waypoint's identity from an address that is not a replica's is refused, not hairpinned: that
 * would loop. No reachable replica: refused (fail closed).
 */
async function hairpinToWaypoint(
  ctx: ZtunnelContext,
  local: Workload,
  tunnel: InboundTunnel,
  up: { ip: string; port: number },
  guards: readonly GatewayAddress[],
  hinted: Service | undefined,
  dialer?: PodDialer,
): Promise<{ stream: ByteStream; address: string; port: number; identity: string }> {
  const state = ctx.state();
  for (const gw of guards) {
    if (waypointReplicas(state, local.network, gw, true).some((w) => w.identity === tunnel.peer.identity)) {
      throw new MeshError(ErrorCodes.WAYPOINT_REQUIRED, `peer ${tunnel.peer.identity} has a waypoint's identity but connected from ${tunnel.sourceAddress}, which is not a replica's address`);
    }
  }
  // The workload's own waypoint serves pod-addressed traffic; else the hinted service's; else any.
  const gw = local.waypoint ?? (hinted && (hinted.waypoint ?? hinted.weightedWaypoints?.[0]?.destination)) ?? guards[0]!;
  const hop = pickWaypointReplica(state, local.network, gw, up.ip.includes(":"), Math.random);
  const sourceIp = tunnel.localAddress;
  const out = await ctx.pool
    .open({
      key: { sourceIdentity: local.identity, destinationIdentities: hop.identities, address: hop.address, port: hop.port, sourceIp },
      identity: ctx.tlsIdentityOf(local),
      authority: up.ip.includes(":") ? `[${up.ip}]:${up.port}` : `${up.ip}:${up.port}`,
      headers: {
        forwarded: formatForwarded(tunnel.sourceAddress, tunnel.sourcePort, hinted?.hostname),
        [SOURCE_PRINCIPAL_HEADER]: tunnel.peer.identity,
      },
      ...(dialer ? { transport: () => dialer.hboneTransport(hop.address, hop.port) } : { bindAddress: sourceIp }),
    })
    .catch((e: unknown) => {
      throw new MeshError(ErrorCodes.WAYPOINT_UNRESOLVED, `cannot reach waypoint ${hop.address}:${hop.port} to hairpin a tunnel that skipped it: ${asMeshError(e).message}`, { cause: e });
    });
  return { stream: out.stream, address: hop.address, port: hop.port, identity: out.peer.identity };
}
