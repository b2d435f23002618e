// A connection the ztunnel is relaying: tracked for drain and policy re-checks, and reported
// (metrics, one access-log line) when it ends. Once relaying starts nothing else holds the
// connection's setup state, so an idle tunnel costs only this object and its streams.
import type { ByteStream, Relay } from "../net/index.ts";
import { relay } from "../net/index.ts";
import type { L4Attributes } from "../policy/index.ts";
import { accessLog, type ConnectionRecord, type TcpConnectionMetrics } from "../telemetry/index.ts";
import type { TrackedConnection, ZtunnelContext } from "./context.ts";

export type RelayRecord = Omit<ConnectionRecord, "clientToServerBytes" | "serverToClientBytes" | "durationMs" | "error" | "responseFlags">;

export class ProxiedConnection implements TrackedConnection {
  relay?: Relay;
  authz?: { readonly workloadUid: string; readonly attrs: L4Attributes };
  closedBy?: string;
  closeReason?: string;
  readonly startedAt = Date.now();

  constructor(
    private readonly ctx: ZtunnelContext,
    readonly direction: "inbound" | "outbound",
    readonly workloadUid: string,
    /** closed by abort() while the relay is not running yet */
    private readonly downstream?: ByteStream,
  ) {
    ctx.connections.add(this);
  }

  abort(reason: string, responseFlag?: string): void {
    if (responseFlag) this.closedBy = responseFlag;
    this.closeReason = reason;
    if (this.relay) this.relay.abort(new Error(reason));
    else this.downstream?.destroy();
  }

  /** Relays `client` (the side that opened the connection) and `server` until both finish. */
  run(client: ByteStream, server: ByteStream, metrics: TcpConnectionMetrics, record: RelayRecord): void {
    const r = relay(client, server, metrics);
    this.relay = r;
    void r.done.then((result) => {
      metrics.closed(this.closedBy);
      accessLog(this.ctx.accessLog, {
        ...record,
        clientToServerBytes: result.aToB,
        serverToClientBytes: result.bToA,
        durationMs: Date.now() - this.startedAt,
        responseFlags: this.closedBy ?? "-",
        ...(this.closeReason ? { error: `closed by ztunnel: ${this.closeReason}` } : {}),
      });
      this.ctx.connections.delete(this);
    });
  }

  /** Setup failed or was refused: no relay will run. */
  forget(): void {
    this.ctx.connections.delete(this);
  }
}
