// Outbound: a local workload's connection (SOCKS5 in loopback mode) to an original destination,
// carried by HBONE to a mesh workload, by plain TCP to a non-mesh destination, or refused.
import { isIP } from "node:net";
import type { Workload } from "../config/index.ts";
import { ErrorCodes, MeshError, asMeshError, socksReplyFor } from "../errors/index.ts";
import { formatBaggage, formatForwarded, newTraceparent } from "../hbone/index.ts";
import { connectTcp, resolveHost, type ByteStream, type TcpConnection } from "../net/index.ts";
import { labelsFor } from "../telemetry/index.ts";
import { ProxiedConnection } from "./connection.ts";
import type { ZtunnelContext } from "./context.ts";
import { reportFailure } from "./report.ts";
import { decideOutbound, resolveMeshHostname, routeToServiceByName, type OutboundRoute } from "./route.ts";
import { Socks5Handshake, socksReply, type SocksTarget } from "./socks5.ts";
import type { PodDialer } from "./inpod/index.ts";

const SOCKS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Serve one SOCKS5 connection accepted on `source`'s 15080 listener. */
export function serveSocksConnection(ctx: ZtunnelContext, source: Workload, conn: TcpConnection): void {
  const hs = new Socks5Handshake();
  let started = false;
  const timer = setTimeout(() => {
    if (!started) conn.destroy();
  }, SOCKS_HANDSHAKE_TIMEOUT_MS);
  conn.setEvents({
    data(chunk) {
      if (started) return;
      for (const step of hs.feed(chunk)) {
        if (step.type === "reply") conn.write(step.bytes);
        else if (step.type === "error") {
          clearTimeout(timer);
          ctx.log.debug("SOCKS5 handshake rejected", { error: step.error.message, "src.addr": conn.remoteAddress });
          if (step.reply) conn.write(step.reply);
          conn.end();
          started = true;
        } else if (step.type === "request") {
          clearTimeout(timer);
          started = true;
          conn.pause();
          void handleRequest(ctx, source, conn, step.target, step.rest);
        }
      }
    },
    end() {
      if (!started) conn.destroy();
    },
    close() {
      clearTimeout(timer);
    },
  });
}

async function resolveTarget(ctx: ZtunnelContext, source: Workload, target: SocksTarget): Promise<{ route: OutboundRoute; ip: string; port: number; hostname?: string }> {
  const state = ctx.state();
  const own = ctx.ownPorts();
  const decide = (ip: string, port: number) => decideOutbound(state, source, ip, port, Math.random, own);
  if (target.kind === "ip") return { route: decide(target.ip, target.port), ip: target.ip, port: target.port };
  const svc = resolveMeshHostname(state, source, target.domain, ctx.clusterDomain);
  if (svc) {
    const vip = svc.vips.find((v) => v.network === source.network) ?? svc.vips[0];
    if (vip) return { route: decide(vip.ip, target.port), ip: vip.ip, port: target.port, hostname: svc.hostname };
    // headless service: straight to an endpoint
    return { route: routeToServiceByName(state, source, svc, target.port, Math.random, own), ip: "", port: target.port, hostname: svc.hostname };
  }
  if (isIP(target.domain)) return { route: decide(target.domain, target.port), ip: target.domain, port: target.port };
  let ip: string;
  try {
    ip = await resolveHost(target.domain);
  } catch {
    throw new MeshError(ErrorCodes.UNKNOWN_HOST, `cannot resolve ${target.domain}: not a mesh service hostname and not in DNS`);
  }
  return { route: decide(ip, target.port), ip, port: target.port, hostname: target.domain };
}

/**
 * Carries one outbound connection to `target`. Loopback mode (SOCKS5) answers the client with a
 * SOCKS reply; captured mode passes the pod's `dialer` (upstream sockets in the pod's namespace,
 * marked) and the client just sees its connection carried or closed.
 */
