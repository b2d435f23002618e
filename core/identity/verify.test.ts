import { beforeAll, describe, expect, test } from "bun:test";
import { ErrorCodes, MeshError, type ErrorCode } from "../errors/index.ts";
import { createLocalCa, TrustBundle, verifySvidChain, type SvidUsage, type VerifySvidOptions } from "./index.ts";
import { makeLeaf, makeTestCa, uriPermittedSubtrees, type LeafSpec, type TestCa } from "./test-fixtures.ts";
import { pemCertificates, x509 } from "./x509.ts";

const TD = "example.org";
const GOOD_ID = `spiffe://${TD}/ns/default/sa/workload`;
const HOUR = 3600_000;
const { serverAuth, clientAuth } = x509.ExtendedKeyUsage;
const KU = x509.KeyUsageFlags;

let ca: TestCa;
let bundle: TrustBundle;
let otherCa: TestCa;

beforeAll(async () => {
  ca = await makeTestCa({ trustDomain: TD });
  otherCa = await makeTestCa({ trustDomain: TD });
  bundle = TrustBundle.fromPem(ca.rootPem);
});

async function codeOf(p: Promise<unknown>): Promise<{ code: ErrorCode; message: string }> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof MeshError)) throw e;
    return { code: e.code, message: e.message };
  }
  throw new Error("verification succeeded but should have failed");
}

interface Row {
  name: string;
  leaf?: LeafSpec;
  signer?: () => TestCa;
  usage?: SvidUsage;
  opts?: Partial<VerifySvidOptions>;
  code: ErrorCode;
  why?: RegExp;
}

