// A trust bundle: root certificates parsed once, plus the cache of chains already verified against
// them. The cache lives here so that replacing the bundle (CA rotation) also drops every result
// that was computed against the old roots.
import { createHash } from "node:crypto";
import { MeshError, ErrorCodes } from "../errors/index.ts";
import { parseCert, type ParsedCert } from "./certs.ts";
import { pemCertificates, pemEncode } from "./x509.ts";
import type { SpiffeId } from "./spiffe.ts";

export const DEFAULT_VERIFY_CACHE_ENTRIES = 4096;

/** What a successful verification established that does not depend on the clock or the caller. */
export interface VerifiedChain {
  readonly id: SpiffeId;
  readonly leafNotAfter: Date;
  /** validity window of every certificate on the path, leaf first, root last */
  readonly windows: readonly { readonly what: string; readonly notBefore: number; readonly notAfter: number }[];
}

/** Bounded LRU (a Map keeps insertion order; a hit moves the key to the end). */
export class VerifiedChainCache {
  readonly #max: number;
  readonly #map = new Map<string, VerifiedChain>();
  constructor(max: number) {
    this.#max = Math.max(0, Math.floor(max));
  }
  get(key: string): VerifiedChain | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }
  set(key: string, v: VerifiedChain): void {
    if (this.#max === 0) return;
    this.#map.delete(key);
    this.#map.set(key, v);
    while (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value;
      if (oldest === undefined) break;
      this.#map.delete(oldest);
    }
  }
  get size(): number {
    return this.#map.size;
  }
  clear(): void {
    this.#map.clear();
  }
}

/** Parsed intermediates, shared by every leaf their CA signs (parsing is most of a cold verification). */
const MAX_PARSED_INTERMEDIATES = 256;

export class TrustBundle {
  /** normalised PEM of every root, suitable as `ca` for node:tls */
  readonly pem: string;
  /** @internal parsed roots, for the verifier in this folder */
  readonly roots: readonly ParsedCert[];
  /** @internal successful verifications against these roots */
  readonly verified: VerifiedChainCache;
  /** @internal intermediates by DER hash, with their imported keys */
  readonly #intermediates = new Map<string, ParsedCert>();

  private constructor(roots: readonly ParsedCert[], cacheEntries: number) {
    this.roots = roots;
    this.pem = roots.map((r) => pemEncode("CERTIFICATE", r.der)).join("");
    this.verified = new VerifiedChainCache(cacheEntries);
  }

  /**
   * Parses every CERTIFICATE block of `pem` as a root. Each must be a CA certificate (basic
   * constraints cA=true): a leaf in the root set would turn path validation into pinning.
   * Throws MeshError(CA_INVALID).
   */
  static fromPem(pem: string, opts: { cacheEntries?: number } = {}): TrustBundle {
    let ders: Uint8Array[];
    try {
      ders = pemCertificates(pem);
    } catch (e) {
      throw new MeshError(ErrorCodes.CA_INVALID, `trust bundle: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    return TrustBundle.fromDer(ders, opts);
  }

  static fromDer(ders: readonly Uint8Array[], opts: { cacheEntries?: number } = {}): TrustBundle {
    if (ders.length === 0) throw new MeshError(ErrorCodes.CA_INVALID, "trust bundle: no CERTIFICATE found");
    const roots = ders.map((der, i) => {
      let root: ParsedCert;
      try {
        root = parseCert(der);
      } catch (e) {
        throw new MeshError(ErrorCodes.CA_INVALID, `trust bundle: root #${i + 1}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      if (!root.isCa) throw new MeshError(ErrorCodes.CA_INVALID, `trust bundle: root #${i + 1} ("${root.cert.subject}") is not a CA certificate`);
      return root;
    });
    return new TrustBundle(roots, opts.cacheEntries ?? DEFAULT_VERIFY_CACHE_ENTRIES);
  }

  get size(): number {
    return this.roots.length;
  }

  /** @internal parse an intermediate once; throws CertParseError like parseCert */
  parsedIntermediate(der: Uint8Array): ParsedCert {
    const key = createHash("sha256").update(der).digest("base64");
    let c = this.#intermediates.get(key);
    if (!c) {
      c = parseCert(der);
      if (this.#intermediates.size >= MAX_PARSED_INTERMEDIATES) {
        const oldest = this.#intermediates.keys().next().value;
        if (oldest !== undefined) this.#intermediates.delete(oldest);
      }
      this.#intermediates.set(key, c);
    }
    return c;
  }
}
