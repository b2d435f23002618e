// The listeners of one local workload, bound to the workload's own address (loopback mode):
// HBONE inbound on IP:15008 presenting the workload's certificate, SOCKS5 on IP:15080 as its
// outbound entry. The listener that accepted a connection is the identity in force.
import type { Workload } from "../config/index.ts";
import { HboneListener } from "../hbone/index.ts";
import { closeFd, listenTcp, type TcpListener, type TlsIdentity } from "../net/index.ts";
import type { ZtunnelContext } from "./context.ts";
import { serveInboundTunnel } from "./inbound.ts";
import type { PodDialer } from "./inpod/index.ts";
import { serveSocksConnection } from "./outbound.ts";
import { HBONE_PORT } from "./route.ts";

export const SOCKS5_PORT = 15080;

export interface WorkloadPorts {
  hbone: number;
  socks5: number;
}

/**
 * What both kinds of proxy of a local workload share (loopback mode here, captured mode in
 * inpod/proxy.ts): the workload served and its HBONE listeners, which present its certificate.
 */
export abstract class LocalWorkloadProxy {
  protected hbone: HboneListener[] = [];

  protected constructor(
    protected readonly ctx: ZtunnelContext,
    /** replaced on config changes that keep the listeners (same uid, ips and identity) */
    public workload: Workload,
  ) {}

  /**
   * Opens the HBONE listener on `ip:port`. Tunnels are served for `this.workload` as it is when
   * they arrive. `fd`: an already bound socket (in-pod), closed here if the listener fails to
   * start; `dialer`: how upstream sockets are made (in the pod's namespace).
   */
  protected async listenHbone(identity: TlsIdentity, ip: string, port: number, opts: { fd?: number; dialer?: PodDialer } = {}): Promise<void> {
    const { ctx } = this;
    const name = this.workload.name;
    const listener = await HboneListener.start({
      hostname: ip,
      port,
      fd: opts.fd,
      identity,
      tuning: ctx.tuning,
      verifier: ctx.verifier,
      log: (level, msg, fields) => ctx.log[level](msg, { workload: name, ...fields }),
      onTunnel: (t) => void serveInboundTunnel(ctx, this.workload, t, opts.dialer),
      onRejectedPeer: (err, addr) => ctx.log.warn("HBONE peer rejected", { workload: name, code: err.code, error: err.message, "src.addr": addr }),
    }).catch((e: unknown) => {
      if (opts.fd !== undefined) closeFd(opts.fd);
      throw e;
    });
    this.hbone.push(listener);
  }

  /** True when `next` can keep these listeners (same addresses and identity). */
  compatibleWith(next: Workload): boolean {
    const a = this.workload;
    return a.identity === next.identity && a.workloadIps.join(",") === next.workloadIps.join(",");
  }

  setIdentity(id: TlsIdentity): void {
    for (const l of this.hbone) l.setIdentity(id);
  }
}

export class WorkloadProxy extends LocalWorkloadProxy {
  private socks: TcpListener[] = [];

  private constructor(ctx: ZtunnelContext, workload: Workload) {
    super(ctx, workload);
  }

  static async start(ctx: ZtunnelContext, workload: Workload, ports: WorkloadPorts = { hbone: HBONE_PORT, socks5: SOCKS5_PORT }): Promise<WorkloadProxy> {
    const p = new WorkloadProxy(ctx, workload);
    try {
      const identity = ctx.tlsIdentityOf(workload);
      for (const ip of workload.workloadIps) {
        await p.listenHbone(identity, ip, ports.hbone);
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
