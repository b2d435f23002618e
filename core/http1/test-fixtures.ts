// Test fixtures for core/http1: run the parsers over bytes split any way and record what they
// report in a normalized form (consecutive body chunks merged), so whole and split input compare.
import net from "node:net";
import { Http1Error } from "./errors.ts";
import { resolveHttp1Limits, type Http1Limits } from "./limits.ts";
import type { RequestHead, ResponseHead } from "./parser.ts";
import { RequestParser } from "./request-parser.ts";
import { ResponseParser } from "./response-parser.ts";
import { serveHttp1, type Http1Handler, type Http1ServerConnection, type Http1ServerOptions } from "./server-conn.ts";
import { asTransport, type Http1Transport, type Http1TransportEvents } from "./transport.ts";

/** A head as recorded: every field of RequestHead/ResponseHead, headers as pairs. */
export interface HeadRecord {
  readonly headers: [string, string][];
  readonly method?: string;
  readonly path?: string;
  readonly target?: string;
  readonly status?: number;
  readonly keepAlive?: boolean;
  readonly [field: string]: unknown;
}

export type Event =
  | { readonly kind: "head"; readonly head: HeadRecord }
  | { readonly kind: "body"; readonly data: string }
  | { readonly kind: "trailers"; readonly pairs: [string, string][] }
  | { readonly kind: "complete" }
  | { readonly kind: "informational"; readonly status: number }
  | { readonly kind: "error"; readonly code: string; readonly reason: string; readonly status: number };

export interface Recorded {
  readonly events: Event[];
  readonly error: Http1Error | undefined;
  readonly heads: number;
  readonly completes: number;
  /** Largest bufferedBytes seen after any push. */
  readonly maxBuffered: number;
}

/** The recorded heads, in order. */
export function headsOf(r: Recorded): HeadRecord[] {
  return r.events.flatMap((e) => (e.kind === "head" ? [e.head] : []));
}

export function bytes(s: string | Uint8Array): Uint8Array {
  return typeof s === "string" ? Buffer.from(s, "latin1") : s;
}

/** Cuts `data` at the given offsets (sorted, deduplicated, in range). */
export function split(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < data.length))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(data.subarray(prev, p));
    prev = p;
  }
  out.push(data.subarray(prev));
  return out;
}

function headRecord(h: RequestHead | ResponseHead): HeadRecord {
  const { headers, ...rest } = h;
  return { ...rest, headers: [...headers] };
}

class Recorder {
  events: Event[] = [];
  error: Http1Error | undefined;
  heads = 0;
  completes = 0;
  maxBuffered = 0;
  body(c: Uint8Array): void {
    const last = this.events[this.events.length - 1];
    const s = Buffer.from(c).toString("latin1");
    if (last?.kind === "body") this.events[this.events.length - 1] = { kind: "body", data: last.data + s };
    else this.events.push({ kind: "body", data: s });
  }
  result(): Recorded {
    return { events: this.events, error: this.error, heads: this.heads, completes: this.completes, maxBuffered: this.maxBuffered };
  }
}

/** Parses a sequence of pipelined requests; `chunks` are pushed one by one, then EOF if `eof`. */
export function parseRequests(chunks: readonly Uint8Array[], limits: Partial<Http1Limits> = {}, eof = false): Recorded {
  const rec = new Recorder();
  const p: RequestParser = new RequestParser(
    {
      head: (h) => {
        rec.heads++;
        rec.events.push({ kind: "head", head: headRecord(h) });
      },
      body: (c) => rec.body(c),
      trailers: (t) => rec.events.push({ kind: "trailers", pairs: [...t] }),
      complete: () => {
        rec.completes++;
        rec.events.push({ kind: "complete" });
        p.next();
      },
      error: (e) => {
        rec.error = e;
        rec.events.push({ kind: "error", code: e.code, reason: e.reason, status: e.status });
      },
    },
    resolveHttp1Limits(limits),
  );
  for (const c of chunks) {
    p.push(c);
    rec.maxBuffered = Math.max(rec.maxBuffered, p.bufferedBytes);
  }
  if (eof) p.finish();
  return rec.result();
}

