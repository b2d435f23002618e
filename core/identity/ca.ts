// The local file CA, in Istio's plug-in CA layout (root-cert.pem, ca-cert.pem, ca-key.pem,
// cert-chain.pem), and X.509-SVID issuance.
//
// Layout written by initLocalCa: a self-signed root plus an intermediate signing CA, as Istio
// plug-in certs are usually built: ca-cert.pem is the intermediate, cert-chain.pem is
// intermediate + root. The root's private key exists only while init runs and never touches the
// disk. loadLocalCa also accepts the root==CA layout (ca-cert.pem is one of the roots, cert-chain
// empty or holding just that cert) and plug-in CAs with longer chains, EC or RSA keys, and PKCS#8,
// SEC1 or PKCS#1 key files.
import { lstat, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { MeshError, ErrorCodes } from "../errors/index.ts";
import { x509, pemCertificates, pemEncode } from "./x509.ts";
import { TrustBundle } from "./bundle.ts";
import { describe, parseCert, type ParsedCert } from "./certs.ts";
import { bytesEqual, sanUris } from "./der.ts";
import { parseSpiffeId } from "./spiffe.ts";
import { buildCertPath, PathError, SVID_CLOCK_SKEW_MS } from "./verify.ts";

export const CA_FILES = {
  root: "root-cert.pem",
  cert: "ca-cert.pem",
  key: "ca-key.pem",
  chain: "cert-chain.pem",
} as const;

export const DEFAULT_TRUST_DOMAIN = "cluster.local";
/** How far a workload certificate's notBefore is backdated to absorb clock skew. */
const MAX_BACKDATE_MS = 60_000;
const CA_LIFETIME_MS = 10 * 365 * 24 * 3600_000;

/** An issued X.509-SVID with everything node:tls needs. */
export interface Svid {
  /** canonical SPIFFE id */
  readonly identity: string;
  /** the leaf alone */
  readonly certPem: string;
  /** leaf + intermediates: the TLS `cert` option */
  readonly chainPem: string;
  /** PKCS#8 private key: the TLS `key` option */
  readonly keyPem: string;
  /** trust bundle: the TLS `ca` option */
  readonly rootPem: string;
  /** hex */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface IssueSvidRequest {
  readonly identity: string;
  readonly lifetimeMs: number;
  readonly now?: Date;
}

/** What the certificate manager needs from a CA; the local file CA today, Istio's CSR API later. */
export interface CertificateAuthority {
  readonly trustDomain: string;
  readonly trustBundle: TrustBundle;
  issueWorkloadSvid(req: IssueSvidRequest): Promise<Svid>;
}

export type CaLayout = "intermediate" | "root-is-ca";

interface CaMaterial {
  readonly rootPem: string;
  readonly caCertPem: string;
  readonly caKeyPem: string;
  readonly certChainPem: string;
}

/** File names used in error messages (full paths when loaded from disk). */
type MaterialNames = Record<keyof typeof CA_FILES, string>;

function caInvalid(file: string, problem: string, cause?: unknown): MeshError {
  return new MeshError(ErrorCodes.CA_INVALID, `${file}: ${problem}`, cause === undefined ? {} : { cause });
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function randomSerialHex(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f || 0x01; // positive, and a full 16 bytes so the entropy is not encoded away
  return Buffer.from(b).toString("hex");
}

type SignAlgorithm = Parameters<typeof crypto.subtle.sign>[0];

interface SigningKey {
  readonly key: CryptoKey;
  readonly algorithm: SignAlgorithm & object;
}

async function importSigningKey(keyObj: KeyObject, file: string): Promise<SigningKey> {
  const pkcs8 = keyObj.export({ type: "pkcs8", format: "der" });
  if (keyObj.asymmetricKeyType === "ec") {
    const curve = keyObj.asymmetricKeyDetails?.namedCurve;
    const named = curve === "prime256v1" ? "P-256" : curve === "secp384r1" ? "P-384" : curve === "secp521r1" ? "P-521" : undefined;
    if (!named) throw caInvalid(file, `unsupported EC curve ${curve}`);
    const hash = named === "P-256" ? "SHA-256" : named === "P-384" ? "SHA-384" : "SHA-512";
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "ECDSA", namedCurve: named }, false, ["sign"]);
    return { key, algorithm: { name: "ECDSA", hash } };
  }
  if (keyObj.asymmetricKeyType === "rsa") {
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["sign"]);
    return { key, algorithm: { name: "RSASSA-PKCS1-v1_5" } };
  }
  throw caInvalid(file, `unsupported key type ${keyObj.asymmetricKeyType} (EC or RSA expected)`);
}

