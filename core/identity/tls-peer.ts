// The only code here that touches a TLS socket: read the peer's chain in the shape the verifier takes.
import { bytesEqual } from "./der.ts";

/** Certificates a well-formed peer chain can hold; stops a cyclic `issuerCertificate` walk. */
const MAX_WALK = 10;

interface DetailedPeerCertificate {
  raw?: Uint8Array;
  issuerCertificate?: DetailedPeerCertificate;
}

/**
 * DER chain `[leaf, ...intermediates]` of the peer of a node:tls socket. Follows
 * `getPeerCertificate(true).issuerCertificate` until it refers to itself and drops that
 * self-signed root (ours to supply, not the peer's). Empty when the peer sent no certificate.
 */
export function peerChainFromTlsSocket(sock: { getPeerCertificate(detailed: true): any }): Uint8Array[] {
  const first = sock.getPeerCertificate(true) as DetailedPeerCertificate | null | undefined;
  const out: Uint8Array[] = [];
  let cur = first;
  while (cur && cur.raw && cur.raw.length > 0 && out.length < MAX_WALK) {
    const raw = cur.raw;
    const next = cur.issuerCertificate;
    const selfSigned = !next || next === cur || (next.raw !== undefined && bytesEqual(raw, next.raw));
    if (selfSigned && next && out.length > 0) break; // the root at the end of the chain
    out.push(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
    if (selfSigned) break;
    cur = next;
  }
  return out;
}
