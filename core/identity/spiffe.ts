// SPIFFE ids, parsed strictly (spiffe/spiffe standards/SPIFFE-ID.md §2; reference/reliability.md
// §2 items 6-8). Anything the spec does not allow is rejected, never normalised, so two ids that
// compare equal here are byte-for-byte the same id everywhere else in the mesh.
import { MeshError, ErrorCodes } from "../errors/index.ts";

export interface SpiffeId {
  /** lowercase trust domain, e.g. `cluster.local` */
  readonly trustDomain: string;
  /** `""` for a trust-domain id, else `/seg/seg...` (case-sensitive) */
  readonly path: string;
  /** set when the path is exactly `/ns/<ns>/sa/<sa>` (Istio's workload form) */
  readonly namespace?: string;
  readonly serviceAccount?: string;
  /** canonical form `spiffe://<trustDomain><path>` (scheme lowercased) */
  readonly uri: string;
}

export const MAX_SPIFFE_ID_BYTES = 2048;
export const MAX_TRUST_DOMAIN_BYTES = 255;
const SCHEME = "spiffe://";

function invalid(text: string, why: string): MeshError {
  const shown = text.length > 96 ? `${text.slice(0, 96)}...` : text;
  return new MeshError(ErrorCodes.SPIFFE_ID_INVALID, `invalid SPIFFE id ${JSON.stringify(shown)}: ${why}`);
}

function isLowerAlnum(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);
}
function isUpper(c: number): boolean {
  return c >= 0x41 && c <= 0x5a;
}
function isPunct(c: number): boolean {
  return c === 0x2e || c === 0x2d || c === 0x5f; // . - _
}

/** Why `ch` may not appear in a SPIFFE id component, phrased for an operator. */
function charProblem(ch: string, where: string): string {
  switch (ch) {
    case "%":
      return `percent-encoding is not allowed in the ${where}`;
    case "?":
      return "a query is not allowed";
    case "#":
      return "a fragment is not allowed";
    default:
      return `character ${JSON.stringify(ch)} is not allowed in the ${where}`;
  }
}

export function parseSpiffeId(text: string): SpiffeId {
  if (typeof text !== "string" || text.length === 0) throw invalid(String(text), "empty");
  if (Buffer.byteLength(text, "utf8") > MAX_SPIFFE_ID_BYTES) throw invalid(text, `longer than ${MAX_SPIFFE_ID_BYTES} bytes`);
  if (text.slice(0, SCHEME.length).toLowerCase() !== SCHEME) throw invalid(text, "scheme must be spiffe://");

  const rest = text.slice(SCHEME.length);
  const slash = rest.indexOf("/");
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash);

  if (trustDomain.length === 0) throw invalid(text, "trust domain is empty");
  for (let i = 0; i < trustDomain.length; i++) {
    const c = trustDomain.charCodeAt(i);
    if (isLowerAlnum(c) || isPunct(c)) continue;
    const ch = trustDomain[i]!;
    if (ch === "@") throw invalid(text, "userinfo is not allowed in the trust domain");
    if (ch === ":") throw invalid(text, "a port (or any ':') is not allowed in the trust domain");
    if (isUpper(c)) throw invalid(text, "trust domain must be lowercase");
    throw invalid(text, charProblem(ch, "trust domain"));
  }
  if (trustDomain.length > MAX_TRUST_DOMAIN_BYTES) throw invalid(text, `trust domain longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`);

  let segments: string[] = [];
  if (path !== "") {
    if (path.endsWith("/")) throw invalid(text, "path must not end with '/'");
    segments = path.slice(1).split("/");
    for (const seg of segments) {
      if (seg === "") throw invalid(text, "path has an empty segment");
      if (seg === "." || seg === "..") throw invalid(text, `path segment '${seg}' is not allowed`);
      for (let i = 0; i < seg.length; i++) {
        const c = seg.charCodeAt(i);
        if (isLowerAlnum(c) || isUpper(c) || isPunct(c)) continue;
        throw invalid(text, charProblem(seg[i]!, "path"));
      }
    }
  }

  const uri = SCHEME + trustDomain + path;
  if (segments.length === 4 && segments[0] === "ns" && segments[2] === "sa") {
    return { trustDomain, path, namespace: segments[1]!, serviceAccount: segments[3]!, uri };
  }
  return { trustDomain, path, uri };
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>`, validated. */
export function istioIdentity(trustDomain: string, namespace: string, serviceAccount: string): string {
  const text = `${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  const id = parseSpiffeId(text);
  if (id.trustDomain !== trustDomain || id.namespace !== namespace || id.serviceAccount !== serviceAccount) {
    throw invalid(text, "trust domain, namespace and service account must each be a single component");
  }
  return id.uri;
}

/** The id without `spiffe://`, the form Istio authorization `principals` compare against. */
export function principalOf(id: string | SpiffeId): string {
  const parsed = typeof id === "string" ? parseSpiffeId(id) : id;
  return parsed.uri.slice(SCHEME.length);
}
