// Looking at an HBONE listener from outside: complete an mTLS handshake with a certificate from the
// test's CA and report what the listener presented.
import tls from "node:tls";
import { loadLocalCa } from "../../core/identity/index.ts";

export interface PresentedCertificate {
  /** lowercase hex, as config_dump shows it */
  readonly serialNumber: string;
  readonly subjectAltName: string;
  readonly validTo: string;
  readonly protocol: string | null;
  readonly alpn: string | false;
}

/**
 * Handshakes with the HBONE listener at host:port as `clientIdentity` (a certificate issued by the
 * CA in `caDir`) and returns the listener's certificate. The chain is verified against the CA's
 * root; the SPIFFE identity is only reported, not checked, as this is a test probe.
 */
export async function presentedCertificate(caDir: string, host: string, port: number, clientIdentity: string): Promise<PresentedCertificate> {
  const ca = await loadLocalCa(caDir);
  const svid = await ca.issueWorkloadSvid({ identity: clientIdentity, lifetimeMs: 60_000 });
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host,
      port,
      cert: svid.chainPem,
      key: svid.keyPem,
      ca: svid.rootPem,
      ALPNProtocols: ["h2"],
      // SPIFFE certificates carry no DNS name; the URI SAN is returned for the caller to check.
      checkServerIdentity: () => undefined,
    });
    s.once("secureConnect", () => {
      const cert = s.getPeerCertificate();
      resolve({
        serialNumber: String(cert.serialNumber).toLowerCase(),
        subjectAltName: cert.subjectaltname ?? "",
        validTo: cert.valid_to,
        protocol: s.getProtocol(),
        alpn: s.alpnProtocol ?? false,
      });
      s.destroy();
    });
    s.once("error", reject);
  });
}
