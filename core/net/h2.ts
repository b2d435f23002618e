// node:http2 over node:tls, as HBONE needs it. This file is the only place that creates TLS
// contexts or HTTP/2 sessions; core/hbone builds the protocol on top of what it returns.
import http2 from "node:http2";
import tls from "node:tls";
import type { Duplex } from "node:stream";
import { MeshError, ErrorCodes } from "../errors/index.ts";
import { listenError } from "./tcp.ts";
import { DuplexByteStream, ignoreError, type ByteStream } from "./stream.ts";

export type H2Session = http2.Http2Session;
export type H2ServerSession = http2.ServerHttp2Session;
export type H2ClientSession = http2.ClientHttp2Session;
export type H2Stream = http2.Http2Stream;
export type H2ServerStream = http2.ServerHttp2Stream;
export type H2ClientStream = http2.ClientHttp2Stream;
export type H2Headers = http2.IncomingHttpHeaders;
export type H2Settings = http2.Settings;
export type PeerCertificate = tls.DetailedPeerCertificate;
export const h2constants = http2.constants;

/**
 * Resets an HTTP/2 stream: one RST_STREAM with `code`, nothing before it. Bun's `close(code)` ends
 * the stream first (DATA with END_STREAM), so the peer reads a cut-off body as complete, and on a
 * stream the peer has already ended it sends the END_STREAM and no RST_STREAM at all. destroy()
 * with an error writes only the RST_STREAM, with the code set beforehand (checked on the wire in
 * core/net/h2-reset.test.ts).
 */
export function resetH2Stream(stream: H2Stream, code: number): void {
  if (stream.destroyed || stream.closed) return;
  // destroy(err) emits the error; the caller asked for the reset, so nobody need hear of it
  stream.on("error", ignoreError);
  (stream as { rstCode?: number }).rstCode = code;
  stream.destroy(new Error(`stream reset with code ${code}`));
}

/** A CONNECT stream as a ByteStream whose destroy() is a reset (CANCEL, or INTERNAL_ERROR for an error), never an END_STREAM. */
export function h2ByteStream(stream: H2Stream): ByteStream {
  return new DuplexByteStream(stream, (err) => resetH2Stream(stream, err ? http2.constants.NGHTTP2_INTERNAL_ERROR : http2.constants.NGHTTP2_CANCEL));
}

export interface TlsIdentity {
  /** PEM: leaf + intermediates */
  readonly certChainPem: string;
  readonly keyPem: string;
  /** PEM trust bundle */
  readonly rootPem: string;
}

// TLS 1.3 only, AES-GCM suites in ztunnel's preference order (reference/ztunnel.md §2.1).
const TLS13_CIPHERS = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";

export interface HboneServerHandle {
  readonly hostname: string;
  readonly port: number;
  /** New handshakes present this identity; established sessions are untouched. */
  setIdentity(id: TlsIdentity): void;
  /** Stop accepting. */
  close(): void;
}

export interface HboneServerOptions {
  hostname: string;
  port: number;
  /** An already bound listening socket to serve on (captured mode: opened inside a pod's namespace). */
  fd?: number;
  identity: TlsIdentity;
  settings: H2Settings;
  /** The per-session receive window; must equal settings.initialWindowSize (Bun bug, reference/bun.md §2.3). */
  localWindowSize: number;
  maxSessionMemoryMb?: number;
  onSession(session: H2ServerSession): void;
  onStream(stream: H2ServerStream, headers: H2Headers): void;
  onTlsError?(err: Error, remoteAddress: string | undefined): void;
}

export function listenHbone(opts: HboneServerOptions): Promise<HboneServerHandle> {
  const server = http2.createSecureServer({
    key: opts.identity.keyPem,
    cert: opts.identity.certChainPem,
    ca: opts.identity.rootPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.3",
    maxVersion: "TLSv1.3",
    ciphers: TLS13_CIPHERS,
    ALPNProtocols: ["h2"],
    allowHTTP1: false,
    // Every hop disables Nagle (ztunnel: "really, really stop nagle's algorithm").
    noDelay: true,
    settings: opts.settings,
    maxSessionMemory: opts.maxSessionMemoryMb ?? 64,
    // Our own per-stream bounds apply too; this is the engine's.
    maxHeaderListPairs: 128,
    peerMaxConcurrentStreams: 200,
  } as http2.SecureServerOptions);
  server.on("session", (session: H2ServerSession) => {
    session.on("error", () => {});
    try {
      session.setLocalWindowSize(opts.localWindowSize);
    } catch {
      // a session that closed during setup
    }
    opts.onSession(session);
  });
  server.on("stream", (stream: H2ServerStream, headers: H2Headers) => opts.onStream(stream, headers));
  server.on("tlsClientError", (err: Error, sock: tls.TLSSocket) => opts.onTlsError?.(err, sock?.remoteAddress));
  server.on("sessionError", () => {});
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => reject(listenError(opts.hostname, opts.port, e));
    server.once("error", onError);
    server.listen(opts.fd !== undefined ? { fd: opts.fd } : { host: opts.hostname, port: opts.port, exclusive: true }, () => {
      server.off("error", onError);
      server.on("error", () => {});
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : opts.port;
      resolve({
        hostname: opts.hostname,
        port,
        setIdentity(id) {
          server.setSecureContext({
            key: id.keyPem,
            cert: id.certChainPem,
            ca: id.rootPem,
            minVersion: "TLSv1.3",
            maxVersion: "TLSv1.3",
            ciphers: TLS13_CIPHERS,
          });
        },
        close() {
          server.close();
        },
      });
    });
  });
}

