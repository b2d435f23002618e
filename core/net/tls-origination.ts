// TLS origination for egress: the waypoint connects out to a service outside the mesh over TLS
// (Istio DestinationRule `tls.mode: SIMPLE`). The server is verified against the given CA bundle
// or the system roots, and its name against `servername`; nothing here is left to a default.
import tls from "node:tls";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { DuplexByteStream, type ByteStream } from "./stream.ts";

export interface TlsOriginationOptions {
  readonly host: string;
  readonly port: number;
  /** SNI and the name the certificate must carry */
  readonly servername: string;
  /** PEM bundle to trust; undefined = the system's root store */
  readonly caPem?: string;
  readonly timeoutMs: number;
}

export function connectTlsOrigination(o: TlsOriginationOptions): Promise<ByteStream> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: o.host,
      port: o.port,
      servername: o.servername,
      ...(o.caPem ? { ca: o.caPem } : { ca: [...tls.rootCertificates] }),
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(o.servername, cert),
      ALPNProtocols: ["http/1.1"],
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `TLS to ${o.host}:${o.port} (${o.servername}) timed out after ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      if (!socket.authorized) {
        socket.destroy();
        reject(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `TLS to ${o.servername}: server not verified (${String(socket.authorizationError)})`));
        return;
      }
      resolve(new DuplexByteStream(socket));
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `TLS to ${o.host}:${o.port} (${o.servername}) failed: ${e.message}`, { cause: e }));
    });
  });
}
