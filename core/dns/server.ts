// The DNS proxy's listeners: UDP and TCP on one address, optionally inside a pod's network
// namespace (captured mode, 127.0.0.1:15053 where the pod's redirect rules send port 53).
import { bindUdp, listenTcp, listenTcpInNetns, withNetns, type TcpConnection, type TcpListener, type UdpListener } from "../net/index.ts";
import { DnsProxy, MAX_DNS_MESSAGE, frameTcpMessage, splitTcpMessages, type MeshLookup } from "./proxy.ts";

export const DNS_PROXY_PORT = 15053;

export interface DnsListeners {
  readonly udp: UdpListener;
  readonly tcp: TcpListener;
  close(): void;
}

/** A TCP client idle this long between messages is closed. */
const TCP_IDLE_MS = 30_000;

/** Reassembles DNS messages (two-byte length prefix) from the chunks of one TCP stream. */
export class TcpMessageReader {
  private buf: Uint8Array = new Uint8Array(0);

  /** The messages this chunk completes; the bytes of an incomplete one wait for the next chunk. */
  push(chunk: Uint8Array): Uint8Array[] {
    const next = new Uint8Array(this.buf.byteLength + chunk.byteLength);
    next.set(this.buf);
    next.set(chunk, this.buf.byteLength);
    const { messages, rest } = splitTcpMessages(next);
    this.buf = rest;
    return messages;
  }

  /** Bytes held for a message not yet complete. */
  get pending(): number {
    return this.buf.byteLength;
  }
}

export async function serveDns(
  proxy: DnsProxy,
  opts: { hostname: string; port: number; netnsPath?: string; lookup: MeshLookup },
): Promise<DnsListeners> {
  const onMessage = (data: Uint8Array, _from: unknown, reply: (d: Uint8Array) => void) => {
    void proxy.answer(data, opts.lookup, "udp").then((out) => {
      if (out) reply(out);
    });
  };
  const udpStarting = opts.netnsPath
    ? withNetns(opts.netnsPath, () => bindUdp({ hostname: opts.hostname, port: opts.port, onMessage }))
    : bindUdp({ hostname: opts.hostname, port: opts.port, onMessage });
  let tcp: TcpListener;
  try {
    tcp = opts.netnsPath
      ? listenTcpInNetns(opts.netnsPath, { hostname: opts.hostname, port: opts.port, onConnection: (c) => serveTcpClient(proxy, opts.lookup, c) })
      : listenTcp({ hostname: opts.hostname, port: opts.port, onConnection: (c) => serveTcpClient(proxy, opts.lookup, c) });
  } catch (e) {
    void udpStarting.then((u) => u.close(), () => {});
    throw e;
  }
  let udp: UdpListener;
  try {
    udp = await udpStarting;
  } catch (e) {
    tcp.close();
    throw e;
  }
  return {
    udp,
    tcp,
    close() {
      udp.close();
      tcp.close();
    },
  };
}

function serveTcpClient(proxy: DnsProxy, lookup: MeshLookup, conn: TcpConnection): void {
  const reader = new TcpMessageReader();
  let chain = Promise.resolve();
  let idle = setTimeout(() => conn.destroy(), TCP_IDLE_MS);
  conn.setEvents({
    data(chunk) {
      const messages = reader.push(chunk);
      // Bounded: one message is at most 64 KiB plus its length prefix.
      if (reader.pending > MAX_DNS_MESSAGE + 2) return conn.destroy();
      clearTimeout(idle);
      idle = setTimeout(() => conn.destroy(), TCP_IDLE_MS);
      for (const m of messages) {
        chain = chain.then(async () => {
          const out = await proxy.answer(m, lookup, "tcp");
          if (out) conn.write(frameTcpMessage(out));
        });
      }
    },
    end() {
      void chain.then(() => conn.end());
    },
    drain() {},
    close() {
      clearTimeout(idle);
    },
  });
}
