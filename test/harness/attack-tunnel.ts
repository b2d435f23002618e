// Attacker-side tools for the waypoint tests: HBONE CONNECT tunnels to a waypoint as a chosen mesh
// identity (several tunnels over one mTLS connection), raw bytes written into a tunnel with the
// answer collected until the waypoint closes it, a reader for the HTTP/1.x responses that come
// back, and a raw HTTP/2 (prior knowledge) session inside a tunnel built from hand-written frames.
import http2 from "node:http2";
import tls from "node:tls";
import type { Duplex } from "node:stream";
import { FrameFlag, FrameType, H2_PREFACE, decodeStatus, encodeFrame, parseFrames, settingsFrame, type H2Frame } from "./h2-frames.ts";
import type { HboneTestCert } from "./hbone-client.ts";

export interface WaypointTunnel {
  /** the CONNECT's status (0: the stream closed without an answer) */
  readonly status: number;
  readonly stream: Duplex;
}

/**
 * One mTLS + HTTP/2 connection to an HBONE listener (a waypoint's or a ztunnel's), presenting
 * `cert` from `localAddress`; each open() is one CONNECT stream on it.
 */
export class TunnelClient {
  private session: http2.ClientHttp2Session | undefined;

  constructor(private readonly opts: { address: string; port?: number; cert: HboneTestCert; localAddress?: string }) {}

  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const { address, cert, localAddress } = this.opts;
    const port = this.opts.port ?? 15008;
    const s = http2.connect(`https://${address}:${port}`, {
      createConnection: () =>
        tls.connect({
          host: address,
          port,
          cert: cert.certChainPem,
          key: cert.keyPem,
          ca: cert.rootPem,
          ALPNProtocols: ["h2"],
          // SPIFFE certificates carry no DNS name; the chain is still verified against the mesh root.
          checkServerIdentity: () => undefined,
          ...(localAddress ? { localAddress } : {}),
        } as tls.ConnectionOptions),
    });
    s.on("error", () => {});
    this.session = s;
    return s;
  }

  /** A CONNECT to `authority` (with extra request headers); resolves once answered or refused. */
  open(authority: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<WaypointTunnel> {
    const stream = this.connect().request({ ":method": "CONNECT", ":authority": authority, ...headers }, { endStream: false });
    stream.on("error", () => {});
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`CONNECT ${authority}: no answer within ${timeoutMs} ms`)), timeoutMs);
      stream.once("response", (h) => {
        clearTimeout(t);
        resolve({ status: Number(h[":status"]), stream });
      });
      stream.once("close", () => {
        clearTimeout(t);
        resolve({ status: 0, stream });
      });
    });
  }

  close(): void {
    this.session?.destroy();
    this.session = undefined;
  }
}

export interface RawExchange {
  readonly bytes: Buffer;
  readonly text: string;
  /** the far side ended or closed the stream within the wait */
  readonly ended: boolean;
}

/**
 * Writes `data` (one write per element, so "in one write" is in the caller's hands), then collects
 * what comes back until the stream ends, `done(text)` holds, or `waitMs` passes.
 */
export function rawExchange(stream: Duplex, data: string | Buffer | readonly (string | Buffer)[], opts: { waitMs?: number; done?: (text: string) => boolean } = {}): Promise<RawExchange> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (ended: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.off("data", onData);
      const bytes = Buffer.concat(chunks);
      resolve({ bytes, text: bytes.toString("latin1"), ended });
    };
    const onData = (d: Buffer): void => {
      chunks.push(Buffer.from(d));
      if (opts.done?.(Buffer.concat(chunks).toString("latin1"))) finish(false);
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 5000);
    stream.on("data", onData);
    stream.once("end", () => finish(true));
    stream.once("close", () => finish(true));
    if (stream.destroyed || stream.readableEnded) return finish(true); // closed before we got here
    for (const d of Array.isArray(data) ? data : [data]) stream.write(typeof d === "string" ? Buffer.from(d, "latin1") : d);
  });
}

export interface ParsedResponse {
  readonly status: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
}

/** The complete HTTP/1.x responses (Content-Length or chunked framing) at the start of `text`. */
export function parseResponses(text: string): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) return out;
    const [line = "", ...fields] = rest.slice(0, end).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(line);
    if (!m) return out;
    const headers = fields.map((f) => {
      const i = f.indexOf(":");
      return [f.slice(0, i).trim().toLowerCase(), f.slice(i + 1).trim()] as const;
    });
    const status = Number(m[1]);
    if (/chunked/i.test(headers.find(([k]) => k === "transfer-encoding")?.[1] ?? "")) {
      const chunked = readChunked(rest, end + 4);
      if (!chunked) return out; // body still incomplete
      out.push({ status, headers, body: chunked.body });
      rest = rest.slice(chunked.next);
      continue;
    }
    const cl = Number(headers.find(([k]) => k === "content-length")?.[1] ?? "0");
    if (rest.length < end + 4 + cl) return out; // body still incomplete
    out.push({ status, headers, body: rest.slice(end + 4, end + 4 + cl) });
    rest = rest.slice(end + 4 + cl);
  }
}