export async function handleRequest(ctx: ZtunnelContext, source: Workload, client: TcpConnection, target: SocksTarget, early: Uint8Array, dialer?: PodDialer): Promise<void> {
  const started = Date.now();
  const srcAddr = `${client.remoteAddress}:${client.remotePort}`;
  const live = new ProxiedConnection(ctx, "outbound", source.uid, client);
  let route: OutboundRoute | undefined;
  let hboneAuthority: string | undefined;
  try {
    if (ctx.draining()) throw new MeshError(ErrorCodes.HBONE_DRAINING, "ztunnel is draining");
    const resolved = await resolveTarget(ctx, source, target);
    route = resolved.route;
    if (route.kind === "deny") throw new MeshError(route.code, route.reason);
    let upstream: ByteStream;
    let peerIdentity: string | undefined;
    let tlsVersion: string | undefined;
    if (route.kind === "hbone") {
      hboneAuthority = route.authority;
      const sourceIp = dialer ? dialer.podIp : client.localAddress;
      const hop = { address: route.address, port: route.port };
      const tunnel = await ctx.pool.open({
        key: {
          sourceIdentity: source.identity,
          destinationIdentities: route.expectedIdentities,
          address: route.address,
          port: route.port,
          sourceIp,
        },
        identity: ctx.tlsIdentityOf(source),
        authority: route.authority,
        headers: {
          baggage: formatBaggage({
            clusterId: source.clusterId,
            namespace: source.namespace,
            workloadType: source.workloadType,
            workloadName: source.workloadName || source.name,
            canonicalName: source.canonicalName,
            canonicalRevision: source.canonicalRevision,
            region: source.locality.region,
            zone: source.locality.zone,
          }),
          forwarded: formatForwarded(client.remoteAddress, client.remotePort, route.service?.hostname ?? resolved.hostname),
          traceparent: newTraceparent(),
        },
        // The tunnel leaves from the workload's own address, so the peer sees it.
        ...(dialer ? { transport: () => dialer.hboneTransport(hop.address, hop.port) } : { bindAddress: sourceIp }),
      });
      upstream = tunnel.stream;
      peerIdentity = tunnel.peer.identity;
      tlsVersion = tunnel.tlsVersion;
    } else {
      upstream = dialer
        ? await dialer.tcp(route.address, route.port)
        : await connectTcp({ hostname: route.address, port: route.port, timeoutMs: ctx.upstreamConnectTimeoutMs });
    }
    if (client.isClosed) {
      upstream.destroy();
      live.forget();
      return;
    }
    if (!dialer) client.write(socksReply(0x00));
    if (early.byteLength > 0) upstream.write(early);
    const mtls = route.kind === "hbone";
    const destination = route.destination;
    const service = route.service;
    const metrics = ctx.metrics.connectionOpened(
      labelsFor({
        reporter: "source",
        source,
        ...(mtls ? { sourcePrincipal: source.identity } : {}),
        ...(destination ? { destination } : {}),
        ...(peerIdentity ? { destinationPrincipal: peerIdentity } : {}),
        ...(service ? { destinationService: { hostname: service.hostname, namespace: service.namespace, name: service.name } } : {}),
        mtls,
      }),
    );
    live.run(client, upstream, metrics, {
      direction: "outbound",
      srcAddr,
      srcWorkload: source.name,
      srcNamespace: source.namespace,
      ...(mtls ? { srcIdentity: source.identity } : {}),
      dstAddr: `${route.address.includes(":") ? `[${route.address}]` : route.address}:${route.port}`,
      ...(hboneAuthority ? { dstHboneAddr: hboneAuthority } : {}),
      ...(service ? { dstService: service.hostname } : {}),
      ...(destination ? { dstWorkload: destination.name, dstNamespace: destination.namespace } : {}),
      ...(peerIdentity ? { dstIdentity: peerIdentity } : {}),
      ...(tlsVersion ? { tlsVersion } : {}),
    });
    client.resume();
  } catch (e) {
    live.forget();
    const err = asMeshError(e, ErrorCodes.UPSTREAM_CONNECT);
    if (!client.isClosed && dialer) client.destroy();
    else if (!client.isClosed) {
      client.write(socksReply(socksReplyFor(err.code)));
      client.end();
    }
    const labels = labelsFor({
      reporter: "source",
      source,
      ...(route && route.kind !== "deny" && route.destination ? { destination: route.destination } : {}),
      ...(route?.service ? { destinationService: { hostname: route.service.hostname, namespace: route.service.namespace, name: route.service.name } } : {}),
      mtls: route?.kind === "hbone",
    });
    const record = {
      direction: "outbound" as const,
      srcAddr,
      srcWorkload: source.name,
      srcNamespace: source.namespace,
      dstAddr: target.kind === "ip" ? `${target.ip}:${target.port}` : `${target.domain}:${target.port}`,
      ...(hboneAuthority ? { dstHboneAddr: hboneAuthority } : {}),
    };
    reportFailure(ctx, labels, record, err, started);
  }
}
