// The listeners of one local workload, bound to the workload's own address (loopback mode):
// HBONE inbound on IP:15008 presenting the workload's certificate, SOCKS5 on IP:15080 as its
// outbound entry. The listener that accepted a connection is the identity in force.
import type { Workload } from "../config/index.ts";
import { HboneListener } from "../hbone/index.ts";
import { listenTcp, type TcpListener, type TlsIdentity } from "../net/index.ts";
import type { ZtunnelContext } from "./context.ts";
import { serveInboundTunnel } from "./inbound.ts";
import { serveSocksConnection } from "./outbound.ts";
import { HBONE_PORT } from "./route.ts";

export const SOCKS5_PORT = 15080;

export interface WorkloadPorts {
  hbone: number;
  socks5: number;
}

export class WorkloadProxy {
  private hbone: HboneListener[] = [];
  private socks: TcpListener[] = [];

  private constructor(
    private readonly ctx: ZtunnelContext,
    /** replaced on config changes that keep the listeners (same uid, ips and identity) */
    public workload: Workload,
  ) {}

  static async start(ctx: ZtunnelContext, workload: Workload, ports: WorkloadPorts = { hbone: HBONE_PORT, socks5: SOCKS5_PORT }): Promise<WorkloadProxy> {
    const p = new WorkloadProxy(ctx, workload);
    try {
      const identity = ctx.tlsIdentityOf(workload);
      for (const ip of workload.workloadIps) {
        p.hbone.push(
          await HboneListener.start({
            hostname: ip,
            port: ports.hbone,
            identity,
            tuning: ctx.tuning,
            verifier: ctx.verifier,
            log: (level, msg, fields) => ctx.log[level](msg, { workload: workload.name, ...fields }),
            onTunnel: (t) => void serveInboundTunnel(ctx, p.workload, t),
            onRejectedPeer: (err, addr) =>
              ctx.log.warn("HBONE peer rejected", { workload: workload.name, code: err.code, error: err.message, "src.addr": addr }),
          }),
        );
        p.socks.push(
          listenTcp({
            hostname: ip,
            port: ports.socks5,
            onConnection: (conn) => {
              if (ctx.draining()) return conn.destroy();
              serveSocksConnection(ctx, p.workload, conn);
            },
          }),
        );
      }
    } catch (e) {
      p.close();
      throw e;
    }
    return p;
  }

  /** True when `next` can keep these listeners (same addresses and identity). */
  compatibleWith(next: Workload): boolean {
    const a = this.workload;
    return a.identity === next.identity && a.workloadIps.join(",") === next.workloadIps.join(",");
  }

  setIdentity(id: TlsIdentity): void {
    for (const l of this.hbone) l.setIdentity(id);
  }

  get listeners(): { hbone: { address: string; port: number }[]; socks5: { address: string; port: number }[] } {
    return {
      hbone: this.hbone.map((l) => ({ address: l.hostname, port: l.port })),
      socks5: this.socks.map((l) => ({ address: l.hostname, port: l.port })),
    };
  }

  /** Stop accepting and GOAWAY HBONE sessions; open tunnels continue. */
  drain(): void {
    for (const l of this.socks) l.close();
    for (const l of this.hbone) l.drain();
  }

  close(): void {
    for (const l of this.socks) l.close();
    for (const l of this.hbone) l.destroy();
    this.socks = [];
    this.hbone = [];
  }
}
