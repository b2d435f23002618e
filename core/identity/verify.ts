// The X.509-SVID verifier (reference/reliability.md §2). It runs after every TLS handshake, on the
// chain the peer sent, whatever the TLS library already decided: the runtime's own enforcement has
// had bugs (reliability.md §4.3), so this is the check that counts.
//
// Order of checks: chain to a trusted root, then the leaf's SVID profile, then validity times,
// then the caller's trust-domain / expected-identity rules. The first two do not depend on the
// clock or the caller, so their success is cached per trust bundle; times and caller rules are
// re-checked on every call.
import { createHash } from "node:crypto";
import { MeshError, ErrorCodes, type ErrorCode } from "../errors/index.ts";
import { x509 } from "./x509.ts";
import type { TrustBundle, VerifiedChain } from "./bundle.ts";
import { CertParseError, describe, extensionProblem, parseCert, signedBy, type ParsedCert } from "./certs.ts";
import { bytesEqual, sanUris } from "./der.ts";
import { parseSpiffeId, type SpiffeId } from "./spiffe.ts";

export type SvidUsage = "server" | "client";

export interface VerifySvidOptions {
  readonly trustBundle: TrustBundle;
  /** the role the *peer* plays: "server" when we are the client, "client" when we serve */
  readonly usage: SvidUsage;
  readonly now?: Date;
  /** inbound rule: the peer must belong to this trust domain */
  readonly trustDomain?: string;
  /** outbound rule: the peer must be one of these canonical ids (`spiffe://td/path`) */
  readonly expectedIdentities?: readonly string[];
}

export interface VerifiedPeer {
  readonly identity: string;
  readonly trustDomain: string;
  readonly namespace?: string;
  readonly serviceAccount?: string;
  readonly notAfter: Date;
}

/** Tolerated clock difference between us and whoever issued the peer's certificates. */
export const SVID_CLOCK_SKEW_MS = 60_000;
/** Leaf plus intermediates a peer may send; real meshes send 1-3. */
export const MAX_PEER_CHAIN_CERTS = 8;
const MAX_INTERMEDIATES = 5;

const EKU_FOR: Record<SvidUsage, string> = {
  server: x509.ExtendedKeyUsage.serverAuth,
  client: x509.ExtendedKeyUsage.clientAuth,
};

function fail(code: ErrorCode, message: string): never {
  throw new MeshError(code, message);
}

export class PathError extends Error {}

export interface CertPath {
  /** [start, ...intermediates, anchor]; just [start] when start is itself a root */
  readonly certs: readonly ParsedCert[];
}

/**
 * RFC 5280-style path building from `start` to a root of `bundle` through certificates of `pool`:
 * issuer name and signature of every link, and every issuer above `start` must be a CA with
 * keyCertSign, no unprocessed critical extension, within its pathLen. Validity times are checked
 * by the caller. `startIsCa`: `start` is itself a signing CA (loading a CA directory), so it
 * counts toward the issuers' pathLen.
 */
export async function buildCertPath(start: ParsedCert, pool: readonly ParsedCert[], bundle: TrustBundle, startIsCa = false): Promise<CertPath> {
  if (bundle.roots.some((r) => bytesEqual(r.der, start.der))) return { certs: [start] };
  const path: ParsedCert[] = [start];
  const used = new Set<number>();
  let cur = start;
  for (;;) {
    // certificates strictly between this issuer and the end entity
    const below = path.length - 1 + (startIsCa ? 1 : 0);
    for (const root of bundle.roots) {
      if (await signedBy(cur, root)) {
        if (root.pathLen !== undefined && below > root.pathLen) {
          throw new PathError(`root ${describe(root)} allows ${root.pathLen} intermediate(s) below it, path has ${below}`);
        }
        path.push(root);
        return { certs: path };
      }
    }
    if (path.length > MAX_INTERMEDIATES) throw new PathError(`no trusted root within ${MAX_INTERMEDIATES} intermediates`);
    let issuer: ParsedCert | undefined;
    for (let i = 0; i < pool.length && !issuer; i++) {
      const cand = pool[i]!;
      if (used.has(i) || bytesEqual(cand.der, cur.der)) continue;
      if (await signedBy(cur, cand)) {
        used.add(i);
        issuer = cand;
      }
    }
    if (!issuer) throw new PathError(`${describe(cur)} is not signed by a trusted root or a presented intermediate`);
    if (!issuer.isCa) throw new PathError(`issuer ${describe(issuer)} is not a CA (basicConstraints cA is not true)`);
    if (!issuer.keyUsage || (issuer.keyUsage.flags & x509.KeyUsageFlags.keyCertSign) === 0) {
      throw new PathError(`issuer ${describe(issuer)} lacks the keyCertSign key usage`);
    }
    const extProblem = extensionProblem(issuer, "ca");
    if (extProblem) throw new PathError(`issuer ${describe(issuer)}: ${extProblem}`);
    if (issuer.pathLen !== undefined && below > issuer.pathLen) {
      throw new PathError(`issuer ${describe(issuer)} allows ${issuer.pathLen} intermediate(s) below it, path has ${below}`);
    }
    path.push(issuer);
    cur = issuer;
  }
}

