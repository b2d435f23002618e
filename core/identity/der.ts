// A minimal DER reader for the few raw fields @peculiar/x509 does not hand out byte-exact: the
// issuer/subject names (RFC 5280 name chaining compares encodings), both signature algorithm
// fields (they must agree), SAN entries of any GeneralName type (the library throws on otherName
// forms it does not know) and URI name constraints. Definite lengths only, as DER requires.

export interface Tlv {
  readonly tag: number;
  /** offset of the tag byte */
  readonly start: number;
  /** offset of the first content byte */
  readonly contentStart: number;
  /** offset just past the content */
  readonly end: number;
}

export class DerError extends Error {}

export function readTlv(buf: Uint8Array, pos: number, limit: number = buf.length): Tlv {
  if (pos + 2 > limit) throw new DerError("truncated DER element");
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError("multi-byte DER tags are not supported");
  let len = buf[pos + 1]!;
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError("unsupported DER length form");
    if (p + n > limit) throw new DerError("truncated DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > limit) throw new DerError("DER element runs past its container");
  return { tag, start: pos, contentStart: p, end: p + len };
}

/** The children of a constructed element. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let p = parent.contentStart;
  while (p < parent.end) {
    const t = readTlv(buf, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}

const SEQUENCE = 0x30;

export interface CertificateFields {
  /** full TLV of tbsCertificate.signature */
  readonly tbsSignatureAlgorithm: Uint8Array;
  /** full TLV of Certificate.signatureAlgorithm */
  readonly signatureAlgorithm: Uint8Array;
  /** full TLV of the issuer Name */
  readonly issuer: Uint8Array;
  /** full TLV of the subject Name */
  readonly subject: Uint8Array;
}

export function certificateFields(der: Uint8Array): CertificateFields {
  const cert = readTlv(der, 0);
  if (cert.tag !== SEQUENCE || cert.end !== der.length) throw new DerError("not a DER certificate");
  const [tbs, sigAlg] = children(der, cert);
  if (!tbs || !sigAlg || tbs.tag !== SEQUENCE || sigAlg.tag !== SEQUENCE) throw new DerError("not a DER certificate");
  const f = children(der, tbs);
  let i = 0;
  if (f[0]?.tag === 0xa0) i++; // explicit [0] version
  const serial = f[i];
  const tbsSig = f[i + 1];
  const issuer = f[i + 2];
  const validity = f[i + 3];
  const subject = f[i + 4];
  if (serial?.tag !== 0x02 || tbsSig?.tag !== SEQUENCE || issuer?.tag !== SEQUENCE || validity?.tag !== SEQUENCE || subject?.tag !== SEQUENCE) {
    throw new DerError("malformed tbsCertificate");
  }
  const slice = (t: Tlv) => der.subarray(t.start, t.end);
  return { tbsSignatureAlgorithm: slice(tbsSig), signatureAlgorithm: slice(sigAlg), issuer: slice(issuer), subject: slice(subject) };
}

const URI_NAME = 0x86; // GeneralName [6] IMPLICIT IA5String

function ia5(buf: Uint8Array, t: Tlv): string {
  let s = "";
  for (let i = t.contentStart; i < t.end; i++) {
    const b = buf[i]!;
    // Non-ASCII bytes cannot appear in a valid SPIFFE id; keep them visible (as U+FFFD) so the
    // id parser rejects the name instead of us silently dropping bytes.
    s += b < 0x80 ? String.fromCharCode(b) : "\ufffd";
  }
  return s;
}

/** The URI entries of a SubjectAltName extension value (GeneralNames), in order. */
export function sanUris(extnValue: Uint8Array): string[] {
  const seq = readTlv(extnValue, 0);
  if (seq.tag !== SEQUENCE || seq.end !== extnValue.length) throw new DerError("malformed subjectAltName");
  return children(extnValue, seq).filter((t) => t.tag === URI_NAME).map((t) => ia5(extnValue, t));
}

export interface UriNameConstraints {
  readonly permitted: readonly string[];
  readonly excluded: readonly string[];
}

/** URI subtrees of a NameConstraints extension value; other name forms are not returned. */
export function uriNameConstraints(extnValue: Uint8Array): UriNameConstraints {
  const seq = readTlv(extnValue, 0);
  if (seq.tag !== SEQUENCE || seq.end !== extnValue.length) throw new DerError("malformed nameConstraints");
  const permitted: string[] = [];
  const excluded: string[] = [];
  for (const subtrees of children(extnValue, seq)) {
    const into = subtrees.tag === 0xa0 ? permitted : subtrees.tag === 0xa1 ? excluded : undefined;
    if (!into) throw new DerError("malformed nameConstraints");
    for (const subtree of children(extnValue, subtrees)) {
      if (subtree.tag !== SEQUENCE) throw new DerError("malformed GeneralSubtree");
      const base = children(extnValue, subtree)[0];
      if (base?.tag === URI_NAME) into.push(ia5(extnValue, base));
    }
  }
  return { permitted, excluded };
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
