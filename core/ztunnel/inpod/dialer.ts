// How a captured pod's proxy opens its upstream connections: inside the pod's network namespace,
// with the ztunnel mark so the pod's redirect rules let them pass (istio/ztunnel: SO_MARK 1337 on
// every socket of an in-pod proxy). Inbound connections to the app also carry the client's own
// address as their source (IP_TRANSPARENT), so the app sees who called it.
import { connectTcpInNetns, connectTransportInNetns, type HboneTransport, type TcpConnection } from "../../net/index.ts";
import { ZTUNNEL_MARK } from "./rules.ts";

export interface PodDialer {
  readonly netnsPath: string;
  /** the pod's address, the source of its tunnels (and the HBONE pool key's source IP) */
  readonly podIp: string;
  /** TCP in the pod's namespace; with `sourceIp`, from that (non-local) address */
  tcp(ip: string, port: number, sourceIp?: string): Promise<TcpConnection>;
  /** the byte stream an HBONE client connection runs TLS over */
  hboneTransport(ip: string, port: number): Promise<HboneTransport>;
}

function isLoopback(ip: string): boolean {
  return ip.startsWith("127.") || ip === "::1";
}

export function podDialer(netnsPath: string, podIp: string, timeoutMs: number): PodDialer {
  return {
    netnsPath,
    podIp,
    tcp(ip, port, sourceIp) {
      // Spoof only a real remote client: the app's own address or loopback is reached as is.
      const spoof = sourceIp && sourceIp !== ip && !isLoopback(sourceIp) && !isLoopback(ip) ? sourceIp : undefined;
      return connectTcpInNetns(netnsPath, { ip, port, mark: ZTUNNEL_MARK, timeoutMs, ...(spoof ? { sourceIp: spoof } : {}) });
    },
    hboneTransport(ip, port) {
      return connectTransportInNetns(netnsPath, { ip, port, mark: ZTUNNEL_MARK, timeoutMs });
    },
  };
}