export interface HboneConnectOptions {
  address: string;
  port: number;
  identity: TlsIdentity;
  /** Local address to bind (the source workload's IP in loopback mode). */
  localAddress?: string;
  /** A connected stream to run TLS over instead of dialing (captured mode: a socket in the pod's namespace). */
  transport?: Duplex;
  settings: H2Settings;
  localWindowSize: number;
  timeoutMs: number;
  /**
   * Identities the server may present. Checked on the certificate's URI SANs inside the
   * handshake, so a wrong server never sees a byte of HTTP/2; core/hbone then runs the full
   * SVID verification before any CONNECT.
   */
  expectedIdentities: readonly string[];
}

/** URI SANs from Node's `subjectaltname` string ("URI:spiffe://a, DNS:b"). */
export function uriSans(subjectaltname: string | undefined): string[] {
  if (!subjectaltname) return [];
  return subjectaltname
    .split(/,\s*/)
    .filter((e) => e.startsWith("URI:"))
    .map((e) => e.slice(4));
}

/**
 * Opens one mTLS + HTTP/2 session. Resolves once TLS is up and ALPN chose h2; the caller must
 * verify the peer's identity (peerChain) before sending any CONNECT.
 */
export function connectHbone(opts: HboneConnectOptions): Promise<{ session: H2ClientSession; socket: tls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    let socket: tls.TLSSocket | undefined;
    let identityError: MeshError | undefined;
    let done = false;
    const fail = (err: MeshError) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket?.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new MeshError(ErrorCodes.HBONE_UPSTREAM_CONNECT, `HBONE connect to ${opts.address}:${opts.port} timed out after ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    const session = http2.connect(`https://${opts.address.includes(":") ? `[${opts.address}]` : opts.address}:${opts.port}`, {
      settings: opts.settings,
      maxSessionMemory: 64,
      createConnection: () => {
        socket = tls.connect({
          ...(opts.transport
            ? { socket: opts.transport }
            : { host: opts.address, port: opts.port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) }),
          key: opts.identity.keyPem,
          cert: opts.identity.certChainPem,
          ca: opts.identity.rootPem,
          rejectUnauthorized: true,
          minVersion: "TLSv1.3",
          maxVersion: "TLSv1.3",
          ciphers: TLS13_CIPHERS,
          ALPNProtocols: ["h2"],
          // HBONE sends no SNI; identity is checked on the URI SAN by core/hbone after the
          // handshake, so the hostname check (which looks at DNS/IP SANs) is replaced.
          servername: "",
          checkServerIdentity: (_host, cert) => {
            const uris = uriSans(cert.subjectaltname);
            if (uris.length !== 1 || !opts.expectedIdentities.includes(uris[0]!)) {
              identityError = new MeshError(
                ErrorCodes.SVID_IDENTITY_MISMATCH,
                `HBONE peer ${opts.address}:${opts.port} presented ${uris.join(", ") || "no URI SAN"}, expected one of ${opts.expectedIdentities.join(", ")}`,
              );
              return identityError;
            }
            return undefined;
          },
        });
        socket.setNoDelay(true);
        return socket;
      },
    });
    session.on("error", (e: Error) => fail(identityError ?? new MeshError(ErrorCodes.HBONE_TLS_FAILURE, `HBONE connect to ${opts.address}:${opts.port} failed: ${e.message}`, { cause: e })));
    session.once("close", () => fail(new MeshError(ErrorCodes.HBONE_TLS_FAILURE, `HBONE session to ${opts.address}:${opts.port} closed during setup (peer may have rejected our certificate)`)));
    session.once("connect", () => {
      if (done || !socket) return;
      if (socket.alpnProtocol !== "h2") {
        return fail(new MeshError(ErrorCodes.HBONE_ALPN, `peer ${opts.address}:${opts.port} did not negotiate ALPN h2`));
      }
      if (socket.getProtocol() !== "TLSv1.3") {
        return fail(new MeshError(ErrorCodes.HBONE_TLS_FAILURE, `peer ${opts.address}:${opts.port} negotiated ${socket.getProtocol()}, expected TLSv1.3`));
      }
      try {
        session.setLocalWindowSize(opts.localWindowSize);
      } catch {
        // closed meanwhile; the close handler reports it
      }
      done = true;
      clearTimeout(timer);
      session.removeAllListeners("close");
      session.removeAllListeners("error");
      session.on("error", () => {});
      resolve({ session, socket });
    });
  });
}

/** The TLS socket under a session (server or client side). */
export function tlsSocketOf(session: H2Session): tls.TLSSocket {
  return session.socket as unknown as tls.TLSSocket;
}