/** RFC 5280 §4.2.1.10 URI constraint: `.domain` matches subdomains, anything else the exact host. */
function uriHostMatches(host: string, constraint: string): boolean {
  const c = constraint.toLowerCase();
  return c.startsWith(".") ? host.endsWith(c) && host.length > c.length : host === c;
}

function checkNameConstraints(id: SpiffeId, path: CertPath): void {
  for (const ca of path.certs.slice(1)) {
    const nc = ca.nameConstraints;
    if (!nc) continue;
    if (nc.permitted.length > 0 && !nc.permitted.some((c) => uriHostMatches(id.trustDomain, c))) {
      fail(ErrorCodes.SVID_UNTRUSTED_CHAIN, `trust domain ${id.trustDomain} is outside the URI name constraints of ${describe(ca)}`);
    }
    if (nc.excluded.some((c) => uriHostMatches(id.trustDomain, c))) {
      fail(ErrorCodes.SVID_UNTRUSTED_CHAIN, `trust domain ${id.trustDomain} is excluded by the URI name constraints of ${describe(ca)}`);
    }
  }
}

/** The SVID leaf profile (SPIFFE X509-SVID §4-5). Returns the leaf's SPIFFE id. */
function checkLeafProfile(leaf: ParsedCert, usage: SvidUsage): SpiffeId {
  const extProblem = extensionProblem(leaf, "leaf");
  if (extProblem) fail(ErrorCodes.SVID_MALFORMED, `peer certificate: ${extProblem}`);
  if (leaf.isCa) fail(ErrorCodes.SVID_LEAF_IS_CA, "peer certificate is a CA certificate (basicConstraints cA=true)");
  const ku = leaf.keyUsage;
  if (!ku) fail(ErrorCodes.SVID_KEY_USAGE_MISSING, "peer certificate has no key usage extension");
  if (!ku.critical) fail(ErrorCodes.SVID_KEY_USAGE_NOT_CRITICAL, "peer certificate's key usage extension is not critical");
  if ((ku.flags & x509.KeyUsageFlags.digitalSignature) === 0) {
    fail(ErrorCodes.SVID_KEY_USAGE_INVALID, "peer certificate's key usage lacks digitalSignature");
  }
  if (ku.flags & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) {
    fail(ErrorCodes.SVID_KEY_USAGE_INVALID, "peer certificate's key usage includes keyCertSign or cRLSign");
  }
  if (leaf.extKeyUsages && !leaf.extKeyUsages.includes(EKU_FOR[usage])) {
    fail(ErrorCodes.SVID_EKU_MISSING_USAGE, `peer certificate's extended key usage lacks ${usage === "server" ? "serverAuth" : "clientAuth"}`);
  }
  let uris: string[];
  try {
    uris = leaf.sanValues.flatMap((v) => sanUris(v));
  } catch (e) {
    fail(ErrorCodes.SVID_MALFORMED, `peer certificate's subjectAltName: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (uris.length === 0) fail(ErrorCodes.SVID_NO_URI_SAN, "peer certificate has no URI SAN");
  if (uris.length > 1) fail(ErrorCodes.SVID_MULTIPLE_URI_SANS, `peer certificate has ${uris.length} URI SANs; an SVID has exactly one`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0]!);
  } catch (e) {
    fail(ErrorCodes.SVID_BAD_SPIFFE_ID, `peer certificate's URI SAN: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (id.path === "") fail(ErrorCodes.SVID_BAD_SPIFFE_ID, `peer certificate's SPIFFE id ${id.uri} has no path (a trust domain is not a workload)`);
  return id;
}

async function verifyUncached(chainDer: readonly Uint8Array[], bundle: TrustBundle, usage: SvidUsage): Promise<VerifiedChain> {
  let certs: ParsedCert[];
  try {
    certs = chainDer.map((d, i) => (i === 0 ? parseCert(d) : bundle.parsedIntermediate(d)));
  } catch (e) {
    fail(ErrorCodes.SVID_MALFORMED, e instanceof CertParseError ? `peer chain: ${e.message}` : String(e));
  }
  const [leaf, ...intermediates] = certs as [ParsedCert, ...ParsedCert[]];
  let path: CertPath;
  try {
    path = await buildCertPath(leaf, intermediates, bundle);
  } catch (e) {
    if (e instanceof PathError) fail(ErrorCodes.SVID_UNTRUSTED_CHAIN, `peer chain is not trusted: ${e.message}`);
    throw e;
  }
  const id = checkLeafProfile(leaf, usage);
  checkNameConstraints(id, path);
  return {
    id,
    leafNotAfter: new Date(leaf.notAfter),
    windows: path.certs.map((c, i) => ({
      what: i === 0 ? "peer certificate" : i === path.certs.length - 1 ? `root ${describe(c)}` : `intermediate ${describe(c)}`,
      notBefore: c.notBefore,
      notAfter: c.notAfter,
    })),
  };
}

function chainKey(chainDer: readonly Uint8Array[], usage: SvidUsage): string {
  const h = createHash("sha256");
  h.update(usage);
  const len = new Uint8Array(4);
  for (const der of chainDer) {
    new DataView(len.buffer).setUint32(0, der.length);
    h.update(len);
    h.update(der);
  }
  return h.digest("base64");
}

/**
 * Verifies a peer's X.509-SVID chain (`[leaf, ...intermediates]` as received). Throws MeshError
 * with one SVID_* code per reason; returns the peer's identity.
 */
export async function verifySvidChain(chainDer: readonly Uint8Array[], opts: VerifySvidOptions): Promise<VerifiedPeer> {
  if (chainDer.length === 0 || !chainDer[0] || chainDer[0].length === 0) {
    fail(ErrorCodes.SVID_NO_PEER_CERTIFICATE, "peer presented no certificate");
  }
  if (chainDer.length > MAX_PEER_CHAIN_CERTS) {
    fail(ErrorCodes.SVID_MALFORMED, `peer sent ${chainDer.length} certificates; at most ${MAX_PEER_CHAIN_CERTS} are accepted`);
  }
  const bundle = opts.trustBundle;
  const key = chainKey(chainDer, opts.usage);
  let chain = bundle.verified.get(key);
  if (!chain) {
    chain = await verifyUncached(chainDer, bundle, opts.usage);
    bundle.verified.set(key, chain);
  }

  const now = (opts.now ?? new Date()).getTime();
  for (const w of chain.windows) {
    if (now > w.notAfter + SVID_CLOCK_SKEW_MS) fail(ErrorCodes.SVID_EXPIRED, `${w.what} expired at ${new Date(w.notAfter).toISOString()}`);
    if (now < w.notBefore - SVID_CLOCK_SKEW_MS) {
      fail(ErrorCodes.SVID_NOT_YET_VALID, `${w.what} is not valid before ${new Date(w.notBefore).toISOString()}`);
    }
  }
  const id = chain.id;
  if (opts.trustDomain !== undefined && id.trustDomain !== opts.trustDomain) {
    fail(ErrorCodes.SVID_TRUST_DOMAIN_MISMATCH, `peer ${id.uri} is not in trust domain ${opts.trustDomain}`);
  }
  if (opts.expectedIdentities !== undefined && !opts.expectedIdentities.includes(id.uri)) {
    const shown = opts.expectedIdentities.slice(0, 4).join(", ") + (opts.expectedIdentities.length > 4 ? ", ..." : "");
    fail(ErrorCodes.SVID_IDENTITY_MISMATCH, `peer is ${id.uri}, expected one of [${shown}]`);
  }
  return {
    identity: id.uri,
    trustDomain: id.trustDomain,
    ...(id.namespace !== undefined ? { namespace: id.namespace, serviceAccount: id.serviceAccount } : {}),
    notAfter: chain.leafNotAfter,
  };
}
