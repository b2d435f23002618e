// Test-side HTTP clients for the waypoint suites, over a SOCKS connection through the client's
// ztunnel: a hand-written HTTP/1.x client (keep-alive, HTTP/1.0, chunked bodies and trailers, all
// visible on the wire, which node's client hides or normalises), and HTTP/2 prior knowledge
// through node:http2 on the same kind of socket.
import { createHash } from "node:crypto";
import http2 from "node:http2";
import type net from "node:net";
import { socksConnect } from "./net.ts";

export type HeaderList = Record<string, string[]>;

export interface H1Response {
  readonly version: string;
  readonly status: number;
  /** lower-case names, every value in order */
  readonly headers: HeaderList;
  readonly body: Buffer;
  /** chunked trailers */
  readonly trailers: HeaderList;
  /** the body was delimited by the server closing the connection */
  readonly closeDelimited: boolean;
}

export interface H1Request {
  readonly method?: string;
  /** request target (origin form) */
  readonly path: string;
  readonly version?: "1.1" | "1.0";
  /** default `server.default.svc.cluster.local`; null sends no Host */
  readonly host?: string | null;
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
  /** sent with Content-Length */
  readonly body?: Buffer | string;
  /** sent chunked (Transfer-Encoding: chunked), one chunk each */
  readonly chunks?: readonly (Buffer | string)[];
}

/** First value of a header, or undefined. */
export function first(h: HeaderList, name: string): string | undefined {
  return h[name.toLowerCase()]?.[0];
}

export function sha256(b: Buffer | Uint8Array | string): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Deterministic, non-repeating-looking bytes (a counter through sha256), so a misplaced block shows in the hash. */
export function patternBytes(size: number, seed = "l7"): Buffer {
  const out = Buffer.allocUnsafe(size);
  let off = 0;
  for (let i = 0; off < size; i++) {
    const block = createHash("sha256").update(`${seed}:${i}`).digest();
    off += block.copy(out, off, 0, Math.min(block.length, size - off));
  }
  return out;
}