/** A chunked body starting at `off`: its bytes and where the next message starts, or undefined if incomplete. */
function readChunked(text: string, off: number): { body: string; next: number } | undefined {
  let body = "";
  for (;;) {
    const nl = text.indexOf("\r\n", off);
    if (nl < 0) return undefined;
    const size = parseInt(text.slice(off, nl).split(";")[0]!, 16);
    if (!(size >= 0)) return undefined;
    off = nl + 2;
    if (size === 0) {
      // trailers end with an empty line
      for (;;) {
        const t = text.indexOf("\r\n", off);
        if (t < 0) return undefined;
        const empty = t === off;
        off = t + 2;
        if (empty) return { body, next: off };
      }
    }
    if (text.length < off + size + 2) return undefined;
    body += text.slice(off, off + size);
    off += size + 2;
  }
}

export function headerOf(r: ParsedResponse, name: string): string | undefined {
  return r.headers.find(([k]) => k === name)?.[1];
}

// ---- raw HTTP/2 inside a tunnel ------------------------------------------------------------

export const H2ErrorCode = { NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, REFUSED_STREAM: 0x7, CANCEL: 0x8, ENHANCE_YOUR_CALM: 0xb } as const;

/**
 * A hand-driven HTTP/2 client session inside one tunnel: the preface and an empty SETTINGS go out
 * at once, the server's SETTINGS are acknowledged, every frame it sends is kept.
 */
export class RawInnerH2 {
  private buf = Buffer.alloc(0);
  readonly frames: H2Frame[] = [];
  ended = false;

  constructor(readonly stream: Duplex) {
    stream.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      const { frames, trailing } = parseFrames(this.buf, false);
      this.buf = this.buf.subarray(this.buf.length - trailing);
      for (const f of frames) {
        this.frames.push(f);
        if (f.type === FrameType.SETTINGS && !(f.flags & FrameFlag.ACK)) this.write(encodeFrame(FrameType.SETTINGS, FrameFlag.ACK, 0));
      }
    });
    const gone = (): void => {
      this.ended = true;
    };
    stream.once("end", gone);
    stream.once("close", gone);
    stream.on("error", () => {});
    this.write(Buffer.concat([H2_PREFACE, settingsFrame()]));
  }

  write(b: Buffer | readonly Buffer[]): void {
    if (this.ended || this.stream.destroyed) return;
    try {
      this.stream.write(Array.isArray(b) ? Buffer.concat(b as Buffer[]) : (b as Buffer));
    } catch {
      /* the tunnel is gone */
    }
  }

  /** Waits until `pred()` or `waitMs`; returns whether it held. */
  async waitFor(pred: () => boolean, waitMs = 5000): Promise<boolean> {
    const until = Date.now() + waitMs;
    while (Date.now() < until) {
      if (pred()) return true;
      await Bun.sleep(10);
    }
    return pred();
  }

  goaway(): H2Frame | undefined {
    return this.frames.find((f) => f.type === FrameType.GOAWAY);
  }

  goawayCode(): number | undefined {
    const g = this.goaway();
    return g && g.payload.length >= 8 ? g.payload.readUInt32BE(4) : undefined;
  }

  /** The RST_STREAM error code for `streamId`, if the server reset it. */
  resetCode(streamId: number): number | undefined {
    const f = this.frames.find((x) => x.type === FrameType.RST_STREAM && x.streamId === streamId);
    return f && f.payload.length >= 4 ? f.payload.readUInt32BE(0) : undefined;
  }

  /** HEADERS frames the server sent on `streamId`. */
  responseHeaders(streamId: number): H2Frame[] {
    return this.frames.filter((f) => f.type === FrameType.HEADERS && f.streamId === streamId);
  }

  /**
   * The `:status` on `streamId`, readable only when its HEADERS is the first header block the
   * server sent on this session (no dynamic-table references yet).
   */
  firstStatus(streamId: number): number | undefined {
    const first = this.frames.find((f) => f.type === FrameType.HEADERS);
    if (!first || first.streamId !== streamId) return undefined;
    let block = first.payload;
    if (first.flags & FrameFlag.PADDED) block = block.subarray(1, block.length - block[0]!);
    if (first.flags & FrameFlag.PRIORITY) block = block.subarray(5);
    return decodeStatus(block);
  }

  /** Whether the server ended `streamId` (END_STREAM on a frame, or RST_STREAM). */
  streamDone(streamId: number): boolean {
    return this.frames.some((f) => f.streamId === streamId && (f.type === FrameType.RST_STREAM || ((f.type === FrameType.DATA || f.type === FrameType.HEADERS) && (f.flags & FrameFlag.END_STREAM) !== 0)));
  }

  /** The session is over: GOAWAY received or the tunnel ended. */
  get finished(): boolean {
    return this.ended || this.goaway() !== undefined;
  }

  close(): void {
    this.stream.destroy();
  }
}

/** The request pseudo-headers for a GET on `authority`. */
export function getHeaders(path: string, authority: string, extra: readonly (readonly [string, string])[] = []): [string, string][] {
  return [[":method", "GET"], [":scheme", "http"], [":path", path], [":authority", authority], ...extra.map(([k, v]) => [k, v] as [string, string])];
}

/** Resident set size of a process in KiB (Linux /proc). */
export async function rssKiB(pid: number): Promise<number> {
  const text = await Bun.file(`/proc/${pid}/status`).text();
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(text);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}
