// A minimal SOCKS5 client (no auth, CONNECT by domain name) for the quickstart: send one request
// through the client workload's ztunnel and read the whole response.
import { MeshError, ErrorCodes } from "../core/errors/index.ts";
import { connectTcp } from "../core/net/index.ts";

export async function socks5Request(
  proxy: { host: string; port: number },
  target: { host: string; port: number },
  request: string,
  timeoutMs: number,
): Promise<string> {
  const conn = await connectTcp({ hostname: proxy.host, port: proxy.port, timeoutMs });
  const name = new TextEncoder().encode(target.host);
  const chunks: Uint8Array[] = [];
  let phase: "greeting" | "connect" | "data" = "greeting";
  let buf = new Uint8Array(0);
  return await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `no response through SOCKS5 ${proxy.host}:${proxy.port} within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.setEvents({
      data(chunk) {
        if (phase === "data") {
          chunks.push(new Uint8Array(chunk));
          return;
        }
        const merged = new Uint8Array(buf.length + chunk.length);
        merged.set(buf);
        merged.set(chunk, buf.length);
        buf = merged;
        if (phase === "greeting" && buf.length >= 2) {
          if (buf[0] !== 5 || buf[1] !== 0) return reject(new MeshError(ErrorCodes.SOCKS_PROTOCOL, "SOCKS5 proxy refused the no-auth method"));
          buf = buf.slice(2);
          phase = "connect";
          conn.write(Uint8Array.of(5, 1, 0, 3, name.length, ...name, target.port >> 8, target.port & 0xff));
        }
        if (phase === "connect" && buf.length >= 10) {
          if (buf[1] !== 0) {
            clearTimeout(timer);
            conn.destroy();
            return reject(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `SOCKS5 CONNECT to ${target.host}:${target.port} failed with reply ${buf[1]}`));
          }
          phase = "data";
          if (buf.length > 10) chunks.push(buf.slice(10));
          conn.write(new TextEncoder().encode(request));
        }
      },
      end() {
        conn.end();
      },
      close() {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks).toString("utf8"));
      },
    });
    conn.write(Uint8Array.of(5, 1, 0));
  });
}
