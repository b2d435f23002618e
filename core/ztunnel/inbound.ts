// Inbound HBONE for one local workload (reference/ztunnel.md §5.2): the CONNECT target must be
// this workload, never one of our own ports; the app connection is made first and only then is
// the tunnel answered 200.
import type { Workload } from "../config/index.ts";
import { ErrorCodes, MeshError, asMeshError, hboneStatusFor } from "../errors/index.ts";
import { forwardedHost, formatBaggage, type InboundTunnel } from "../hbone/index.ts";
import { connectTcp } from "../net/index.ts";
import { labelsFor } from "../telemetry/index.ts";
import { ProxiedConnection } from "./connection.ts";
import type { ZtunnelContext } from "./context.ts";
import type { Decision } from "../policy/index.ts";
import { reportFailure } from "./report.ts";
import type { PodDialer } from "./inpod/dialer.ts";

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
