// Attacker-side fixtures for the negative tests in this folder: certificates from the mesh's CA,
// from a rogue CA and hand-forged with the mesh CA's key; a raw HBONE client that can present any
// of them (or none) and send any request; raw TCP/TLS probes; and a rogue HBONE server that records
// what a client sends it. `rejectUnauthorized: false` appears here only: it is the attacker's side,
// which must not refuse the servers it probes.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CA_FILES, createLocalCa, loadLocalCa } from "../../core/identity/index.ts";
import { serve, type TestServer } from "../harness/index.ts";
import { FrameFlag, FrameType, H2_PREFACE, decodeStatus, encodeFrame, parseFrames, settingsFrame, type H2Frame } from "../harness/h2-frames.ts";

x509.cryptoProvider.set(crypto);

const HOUR = 3600_000;

/** What a TLS endpoint presents: PEM chain (leaf first) and PKCS#8 key. */
export interface PresentedCert {
  readonly identity: string;
  readonly certChainPem: string;
  readonly keyPem: string;
  /** the trust anchor that issued it (PEM), for a verifying peer */
  readonly rootPem: string;
}

/** A genuine SVID from the test mesh's own CA directory. */
export async function meshCert(caDir: string, identity: string): Promise<PresentedCert> {
  const ca = await loadLocalCa(caDir);
  const svid = await ca.issueWorkloadSvid({ identity, lifetimeMs: HOUR });
  return { identity, certChainPem: svid.chainPem, keyPem: svid.keyPem, rootPem: svid.rootPem };
}

/**
 * An SVID from a CA the mesh has never seen. Same trust domain and same layout as the mesh's CA by
 * default, so only the signature chain tells it apart (the most convincing forgery).
 */
export async function rogueCert(identity: string, trustDomain = "cluster.local"): Promise<PresentedCert> {
  const ca = await createLocalCa({ trustDomain });
  const svid = await ca.issueWorkloadSvid({ identity, lifetimeMs: HOUR });
  return { identity, certChainPem: svid.chainPem, keyPem: svid.keyPem, rootPem: svid.rootPem };
}

function pemBody(pem: string, label: string): Uint8Array<ArrayBuffer> {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  if (!m) throw new Error(`fixture: no ${label} block`);
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ""), "base64")) as Uint8Array<ArrayBuffer>;
}

