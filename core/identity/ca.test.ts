import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPrivateKey } from "node:crypto";
import { ErrorCodes, MeshError, type ErrorCode } from "../errors/index.ts";
import { CA_FILES, createLocalCa, initLocalCa, loadLocalCa, TrustBundle, verifySvidChain } from "./index.ts";
import { pemCertificates, pemEncode, x509 } from "./x509.ts";

const HOUR = 3600_000;
let base: string;
let n = 0;
const freshDir = () => join(base, `ca-${n++}`);

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "mesh-identity-ca-"));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<MeshError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MeshError) return e;
    throw e;
  }
  throw new Error("expected a MeshError");
}

function expectError(e: MeshError, code: ErrorCode, mentions: string): void {
  expect(e.code).toBe(code);
  expect(e.message).toContain(mentions);
}

describe("initLocalCa / loadLocalCa", () => {
  test("round trip: files, modes, layout, trust domain, issuance", async () => {
    const dir = freshDir();
    const ca = await initLocalCa(dir, { trustDomain: "mesh.example" });
    expect(ca.trustDomain).toBe("mesh.example");
    expect(ca.layout).toBe("intermediate");
    expect((await readdir(dir)).sort()).toEqual(Object.values(CA_FILES).sort());
    expect((await stat(join(dir, CA_FILES.key))).mode & 0o777).toBe(0o600);

    const rootPem = await readFile(join(dir, CA_FILES.root), "utf8");
    const caCertPem = await readFile(join(dir, CA_FILES.cert), "utf8");
    const chainPem = await readFile(join(dir, CA_FILES.chain), "utf8");
    expect(chainPem).toBe(caCertPem + rootPem); // Istio plug-in layout: intermediate then root
    expect(await readFile(join(dir, CA_FILES.key), "utf8")).toStartWith("-----BEGIN PRIVATE KEY-----");

    const loaded = await loadLocalCa(dir);
    expect(loaded.trustDomain).toBe("mesh.example"); // recovered from the root's URI SAN
    expect(loaded.layout).toBe("intermediate");
    expect(loaded.trustBundle.pem).toBe(ca.trustBundle.pem);

    const svid = await loaded.issueWorkloadSvid({ identity: "spiffe://mesh.example/ns/a/sa/b", lifetimeMs: HOUR });
    expect(svid.rootPem).toBe(rootPem);
    const peer = await verifySvidChain(pemCertificates(svid.chainPem), { trustBundle: ca.trustBundle, usage: "server", trustDomain: "mesh.example" });
    expect(peer.identity).toBe("spiffe://mesh.example/ns/a/sa/b");
  });

  test("defaults to cluster.local", async () => {
    expect((await initLocalCa(freshDir())).trustDomain).toBe("cluster.local");
  });

  test("refuses to overwrite, naming the file, and leaves it untouched", async () => {
    const dir = freshDir();
    await initLocalCa(dir);
    const before = await readFile(join(dir, CA_FILES.key), "utf8");
    expectError(await failure(initLocalCa(dir)), ErrorCodes.CA_EXISTS, join(dir, CA_FILES.root));
    expect(await readFile(join(dir, CA_FILES.key), "utf8")).toBe(before);

    const partial = freshDir();
    await initLocalCa(partial);
    for (const f of [CA_FILES.root, CA_FILES.cert, CA_FILES.key]) await rm(join(partial, f));
    expectError(await failure(initLocalCa(partial)), ErrorCodes.CA_EXISTS, join(partial, CA_FILES.chain));
  });

  test("a missing directory or file is CA_MISSING naming it", async () => {
    const nowhere = freshDir();
    expectError(await failure(loadLocalCa(nowhere)), ErrorCodes.CA_MISSING, join(nowhere, CA_FILES.root));
    for (const f of Object.values(CA_FILES)) {
      const dir = freshDir();
      await initLocalCa(dir);
      await rm(join(dir, f));
      expectError(await failure(loadLocalCa(dir)), ErrorCodes.CA_MISSING, join(dir, f));
    }
  });

  test("a garbled file is CA_INVALID naming it", async () => {
    const garbage: Record<string, string> = {
      [CA_FILES.root]: "-----BEGIN CERTIFICATE-----\nMIIB!!!notbase64\n-----END CERTIFICATE-----\n",
      [CA_FILES.cert]: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
      [CA_FILES.key]: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
      [CA_FILES.chain]: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    };
    for (const [f, text] of Object.entries(garbage)) {
      const dir = freshDir();
      await initLocalCa(dir);
      await writeFile(join(dir, f), text);
      expectError(await failure(loadLocalCa(dir)), ErrorCodes.CA_INVALID, join(dir, f));
    }
    const empty = freshDir();
    await initLocalCa(empty);
    await writeFile(join(empty, CA_FILES.root), "");
    expectError(await failure(loadLocalCa(empty)), ErrorCodes.CA_INVALID, join(empty, CA_FILES.root));
  });

  test("a key that does not match ca-cert.pem, or a ca-cert from another CA", async () => {
    const a = freshDir();
    const b = freshDir();
    await initLocalCa(a);
    await initLocalCa(b);
    await writeFile(join(a, CA_FILES.key), await readFile(join(b, CA_FILES.key)));
    const e = await failure(loadLocalCa(a));
    expectError(e, ErrorCodes.CA_INVALID, join(a, CA_FILES.key));
    expect(e.message).toContain("does not match");

    const c = freshDir();
    await initLocalCa(c);
    await writeFile(join(c, CA_FILES.root), await readFile(join(b, CA_FILES.root)));
    const e2 = await failure(loadLocalCa(c));
    expectError(e2, ErrorCodes.CA_INVALID, join(c, CA_FILES.cert));
    expect(e2.message).toContain("does not chain");
  });

  test("a configured trust domain must agree with the root's", async () => {
    const dir = freshDir();
    await initLocalCa(dir, { trustDomain: "one.example" });
    expectError(await failure(loadLocalCa(dir, { trustDomain: "two.example" })), ErrorCodes.CA_INVALID, "one.example");
  });

  test("accepts SEC1 key files", async () => {
    const dir = freshDir();
    await initLocalCa(dir);
    const pkcs8 = await readFile(join(dir, CA_FILES.key), "utf8");
    const sec1 = createPrivateKey(pkcs8).export({ type: "sec1", format: "pem" }) as string;
    expect(sec1).toStartWith("-----BEGIN EC PRIVATE KEY-----");
    await writeFile(join(dir, CA_FILES.key), sec1);
    const ca = await loadLocalCa(dir);
    await ca.issueWorkloadSvid({ identity: "spiffe://cluster.local/ns/a/sa/b", lifetimeMs: HOUR });
  });
});

