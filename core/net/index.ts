// The runtime seam: every Bun / node: socket, TLS and HTTP server call the mesh makes goes
// through this folder, so role logic can be exercised without sockets and the runtime's quirks
// (reference/bun.md) are handled in one place.
export { listenTcp, connectTcp, TcpConnection, type TcpListener } from "./tcp.ts";
export { DuplexByteStream, ignoreError, type ByteStream, type ByteStreamEvents } from "./stream.ts";
export { relay, type Relay, type RelayResult, type RelayMeter } from "./relay.ts";
export { serveHttp, type HttpListener, type FetchHandler } from "./http.ts";
export {
  listenHbone,
  connectHbone,
  tlsSocketOf,
  h2constants,
  resetH2Stream,
  h2ByteStream,
  type HboneServerHandle,
  type HboneServerOptions,
  type HboneConnectOptions,
  type TlsIdentity,
  type H2Session,
  type H2ServerSession,
  type H2ClientSession,
  type H2Stream,
  type H2ServerStream,
  type H2ClientStream,
  type H2Headers,
  type H2Settings,
  type PeerCertificate,
} from "./h2.ts";
export { resolveHost } from "./dns.ts";
export {
  originalDestination,
  setSocketMark,
  getSocketMark,
  setIpTransparent,
  getIpTransparent,
  withNetns,
  socketFd,
  isLinuxCaptureSupported,
  startTcpConnect,
  socketError,
  listenSocket,
  tcpState,
  closeFd,
} from "./linux.ts";
export {
  listenTcpInNetns,
  listenFdInNetns,
  connectTcpInNetns,
  connectTransportInNetns,
  type HboneTransport,
  type NetnsConnectOptions,
  type AddressPort,
} from "./netns.ts";
export { bindUdp, udpExchange, MAX_DATAGRAM, type UdpListener, type UdpPeer } from "./udp.ts";
export { serveUnixLines, requestUnixLine, unixSocketAnswers, MAX_LINE_BYTES, type UnixLineServer } from "./unix.ts";
export { TunnelDuplex } from "./tunnel-duplex.ts";
export { connectTlsOrigination, type TlsOriginationOptions } from "./tls-origination.ts";
export { createInnerH2Server, connectInnerH2, type InnerH2ServerOptions } from "./inner-h2.ts";
