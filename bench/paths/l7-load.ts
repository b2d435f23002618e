// The L7 section's app server and closed-loop HTTP/1.1 load generator, each run as its own process
// so the proxies' CPU can be read separately (bench/l7.ts spawns them):
//
//   bun bench/paths/l7-load.ts serve --host H [--port P] [--size 1024] [--app fetch|static]
//   bun bench/paths/l7-load.ts load  --entry JSON --conns N --warmup-ms W --duration-ms D [--authority HOST] [--rate R]
//                                    [--expect-headers a,b] [--alt-entry JSON --alt-authority HOST --slice-ms S]
//
// serve: Bun.serve answering every GET with a fixed body of --size bytes, from a JS fetch handler
// (default) or a static route answered in native code (--app static); prints
// {"event":"listening","port":N}.
//
// load: N keep-alive connections (for a socks5 entry: one SOCKS5 CONNECT per connection, then
// HTTP/1.1 over it), each sending the next request as soon as the previous response is complete
// (closed loop, no pipelining), or with --rate R paced at R requests/s in total (each connection
// sends every conns/R s; a late response is followed at once, and missed slots are not made up,
// like fortio's -qps with -nocatchup). Responses are framed by Content-Length only. Prints
// {"event":"connected"}, {"event":"measure-start"} after the warm-up, {"event":"measure-end"}
// after the measured window (the orchestrator samples /proc CPU on those lines), then one JSON
// result line. Latency = request written → last response byte read, per request completed in the
// window, kept in a preallocated Float64Array. --expect-headers: the first response on each
// connection must carry these headers (e.g. the ones the waypoint's plugins add), else the
// connection fails, so a row never measures a chain that is not in place.
//
// --alt-entry (paced only): a second target "B" with its own N connections; all the traffic goes to
// one target at a time, switching every --slice-ms (A, B, A, B, ...), warm-up included. The result
// is A's; B's figures are under "alt". Slices a few hundred ms long cancel the machine's drift
// between the two sides, over the same generator process and the same connections throughout.
//
// Sockets are Bun.connect raw sockets (a test fixture, so not behind core/net).

import { parseArgs } from "node:util";
import { intArg, stringFlags } from "../cli.ts";
import { dial, parseEntry, type BenchSocket, type Entry } from "../entry.ts";
import { summarizeLatency } from "../stats.ts";

const CRLFCRLF = Buffer.from("\r\n\r\n");
/** A response head larger than this is a broken peer, not a slow one. */
const MAX_HEAD = 16 * 1024;
/** Latency samples kept (8 bytes each); requests past this are counted, not timed. */
const MAX_SAMPLES = 4_000_000;

