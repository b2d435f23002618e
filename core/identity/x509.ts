// The one place this folder loads @peculiar/x509. Version 2 resolves its algorithms through
// tsyringe, which needs the Reflect metadata polyfill loaded first (reference/bun.md §3.2).
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

export { x509 };

export function pemEncode(label: string, der: Uint8Array | ArrayBuffer): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END ([A-Z0-9 ]+)-----/g;
const BASE64_BODY = /^[A-Za-z0-9+/]*={0,2}$/;

export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

/** Every PEM block in `text`. Throws on a block whose END label or base64 body is wrong. */
export function pemDecodeAll(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const [, begin, body, end] = m;
    if (begin !== end) throw new Error(`PEM block BEGIN ${begin} ends with END ${end}`);
    const compact = body!.replace(/\s+/g, "");
    if (!BASE64_BODY.test(compact) || compact.length % 4 !== 0) throw new Error(`PEM block ${begin} has a malformed base64 body`);
    out.push({ label: begin!, der: new Uint8Array(Buffer.from(compact, "base64")) });
  }
  return out;
}

/** The DER of every CERTIFICATE block in `text` (other blocks are an error). */
export function pemCertificates(text: string): Uint8Array[] {
  return pemDecodeAll(text).map((b) => {
    if (b.label !== "CERTIFICATE") throw new Error(`expected CERTIFICATE blocks, found ${b.label}`);
    return b.der;
  });
}