/** Bytes received on a socket, consumed from the front; small heads are merged only when searched. */
class ByteQueue {
  private parts: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }

  private compact(): Buffer {
    if (this.parts.length > 1) this.parts = [Buffer.concat(this.parts)];
    return this.parts[0] ?? Buffer.alloc(0);
  }

  indexOf(s: string): number {
    return this.length === 0 ? -1 : this.compact().indexOf(s);
  }

  take(n: number): Buffer {
    const out: Buffer[] = [];
    let want = Math.min(n, this.length);
    while (want > 0) {
      const p = this.parts[0]!;
      if (p.length <= want) {
        out.push(p);
        this.parts.shift();
        want -= p.length;
        this.length -= p.length;
      } else {
        out.push(p.subarray(0, want));
        this.parts[0] = p.subarray(want);
        this.length -= want;
        want = 0;
      }
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

function parseHeaderLines(lines: readonly string[]): HeaderList {
  const h: HeaderList = {};
  for (const line of lines) {
    const c = line.indexOf(":");
    if (c <= 0) throw new Error(`malformed header line ${JSON.stringify(line)}`);
    const name = line.slice(0, c).trim().toLowerCase();
    (h[name] ??= []).push(line.slice(c + 1).trim());
  }
  return h;
}

/** One HTTP/1.x connection; requests are sent one after another (no pipelining). */
export class H1Client {
  private readonly q = new ByteQueue();
  private ended = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.q.push(d);
      this.poke();
    });
    socket.on("end", () => {
      this.ended = true;
      this.poke();
    });
    socket.on("close", () => {
      this.ended = true;
      this.poke();
    });
    socket.on("error", (e) => {
      this.error = e;
      this.ended = true;
      this.poke();
    });
  }

  /** The peer ended or closed the connection. */
  get closed(): boolean {
    return this.ended;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Waits for more bytes; false when the connection is over. */
  private async more(): Promise<boolean> {
    if (this.ended) return false;
    await new Promise<void>((r) => (this.wake = r));
    return true;
  }

  private async line(what: string): Promise<string> {
    for (;;) {
      const i = this.q.indexOf("\r\n");
      if (i >= 0) return this.q.take(i + 2).subarray(0, i).toString("latin1");
      if (!(await this.more())) throw this.error ?? new Error(`connection closed while reading ${what}`);
    }
  }

  private async exactly(n: number, what: string): Promise<Buffer> {
    while (this.q.length < n) if (!(await this.more())) throw this.error ?? new Error(`connection closed after ${this.q.length} of ${n} bytes of ${what}`);
    return this.q.take(n);
  }

  private async head(): Promise<{ version: string; status: number; headers: HeaderList }> {
    for (;;) {
      const end = this.q.indexOf("\r\n\r\n");
      if (end >= 0) {
        const text = this.q.take(end + 4).subarray(0, end).toString("latin1");
        const [statusLine, ...rest] = text.split("\r\n");
        const m = /^HTTP\/(\d\.\d) (\d{3})(?: .*)?$/.exec(statusLine ?? "");
        if (!m) throw new Error(`malformed status line ${JSON.stringify(statusLine)}`);
        return { version: m[1]!, status: Number(m[2]), headers: parseHeaderLines(rest) };
      }
      if (!(await this.more())) throw this.error ?? new Error(`connection closed before a response head (${this.q.length} bytes pending)`);
    }
  }

  /** Sends one request and reads its response (interim 1xx responses are skipped). */
  async request(r: H1Request): Promise<H1Response> {
    const method = r.method ?? "GET";
    const lines = [`${method} ${r.path} HTTP/${r.version ?? "1.1"}`];
    const host = r.host === undefined ? "server.default.svc.cluster.local" : r.host;
    if (host !== null) lines.push(`Host: ${host}`);
    for (const [k, v] of Object.entries(r.headers ?? {})) for (const x of typeof v === "string" ? [v] : v) lines.push(`${k}: ${x}`);
    const body = r.body === undefined ? undefined : Buffer.from(r.body);
    if (body) lines.push(`Content-Length: ${body.length}`);
    if (r.chunks) lines.push("Transfer-Encoding: chunked");
    this.socket.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (body) this.socket.write(body);
    if (r.chunks) {
      for (const c of r.chunks) {
        const b = Buffer.from(c);
        if (b.length === 0) continue;
        this.socket.write(`${b.length.toString(16)}\r\n`);
        this.socket.write(b);
        this.socket.write("\r\n");
      }
      this.socket.write("0\r\n\r\n");
    }
    return this.response(method);
  }

  private async response(method: string): Promise<H1Response> {
    let h = await this.head();
    while (h.status >= 100 && h.status < 200 && h.status !== 101) h = await this.head();
    const te = (h.headers["transfer-encoding"] ?? []).join(",").toLowerCase();
    const cl = first(h.headers, "content-length");
    const noBody = method === "HEAD" || h.status === 204 || h.status === 304;
    let body: Buffer = Buffer.alloc(0);
    let trailers: HeaderList = {};
    let closeDelimited = false;
    if (noBody) {
      // nothing
    } else if (te.includes("chunked")) {
      const parts: Buffer[] = [];
      for (;;) {
        const sizeLine = await this.line("a chunk size");
        const size = Number.parseInt(sizeLine.split(";")[0]!.trim(), 16);
        if (!Number.isFinite(size)) throw new Error(`bad chunk size line ${JSON.stringify(sizeLine)}`);
        if (size === 0) break;
        parts.push(await this.exactly(size, "a chunk"));
        await this.exactly(2, "a chunk's CRLF");
      }
      const tl: string[] = [];
      for (;;) {
        const l = await this.line("trailers");
        if (l === "") break;
        tl.push(l);
      }
      trailers = parseHeaderLines(tl);
      body = Buffer.concat(parts);
    } else if (cl !== undefined) {
      body = await this.exactly(Number(cl), "the body");
    } else {
      closeDelimited = true;
      while (await this.more()) {
        // read to the end
      }
      body = this.q.take(this.q.length);
    }
    return { version: h.version, status: h.status, headers: h.headers, body, trailers, closeDelimited };
  }

  /** Waits until the server closes the connection (false if it did not within `ms`). */
  async waitClosed(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.ended && Date.now() < deadline) await Bun.sleep(10);
    return this.ended;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** An HTTP/1.x connection to `vip:port` as the client workload at `clientIp` (SOCKS on its ztunnel). */
export async function socksH1(clientIp: string, vip: string, port = 80): Promise<H1Client> {
  return new H1Client(await socksConnect({ host: clientIp }, vip, port));
}

/** One request on a fresh connection, then the connection is closed. */
export async function h1Once(clientIp: string, vip: string, req: H1Request, port = 80): Promise<H1Response> {
  const c = await socksH1(clientIp, vip, port);
  try {
    return await c.request(req);
  } finally {
    c.close();
  }
}

/** The response body as JSON. */
export function json<T = Record<string, unknown>>(r: { body: Buffer }): T {
  return JSON.parse(r.body.toString("utf8")) as T;
}

// ---- HTTP/2 prior knowledge ----

export interface H2Response {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly trailers: http2.IncomingHttpHeaders | undefined;
}

/** An h2c session (prior knowledge) over SOCKS to `vip:port` as the client workload. */
export async function socksH2(clientIp: string, vip: string, port = 80): Promise<http2.ClientHttp2Session> {
  const sock = await socksConnect({ host: clientIp }, vip, port);
  const session = http2.connect(`http://${vip}:${port}`, { createConnection: () => sock as never });
  session.on("error", () => {});
  return session;
}

/** One request on an HTTP/2 session; the whole response with its trailers (rejects after `timeoutMs`). */
export function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer | string,
  trailers?: Record<string, string>,
  timeoutMs = 10_000,
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const hasBody = body !== undefined;
    const stream = session.request(
      { ":authority": "server.default.svc.cluster.local", ...headers },
      { endStream: !hasBody, ...(trailers ? { waitForTrailers: true } : {}) },
    );
    if (trailers) stream.on("wantTrailers", () => stream.sendTrailers(trailers));
    let status = 0;
    let respHeaders: http2.IncomingHttpHeaders = {};
    let respTrailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`HTTP/2 response not complete within ${timeoutMs} ms (status ${status}, ${got} body bytes)`));
    }, timeoutMs);
    stream.on("close", () => clearTimeout(timer));
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      respHeaders = h;
    });
    stream.on("trailers", (t) => (respTrailers = t));
    stream.on("data", (c: Buffer) => {
      chunks.push(c);
      got += c.length;
    });
    stream.on("end", () => resolve({ status, headers: respHeaders, body: Buffer.concat(chunks), trailers: respTrailers }));
    stream.on("error", reject);
    if (hasBody) stream.end(body);
  });
}

// ---- raw TCP ----

export interface TcpOutcome {
  readonly data: Buffer;
  /** how the connection ended */
  readonly how: "end" | "close" | "error" | "timeout";
}

/** Collects what the peer sends until it ends or closes the connection (or `timeoutMs`). */
export function readUntilClosed(sock: net.Socket, timeoutMs = 10_000): Promise<TcpOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (how: TcpOutcome["how"]): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), how });
    };
    const timer = setTimeout(() => {
      sock.destroy();
      finish("timeout");
    }, timeoutMs);
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("end", () => finish("end"));
    sock.on("close", () => finish("close"));
    sock.on("error", () => finish("error"));
  });
}

/** Waits until `n` bytes arrived on `sock` (without consuming the stream for others). */
export function readBytes(sock: net.Socket, n: number, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`only ${got} of ${n} bytes within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        cleanup();
        resolve(Buffer.concat(chunks));
      }
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error(`connection closed after ${got} of ${n} bytes`));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("close", onClose);
    };
    sock.on("data", onData);
    sock.on("close", onClose);
  });
}