function out(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v)}\n`);
}

// ---------------------------------------------------------------------------------------------
// serve

function serve(host: string, port: number, size: number, kind: "fetch" | "static"): void {
  const body = Buffer.alloc(size, 0x61);
  const headers = { "content-type": "application/octet-stream" };
  const server =
    kind === "static"
      ? // Answered from native code without running JS: the cheapest app Bun can be.
        Bun.serve({ hostname: host, port, routes: { "/*": new Response(body, { headers }) }, fetch: () => new Response(body, { headers }) })
      : // One JS call per request, as any real handler has.
        Bun.serve({ hostname: host, port, fetch: () => new Response(body, { headers }) });
  out({ event: "listening", port: server.port, kind });
}

// ---------------------------------------------------------------------------------------------
// load

interface LoadOptions {
  entry: Entry;
  conns: number;
  warmupMs: number;
  durationMs: number;
  authority: string;
  path: string;
  /** Total requests/s to pace at (0: closed loop, as fast as responses come back). */
  rate: number;
  /** Lower-case header names the first response on each connection must carry. */
  expectHeaders: string[];
  /** Paced only: a second target taking turns with the first, `sliceMs` each. */
  alt?: { entry: Entry; authority: string; sliceMs: number };
}

type Side = "A" | "B";

/** The completed requests of one target. */
interface Tally {
  samples: Float64Array;
  count: number;
  /** requests completed in the window (also those past MAX_SAMPLES) */
  completed: number;
  bytes: number;
}

interface Shared {
  phase: "warmup" | "measure" | "done";
  /** With two targets: the one whose turn it is. */
  active: Side;
  errors: number;
  non2xx: number;
  /** status line of the first non-2xx response */
  firstNon2xx?: string;
  firstError?: string;
}

/** One keep-alive connection driving requests back to back. */
class Client {
  private head: Buffer | undefined;
  private bodyLeft = -1; // -1: reading the head
  private sentAt = 0;
  private closed = false;
  /** Header names still to be seen in the first response (emptied after it). */
  private expect: readonly string[];
  /** Paced mode: when the next request is due (performance.now() ms). */
  private due = 0;
  inFlight = false;
  /** Not its target's turn: waits for resume(). */
  parked = false;
  onIdle: (() => void) | undefined;

  /** intervalMs > 0: paced, one request per interval on this connection, late ones sent at once and not made up (fortio's -nocatchup). */
  constructor(
    private readonly sock: BenchSocket,
    private readonly req: Buffer,
    private readonly s: Shared,
    private readonly tally: Tally,
    readonly side: Side,
    private readonly intervalMs = 0,
    expectHeaders: readonly string[] = [],
  ) {
    this.expect = expectHeaders;
  }

  /** First request: at once (closed loop) or after `offsetMs` (paced, spreading the connections over one interval). */
  begin(offsetMs: number): void {
    if (this.intervalMs <= 0) return this.send();
    this.due = performance.now() + offsetMs;
    this.inFlight = true;
    setTimeout(() => this.send(), offsetMs);
  }

  send(): void {
    if (this.closed || this.s.phase === "done") {
      this.inFlight = false;
      this.onIdle?.();
      return;
    }
    if (this.side !== this.s.active) {
      this.inFlight = false;
      this.parked = true;
      return;
    }
    this.inFlight = true;
    this.sentAt = performance.now();
    // ~100 bytes: the kernel takes it whole on an open socket; anything else is a failure.
    if (this.sock.write(this.req) !== this.req.length) this.fail("short write of a request");
  }

  data(chunk: Buffer): void {
    let buf = chunk;
    while (buf.length > 0) {
      if (this.bodyLeft < 0) {
        const joined = this.head ? Buffer.concat([this.head, buf]) : buf;
        const end = joined.indexOf(CRLFCRLF);
        if (end < 0) {
          if (joined.length > MAX_HEAD) return this.fail("response head too large");
          this.head = Buffer.from(joined);
          return;
        }
        this.head = undefined;
        const headText = joined.toString("latin1", 0, end);
        const status = Number(headText.slice(9, 12));
        if (!(status >= 200 && status < 300)) {
          this.s.non2xx++;
          this.s.firstNon2xx ??= headText.split("\r\n")[0];
        }
        if (this.expect.length > 0) {
          const lower = headText.toLowerCase();
          const missing = this.expect.filter((h) => !lower.includes(`\r\n${h}:`));
          if (missing.length > 0) return this.fail(`response lacks header(s) ${missing.join(", ")}: ${headText.split("\r\n")[0] ?? ""}`);
          this.expect = [];
        }
        const m = /\r\ncontent-length:[ \t]*(\d+)/i.exec(headText);
        if (!m) return this.fail(`response without Content-Length: ${headText.split("\r\n")[0] ?? ""}`);
        this.bodyLeft = Number(m[1]);
        buf = joined.subarray(end + 4);
      }
      const take = Math.min(this.bodyLeft, buf.length);
      this.bodyLeft -= take;
      buf = buf.subarray(take);
      if (this.bodyLeft === 0) {
        this.bodyLeft = -1;
        if (buf.length > 0) return this.fail("bytes after a complete response (no request was pipelined)");
        this.complete(take);
      }
    }
  }

  private complete(bodyBytes: number): void {
    const t = this.tally;
    if (this.s.phase === "measure") {
      if (t.count < t.samples.length) t.samples[t.count++] = (performance.now() - this.sentAt) * 1000;
      t.completed++;
      t.bytes += bodyBytes;
    }
    if (this.intervalMs <= 0) return this.send();
    const now = performance.now();
    this.due = Math.max(this.due + this.intervalMs, now);
    const wait = this.due - now;
    if (wait < 0.5) return this.send();
    setTimeout(() => this.send(), wait);
  }

  fail(why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.s.errors++;
    this.s.firstError ??= why;
    this.inFlight = false;
    this.sock.terminate();
    this.onIdle?.();
  }

  closedByPeer(err?: Error): void {
    if (this.closed) return;
    if (this.s.phase !== "done") this.fail(`connection closed by the peer${err ? `: ${err.message}` : ""}`);
    this.closed = true;
    this.inFlight = false;
    this.onIdle?.();
  }

  end(): void {
    this.closed = true;
    this.sock.end();
  }
}

/** Room for the requests of `durationMs` at up to 200k req/s. */
function newTally(durationMs: number): Tally {
  return { samples: new Float64Array(Math.min(MAX_SAMPLES, Math.max(1024, Math.ceil((durationMs / 1000) * 200_000)))), count: 0, completed: 0, bytes: 0 };
}

function figures(t: Tally, seconds: number): Record<string, number> {
  const lat = summarizeLatency(t.samples.subarray(0, t.count));
  return { requests: t.completed, rps: t.completed / seconds, bodyBytes: t.bytes, timed: t.count, ...lat };
}

async function load(o: LoadOptions): Promise<void> {
  const request = (authority: string) => Buffer.from(`GET ${o.path} HTTP/1.1\r\nHost: ${authority}\r\nUser-Agent: mesh-bench-l7\r\nAccept: */*\r\n\r\n`, "latin1");
  const s: Shared = { phase: "warmup", active: "A", errors: 0, non2xx: 0 };
  const tallies: Record<Side, Tally> = { A: newTally(o.durationMs), B: newTally(o.alt ? o.durationMs : 0) };
  const interval = o.rate > 0 ? (1000 * o.conns) / o.rate : 0;
  const targets: { side: Side; entry: Entry; req: Buffer }[] = [{ side: "A", entry: o.entry, req: request(o.authority) }];
  if (o.alt) targets.push({ side: "B", entry: o.alt.entry, req: request(o.alt.authority) });
  const clients: Client[] = [];
  const dials = targets.flatMap((t) =>
    Array.from({ length: o.conns }, async () => {
      let client: Client | undefined;
      const sock = await dial(
        t.entry,
        {
          data: (chunk) => client?.data(chunk),
          drain: () => {},
          close: (err) => client?.closedByPeer(err),
        },
        10_000,
      );
      client = new Client(sock, t.req, s, tallies[t.side], t.side, interval, t.side === "A" ? o.expectHeaders : []);
      clients.push(client);
    }),
  );
  const settled = await Promise.allSettled(dials);
  const failed = settled.filter((r): r is PromiseRejectedResult => r.status === "rejected");
  if (clients.length === 0 || (o.alt && failed.length > 0)) {
    out({ error: `${failed.length} of ${dials.length} connections could not be opened: ${String(failed[0]?.reason)}` });
    return;
  }
  out({ event: "connected", conns: clients.length, failed: failed.length });

  // the connections of the target whose turn it is start, spread over one interval when paced;
  // the other target's connections park as their next request comes due
  const resume = (side: Side): void => {
    const waiting = clients.filter((c) => c.side === side && c.parked);
    waiting.forEach((c, i) => {
      c.parked = false;
      c.begin((interval * i) / waiting.length);
    });
  };
  for (const c of clients) c.parked = true;
  resume("A");
  let switcher: ReturnType<typeof setInterval> | undefined;
  if (o.alt) {
    switcher = setInterval(() => {
      s.active = s.active === "A" ? "B" : "A";
      resume(s.active);
    }, o.alt.sliceMs);
  }
  await Bun.sleep(o.warmupMs);
  s.phase = "measure";
  const t0 = performance.now();
  out({ event: "measure-start" });
  await Bun.sleep(o.durationMs);
  s.phase = "done";
  const seconds = (performance.now() - t0) / 1000;
  out({ event: "measure-end" });
  if (switcher !== undefined) clearInterval(switcher);

  // Let requests in flight finish (bounded), then close.
  const idle = Promise.all(
    clients.map((c) => (c.inFlight ? new Promise<void>((r) => (c.onIdle = r)) : Promise.resolve())),
  );
  await Promise.race([idle, Bun.sleep(5_000)]);
  for (const c of clients) c.end();

  // with two targets each had the whole rate half of the time: their rps is per second of their turns
  const a = figures(tallies.A, o.alt ? seconds / 2 : seconds);
  out({
    conns: o.conns,
    connectFailures: failed.length,
    firstConnectError: failed[0] ? String(failed[0].reason) : undefined,
    seconds,
    rate: o.rate,
    non2xx: s.non2xx,
    firstNon2xx: s.firstNon2xx,
    errors: s.errors,
    firstError: s.firstError,
    ...a,
    ...(o.alt ? { alt: figures(tallies.B, seconds / 2) } : {}),
  });
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: stringFlags("host", "port", "size", "entry", "conns", "warmup-ms", "duration-ms", "authority", "path", "app", "rate", "expect-headers", "alt-entry", "alt-authority", "slice-ms"),
    strict: true,
  });
  if (mode === "serve") {
    if (!values.host) throw new Error("--host is required");
    const kind = values.app ?? "fetch";
    if (kind !== "fetch" && kind !== "static") throw new Error(`--app must be fetch or static, got "${kind}"`);
    serve(values.host, intArg(values.port, "port", 0), intArg(values.size, "size", 1024), kind);
    return;
  }
  if (mode === "load") {
    if (!values.entry) throw new Error("--entry is required");
    const entry = parseEntry(values.entry);
    const rate = intArg(values.rate, "rate", 0);
    let alt: LoadOptions["alt"];
    if (values["alt-entry"] !== undefined) {
      if (rate <= 0) throw new Error("--alt-entry needs --rate: two targets take turns only when paced");
      const altEntry = parseEntry(values["alt-entry"]);
      alt = { entry: altEntry, authority: values["alt-authority"] ?? `${altEntry.host}:${altEntry.port}`, sliceMs: Math.max(10, intArg(values["slice-ms"], "slice-ms", 250)) };
    }
    await load({
      entry,
      conns: Math.max(1, intArg(values.conns, "conns", 16)),
      warmupMs: intArg(values["warmup-ms"], "warmup-ms", 1000),
      durationMs: Math.max(100, intArg(values["duration-ms"], "duration-ms", 5000)),
      authority: values.authority ?? `${entry.host}:${entry.port}`,
      path: values.path ?? "/1k",
      rate,
      ...(alt ? { alt } : {}),
      expectHeaders: (values["expect-headers"] ?? "").split(",").map((h) => h.trim().toLowerCase()).filter(Boolean),
    });
    process.exit(0);
  }
  throw new Error(`unknown mode "${mode ?? ""}" (serve | load)`);
}

if (import.meta.main) {
  main().catch((e: unknown) => {
    out({ error: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  });
}
