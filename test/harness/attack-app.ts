// Apps for the waypoint attack tests that record everything that reaches them, so a test can say
// "this request never arrived" rather than "the client got an error". RecordingHttpApp parses
// HTTP/1.1 itself (a tiny, lenient reader of what the waypoint's own serializer writes: one head,
// then a Content-Length or chunked body) and keeps every raw byte of every connection, so a marker
// smuggled anywhere (even inside a body the waypoint framed differently) is found. RecordingH2App
// is an h2c (prior knowledge) server recording each stream. Both answer 200 with a JSON echo.
import http2 from "node:http2";
import net from "node:net";

export interface RecordedRequest {
  readonly method: string;
  readonly target: string;
  readonly headers: readonly (readonly [string, string])[];
  body: Buffer;
  /** the whole message (head and body) arrived */
  complete: boolean;
  /** connection number (0-based, in accept order) */
  readonly conn: number;
}

/** What the apps answer: the request as they saw it. */
export interface AppEcho {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly bodyLength: number;
}

function header(h: readonly (readonly [string, string])[], name: string): string | undefined {
  return h.find(([k]) => k === name)?.[1];
}

function echo(method: string, path: string, headers: readonly (readonly [string, string])[], bodyLength: number): Buffer {
  const map: Record<string, string> = {};
  for (const [k, v] of headers) map[k] = map[k] === undefined ? v : `${map[k]}, ${v}`;
  return Buffer.from(JSON.stringify({ method, path, headers: map, bodyLength } satisfies AppEcho));
}

/** Per-connection HTTP/1.1 reader state. */
class H1Reader {
  private buf = Buffer.alloc(0);
  private cur: RecordedRequest | undefined;
  private remaining = 0;
  private chunked = false;
  private chunkState: "size" | "data" | "data-crlf" | "trailers" = "size";

  constructor(
    private readonly app: RecordingHttpApp,
    private readonly sock: net.Socket,
    private readonly conn: number,
  ) {}

