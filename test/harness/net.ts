// Test-side network helpers: apps listening on workload addresses, and a SOCKS5 client that
// returns a plain node:net socket once the tunnel is up.
import net from "node:net";

export interface TestServer {
  readonly host: string;
  readonly port: number;
  readonly connections: number;
  close(): Promise<void>;
}

/** A TCP echo server (echoes until the client half-closes, then half-closes). */
export function echoServer(host: string, port = 0): Promise<TestServer> {
  return serve(host, port, (s) => {
    s.pipe(s);
  });
}

export function serve(host: string, port: number, onConn: (s: net.Socket) => void): Promise<TestServer> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    count++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    onConn(s);
  });
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen({ host, port, exclusive: true }, () => {
      const addr = srv.address() as net.AddressInfo;
      resolve({
        host,
        port: addr.port,
        get connections() {
          return count;
        },
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            srv.close(() => r());
          }),
      });
    });
  });
}

export class SocksError extends Error {
  constructor(readonly reply: number) {
    super(`SOCKS5 CONNECT failed with reply ${reply}`);
  }
}

/** SOCKS5 CONNECT through `proxy` to `host:port` (IPv4 literal or domain). */
export function socksConnect(proxy: { host: string; port?: number }, host: string, port: number, timeoutMs = 10_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: proxy.host, port: proxy.port ?? 15080, allowHalfOpen: true });
    s.setNoDelay(true);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`SOCKS5 to ${host}:${port} via ${proxy.host} timed out`));
    }, timeoutMs);
    let buf = Buffer.alloc(0);
    let phase = 0;
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (phase === 0 && buf.length >= 2) {
        if (buf[1] !== 0) return fail(new SocksError(0xff));
        buf = buf.subarray(2);
        phase = 1;
        const v4 = net.isIPv4(host);
        const addr = v4 ? Buffer.from([1, ...host.split(".").map(Number)]) : Buffer.concat([Buffer.from([3, host.length]), Buffer.from(host)]);
        s.write(Buffer.concat([Buffer.from([5, 1, 0]), addr, Buffer.from([port >> 8, port & 0xff])]));
      }
      if (phase === 1 && buf.length >= 10) {
        if (buf[1] !== 0) return fail(new SocksError(buf[1]!));
        clearTimeout(timer);
        // Hold the stream while handlers change hands: in flowing mode, bytes that came with
        // the reply (the server may speak first) would be emitted to no listener and lost.
        s.pause();
        s.off("data", onData);
        s.off("error", fail);
        s.off("close", onClose);
        const rest = buf.subarray(10);
        if (rest.length) s.unshift(rest);
        resolve(s);
        // The caller attaches its listeners when the promise settles; flow again after that.
        setImmediate(() => s.resume());
      }
    };
    const fail = (e: Error) => {
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    s.on("data", onData);
    s.on("error", fail);
    const onClose = () => fail(new Error("SOCKS5 connection closed during the handshake"));
    s.on("close", onClose);
    s.write(Buffer.from([5, 1, 0]));
  });
}

/** Writes `data` (optionally ending), and collects everything until the peer ends. */
export function exchange(s: net.Socket, data: string | Buffer, end = true): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("end", () => resolve(Buffer.concat(chunks)));
    s.on("error", reject);
    s.write(data);
    if (end) s.end();
  });
}

export async function until(pred: () => boolean | Promise<boolean>, timeoutMs = 5000, what = "condition"): Promise<void> {
  const t = Date.now() + timeoutMs;
  while (Date.now() < t) {
    if (await pred()) return;
    await Bun.sleep(20);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