/** The trust domain named by a CA certificate's `spiffe://<td>` URI SAN, if it has one. */
function trustDomainOfCa(c: ParsedCert, file: string): string | undefined {
  for (const v of c.sanValues) {
    for (const uri of sanUris(v)) {
      if (!uri.toLowerCase().startsWith("spiffe://")) continue;
      let id;
      try {
        id = parseSpiffeId(uri);
      } catch (e) {
        throw caInvalid(file, `URI SAN is not a valid SPIFFE id: ${message(e)}`, e);
      }
      if (id.path !== "") throw caInvalid(file, `CA certificate's SPIFFE id ${id.uri} must not have a path`);
      return id.trustDomain;
    }
  }
  return undefined;
}

export class LocalCa implements CertificateAuthority {
  readonly trustDomain: string;
  readonly trustBundle: TrustBundle;
  readonly layout: CaLayout;
  readonly #signing: SigningKey;
  readonly #issuerName: x509.Name;
  readonly #authorityKeyId: x509.AuthorityKeyIdentifierExtension;
  /** ca-cert and any further intermediates, leaf side first; appended to each leaf */
  readonly #chainSuffixPem: string;
  readonly #notBefore: number;
  readonly #notAfter: number;

  private constructor(p: {
    trustDomain: string;
    trustBundle: TrustBundle;
    layout: CaLayout;
    signing: SigningKey;
    ca: ParsedCert;
    authorityKeyId: x509.AuthorityKeyIdentifierExtension;
    path: readonly ParsedCert[];
  }) {
    this.trustDomain = p.trustDomain;
    this.trustBundle = p.trustBundle;
    this.layout = p.layout;
    this.#signing = p.signing;
    this.#issuerName = new x509.Name(p.ca.fields.subject);
    this.#authorityKeyId = p.authorityKeyId;
    const sent = p.layout === "root-is-ca" ? [] : p.path.slice(0, -1);
    this.#chainSuffixPem = sent.map((c) => pemEncode("CERTIFICATE", c.der)).join("");
    // A leaf must not outlive (or predate) any certificate above it.
    this.#notBefore = Math.max(...p.path.map((c) => c.notBefore));
    this.#notAfter = Math.min(...p.path.map((c) => c.notAfter));
  }

