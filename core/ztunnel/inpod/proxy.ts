// The proxy of one captured pod, opened inside the pod's network namespace as istio/ztunnel's
// in-pod mode does (reference/ztunnel.md §8): 15001 outbound capture (original destination from
// SO_ORIGINAL_DST), 15006 inbound plaintext, 15008 HBONE with the pod's certificate on the pod's
// address, 15053 DNS (UDP and TCP) on the pod's loopback. Its own upstream sockets are created in
// the pod's namespace and carry the ztunnel mark (dialer.ts).
import type { Workload } from "../../config/index.ts";
import { serveDns, type DnsListeners, type DnsProxy } from "../../dns/index.ts";
import { listenFdInNetns, listenTcp, listenTcpInNetns, withNetns, type TcpListener } from "../../net/index.ts";
import type { ZtunnelContext } from "../context.ts";
import { handleRequest } from "../outbound.ts";
import { LocalWorkloadProxy } from "../workload-proxy.ts";
import { podDialer, type PodDialer } from "./dialer.ts";
import { meshDnsLookup } from "./dns.ts";
import { serveInboundPlaintext } from "./inbound-plaintext.ts";
import { INPOD_PORTS } from "./rules.ts";

export interface InpodListeners {
  hbone: { address: string; port: number }[];
  /** none in captured mode; kept so both kinds of proxy report the same shape */
  socks5: { address: string; port: number }[];
  outbound: { address: string; port: number }[];
  inboundPlaintext: { address: string; port: number }[];
  dns: { address: string; port: number }[];
  netns: string;
}

/** Whether the namespace has ::1 (IPv6 not disabled there). */
function hasIpv6Loopback(netnsPath: string): boolean {
  try {
    withNetns(netnsPath, () => listenTcp({ hostname: "::1", port: 0, onConnection: (c) => c.destroy() })).close();
    return true;
  } catch {
    return false;
  }
}

export class InpodProxy extends LocalWorkloadProxy {
  private outbound: TcpListener[] = [];
  private inbound: TcpListener[] = [];
  private dns: DnsListeners[] = [];
  private accepting = true;

  private constructor(
    ctx: ZtunnelContext,
    workload: Workload,
    readonly netnsPath: string,
    private readonly dialer: PodDialer,
  ) {
    super(ctx, workload);
  }

  static async start(ctx: ZtunnelContext, workload: Workload, netnsPath: string, dnsProxy: DnsProxy): Promise<InpodProxy> {
    const podIp = workload.workloadIps.find((ip) => !ip.includes(":")) ?? workload.workloadIps[0] ?? "";
    const p = new InpodProxy(ctx, workload, netnsPath, podDialer(netnsPath, podIp, ctx.upstreamConnectTimeoutMs));
    try {
      const identity = ctx.tlsIdentityOf(workload);
      for (const ip of workload.workloadIps) {
        const fd = listenFdInNetns(netnsPath, ip, INPOD_PORTS.hbone);
        await p.listenHbone(identity, ip, INPOD_PORTS.hbone, { fd, dialer: p.dialer });
      }
      // REDIRECT in OUTPUT delivers to the loopback address (127.0.0.1 / ::1): the app cannot reach
      // 15001 by the pod's address. IPv6 listeners are skipped only where the pod has no IPv6.
      const outbound = (hostname: string) =>
        listenTcpInNetns(netnsPath, {
          hostname,
          port: INPOD_PORTS.outbound,
          onConnection: (conn, orig) => {
            if (!p.accepting || ctx.draining() || !orig) return conn.destroy();
            conn.pause();
            void handleRequest(ctx, p.workload, conn, { kind: "ip", ip: orig.ip, port: orig.port }, new Uint8Array(0), p.dialer);
          },
        });
      const inbound = (hostname: string) =>
        listenTcpInNetns(netnsPath, {
          hostname,
          port: INPOD_PORTS.inboundPlaintext,
          ipv6Only: hostname === "::",
          onConnection: (conn, orig) => {
            if (!p.accepting || ctx.draining()) return conn.destroy();
            void serveInboundPlaintext(ctx, p.workload, p.dialer, conn, orig);
          },
        });
      p.outbound.push(outbound("127.0.0.1"));
      p.inbound.push(inbound("0.0.0.0"));
      const lookup = meshDnsLookup(ctx.state, () => p.workload, ctx.clusterDomain);
      p.dns.push(await serveDns(dnsProxy, { hostname: "127.0.0.1", port: INPOD_PORTS.dns, netnsPath, lookup }));
      if (hasIpv6Loopback(netnsPath)) {
        p.outbound.push(outbound("::1"));
        p.inbound.push(inbound("::"));
        p.dns.push(await serveDns(dnsProxy, { hostname: "::1", port: INPOD_PORTS.dns, netnsPath, lookup }));
      } else {
        ctx.log.info("pod has no IPv6 loopback; IPv6 capture listeners skipped (IPv6 is off in its namespace)", { workload: workload.name });
      }
    } catch (e) {
      p.close();
      throw e;
    }
    return p;
  }

  get listeners(): InpodListeners {
    const shape = (ls: readonly { hostname: string; port: number }[]) => ls.map((l) => ({ address: l.hostname, port: l.port }));
    return {
      hbone: shape(this.hbone),
      socks5: [],
      outbound: shape(this.outbound),
      inboundPlaintext: shape(this.inbound),
      dns: shape(this.dns.map((d) => d.tcp)),
      netns: this.netnsPath,
    };
  }

  /** Stop accepting and GOAWAY HBONE sessions; open connections continue. */
  drain(): void {
    this.accepting = false;
    this.closeCapture();
    for (const l of this.hbone) l.drain();
  }

  close(): void {
    this.accepting = false;
    this.closeCapture();
    for (const l of this.hbone) l.destroy();
    this.hbone = [];
  }

  private closeCapture(): void {
    for (const l of [...this.outbound, ...this.inbound]) l.close();
    for (const d of this.dns) d.close();
    this.outbound = [];
    this.inbound = [];
    this.dns = [];
  }
}