// One row per rejection reason of reference/reliability.md §7 A.6, each with its own code.
const rows: Row[] = [
  { name: "no URI SAN (DNS only)", leaf: { uris: [], dns: ["workload.example.org"] }, code: ErrorCodes.SVID_NO_URI_SAN },
  { name: "two URI SANs", leaf: { uris: [GOOD_ID, `spiffe://${TD}/ns/default/sa/other`] }, code: ErrorCodes.SVID_MULTIPLE_URI_SANS },
  { name: "cA=true leaf", leaf: { ca: true }, code: ErrorCodes.SVID_LEAF_IS_CA },
  { name: "keyCertSign on leaf", leaf: { keyUsage: KU.digitalSignature | KU.keyCertSign }, code: ErrorCodes.SVID_KEY_USAGE_INVALID, why: /keyCertSign/ },
  { name: "cRLSign on leaf", leaf: { keyUsage: KU.digitalSignature | KU.cRLSign }, code: ErrorCodes.SVID_KEY_USAGE_INVALID, why: /cRLSign/ },
  { name: "key usage without digitalSignature", leaf: { keyUsage: KU.keyEncipherment }, code: ErrorCodes.SVID_KEY_USAGE_INVALID, why: /digitalSignature/ },
  { name: "missing key usage", leaf: { keyUsage: null }, code: ErrorCodes.SVID_KEY_USAGE_MISSING },
  { name: "non-critical key usage", leaf: { keyUsageCritical: false }, code: ErrorCodes.SVID_KEY_USAGE_NOT_CRITICAL },
  { name: "EKU without clientAuth, usage client", leaf: { eku: [serverAuth] }, usage: "client", code: ErrorCodes.SVID_EKU_MISSING_USAGE, why: /clientAuth/ },
  { name: "EKU without serverAuth, usage server", leaf: { eku: [clientAuth] }, usage: "server", code: ErrorCodes.SVID_EKU_MISSING_USAGE, why: /serverAuth/ },
  { name: "expired", leaf: { notBefore: new Date(Date.now() - 3 * HOUR), notAfter: new Date(Date.now() - 2 * HOUR) }, code: ErrorCodes.SVID_EXPIRED },
  { name: "not yet valid", leaf: { notBefore: new Date(Date.now() + 2 * HOUR), notAfter: new Date(Date.now() + 3 * HOUR) }, code: ErrorCodes.SVID_NOT_YET_VALID },
  { name: "chain from another CA", signer: () => otherCa, code: ErrorCodes.SVID_UNTRUSTED_CHAIN },
  { name: "wrong trust domain", leaf: { uris: ["spiffe://other.org/ns/default/sa/workload"] }, opts: { trustDomain: TD }, code: ErrorCodes.SVID_TRUST_DOMAIN_MISMATCH },
  { name: "identity not expected", opts: { expectedIdentities: [`spiffe://${TD}/ns/default/sa/someone-else`] }, code: ErrorCodes.SVID_IDENTITY_MISMATCH },
  { name: "uppercase trust domain in SAN", leaf: { uris: ["spiffe://Example.org/ns/default/sa/workload"] }, code: ErrorCodes.SVID_BAD_SPIFFE_ID, why: /lowercase/ },
  { name: "%2F in path", leaf: { uris: [`spiffe://${TD}/ns/default%2Fsa/workload`] }, code: ErrorCodes.SVID_BAD_SPIFFE_ID, why: /percent/ },
  { name: ".. segment", leaf: { uris: [`spiffe://${TD}/ns/../sa/workload`] }, code: ErrorCodes.SVID_BAD_SPIFFE_ID, why: /'\.\.'/ },
  { name: "trailing /", leaf: { uris: [`spiffe://${TD}/ns/default/sa/workload/`] }, code: ErrorCodes.SVID_BAD_SPIFFE_ID, why: /end with/ },
  { name: "port in authority", leaf: { uris: [`spiffe://${TD}:443/ns/default/sa/workload`] }, code: ErrorCodes.SVID_BAD_SPIFFE_ID, why: /port/ },
  { name: "2049-byte id", leaf: { uris: [`spiffe://${TD}/${"a".repeat(2049 - `spiffe://${TD}/`.length)}`] }, code: ErrorCodes.SVID_BAD_SPIFFE_ID, why: /2048/ },
  { name: "trust-domain id without a path", leaf: { uris: [`spiffe://${TD}`] }, code: ErrorCodes.SVID_BAD_SPIFFE_ID, why: /no path/ },
  { name: "not a SPIFFE URI", leaf: { uris: [`https://${TD}/workload`] }, code: ErrorCodes.SVID_BAD_SPIFFE_ID, why: /scheme/ },
  {
    name: "unsupported critical extension",
    leaf: { extra: [new x509.Extension("1.2.3.4.5", true, new Uint8Array([0x05, 0x00]))] },
    code: ErrorCodes.SVID_MALFORMED,
    why: /1\.2\.3\.4\.5/,
  },
];

describe("verifySvidChain rejects", () => {
  for (const row of rows) {
    test(row.name, async () => {
      const signer = row.signer?.() ?? ca;
      const leaf = await makeLeaf(signer, row.leaf);
      const got = await codeOf(verifySvidChain([leaf, signer.intermediateDer], { trustBundle: bundle, usage: row.usage ?? "client", ...row.opts }));
      expect(got.code).toBe(row.code);
      if (row.why) expect(got.message).toMatch(row.why);
    });
  }

  test("the table covers every rejection code", () => {
    // SPIFFE syntax rows share SVID_BAD_SPIFFE_ID (the message names the rule), as the key usage
    // rows share SVID_KEY_USAGE_INVALID and the two EKU rows SVID_EKU_MISSING_USAGE.
    const codes = [...new Set(rows.map((r) => r.code))].sort();
    expect(codes).toEqual(
      [
        ErrorCodes.SVID_NO_URI_SAN,
        ErrorCodes.SVID_MULTIPLE_URI_SANS,
        ErrorCodes.SVID_LEAF_IS_CA,
        ErrorCodes.SVID_KEY_USAGE_INVALID,
        ErrorCodes.SVID_KEY_USAGE_MISSING,
        ErrorCodes.SVID_KEY_USAGE_NOT_CRITICAL,
        ErrorCodes.SVID_EKU_MISSING_USAGE,
        ErrorCodes.SVID_EXPIRED,
        ErrorCodes.SVID_NOT_YET_VALID,
        ErrorCodes.SVID_UNTRUSTED_CHAIN,
        ErrorCodes.SVID_TRUST_DOMAIN_MISMATCH,
        ErrorCodes.SVID_IDENTITY_MISMATCH,
        ErrorCodes.SVID_BAD_SPIFFE_ID,
        ErrorCodes.SVID_MALFORMED,
      ].sort(),
    );
  });

  test("empty chain", async () => {
    expect((await codeOf(verifySvidChain([], { trustBundle: bundle, usage: "client" }))).code).toBe(ErrorCodes.SVID_NO_PEER_CERTIFICATE);
    expect((await codeOf(verifySvidChain([new Uint8Array()], { trustBundle: bundle, usage: "client" }))).code).toBe(ErrorCodes.SVID_NO_PEER_CERTIFICATE);
  });

  test("garbage DER", async () => {
    const got = await codeOf(verifySvidChain([new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])], { trustBundle: bundle, usage: "client" }));
    expect(got.code).toBe(ErrorCodes.SVID_MALFORMED);
  });

  test("intermediate missing from the chain", async () => {
    const leaf = await makeLeaf(ca);
    expect((await codeOf(verifySvidChain([leaf], { trustBundle: bundle, usage: "client" }))).code).toBe(ErrorCodes.SVID_UNTRUSTED_CHAIN);
  });

  test("leaf presented alongside a foreign CA's intermediate", async () => {
    const leaf = await makeLeaf(otherCa);
    const got = await codeOf(verifySvidChain([leaf, otherCa.intermediateDer, otherCa.rootDer], { trustBundle: bundle, usage: "client" }));
    expect(got.code).toBe(ErrorCodes.SVID_UNTRUSTED_CHAIN);
  });

  test("intermediate without keyCertSign", async () => {
    const weak = await makeTestCa({ intermediateKeyUsage: KU.digitalSignature });
    const leaf = await makeLeaf(weak);
    const got = await codeOf(verifySvidChain([leaf, weak.intermediateDer], { trustBundle: TrustBundle.fromPem(weak.rootPem), usage: "client" }));
    expect(got.code).toBe(ErrorCodes.SVID_UNTRUSTED_CHAIN);
    expect(got.message).toMatch(/keyCertSign/);
  });

  test("intermediate that is not a CA", async () => {
    const weak = await makeTestCa({ intermediateIsCa: false });
    const leaf = await makeLeaf(weak);
    const got = await codeOf(verifySvidChain([leaf, weak.intermediateDer], { trustBundle: TrustBundle.fromPem(weak.rootPem), usage: "client" }));
    expect(got.code).toBe(ErrorCodes.SVID_UNTRUSTED_CHAIN);
    expect(got.message).toMatch(/not a CA/);
  });

  test("expired intermediate", async () => {
    const old = await makeTestCa({ intermediateNotAfter: new Date(Date.now() - HOUR) });
    const leaf = await makeLeaf(old, { notBefore: new Date(Date.now() - 2 * HOUR) });
    const got = await codeOf(verifySvidChain([leaf, old.intermediateDer], { trustBundle: TrustBundle.fromPem(old.rootPem), usage: "client" }));
    expect(got.code).toBe(ErrorCodes.SVID_EXPIRED);
    expect(got.message).toMatch(/intermediate/);
  });

  test("URI name constraints on the intermediate", async () => {
    const constrained = await makeTestCa({ intermediateNameConstraints: uriPermittedSubtrees([TD]) });
    const trust = TrustBundle.fromPem(constrained.rootPem);
    const inside = await makeLeaf(constrained);
    expect((await verifySvidChain([inside, constrained.intermediateDer], { trustBundle: trust, usage: "client" })).identity).toBe(GOOD_ID);
    const outside = await makeLeaf(constrained, { uris: ["spiffe://other.org/ns/default/sa/workload"] });
    const got = await codeOf(verifySvidChain([outside, constrained.intermediateDer], { trustBundle: trust, usage: "client" }));
    expect(got.code).toBe(ErrorCodes.SVID_UNTRUSTED_CHAIN);
    expect(got.message).toMatch(/name constraints/);
  });

  test("too many certificates", async () => {
    const leaf = await makeLeaf(ca);
    const chain = [leaf, ...Array.from({ length: 8 }, () => ca.intermediateDer)];
    expect((await codeOf(verifySvidChain(chain, { trustBundle: bundle, usage: "client" }))).code).toBe(ErrorCodes.SVID_MALFORMED);
  });
});

describe("verifySvidChain accepts", () => {
  for (const usage of ["client", "server"] as const) {
    test(`a good SVID, usage ${usage}`, async () => {
      const leaf = await makeLeaf(ca);
      const peer = await verifySvidChain([leaf, ca.intermediateDer], { trustBundle: bundle, usage, trustDomain: TD, expectedIdentities: [GOOD_ID] });
      expect(peer).toEqual({ identity: GOOD_ID, trustDomain: TD, namespace: "default", serviceAccount: "workload", notAfter: expect.any(Date) });
    });
  }

  test("a leaf without EKU or basic constraints, plus a DNS SAN", async () => {
    const leaf = await makeLeaf(ca, { eku: null, ca: null, dns: ["ignored.example.org"] });
    expect((await verifySvidChain([leaf, ca.intermediateDer], { trustBundle: bundle, usage: "server" })).identity).toBe(GOOD_ID);
  });

  test("the root sent at the end of the chain", async () => {
    const leaf = await makeLeaf(ca);
    expect((await verifySvidChain([leaf, ca.intermediateDer, ca.rootDer], { trustBundle: bundle, usage: "client" })).identity).toBe(GOOD_ID);
  });

  test("within the 60 s clock skew on both edges", async () => {
    const now = Date.now();
    const leaf = await makeLeaf(ca, { notBefore: new Date(now + 30_000), notAfter: new Date(now + HOUR) });
    expect((await verifySvidChain([leaf, ca.intermediateDer], { trustBundle: bundle, usage: "client" })).identity).toBe(GOOD_ID);
    const late = await makeLeaf(ca, { notBefore: new Date(now - HOUR), notAfter: new Date(now - 30_000) });
    expect((await verifySvidChain([late, ca.intermediateDer], { trustBundle: bundle, usage: "client" })).identity).toBe(GOOD_ID);
  });

  test("an SVID issued by the local CA, both usages, and a bundle with two roots", async () => {
    const local = await createLocalCa({ trustDomain: TD });
    const svid = await local.issueWorkloadSvid({ identity: GOOD_ID, lifetimeMs: HOUR });
    const chain = pemCertificates(svid.chainPem);
    expect(chain.length).toBe(2);
    const both = TrustBundle.fromPem(ca.rootPem + svid.rootPem);
    for (const usage of ["client", "server"] as const) {
      expect((await verifySvidChain(chain, { trustBundle: both, usage, trustDomain: TD })).identity).toBe(GOOD_ID);
    }
    expect((await codeOf(verifySvidChain(chain, { trustBundle: bundle, usage: "client" }))).code).toBe(ErrorCodes.SVID_UNTRUSTED_CHAIN);
  });
});

describe("verification cache", () => {
  test("a hit still re-checks validity, trust domain and expected identities", async () => {
    const trust = TrustBundle.fromPem(ca.rootPem);
    const now = Date.now();
    const leaf = await makeLeaf(ca, { notAfter: new Date(now + HOUR) });
    const chain = [leaf, ca.intermediateDer];
    await verifySvidChain(chain, { trustBundle: trust, usage: "client" });
    expect(trust.verified.size).toBe(1);

    const expired = await codeOf(verifySvidChain(chain, { trustBundle: trust, usage: "client", now: new Date(now + 2 * HOUR) }));
    expect(expired.code).toBe(ErrorCodes.SVID_EXPIRED);
    const early = await codeOf(verifySvidChain(chain, { trustBundle: trust, usage: "client", now: new Date(now - 3 * HOUR) }));
    expect(early.code).toBe(ErrorCodes.SVID_NOT_YET_VALID);
    const td = await codeOf(verifySvidChain(chain, { trustBundle: trust, usage: "client", trustDomain: "other.org" }));
    expect(td.code).toBe(ErrorCodes.SVID_TRUST_DOMAIN_MISMATCH);
    const id = await codeOf(verifySvidChain(chain, { trustBundle: trust, usage: "client", expectedIdentities: [] }));
    expect(id.code).toBe(ErrorCodes.SVID_IDENTITY_MISMATCH);
    expect(trust.verified.size).toBe(1);
  });

  test("the usage is part of the key", async () => {
    const trust = TrustBundle.fromPem(ca.rootPem);
    const leaf = await makeLeaf(ca, { eku: [clientAuth] });
    await verifySvidChain([leaf, ca.intermediateDer], { trustBundle: trust, usage: "client" });
    expect((await codeOf(verifySvidChain([leaf, ca.intermediateDer], { trustBundle: trust, usage: "server" }))).code).toBe(ErrorCodes.SVID_EKU_MISSING_USAGE);
  });

  test("failures are not cached and the cache is bounded", async () => {
    const trust = TrustBundle.fromPem(ca.rootPem, { cacheEntries: 2 });
    const bad = await makeLeaf(ca, { keyUsage: null });
    await codeOf(verifySvidChain([bad, ca.intermediateDer], { trustBundle: trust, usage: "client" }));
    expect(trust.verified.size).toBe(0);
    for (let i = 0; i < 3; i++) await verifySvidChain([await makeLeaf(ca), ca.intermediateDer], { trustBundle: trust, usage: "client" });
    expect(trust.verified.size).toBe(2);
  });
});

describe("TrustBundle", () => {
  test("rejects a non-CA root and input without certificates", async () => {
    const leafDer = await makeLeaf(ca);
    expect(() => TrustBundle.fromDer([leafDer])).toThrow(/not a CA/);
    expect(() => TrustBundle.fromPem("nothing here")).toThrow(MeshError);
  });
});
