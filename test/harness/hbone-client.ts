// A test-side HBONE client: mutual TLS with a given mesh certificate, HTTP/2 CONNECT to a peer's
// 15008, the tunnel stream back. Test fixture: the server's identity is not pinned here (tests that
// need that use the product's pool).
import http2 from "node:http2";
import tls from "node:tls";
import type { Duplex } from "node:stream";

export interface HboneTestCert {
  readonly certChainPem: string;
  readonly keyPem: string;
  readonly rootPem: string;
}

export interface HboneTestTunnel {
  readonly status: number;
  readonly stream: Duplex;
  close(): void;
}

export async function hboneConnect(opts: { address: string; port?: number; authority: string; cert: HboneTestCert; localAddress?: string; headers?: Record<string, string> }): Promise<HboneTestTunnel> {
  const port = opts.port ?? 15008;
  const session = http2.connect(`https://${opts.address}:${port}`, {
    createConnection: () =>
      tls.connect({
        host: opts.address,
        port,
        cert: opts.cert.certChainPem,
        key: opts.cert.keyPem,
        ca: opts.cert.rootPem,
        ALPNProtocols: ["h2"],
        // SPIFFE certificates carry no DNS name; the chain is still verified against the mesh root.
        checkServerIdentity: () => undefined,
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      } as tls.ConnectionOptions),
  });
  session.on("error", () => {});
  const stream = session.request({ ":method": "CONNECT", ":authority": opts.authority, ...(opts.headers ?? {}) }, { endStream: false });
  stream.on("error", () => {});
  const status = await new Promise<number>((resolve, reject) => {
    stream.once("response", (h) => resolve(Number(h[":status"])));
    stream.once("close", () => resolve(0));
    session.once("error", reject);
  });
  return { status, stream, close: () => session.destroy() };
}
