// One parsed certificate with the facts path validation and the SVID profile need, read once.
import { x509 } from "./x509.ts";
import { bytesEqual, certificateFields, uriNameConstraints, type CertificateFields, type UriNameConstraints } from "./der.ts";

export const OID = {
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyId: "2.5.29.14",
  authorityKeyId: "2.5.29.35",
  nameConstraints: "2.5.29.30",
} as const;

/** Critical extensions we process; any other critical extension makes a certificate unusable (RFC 5280 §4.2). */
const LEAF_CRITICAL_OK = new Set<string>([OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectAltName, OID.subjectKeyId, OID.authorityKeyId]);
const CA_CRITICAL_OK = new Set<string>([...LEAF_CRITICAL_OK, OID.nameConstraints]);

/** Peers never need more; bounds the parser's work on hostile input. */
export const MAX_CERT_DER_BYTES = 32 * 1024;

const ALLOWED_SIG = new Set(["ECDSA", "RSASSA-PKCS1-v1_5", "RSA-PSS"]);
const ALLOWED_HASH = new Set(["SHA-256", "SHA-384", "SHA-512"]);

export interface KeyUsageInfo {
  readonly flags: number;
  readonly critical: boolean;
}

export interface ParsedCert {
  readonly der: Uint8Array;
  readonly cert: x509.X509Certificate;
  readonly fields: CertificateFields;
  readonly notBefore: number;
  readonly notAfter: number;
  /** basicConstraints cA; false when the extension is absent */
  readonly isCa: boolean;
  readonly pathLen: number | undefined;
  readonly keyUsage: KeyUsageInfo | undefined;
  /** undefined = no EKU extension */
  readonly extKeyUsages: readonly string[] | undefined;
  /** raw SAN extension values (more than one is reported by `extensionProblem`) */
  readonly sanValues: readonly Uint8Array[];
  readonly nameConstraints: UriNameConstraints | undefined;
  readonly extensionOids: readonly string[];
  readonly criticalOids: readonly string[];
  /** imported verification keys, per signature algorithm */
  readonly keys: Map<string, Promise<CryptoKey | null>>;
}

export class CertParseError extends Error {}

export function parseCert(der: Uint8Array): ParsedCert {
  if (der.length > MAX_CERT_DER_BYTES) throw new CertParseError(`certificate is ${der.length} bytes, more than ${MAX_CERT_DER_BYTES}`);
  try {
    const fields = certificateFields(der);
    const cert = new x509.X509Certificate(der);
    const extensionOids: string[] = [];
    const criticalOids: string[] = [];
    const sanValues: Uint8Array[] = [];
    let isCa = false;
    let pathLen: number | undefined;
    let keyUsage: KeyUsageInfo | undefined;
    let extKeyUsages: string[] | undefined;
    let nameConstraints: UriNameConstraints | undefined;
    for (const ext of cert.extensions) {
      extensionOids.push(ext.type);
      if (ext.critical) criticalOids.push(ext.type);
      switch (ext.type) {
        case OID.basicConstraints: {
          const bc = new x509.BasicConstraintsExtension(ext.rawData);
          isCa = bc.ca;
          pathLen = bc.pathLength;
          break;
        }
        case OID.keyUsage:
          keyUsage = { flags: new x509.KeyUsagesExtension(ext.rawData).usages, critical: ext.critical };
          break;
        case OID.extKeyUsage:
          extKeyUsages = new x509.ExtendedKeyUsageExtension(ext.rawData).usages.map(String);
          break;
        case OID.subjectAltName:
          sanValues.push(new Uint8Array(ext.value));
          break;
        case OID.nameConstraints:
          nameConstraints = uriNameConstraints(new Uint8Array(ext.value));
          break;
      }
    }
    return {
      der,
      cert,
      fields,
      notBefore: cert.notBefore.getTime(),
      notAfter: cert.notAfter.getTime(),
      isCa,
      pathLen,
      keyUsage,
      extKeyUsages,
      sanValues,
      nameConstraints,
      extensionOids,
      criticalOids,
      keys: new Map(),
    };
  } catch (e) {
    throw new CertParseError(`cannot parse certificate: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A duplicate extension or an unprocessed critical one, or undefined when the set is acceptable. */
export function extensionProblem(c: ParsedCert, role: "leaf" | "ca"): string | undefined {
  const seen = new Set<string>();
  for (const oid of c.extensionOids) {
    if (seen.has(oid)) return `extension ${oid} appears more than once`;
    seen.add(oid);
  }
  const ok = role === "leaf" ? LEAF_CRITICAL_OK : CA_CRITICAL_OK;
  for (const oid of c.criticalOids) if (!ok.has(oid)) return `unsupported critical extension ${oid}`;
  return undefined;
}

export function describe(c: ParsedCert): string {
  return c.cert.subject === "" ? `serial ${c.cert.serialNumber}` : `"${c.cert.subject}"`;
}

/** Whether `issuer`'s key produced `child`'s signature. False on any algorithm problem. */
export async function signedBy(child: ParsedCert, issuer: ParsedCert): Promise<boolean> {
  if (!bytesEqual(child.fields.issuer, issuer.fields.subject)) return false;
  // The algorithm inside the signed part must be the one used, so it cannot be swapped.
  if (!bytesEqual(child.fields.tbsSignatureAlgorithm, child.fields.signatureAlgorithm)) return false;
  let alg: { name: string; hash?: { name: string } };
  try {
    alg = child.cert.signatureAlgorithm as unknown as typeof alg;
  } catch {
    return false;
  }
  const hash = alg.hash?.name ?? "";
  if (!ALLOWED_SIG.has(alg.name) || !ALLOWED_HASH.has(hash)) return false;
  const keyId = `${alg.name}/${hash}`;
  let key = issuer.keys.get(keyId);
  if (!key) {
    const params = { ...issuer.cert.publicKey.algorithm, ...alg } as Parameters<typeof issuer.cert.publicKey.export>[0];
    key = issuer.cert.publicKey.export(params, ["verify"]).catch(() => null);
    issuer.keys.set(keyId, key);
  }
  const k = await key;
  if (!k) return false;
  try {
    return await child.cert.verify({ publicKey: k, signatureOnly: true });
  } catch {
    return false;
  }
}
