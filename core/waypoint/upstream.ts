// How the waypoint reaches an endpoint: by HBONE as its own identity to a mesh workload (pooled
// HTTP/2 connections, one CONNECT stream per upstream HTTP connection), or by plain TCP to a
// workload outside the mesh (egress, `protocol: TCP` workloads). The HTTP clients on top of these
// streams are pooled per endpoint (upstream-h1.ts, upstream-h2.ts).
import type { Workload } from "../config/index.ts";
import { ErrorCodes, MeshError, asMeshError } from "../errors/index.ts";
import { formatForwarded, type HbonePool } from "../hbone/index.ts";
import { connectTcp, connectTlsOrigination, type ByteStream, type TlsIdentity } from "../net/index.ts";
import type { DestinationRule } from "../routes/index.ts";
import type { Endpoint } from "./endpoints.ts";
import type { HeaderPairs, UpstreamResponse } from "./exchange.ts";

export const HBONE_PORT = 15008;

export interface UpstreamHead {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly scheme: string;
  readonly headers: HeaderPairs;
}

/** One request in flight to one endpoint. */
export interface UpstreamCall {
  /** Rejects with a MeshError: UPSTREAM_CONNECT (no connection), UPSTREAM_RESET (details say
   *  "refused-stream" or "reset"; "reused" when a kept-alive connection died under it). */
  readonly response: Promise<UpstreamResponse & { readonly peerIdentity?: string }>;
  /** the endpoint's verified identity once connected (HBONE) */
  readonly peerIdentity: string | undefined;
  cancel(err: MeshError): void;
}

/**
 * Which pooled connections a request to `ep` may share. Outside the mesh the connection's TLS
 * settings come from the service (its DestinationRule), so one address reached as two services
 * gets two pools: a connection verified for one name is never reused for another.
 */
export function connectionPoolKey(ep: Endpoint): string {
  return ep.workload.protocol === "HBONE" || !ep.service ? ep.key : `${ep.key}|${ep.service.hostname}`;
}

export interface UpstreamDialer {
  dial(ep: Endpoint): Promise<{ stream: ByteStream; peerIdentity?: string }>;
}

export interface MeshDialerOptions {
  readonly pool: HbonePool;
  readonly self: () => Workload;
  readonly selfIp: string;
  readonly identity: () => TlsIdentity;
  readonly connectTimeoutMs: number;
  /** the DestinationRule for a service hostname (egress TLS origination) */
  readonly destinationRule?: (host: string) => DestinationRule | undefined;
}

/** HBONE for mesh workloads, plain TCP for the rest; the source address is always the waypoint's. */
export class MeshDialer implements UpstreamDialer {
  constructor(private readonly o: MeshDialerOptions) {}

  async dial(ep: Endpoint): Promise<{ stream: ByteStream; peerIdentity?: string }> {
    if (ep.workload.protocol !== "HBONE") {
      // Outside the mesh: plain TCP, or TLS when a DestinationRule says SIMPLE (egress).
      const tls = ep.service ? this.o.destinationRule?.(ep.service.hostname)?.tls : undefined;
      try {
        if (tls) {
          const servername = tls.sni ?? ep.service?.hostname ?? ep.ip;
          return { stream: await connectTlsOrigination({ host: ep.ip, port: ep.port, servername, ...(tls.caPem ? { caPem: tls.caPem } : {}), timeoutMs: this.o.connectTimeoutMs }) };
        }
        const conn = await connectTcp({ hostname: ep.ip, port: ep.port, timeoutMs: this.o.connectTimeoutMs });
        return { stream: conn };
      } catch (e) {
        throw new MeshError(ErrorCodes.UPSTREAM_CONNECT, `cannot connect to ${ep.key}: ${asMeshError(e).message}`, { cause: e });
      }
    }
    const self = this.o.self();
    try {
      const t = await this.o.pool.open({
        key: { sourceIdentity: self.identity, destinationIdentities: [ep.workload.identity], address: ep.ip, port: HBONE_PORT, sourceIp: this.o.selfIp },
        identity: this.o.identity(),
        authority: ep.ip.includes(":") ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`,
        headers: { forwarded: formatForwarded(this.o.selfIp, 0) },
        bindAddress: this.o.selfIp,
      });
      return { stream: t.stream, peerIdentity: t.peer.identity };
    } catch (e) {
      const err = asMeshError(e, ErrorCodes.HBONE_UPSTREAM_CONNECT);
      throw new MeshError(ErrorCodes.UPSTREAM_CONNECT, `cannot open a tunnel to ${ep.key}: ${err.message}`, { cause: err, details: [`cause=${err.code}`] });
    }
  }
}