function pem(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END ${label}-----\n`;
}

/**
 * A leaf signed with the mesh CA's own key (ca-key.pem, issuer ca-cert.pem), carrying whatever URI
 * SANs the test wants, with the same extensions the mesh CA puts on a genuine SVID. The chain is
 * cryptographically valid; only the SPIFFE rules can reject it.
 */
export async function forgedMeshCert(caDir: string, uris: readonly string[]): Promise<PresentedCert> {
  const caCertPem = readFileSync(join(caDir, CA_FILES.cert), "utf8");
  const caKeyPem = readFileSync(join(caDir, CA_FILES.key), "utf8");
  const rootPem = readFileSync(join(caDir, CA_FILES.root), "utf8");
  const caCert = new x509.X509Certificate(caCertPem);
  const signingKey = await crypto.subtle.importKey("pkcs8", pemBody(caKeyPem, "PRIVATE KEY"), { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const leafKeys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const ski = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: Buffer.from(crypto.getRandomValues(new Uint8Array(16)).map((b, i) => (i === 0 ? (b & 0x7f) | 1 : b))).toString("hex"),
    issuer: caCert.subjectName,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + HOUR),
    publicKey: leafKeys.publicKey,
    signingKey,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: "url" as const, value })), true),
      await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey),
      ...(ski ? [new x509.AuthorityKeyIdentifierExtension(ski.keyId)] : []),
    ],
  });
  return {
    identity: uris[0] ?? "",
    certChainPem: pem("CERTIFICATE", cert.rawData) + caCertPem,
    keyPem: pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", leafKeys.privateKey)),
    rootPem,
  };
}

// ---- the app behind the listener ----------------------------------------------------------

/**
 * An echo app that counts the connections it accepted. The count is only trustworthy after
 * `settled()`: the ztunnel's connect to the app completes in the kernel before the test process
 * runs its accept callback, so a tunnel's 200 (or an attacker's probe result) can arrive first.
 * `settled()` makes one direct sentinel connection and waits until the app has seen it; whatever
 * was queued before it has been counted by then. Sentinels are not counted.
 */
export class CountingApp {
  private readonly peers: string[] = [];
  private readonly sentinels = new Set<string>();

  private constructor(private readonly server: TestServer) {}

  static async start(host: string, port: number): Promise<CountingApp> {
    let app!: CountingApp;
    const server = await serve(host, port, (s) => {
      app.peers.push(`${s.remoteAddress}:${s.remotePort}`);
      s.pipe(s);
    });
    app = new CountingApp(server);
    return app;
  }

  get host(): string {
    return this.server.host;
  }

  get port(): number {
    return this.server.port;
  }

  /** Connections accepted so far, sentinels excluded (call `settled()` first). */
  get connections(): number {
    return this.peers.filter((p) => !this.sentinels.has(p)).length;
  }

  async settled(timeoutMs = 5000): Promise<number> {
    const s = net.connect({ host: this.server.host, port: this.server.port });
    try {
      await new Promise<void>((resolve, reject) => {
        s.once("connect", () => resolve());
        s.once("error", reject);
      });
      const me = `${s.localAddress}:${s.localPort}`;
      this.sentinels.add(me);
      const deadline = Date.now() + timeoutMs;
      while (!this.peers.includes(me)) {
        if (Date.now() > deadline) throw new Error(`app ${this.host}:${this.port} did not accept the sentinel connection`);
        await Bun.sleep(5);
      }
    } finally {
      s.destroy();
    }
    return this.connections;
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

// ---- raw HBONE client ---------------------------------------------------------------------

export interface HboneAttemptOptions {
  readonly address: string;
  readonly port?: number;
  /** source address (a 127.x address in loopback mode) */
  readonly localAddress?: string;
  /** omitted: the client presents no certificate at all */
  readonly cert?: PresentedCert;
  /** the request's headers; default a CONNECT to `authority` */
  readonly headers?: Record<string, string>;
  readonly authority?: string;
  readonly timeoutMs?: number;
}

export type StreamOutcome =
  | { readonly kind: "response"; readonly status: number }
  | { readonly kind: "closed"; readonly rstCode: number | undefined }
  | { readonly kind: "error"; readonly error: string }
  | { readonly kind: "timeout" };

export interface HboneAttempt {
  /** the client completed its side of the TLS handshake */
  readonly tlsEstablished: boolean;
  readonly alpn: string | false | null | undefined;
  readonly outcome: StreamOutcome;
  /** the CONNECT stream, when the outcome is a response */
  readonly stream: http2.ClientHttp2Stream | undefined;
  close(): void;
}

/** The status if the server answered, else undefined: what the negative tests assert on. */
export function statusOf(a: HboneAttempt): number | undefined {
  return a.outcome.kind === "response" ? a.outcome.status : undefined;
}

/** One HBONE connection and one request on it, presenting `cert` (or nothing). Never throws. */
export function hboneAttempt(opts: HboneAttemptOptions): Promise<HboneAttempt> {
  return new Promise((resolve) => {
    let tlsEstablished = false;
    let socket: tls.TLSSocket | undefined;
    let session: http2.ClientHttp2Session | undefined;
    let stream: http2.ClientHttp2Stream | undefined;
    let settled = false;
    const close = () => {
      stream?.destroy();
      session?.destroy();
      socket?.destroy();
    };
    const settle = (outcome: StreamOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const keep = outcome.kind === "response" && outcome.status === 200;
      if (!keep) close();
      resolve({ tlsEstablished, alpn: socket?.alpnProtocol, outcome, stream: outcome.kind === "response" ? stream : undefined, close });
    };
    const timer = setTimeout(() => settle({ kind: "timeout" }), opts.timeoutMs ?? 5000);
    const port = opts.port ?? 15008;
    try {
      session = http2.connect(`https://${opts.address}:${port}`, {
        createConnection: () => {
          socket = tls.connect({
            host: opts.address,
            port,
            ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
            ...(opts.cert ? { cert: opts.cert.certChainPem, key: opts.cert.keyPem } : {}),
            ALPNProtocols: ["h2"],
            rejectUnauthorized: false,
            checkServerIdentity: () => undefined,
          });
          socket.on("secureConnect", () => (tlsEstablished = true));
          return socket;
        },
      });
      session.on("error", (e: Error) => settle({ kind: "error", error: e.message }));
      session.on("close", () => settle({ kind: "closed", rstCode: undefined }));
      const headers = opts.headers ?? { ":method": "CONNECT", ":authority": opts.authority ?? `${opts.address}:80` };
      stream = session.request(headers, { endStream: false });
      stream.on("response", (h) => settle({ kind: "response", status: Number(h[":status"]) }));
      stream.on("error", (e: Error) => settle({ kind: "error", error: e.message }));
      stream.on("close", () => settle({ kind: "closed", rstCode: stream?.rstCode }));
    } catch (e) {
      settle({ kind: "error", error: (e as Error).message });
    }
  });
}