  push(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (!this.cur) {
        const end = this.buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = this.buf.subarray(0, end).toString("latin1");
        this.buf = this.buf.subarray(end + 4);
        const [line = "", ...fields] = head.split("\r\n");
        const [method = "", target = ""] = line.split(" ");
        const headers: [string, string][] = fields.map((f) => {
          const i = f.indexOf(":");
          return [f.slice(0, i).trim().toLowerCase(), f.slice(i + 1).trim()] as [string, string];
        });
        const req: RecordedRequest = { method, target, headers, body: Buffer.alloc(0), complete: false, conn: this.conn };
        this.app.requests.push(req);
        this.cur = req;
        this.chunked = /chunked/i.test(header(headers, "transfer-encoding") ?? "");
        this.chunkState = "size";
        this.remaining = this.chunked ? 0 : Number(header(headers, "content-length") ?? "0");
        if (!this.chunked && this.remaining === 0) {
          this.finish();
          continue;
        }
      }
      if (!this.step()) return;
    }
  }

  /** Consumes body bytes; true when the message finished (the loop may read the next head). */
  private step(): boolean {
    const req = this.cur!;
    if (!this.chunked) {
      const take = Math.min(this.remaining, this.buf.length);
      req.body = Buffer.concat([req.body, this.buf.subarray(0, take)]);
      this.buf = this.buf.subarray(take);
      this.remaining -= take;
      if (this.remaining > 0) return false;
      this.finish();
      return true;
    }
    for (;;) {
      if (this.chunkState === "size") {
        const nl = this.buf.indexOf("\r\n");
        if (nl < 0) return false;
        const size = parseInt(this.buf.subarray(0, nl).toString("latin1").split(";")[0]!, 16);
        this.buf = this.buf.subarray(nl + 2);
        if (!(size >= 0)) {
          this.sock.destroy();
          return false;
        }
        this.remaining = size;
        this.chunkState = size === 0 ? "trailers" : "data";
      } else if (this.chunkState === "data") {
        const take = Math.min(this.remaining, this.buf.length);
        req.body = Buffer.concat([req.body, this.buf.subarray(0, take)]);
        this.buf = this.buf.subarray(take);
        this.remaining -= take;
        if (this.remaining > 0) return false;
        this.chunkState = "data-crlf";
      } else if (this.chunkState === "data-crlf") {
        if (this.buf.length < 2) return false;
        this.buf = this.buf.subarray(2);
        this.chunkState = "size";
      } else {
        const nl = this.buf.indexOf("\r\n");
        if (nl < 0) return false;
        const line = this.buf.subarray(0, nl);
        this.buf = this.buf.subarray(nl + 2);
        if (line.length === 0) {
          this.finish();
          return true;
        }
      }
    }
  }

  private finish(): void {
    const req = this.cur!;
    this.cur = undefined;
    req.complete = true;
    const body = echo(req.method, req.target, req.headers, req.body.length);
    this.sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`);
    this.sock.write(body);
  }
}

/** An HTTP/1.1 app that records every request head, body and raw byte it receives. */
export class RecordingHttpApp {
  readonly requests: RecordedRequest[] = [];
  private readonly raw: Buffer[][] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly host: string,
    readonly port: number,
  ) {}

  static start(host: string, port: number): Promise<RecordingHttpApp> {
    let app!: RecordingHttpApp;
    const server = net.createServer((s) => {
      const conn = app.raw.length;
      const chunks: Buffer[] = [];
      app.raw.push(chunks);
      app.sockets.add(s);
      s.on("close", () => app.sockets.delete(s));
      s.on("error", () => {});
      const reader = new H1Reader(app, s, conn);
      s.on("data", (d: Buffer) => {
        chunks.push(d);
        reader.push(d);
      });
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port, exclusive: true }, () => {
        app = new RecordingHttpApp(server, host, (server.address() as net.AddressInfo).port);
        resolve(app);
      });
    });
  }

  /** Every byte received on every connection (latin1). */
  rawText(): string {
    return this.raw.map((c) => Buffer.concat(c).toString("latin1")).join("\n--- connection ---\n");
  }

  /** Whether `marker` appears anywhere in what the app received. */
  received(marker: string): boolean {
    return this.rawText().includes(marker);
  }

  /** Requests whose target contains `marker`. */
  requestsFor(marker: string): RecordedRequest[] {
    return this.requests.filter((r) => r.target.includes(marker));
  }

  get connections(): number {
    return this.raw.length;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

export interface RecordedStream {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  complete: boolean;
  reset: boolean;
}

/**
 * An h2c app recording each stream. A request is answered when its body ends, so a stream whose
 * client never ends it stays open (what a stream-exhaustion attack needs on the upstream side).
 */
export class RecordingH2App {
  readonly streams: RecordedStream[] = [];
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  private constructor(
    private readonly server: http2.Http2Server,
    readonly host: string,
    readonly port: number,
  ) {}

  static start(host: string, port: number): Promise<RecordingH2App> {
    let app!: RecordingH2App;
    const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
    server.on("session", (s: http2.ServerHttp2Session) => {
      app.sessions.add(s);
      s.on("close", () => app.sessions.delete(s));
      s.on("error", () => {});
    });
    server.on("stream", (stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => {
      const rec: RecordedStream = { method: String(h[":method"]), path: String(h[":path"]), headers: { ...h }, complete: false, reset: false };
      app.streams.push(rec);
      stream.on("error", () => {});
      let n = 0;
      stream.on("data", (d: Buffer) => (n += d.length));
      stream.on("aborted", () => (rec.reset = true));
      stream.on("end", () => {
        rec.complete = true;
        const pairs = Object.entries(h)
          .filter(([k]) => !k.startsWith(":"))
          .map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : String(v)] as const);
        try {
          stream.respond({ ":status": 200, "content-type": "application/json" });
          stream.end(echo(rec.method, rec.path, pairs, n));
        } catch {
          /* reset meanwhile */
        }
      });
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port, exclusive: true }, () => {
        app = new RecordingH2App(server, host, (server.address() as net.AddressInfo).port);
        resolve(app);
      });
    });
  }

  streamsFor(marker: string): RecordedStream[] {
    return this.streams.filter((s) => s.path.includes(marker));
  }

  close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}
