// UDP on Bun's native sockets, for the DNS proxy: a bound socket that answers datagrams, and a
// one-shot request/response exchange with a timeout. Bun.udpSocket opens its socket synchronously,
// so `bindUdp` called inside `withNetns` binds in that namespace.
import type { udp } from "bun";
import { ErrorCodes, MeshError } from "../errors/index.ts";

/** Largest datagram accepted or sent (EDNS0 payloads stay far below this). */
export const MAX_DATAGRAM = 65_535;

export interface UdpListener {
  readonly hostname: string;
  readonly port: number;
  close(): void;
}

export interface UdpPeer {
  readonly address: string;
  readonly port: number;
}

/**
 * Binds hostname:port and calls `onMessage` for every datagram; `reply` sends one datagram back
 * to the sender. Socket errors (ICMP unreachable for an earlier reply) are ignored: UDP has no
 * connection to fail.
 */
export function bindUdp(opts: {
  hostname: string;
  port: number;
  onMessage(data: Uint8Array, from: UdpPeer, reply: (data: Uint8Array) => void): void;
}): Promise<UdpListener> {
  let sock: udp.Socket<"buffer"> | undefined;
  const started = Bun.udpSocket({
    hostname: opts.hostname,
    port: opts.port,
    socket: {
      data(s, buf, port, address) {
        if (buf.byteLength > MAX_DATAGRAM) return;
        opts.onMessage(new Uint8Array(buf), { address, port }, (out) => {
          if (out.byteLength <= MAX_DATAGRAM) s.send(out, port, address);
        });
      },
      error() {},
    },
  });
  return started.then(
    (s) => {
      sock = s;
      return {
        hostname: opts.hostname,
        port: s.port,
        close() {
          sock?.close();
        },
      };
    },
    (e: unknown) => {
      const msg = e instanceof Error ? e.message : String(e);
      const code = /in use|EADDRINUSE/i.test(msg) ? ErrorCodes.ADDRESS_IN_USE : ErrorCodes.LISTEN_FAILED;
      throw new MeshError(code, `cannot bind UDP ${opts.hostname}:${opts.port}: ${msg}`, { cause: e });
    },
  );
}

/**
 * Sends one datagram to ip:port from an ephemeral socket and resolves with the first reply that
 * `accept` takes (e.g. a DNS answer with the right id); rejects after `timeoutMs`.
 */
export async function udpExchange(opts: { ip: string; port: number; payload: Uint8Array; timeoutMs: number; accept(reply: Uint8Array): boolean }): Promise<Uint8Array> {
  const family6 = opts.ip.includes(":");
  let timer: ReturnType<typeof setTimeout> | undefined;
  let sock: udp.Socket<"buffer"> | undefined;
  let done = false;
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      timer = setTimeout(() => reject(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `no UDP reply from ${opts.ip}:${opts.port} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      Bun.udpSocket({
        hostname: family6 ? "::" : "0.0.0.0",
        port: 0,
        socket: {
          data(_s, buf, port, address) {
            if (port !== opts.port || address.replace(/^::ffff:/, "") !== opts.ip) return;
            const reply = new Uint8Array(buf);
            if (opts.accept(reply)) resolve(reply);
          },
          error(_s, e) {
            reject(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `UDP exchange with ${opts.ip}:${opts.port} failed: ${e.message}`, { cause: e }));
          },
        },
      }).then((s) => {
        if (done) return void s.close();
        sock = s;
        s.send(opts.payload, opts.port, opts.ip);
      }, reject);
    });
  } finally {
    done = true;
    clearTimeout(timer);
    sock?.close();
  }
}