/** Runs `fn` for 0..n-1 with at most `parallel` in flight; results in index order. */
export async function inParallel<T>(n: number, parallel: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) out[i] = await fn(i);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  return out;
}

// ---- raw HTTP/2 frames over TLS -------------------------------------------------------------

export interface RawH2Result {
  readonly handshake: boolean;
  /** every frame the server sent */
  readonly frames: readonly H2Frame[];
  /** `:status` of the first HEADERS on stream 1, if one came and could be read */
  readonly status: number | undefined;
  /** the server sent RST_STREAM on stream 1 */
  readonly reset: boolean;
  readonly closedByPeer: boolean;
  readonly error?: string;
}

/**
 * HTTP/2 by hand over TLS (ALPN h2): preface, empty SETTINGS, then `frames` (the test's request
 * on stream 1). Waits for the answer to stream 1 (HEADERS or RST_STREAM), a GOAWAY, the close,
 * or `waitMs`. For requests a client library refuses to send.
 */
export function rawH2Attempt(opts: { address: string; port?: number; cert?: PresentedCert; frames: readonly Buffer[]; waitMs?: number }): Promise<RawH2Result> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let handshake = false;
    let error: string | undefined;
    let done = false;
    const s = tls.connect({
      host: opts.address,
      port: opts.port ?? 15008,
      ...(opts.cert ? { cert: opts.cert.certChainPem, key: opts.cert.keyPem } : {}),
      ALPNProtocols: ["h2"],
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
    });
    const result = (closedByPeer: boolean): RawH2Result => {
      const { frames } = parseFrames(buf, false);
      const h = frames.find((f) => f.streamId === 1 && f.type === FrameType.HEADERS);
      let status: number | undefined;
      if (h) {
        let block = h.payload;
        if (h.flags & FrameFlag.PADDED) block = block.subarray(1, block.length - block[0]!);
        if (h.flags & FrameFlag.PRIORITY) block = block.subarray(5);
        status = decodeStatus(block);
      }
      return { handshake, frames, status, reset: frames.some((f) => f.streamId === 1 && f.type === FrameType.RST_STREAM), closedByPeer, ...(error ? { error } : {}) };
    };
    const finish = (closedByPeer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(result(closedByPeer));
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 3000);
    s.on("secureConnect", () => {
      handshake = true;
      s.write(Buffer.concat([H2_PREFACE, settingsFrame(), ...opts.frames]));
    });
    s.on("data", (d: Buffer) => {
      const before = parseFrames(buf, false).frames.length;
      buf = Buffer.concat([buf, d]);
      const { frames } = parseFrames(buf, false);
      for (const f of frames.slice(before)) {
        if (f.type === FrameType.SETTINGS && !(f.flags & FrameFlag.ACK)) s.write(encodeFrame(FrameType.SETTINGS, FrameFlag.ACK, 0));
      }
      const r = result(false);
      if (r.status !== undefined || r.reset || frames.some((f) => f.type === FrameType.GOAWAY || (f.streamId === 1 && f.type === FrameType.HEADERS))) finish(false);
    });
    s.on("error", (e) => (error = e.message));
    s.on("end", () => finish(true));
    s.on("close", () => finish(true));
  });
}

// ---- raw probes -----------------------------------------------------------------------------

export interface ProbeResult {
  /** bytes the server sent back (for TLS probes: decrypted application bytes) */
  readonly received: Buffer;
  /** the server closed the connection within the wait */
  readonly closedByPeer: boolean;
  readonly error?: string;
}