/** Parses responses to `methods` (one per expected response) from `chunks`, then EOF if `eof`. */
export function parseResponses(chunks: readonly Uint8Array[], methods: readonly string[], limits: Partial<Http1Limits> = {}, eof = false): Recorded {
  const rec = new Recorder();
  const queue = [...methods];
  const p: ResponseParser = new ResponseParser(
    {
      head: (h) => {
        rec.heads++;
        rec.events.push({ kind: "head", head: headRecord(h) });
      },
      informational: (h) => rec.events.push({ kind: "informational", status: h.status }),
      body: (c) => rec.body(c),
      trailers: (t) => rec.events.push({ kind: "trailers", pairs: [...t] }),
      complete: () => {
        rec.completes++;
        rec.events.push({ kind: "complete" });
        const m = queue.shift();
        if (m !== undefined) p.expect(m);
      },
      error: (e) => {
        rec.error = e;
        rec.events.push({ kind: "error", code: e.code, reason: e.reason, status: e.status });
      },
    },
    resolveHttp1Limits(limits),
  );
  const first = queue.shift();
  if (first !== undefined) p.expect(first);
  for (const c of chunks) {
    p.push(c);
    rec.maxBuffered = Math.max(rec.maxBuffered, p.bufferedBytes);
  }
  if (eof) p.finish();
  return rec.result();
}

// ---- sockets (tests only: real TCP on loopback, port 0) ----

/** A transport that counts what the connection asks of it (pause/resume) and what it delivers. */
export class CountingTransport implements Http1Transport {
  pauses = 0;
  resumes = 0;
  bytesIn = 0;
  constructor(private readonly inner: Http1Transport) {}
  write(c: Uint8Array): boolean {
    return this.inner.write(c);
  }
  end(): void {
    this.inner.end();
  }
  destroy(err?: Error): void {
    this.inner.destroy(err);
  }
  pause(): void {
    this.pauses++;
    this.inner.pause();
  }
  resume(): void {
    this.resumes++;
    this.inner.resume();
  }
  setEvents(ev: Partial<Http1TransportEvents>): void {
    this.inner.setEvents({
      ...ev,
      data: (c) => {
        this.bytesIn += c.length;
        ev.data?.(c);
      },
    });
  }
}

export interface TestServer {
  readonly port: number;
  readonly connections: Http1ServerConnection[];
  readonly transports: CountingTransport[];
  close(): Promise<void>;
}

export async function startServer(handler: Http1Handler, options: Http1ServerOptions = {}): Promise<TestServer> {
  const connections: Http1ServerConnection[] = [];
  const transports: CountingTransport[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    const t = new CountingTransport(asTransport(sock));
    transports.push(t);
    connections.push(serveHttp1(t, handler, options));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections,
    transports,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export async function connect(port: number): Promise<net.Socket> {
  const sock = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  sock.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", reject);
  });
  return sock;
}

export interface RawResult {
  readonly text: string;
  /** The server closed (or half-closed) the connection. */
  readonly ended: boolean;
}

/**
 * Writes `input` on a fresh connection and collects everything until the server closes it, or until
 * `until` matches the collected text.
 */
export async function rawExchange(port: number, input: string | Uint8Array | readonly (string | Uint8Array)[], until?: (text: string) => boolean): Promise<RawResult> {
  const sock = await connect(port);
  let text = "";
  let ended = false;
  const done = new Promise<void>((resolve) => {
    sock.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      if (until?.(text)) resolve();
    });
    sock.on("end", () => {
      ended = true;
      resolve();
    });
    sock.on("close", () => resolve());
  });
  for (const piece of Array.isArray(input) ? input : [input]) {
    sock.write(bytes(piece as string | Uint8Array));
    await new Promise((r) => setImmediate(r));
  }
  await done;
  sock.destroy();
  return { text, ended };
}

/** Splits a byte stream of responses into [status line, rest] pairs by status line positions. */
export function statusLines(text: string): string[] {
  return text.split("\r\n").filter((l) => /^HTTP\/1\.[01] \d{3}/.test(l));
}

/** Resolves once `cond()` holds (checked every event-loop turn); for waiting on state, not on time. */
export async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}