  /** Validates CA material and builds the CA. Errors are MeshError(CA_INVALID) naming the file. */
  static async fromMaterial(m: CaMaterial, names: MaterialNames, opts: { trustDomain?: string; now?: Date } = {}): Promise<LocalCa> {
    const now = (opts.now ?? new Date()).getTime();
    let bundle: TrustBundle;
    try {
      bundle = TrustBundle.fromPem(m.rootPem);
    } catch (e) {
      throw caInvalid(names.root, message(e).replace(/^trust bundle: /, ""), e);
    }

    let caDers: Uint8Array[];
    try {
      caDers = pemCertificates(m.caCertPem);
    } catch (e) {
      throw caInvalid(names.cert, message(e), e);
    }
    if (caDers.length !== 1) throw caInvalid(names.cert, `expected exactly one certificate, found ${caDers.length}`);
    let ca: ParsedCert;
    try {
      ca = parseCert(caDers[0]!);
    } catch (e) {
      throw caInvalid(names.cert, message(e), e);
    }
    if (!ca.isCa) throw caInvalid(names.cert, "not a CA certificate (basicConstraints cA is not true)");
    if (!ca.keyUsage || (ca.keyUsage.flags & x509.KeyUsageFlags.keyCertSign) === 0) throw caInvalid(names.cert, "lacks the keyCertSign key usage");
    if (!bytesEqual(new Uint8Array(new x509.Name(ca.fields.subject).toArrayBuffer()), ca.fields.subject)) {
      // Leaves name their issuer by re-encoding this subject; it must come out byte-identical.
      throw caInvalid(names.cert, "subject name is not in canonical DER form");
    }

    let keyObj: KeyObject;
    try {
      keyObj = createPrivateKey(m.caKeyPem);
    } catch (e) {
      throw caInvalid(names.key, `cannot read private key: ${message(e)}`, e);
    }
    const certJwk = createPublicKey({ key: Buffer.from(ca.cert.publicKey.rawData), format: "der", type: "spki" }).export({ format: "jwk" });
    const keyJwk = createPublicKey(keyObj).export({ format: "jwk" });
    if (JSON.stringify(certJwk) !== JSON.stringify(keyJwk)) throw caInvalid(names.key, `private key does not match ${names.cert}`);
    const signing = await importSigningKey(keyObj, names.key);

    let chainDers: Uint8Array[];
    try {
      chainDers = pemCertificates(m.certChainPem);
    } catch (e) {
      throw caInvalid(names.chain, message(e), e);
    }
    const pool: ParsedCert[] = [];
    for (const [i, der] of chainDers.entries()) {
      if (bytesEqual(der, ca.der) || bundle.roots.some((r) => bytesEqual(r.der, der))) continue;
      try {
        pool.push(parseCert(der));
      } catch (e) {
        throw caInvalid(names.chain, `certificate #${i + 1}: ${message(e)}`, e);
      }
    }
    let path: readonly ParsedCert[];
    try {
      path = (await buildCertPath(ca, pool, bundle, true)).certs;
    } catch (e) {
      if (e instanceof PathError) throw caInvalid(names.cert, `does not chain to ${names.root} (with ${names.chain}): ${e.message}`, e);
      throw e;
    }
    for (const c of path) {
      const which = c === ca ? names.cert : path.indexOf(c) === path.length - 1 ? names.root : names.chain;
      if (now > c.notAfter) throw caInvalid(which, `certificate ${describe(c)} expired at ${new Date(c.notAfter).toISOString()}`);
      if (now < c.notBefore - SVID_CLOCK_SKEW_MS) throw caInvalid(which, `certificate ${describe(c)} is not valid before ${new Date(c.notBefore).toISOString()}`);
    }

    const anchor = path[path.length - 1]!;
    const fromSan = trustDomainOfCa(anchor, names.root) ?? trustDomainOfCa(ca, names.cert);
    if (opts.trustDomain !== undefined && fromSan !== undefined && opts.trustDomain !== fromSan) {
      throw caInvalid(names.root, `CA is for trust domain ${fromSan}, configured trust domain is ${opts.trustDomain}`);
    }
    const trustDomain = opts.trustDomain ?? fromSan ?? DEFAULT_TRUST_DOMAIN;
    const tdId = parseSpiffeId(`spiffe://${trustDomain}`);
    if (tdId.path !== "") throw caInvalid(names.root, `trust domain ${trustDomain} is not a bare trust domain`);

    const ski = ca.cert.getExtension(x509.SubjectKeyIdentifierExtension);
    const authorityKeyId = ski ? new x509.AuthorityKeyIdentifierExtension(ski.keyId) : await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey);