/** Plain TCP: connect, write `data`, collect until the server closes or `waitMs` passes. */
export function tcpProbe(opts: { host: string; port: number; localAddress?: string; data: Buffer; waitMs?: number }): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let done = false;
    const s = net.connect({ host: opts.host, port: opts.port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const finish = (closedByPeer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ received: Buffer.concat(chunks), closedByPeer, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 3000);
    s.on("connect", () => s.write(opts.data));
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("error", (e) => (error = e.message));
    s.on("end", () => finish(true));
    s.on("close", () => finish(true));
  });
}

export interface TlsProbeResult extends ProbeResult {
  readonly handshake: boolean;
  readonly alpn: string | false | null | undefined;
  readonly protocol: string | null | undefined;
}

/**
 * TLS without HTTP/2: handshake with the given ALPN list (null: offer none) and TLS versions,
 * then write `data` and collect whatever comes back until the server closes or `waitMs` passes.
 */
export function tlsProbe(opts: {
  host: string;
  port: number;
  cert?: PresentedCert;
  alpn: string[] | null;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
  data: Buffer;
  waitMs?: number;
}): Promise<TlsProbeResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let handshake = false;
    let error: string | undefined;
    let done = false;
    const s = tls.connect({
      host: opts.host,
      port: opts.port,
      ...(opts.cert ? { cert: opts.cert.certChainPem, key: opts.cert.keyPem } : {}),
      ...(opts.alpn ? { ALPNProtocols: opts.alpn } : {}),
      ...(opts.minVersion ? { minVersion: opts.minVersion } : {}),
      ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}),
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
    });
    const finish = (closedByPeer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const alpn = s.alpnProtocol;
      const protocol = handshake ? s.getProtocol() : undefined;
      s.destroy();
      resolve({ handshake, alpn, protocol, received: Buffer.concat(chunks), closedByPeer, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 3000);
    s.on("secureConnect", () => {
      handshake = true;
      s.write(opts.data);
    });
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("error", (e) => (error = e.message));
    s.on("end", () => finish(true));
    s.on("close", () => finish(true));
  });
}

// ---- rogue HBONE server -----------------------------------------------------------------------

export interface RogueConnection {
  handshake: boolean;
  /** decrypted bytes the client sent after the handshake */
  bytes: Buffer;
  /** whether the client presented a certificate */
  clientCert: boolean;
}

/**
 * A TLS 1.3 + ALPN h2 server on `host:port` that presents `cert`, never answers, and records
 * every connection: TCP accepted, TLS completed, and the bytes the client sent afterwards.
 */
export class RogueHboneServer {
  readonly connections: RogueConnection[] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server) {}

  static start(host: string, port: number, cert: PresentedCert): Promise<RogueHboneServer> {
    const ctx = tls.createSecureContext({ cert: cert.certChainPem, key: cert.keyPem, ca: cert.rootPem, minVersion: "TLSv1.3" });
    let rogue!: RogueHboneServer;
    const server = net.createServer((raw) => {
      const rec: RogueConnection = { handshake: false, bytes: Buffer.alloc(0), clientCert: false };
      rogue.connections.push(rec);
      rogue.sockets.add(raw);
      raw.on("close", () => rogue.sockets.delete(raw));
      raw.on("error", () => {});
      const t = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx, ALPNProtocols: ["h2"], requestCert: true, rejectUnauthorized: false });
      t.on("secure", () => {
        rec.handshake = true;
        rec.clientCert = !!t.getPeerCertificate()?.raw;
      });
      t.on("data", (d: Buffer) => (rec.bytes = Buffer.concat([rec.bytes, d])));
      t.on("error", () => {});
    });
    rogue = new RogueHboneServer(server);
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port, exclusive: true }, () => resolve(rogue));
    });
  }

  /** Every HTTP/2 frame the clients sent, per connection (after the preface). */
  frames(): { preface: boolean; frames: H2Frame[]; trailing: number }[] {
    return this.connections.map((c) => parseFrames(c.bytes, true));
  }

  /** HEADERS frames received on any connection: a CONNECT would be one. */
  headersFrames(): H2Frame[] {
    return this.frames().flatMap((f) => f.frames.filter((x) => x.type === FrameType.HEADERS || x.type === FrameType.CONTINUATION));
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}
