// How a role checks HBONE peers: the SVID verifier over the certificate manager's current trust
// bundle. Inbound, any identity of our trust domain (authorization decides the rest); outbound,
// one of the identities the destination may present.
import type { TLSSocket } from "node:tls";
import type { CertificateManager } from "./manager.ts";
import type { Svid } from "./ca.ts";
import { peerChainFromTlsSocket } from "./tls-peer.ts";
import { verifySvidChain, type VerifiedPeer } from "./verify.ts";

export interface MeshPeerVerifier {
  verifyClient(socket: TLSSocket): Promise<VerifiedPeer>;
  verifyServer(socket: TLSSocket, expected: readonly string[]): Promise<VerifiedPeer>;
}

export function meshPeerVerifier(certs: CertificateManager, trustDomain: () => string): MeshPeerVerifier {
  return {
    verifyClient: (socket) =>
      verifySvidChain(peerChainFromTlsSocket(socket), { trustBundle: certs.trustBundle(), usage: "client", trustDomain: trustDomain() }),
    verifyServer: (socket, expected) =>
      verifySvidChain(peerChainFromTlsSocket(socket), { trustBundle: certs.trustBundle(), usage: "server", expectedIdentities: expected }),
  };
}

/** The PEM material a TLS endpoint presents for an SVID. */
export function svidTlsMaterial(svid: Svid): { certChainPem: string; keyPem: string; rootPem: string } {
  return { certChainPem: svid.chainPem, keyPem: svid.keyPem, rootPem: svid.rootPem };
}