    return new LocalCa({
      trustDomain,
      trustBundle: bundle,
      layout: path.length === 1 ? "root-is-ca" : "intermediate",
      signing,
      ca,
      authorityKeyId,
      path,
    });
  }

  /**
   * Issues an X.509-SVID for `identity` (a SPIFFE id with a path, in this CA's trust domain) with
   * a fresh ECDSA P-256 key. Throws SPIFFE_ID_INVALID or CERT_UNAVAILABLE.
   */
  async issueWorkloadSvid(req: IssueSvidRequest): Promise<Svid> {
    const id = parseSpiffeId(req.identity);
    if (id.path === "") throw new MeshError(ErrorCodes.SPIFFE_ID_INVALID, `cannot issue a workload certificate for ${id.uri}: the id has no path`);
    if (id.trustDomain !== this.trustDomain) {
      throw new MeshError(ErrorCodes.CERT_UNAVAILABLE, `cannot issue ${id.uri}: this CA signs for trust domain ${this.trustDomain}`);
    }
    if (!Number.isFinite(req.lifetimeMs) || req.lifetimeMs < 1000) {
      throw new MeshError(ErrorCodes.CERT_UNAVAILABLE, `certificate lifetime must be at least 1000 ms, got ${req.lifetimeMs}`);
    }
    const t = (req.now ?? new Date()).getTime();
    // Backdate for clock skew, but never by more than a tenth of the lifetime: short-lived test
    // certificates would otherwise reach their half-life (rotation time) before they are issued.
    const notBefore = Math.max(t - Math.min(MAX_BACKDATE_MS, Math.floor(req.lifetimeMs / 10)), this.#notBefore);
    const notAfter = Math.min(t + req.lifetimeMs, this.#notAfter);
    if (notAfter <= t || notBefore > t) {
      throw new MeshError(ErrorCodes.CERT_UNAVAILABLE, `cannot issue ${id.uri}: the CA certificate chain is not valid at ${new Date(t).toISOString()}`);
    }

    const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialHex(),
      // Empty subject, as Istio's CSRs: the identity is the URI SAN alone, which RFC 5280 then
      // requires to be critical.
      issuer: this.#issuerName,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      publicKey: keys.publicKey,
      signingKey: this.#signing.key,
      signingAlgorithm: this.#signing.algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        new x509.SubjectAlternativeNameExtension([{ type: "url", value: id.uri }], true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        this.#authorityKeyId,
      ],
    });
    const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
    const certPem = pemEncode("CERTIFICATE", cert.rawData);
    return {
      identity: id.uri,
      certPem,
      chainPem: certPem + this.#chainSuffixPem,
      keyPem: pemEncode("PRIVATE KEY", pkcs8),
      rootPem: this.trustBundle.pem,
      serial: cert.serialNumber,
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
    };
  }
}

async function generateCaMaterial(trustDomain: string, now: Date): Promise<CaMaterial> {
  const td = parseSpiffeId(`spiffe://${trustDomain}`);
  if (td.path !== "") throw new MeshError(ErrorCodes.SPIFFE_ID_INVALID, `trust domain ${JSON.stringify(trustDomain)} must not contain '/'`);
  const ecdsa = { name: "ECDSA", namedCurve: "P-256" };
  const sig = { name: "ECDSA", hash: "SHA-256" };
  const notBefore = new Date(now.getTime() - MAX_BACKDATE_MS);
  const notAfter = new Date(now.getTime() + CA_LIFETIME_MS);
  const caUsages = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature;
  const tdSan = () => new x509.SubjectAlternativeNameExtension([{ type: "url", value: td.uri }], false);

  // The root key is not extractable: it signs the intermediate and is then dropped.
  const rootKeys = (await crypto.subtle.generateKey(ecdsa, false, ["sign", "verify"])) as CryptoKeyPair;
  const rootSki = await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey);
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: `CN=Root CA, O=${td.trustDomain}`,
    keys: rootKeys,
    notBefore,
    notAfter,
    signingAlgorithm: sig,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(caUsages, true), rootSki, tdSan()],
  });

  const caKeys = (await crypto.subtle.generateKey(ecdsa, true, ["sign", "verify"])) as CryptoKeyPair;
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: `CN=Intermediate CA, O=${td.trustDomain}`,
    issuer: root.subjectName,
    notBefore,
    notAfter,
    publicKey: caKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: sig,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(caUsages, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
      new x509.AuthorityKeyIdentifierExtension(rootSki.keyId),
      tdSan(),
    ],
  });
  const rootPem = pemEncode("CERTIFICATE", root.rawData);
  const caCertPem = pemEncode("CERTIFICATE", intermediate.rawData);
  return {
    rootPem,
    caCertPem,
    caKeyPem: pemEncode("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", caKeys.privateKey)),
    certChainPem: caCertPem + rootPem,
  };
}