/** An Istio-style plug-in CA where the root is the signing CA (no SPIFFE SAN on it). */
async function writeRootIsCa(dir: string, kind: "ec" | "rsa"): Promise<void> {
  const alg =
    kind === "ec"
      ? { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" }
      : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) };
  const keys = (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: "O=cluster.local",
    keys,
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + 24 * HOUR),
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  const pem = pemEncode("CERTIFICATE", root.rawData);
  const pkcs8 = pemEncode("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = kind === "rsa" ? (createPrivateKey(pkcs8).export({ type: "pkcs1", format: "pem" }) as string) : pkcs8;
  const { mkdir } = await import("node:fs/promises");
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, CA_FILES.root), pem);
  await writeFile(join(dir, CA_FILES.cert), pem);
  await writeFile(join(dir, CA_FILES.key), keyPem);
  await writeFile(join(dir, CA_FILES.chain), "");
}

describe("plug-in CA layouts", () => {
  for (const kind of ["ec", "rsa"] as const) {
    test(`root is the CA (${kind}), trust domain from option or default`, async () => {
      const dir = freshDir();
      await writeRootIsCa(dir, kind);
      const ca = await loadLocalCa(dir);
      expect(ca.layout).toBe("root-is-ca");
      expect(ca.trustDomain).toBe("cluster.local");
      const svid = await ca.issueWorkloadSvid({ identity: "spiffe://cluster.local/ns/x/sa/y", lifetimeMs: HOUR });
      const chain = pemCertificates(svid.chainPem);
      expect(chain.length).toBe(1); // the root is not sent
      expect((await verifySvidChain(chain, { trustBundle: TrustBundle.fromPem(svid.rootPem), usage: "client" })).identity).toBe("spiffe://cluster.local/ns/x/sa/y");
      expect((await loadLocalCa(dir, { trustDomain: "corp.example" })).trustDomain).toBe("corp.example");
    });
  }
});

