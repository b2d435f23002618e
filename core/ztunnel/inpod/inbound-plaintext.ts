// Inbound plaintext (15006) for a captured pod (reference/ztunnel.md §5.3): TCP that reached the
// pod without HBONE, redirected by the pod's rules. The original destination must be this pod and
// never one of our own ports; authorization runs with no peer identity (so a STRICT mTLS policy
// refuses it); the app is dialed from the client's own address, so it sees who called.
import type { Workload } from "../../config/index.ts";
import { ErrorCodes, MeshError, asMeshError } from "../../errors/index.ts";
import { relay, type AddressPort, type TcpConnection } from "../../net/index.ts";
import { accessLog, labelsFor } from "../../telemetry/index.ts";
import type { TrackedConnection, ZtunnelContext } from "../context.ts";
import { reportFailure } from "../report.ts";
import type { PodDialer } from "./dialer.ts";
import { INPOD_PORTS } from "./rules.ts";
import { waypointsGuarding } from "../waypoints.ts";

const POD_PORTS: ReadonlySet<number> = new Set(Object.values(INPOD_PORTS));

function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export async function serveInboundPlaintext(ctx: ZtunnelContext, local: Workload, dialer: PodDialer, client: TcpConnection, orig: AddressPort | null): Promise<void> {
  const started = Date.now();
  const srcAddr = hostPort(client.remoteAddress, client.remotePort);
  const srcWorkload = ctx.state().workloadByAddress(local.network, client.remoteAddress);
  const labels = labelsFor({ reporter: "destination", ...(srcWorkload ? { source: srcWorkload } : {}), destination: local, destinationPrincipal: local.identity, mtls: false });
  const base = {
    direction: "inbound" as const,
    srcAddr,
    ...(srcWorkload ? { srcWorkload: srcWorkload.name, srcNamespace: srcWorkload.namespace } : {}),
    dstWorkload: local.name,
    dstNamespace: local.namespace,
  };
  const tracked: TrackedConnection = {
    direction: "inbound",
    workloadUid: local.uid,
    startedAt: started,
    abort: (reason, flag) => {
      if (flag) tracked.closedBy = flag;
      tracked.closeReason = reason;
      if (tracked.relay) tracked.relay.abort(new Error(reason));
      else client.destroy();
    },
  };
  ctx.connections.add(tracked);
  let dstAddr = orig ? hostPort(orig.ip, orig.port) : "unknown";
  client.pause();
  try {
    if (ctx.draining()) throw new MeshError(ErrorCodes.HBONE_DRAINING, "ztunnel is draining");
    if (!orig) throw new MeshError(ErrorCodes.HBONE_BAD_AUTHORITY, "inbound plaintext connection without an original destination (not redirected)");
    // A connection made straight to 15006 reports 15006 itself: the self-call check catches it.
    if (POD_PORTS.has(orig.port) || ctx.ownPorts().has(orig.port)) {
      throw new MeshError(ErrorCodes.HBONE_SELF_CALL, `inbound plaintext to ${dstAddr}: port ${orig.port} is one of the mesh's own ports`);
    }
    if (!local.workloadIps.includes(orig.ip)) {
      throw new MeshError(ErrorCodes.HBONE_IP_MISMATCH, `inbound plaintext to ${dstAddr}, which is not an address of ${local.name}`);
    }
    // Plaintext carries no identity a waypoint could be told about, so it cannot be hairpinned
    // safely: a workload behind a waypoint refuses it (fail closed).
    if (waypointsGuarding(ctx.state(), local).length > 0) {
      throw new MeshError(ErrorCodes.WAYPOINT_REQUIRED, `inbound plaintext to ${dstAddr}: ${local.name} is behind a waypoint and accepts only traffic that came through it`);
    }
    const attrs = { sourceIp: client.remoteAddress, destinationIp: orig.ip, destinationPort: orig.port };
    ctx.authorizer.authorize(local, attrs);
    tracked.authz = { workloadUid: local.uid, attrs };
    const app = await dialer.tcp(orig.ip, orig.port, client.remoteAddress).catch((e) => {
      throw new MeshError(ErrorCodes.UPSTREAM_CONNECT, `cannot connect to the app at ${dstAddr}: ${asMeshError(e).message}`, { cause: e });
    });
    if (client.isClosed) {
      app.destroy();
      return;
    }
    dstAddr = hostPort(orig.ip, orig.port);
    const metrics = ctx.metrics.connectionOpened(labels);
    const r = relay(client, app, metrics);
    tracked.relay = r;
    client.resume();
    const result = await r.done;
    metrics.closed(tracked.closedBy);
    accessLog(ctx.accessLog, {
      ...base,
      dstAddr,
      clientToServerBytes: result.aToB,
      serverToClientBytes: result.bToA,
      durationMs: Date.now() - started,
      responseFlags: tracked.closedBy ?? "-",
      ...(tracked.closeReason ? { error: `closed by ztunnel: ${tracked.closeReason}` } : {}),
    });
  } catch (e) {
    const err = asMeshError(e, ErrorCodes.UPSTREAM_CONNECT);
    client.destroy();
    reportFailure(ctx, labels, { ...base, dstAddr }, err, started);
  } finally {
    ctx.connections.delete(tracked);
  }
}