const BARE_NAMES: MaterialNames = { ...CA_FILES };

/** A fresh CA held in memory only (tests, throwaway meshes). Same layout as initLocalCa writes. */
export async function createLocalCa(opts: { trustDomain?: string; now?: Date } = {}): Promise<LocalCa> {
  const now = opts.now ?? new Date();
  const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  return LocalCa.fromMaterial(await generateCaMaterial(trustDomain, now), BARE_NAMES, { trustDomain, now });
}

function namesIn(dir: string): MaterialNames {
  return { root: join(dir, CA_FILES.root), cert: join(dir, CA_FILES.cert), key: join(dir, CA_FILES.key), chain: join(dir, CA_FILES.chain) };
}

function errCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined;
}

/**
 * Creates a new CA in `dir` (created if missing) and returns it. Refuses with CA_EXISTS if any of
 * the four files is already there: overwriting a CA would strand every certificate it issued.
 */
export async function initLocalCa(dir: string, opts: { trustDomain?: string; now?: Date } = {}): Promise<LocalCa> {
  const names = namesIn(dir);
  for (const file of Object.values(names)) {
    try {
      await lstat(file);
      throw new MeshError(ErrorCodes.CA_EXISTS, `${file} already exists; refusing to overwrite an existing CA`);
    } catch (e) {
      if (errCode(e) !== "ENOENT") throw e;
    }
  }
  const now = opts.now ?? new Date();
  const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const m = await generateCaMaterial(trustDomain, now);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const write = async (file: string, data: string, mode: number) => {
    try {
      await writeFile(file, data, { flag: "wx", mode }); // wx: never replace a file that appeared meanwhile
    } catch (e) {
      if (errCode(e) === "EEXIST") throw new MeshError(ErrorCodes.CA_EXISTS, `${file} already exists; refusing to overwrite an existing CA`, { cause: e });
      throw e;
    }
  };
  await write(names.key, m.caKeyPem, 0o600);
  await write(names.cert, m.caCertPem, 0o644);
  await write(names.chain, m.certChainPem, 0o644);
  await write(names.root, m.rootPem, 0o644);
  return LocalCa.fromMaterial(m, names, { trustDomain, now });
}

/**
 * Loads a CA directory (ours or an Istio plug-in CA). CA_MISSING names a missing file, CA_INVALID
 * names the file and what is wrong with it. `trustDomain` is needed only when the root carries
 * no `spiffe://<td>` URI SAN (default cluster.local); if both are present they must agree.
 */
export async function loadLocalCa(dir: string, opts: { trustDomain?: string; now?: Date } = {}): Promise<LocalCa> {
  const names = namesIn(dir);
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(file, "utf8");
    } catch (e) {
      if (errCode(e) === "ENOENT") {
        throw new MeshError(ErrorCodes.CA_MISSING, `${file}: file not found (a CA directory holds ${Object.values(CA_FILES).join(", ")})`, { cause: e });
      }
      throw caInvalid(file, `cannot read: ${message(e)}`, e);
    }
  };
  const m: CaMaterial = {
    rootPem: await read(names.root),
    caCertPem: await read(names.cert),
    caKeyPem: await read(names.key),
    certChainPem: await read(names.chain),
  };
  return LocalCa.fromMaterial(m, names, opts);
}