describe("issueWorkloadSvid", () => {
  test("SPIFFE X509-SVID profile", async () => {
    const ca = await createLocalCa({ trustDomain: "example.org" });
    const before = Date.now();
    const svid = await ca.issueWorkloadSvid({ identity: "spiffe://example.org/ns/default/sa/web", lifetimeMs: HOUR });
    const leaf = new x509.X509Certificate(svid.certPem);
    const [, intermediatePem] = svid.chainPem.split(/(?<=-----END CERTIFICATE-----\n)/);
    const intermediate = new x509.X509Certificate(intermediatePem!);

    expect(svid.identity).toBe("spiffe://example.org/ns/default/sa/web");
    expect(leaf.subject).toBe("");
    expect(leaf.issuer).toBe(intermediate.subject);
    expect(svid.serial).toMatch(/^[0-7][0-9a-f]{31}$/);
    expect(leaf.serialNumber).toBe(svid.serial);

    const bc = leaf.getExtension(x509.BasicConstraintsExtension)!;
    expect([bc.ca, bc.critical]).toEqual([false, true]);
    const ku = leaf.getExtension(x509.KeyUsagesExtension)!;
    expect([ku.usages, ku.critical]).toEqual([x509.KeyUsageFlags.digitalSignature, true]);
    const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension)!;
    expect([...eku.usages].sort()).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth].sort());
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension)!;
    expect(san.critical).toBe(true); // the subject is empty (RFC 5280 §4.2.1.6)
    expect(san.names.toJSON()).toEqual([{ type: "url", value: "spiffe://example.org/ns/default/sa/web" }]);
    const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension)!;
    expect(aki.keyId).toBe(intermediate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);
    expect(leaf.getExtension(x509.SubjectKeyIdentifierExtension)).not.toBeNull();

    // backdated by a minute for clock skew, lifetime counted from now (second precision)
    expect(svid.notBefore.getTime()).toBeLessThanOrEqual(before - 59_000);
    expect(svid.notBefore.getTime()).toBeGreaterThanOrEqual(before - 61_000);
    expect(Math.abs(svid.notAfter.getTime() - (before + HOUR))).toBeLessThan(2000);

    expect(svid.keyPem).toStartWith("-----BEGIN PRIVATE KEY-----");
    expect(createPrivateKey(svid.keyPem).asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
  });

  test("a fresh key and serial per issue", async () => {
    const ca = await createLocalCa();
    const a = await ca.issueWorkloadSvid({ identity: "spiffe://cluster.local/ns/a/sa/b", lifetimeMs: HOUR });
    const b = await ca.issueWorkloadSvid({ identity: "spiffe://cluster.local/ns/a/sa/b", lifetimeMs: HOUR });
    expect(a.serial).not.toBe(b.serial);
    expect(a.keyPem).not.toBe(b.keyPem);
  });

  test("never outlives the CA", async () => {
    const caExpiresIn = 2 * HOUR;
    const tenYears = 10 * 365 * 24 * HOUR;
    const ca = await createLocalCa({ now: new Date(Date.now() - tenYears + caExpiresIn) });
    const svid = await ca.issueWorkloadSvid({ identity: "spiffe://cluster.local/ns/a/sa/b", lifetimeMs: 24 * HOUR });
    expect(svid.notAfter.getTime()).toBeLessThanOrEqual(Date.now() + caExpiresIn);
  });

  test("refuses bad identities", async () => {
    const ca = await createLocalCa({ trustDomain: "example.org" });
    const issue = (identity: string, lifetimeMs = HOUR) => failure(ca.issueWorkloadSvid({ identity, lifetimeMs }));
    expect((await issue("spiffe://other.org/ns/a/sa/b")).code).toBe(ErrorCodes.CERT_UNAVAILABLE);
    expect((await issue("spiffe://example.org")).code).toBe(ErrorCodes.SPIFFE_ID_INVALID);
    expect((await issue("spiffe://example.org/a/../b")).code).toBe(ErrorCodes.SPIFFE_ID_INVALID);
    expect((await issue("spiffe://example.org/a", 0)).code).toBe(ErrorCodes.CERT_UNAVAILABLE);
  });
});
