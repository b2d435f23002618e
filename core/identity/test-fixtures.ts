// Test-only: a CA whose keys the test holds, so it can sign certificates that break one SVID rule
// at a time. Generated at test time; nothing here is checked in as key material.
import { x509, pemEncode } from "./x509.ts";

const EC = { name: "ECDSA", namedCurve: "P-256" };
const SIG = { name: "ECDSA", hash: "SHA-256" };
const HOUR = 3600_000;

export interface TestCa {
  readonly trustDomain: string;
  readonly rootPem: string;
  readonly rootDer: Uint8Array;
  readonly root: x509.X509Certificate;
  readonly rootKeys: CryptoKeyPair;
  readonly intermediate: x509.X509Certificate;
  readonly intermediateDer: Uint8Array;
  readonly intermediateKeys: CryptoKeyPair;
}

async function keys(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
}

/** DER of a NameConstraints value permitting exactly these URI hosts. */
export function uriPermittedSubtrees(hosts: string[]): Uint8Array {
  const tlv = (tag: number, body: number[]) => {
    if (body.length > 127) throw new Error("fixture: too long");
    return [tag, body.length, ...body];
  };
  const subtrees = hosts.flatMap((h) => tlv(0x30, tlv(0x86, [...Buffer.from(h, "ascii")])));
  return new Uint8Array(tlv(0x30, tlv(0xa0, subtrees)));
}

export interface CaSpec {
  readonly trustDomain?: string;
  /** key usage of the intermediate (default keyCertSign|cRLSign) */
  readonly intermediateKeyUsage?: number;
  readonly intermediateIsCa?: boolean;
  readonly intermediateNameConstraints?: Uint8Array;
  readonly intermediateNotAfter?: Date;
}

export async function makeTestCa(spec: CaSpec = {}): Promise<TestCa> {
  const trustDomain = spec.trustDomain ?? "example.org";
  const now = Date.now();
  const rootKeys = await keys();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=Test Root, O=${trustDomain}`,
    keys: rootKeys,
    notBefore: new Date(now - 24 * HOUR),
    notAfter: new Date(now + 24 * HOUR),
    signingAlgorithm: SIG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${trustDomain}` }]),
    ],
  });
  const intermediateKeys = await keys();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(spec.intermediateIsCa ?? true, undefined, true),
    new x509.KeyUsagesExtension(spec.intermediateKeyUsage ?? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
  ];
  if (spec.intermediateNameConstraints) extensions.push(new x509.Extension("2.5.29.30", true, spec.intermediateNameConstraints));
  const intermediate = await x509.X509CertificateGenerator.create({
    subject: `CN=Test Intermediate, O=${trustDomain}`,
    issuer: root.subjectName,
    publicKey: intermediateKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: SIG,
    notBefore: new Date(now - 24 * HOUR),
    notAfter: spec.intermediateNotAfter ?? new Date(now + 24 * HOUR),
    extensions,
  });
  return {
    trustDomain,
    rootPem: pemEncode("CERTIFICATE", root.rawData),
    rootDer: new Uint8Array(root.rawData),
    root,
    rootKeys,
    intermediate,
    intermediateDer: new Uint8Array(intermediate.rawData),
    intermediateKeys,
  };
}

export interface LeafSpec {
  /** URI SANs (default: one Istio id in the CA's trust domain) */
  readonly uris?: readonly string[];
  readonly dns?: readonly string[];
  /** basicConstraints cA; null = no basicConstraints extension */
  readonly ca?: boolean | null;
  /** key usage flags; null = no key usage extension */
  readonly keyUsage?: number | null;
  readonly keyUsageCritical?: boolean;
  /** EKU OIDs; null = no EKU extension */
  readonly eku?: readonly string[] | null;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly extra?: readonly x509.Extension[];
}

/** DER of a leaf signed by the CA's intermediate. */
export async function makeLeaf(ca: TestCa, spec: LeafSpec = {}): Promise<Uint8Array> {
  const now = Date.now();
  const leafKeys = await keys();
  const names = [
    ...(spec.uris ?? [`spiffe://${ca.trustDomain}/ns/default/sa/workload`]).map((value) => ({ type: "url" as const, value })),
    ...(spec.dns ?? []).map((value) => ({ type: "dns" as const, value })),
  ];
  const extensions: x509.Extension[] = [];
  if (spec.ca !== null) extensions.push(new x509.BasicConstraintsExtension(spec.ca ?? false, undefined, true));
  if (spec.keyUsage !== null) extensions.push(new x509.KeyUsagesExtension(spec.keyUsage ?? x509.KeyUsageFlags.digitalSignature, spec.keyUsageCritical ?? true));
  if (spec.eku !== null) {
    extensions.push(new x509.ExtendedKeyUsageExtension([...(spec.eku ?? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth])], false));
  }
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, true));
  extensions.push(...(spec.extra ?? []));
  const cert = await x509.X509CertificateGenerator.create({
    issuer: ca.intermediate.subjectName,
    publicKey: leafKeys.publicKey,
    signingKey: ca.intermediateKeys.privateKey,
    signingAlgorithm: SIG,
    notBefore: spec.notBefore ?? new Date(now - HOUR),
    notAfter: spec.notAfter ?? new Date(now + HOUR),
    extensions,
  });
  return new Uint8Array(cert.rawData);
}
