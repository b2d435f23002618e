// Load generators and the server app for the benchmark, each run as its own process so the
// proxies' CPU time can be read separately (bench/run.ts spawns them):
//
//   bun bench/load.ts serve      --host H [--port P]
//   bun bench/load.ts throughput --entry JSON --streams N --bytes B --dir up|down [--timeout-ms T]
//   bun bench/load.ts latency    --entry JSON --count N [--warmup W] [--size 1024] [--timeout-ms T]
//   bun bench/load.ts connrate   --entry JSON --concurrency C --duration-ms D [--size 100]
//   bun bench/load.ts idle       --entry JSON --conns N [--parallel P] [--hold-ms H]
//
// Each client mode prints exactly one JSON result as its last stdout line (idle prints a
// {"event":"ready"} line first and waits for a line on stdin before closing).
//
// Wire protocol spoken to the server app (first byte of a connection selects the mode):
//   'U' u64be(L)  client uploads L bytes, server answers one byte 'K' once all L arrived
//   'D' u64be(L)  server sends L bytes, client closes after reading them
//   'E'           server echoes every following byte
// Lengths are announced up front so nothing depends on half-close behaviour of the path.
//
// Sockets are Bun.listen / Bun.connect with manual backpressure (reference/bun.md §4): write()
// returns what the kernel took, the rest waits for `drain`. The bench is a test fixture, so it
// talks to Bun directly rather than through core/net.

import { parseArgs } from "node:util";
import type { Socket } from "bun";
import { intArg, stringFlags } from "./cli.ts";
import { dial, parseEntry, type BenchSocket, type Entry, type StreamHandlers } from "./entry.ts";
import { summarizeLatency, gbitPerSec, type LatencySummary } from "./stats.ts";

const MODE_UPLOAD = 0x55; // 'U'
const MODE_DOWNLOAD = 0x44; // 'D'
const MODE_ECHO = 0x45; // 'E'
const ACK = 0x4b; // 'K'
const CHUNK = 256 * 1024;
// Uniform content: a partial write can be resumed from the start of the buffer.
const FILL = Buffer.alloc(CHUNK, 0x61);
const ECHO_QUEUE_MAX = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Small queued writer for control messages and echoes (bulk transfers use their own pump).

class QueuedWriter {
  private queue: Buffer[] = [];
  private queued = 0;
  constructor(private readonly sock: Socket<unknown>) {}

  get backlog(): number {
    return this.queued;
  }

  /** Returns false if the socket is closed. */
  send(buf: Uint8Array): boolean {
    if (this.queue.length === 0) {
      const n = this.sock.write(buf);
      if (n < 0) return false;
      if (n === buf.length) return true;
      buf = buf.subarray(n);
    }
    const copy = Buffer.from(buf);
    this.queue.push(copy);
    this.queued += copy.length;
    return true;
  }

  /** Call on drain. Returns true when the queue is empty. */
  flush(): boolean {
    for (let i = 0; this.queue.length > 0 && i < 10_000; i++) {
      const head = this.queue[0] as Buffer;
      const n = this.sock.write(head);
      if (n < 0) return false;
      this.queued -= Math.max(0, n);
      if (n < head.length) {
        this.queue[0] = head.subarray(n);
        return false;
      }
      this.queue.shift();
    }
    return this.queue.length === 0;
  }
}

function header(mode: number, length: number): Buffer {
  const h = Buffer.alloc(9);
  h[0] = mode;
  h.writeBigUInt64BE(BigInt(length), 1);
  return h;
}

/** A completion settled once, by `settle()` (done) or `settle(err)`; later calls are ignored. */
interface Once {
  readonly done: Promise<void>;
  readonly settle: (err?: Error) => void;
}

function once(): Once {
  let settle!: (err?: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    let finished = false;
    settle = (err) => {
      if (finished) return;
      finished = true;
      if (err) reject(err);
      else resolve();
    };
  });
  // Keep an early failure from becoming an unhandled rejection before anyone awaits.
  done.catch(() => {});
  return { done, settle };
}

/**
 * Writes `request` whole, then waits for `reply` for at most `timeoutMs`; on failure the socket is
 * terminated and the error thrown.
 */
async function requestReply(sock: BenchSocket, request: Uint8Array, reply: Once, timeoutMs: number, errors: { timeout: string; shortWrite: string }): Promise<void> {
  const timer = setTimeout(() => reply.settle(new Error(errors.timeout)), timeoutMs);
  try {
    if (sock.write(request) !== request.length) throw new Error(errors.shortWrite);
    await reply.done;
  } catch (e) {
    sock.terminate();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Server app

interface AppConn {
  mode: number; // 0 until the first byte
  header: Buffer;
  headerLen: number;
  remaining: number; // upload: bytes still expected; download: bytes still to send
  writer: QueuedWriter | undefined;
}

function headerSize(mode: number): number {
  return mode === MODE_ECHO ? 1 : 9;
}

function pumpDownload(s: Socket<AppConn>): void {
  const st = s.data;
  for (let i = 0; st.remaining > 0 && i < 1_000_000; i++) {
    const n = Math.min(CHUNK, st.remaining);
    const w = s.write(FILL, 0, n);
    if (w <= 0) return; // closed (-1) or kernel full (0): wait for drain / close
    st.remaining -= w;
    if (w < n) return;
  }
}

function serve(host: string, port: number): void {
  let connections = 0;
  const listener = Bun.listen<AppConn>({
    hostname: host,
    port,
    socket: {
      open(s) {
        s.data = { mode: 0, header: Buffer.alloc(9), headerLen: 0, remaining: 0, writer: undefined };
        s.setNoDelay(true);
        connections++;
      },
      data(s, chunk) {
        const st = s.data;
        let off = 0;
        if (st.mode === 0) {
          const m = st.headerLen > 0 ? (st.header[0] as number) : (chunk[0] as number);
          if (m !== MODE_UPLOAD && m !== MODE_DOWNLOAD && m !== MODE_ECHO) {
            s.terminate();
            return;
          }
          const need = headerSize(m);
          while (off < chunk.length && st.headerLen < need) st.header[st.headerLen++] = chunk[off++] as number;
          if (st.headerLen < need) return;
          st.mode = m;
          if (m === MODE_UPLOAD) st.remaining = Number(st.header.readBigUInt64BE(1));
          if (m === MODE_DOWNLOAD) {
            st.remaining = Number(st.header.readBigUInt64BE(1));
            pumpDownload(s);
            return;
          }
          if (m === MODE_ECHO) st.writer = new QueuedWriter(s as Socket<unknown>);
        }
        const body = chunk.length - off;
        if (body <= 0) return;
        if (st.mode === MODE_UPLOAD) {
          if (st.remaining <= 0) return;
          st.remaining -= body;
          if (st.remaining <= 0) s.write(Uint8Array.of(ACK));
        } else if (st.mode === MODE_ECHO && st.writer) {
          if (!st.writer.send(chunk.subarray(off))) return;
          // Bound the echo backlog: stop reading until the peer drains us.
          if (st.writer.backlog > ECHO_QUEUE_MAX) s.pause();
        }
      },
      drain(s) {
        const st = s.data;
        if (st.mode === MODE_DOWNLOAD) pumpDownload(s);
        else if (st.writer && st.writer.flush()) s.resume();
      },
      end(s) {
        s.end();
      },
      close() {
        connections--;
      },
      error() {},
    },
  });
  console.log(JSON.stringify({ event: "listening", host: listener.hostname, port: listener.port }));
  const stop = () => {
    listener.stop(true);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  void connections;
}

// ---------------------------------------------------------------------------------------------
// Throughput: N streams, `bytes` in total, one direction.

class TransferStream {
  sock: BenchSocket | undefined;
  private sent = 0;
  private received = 0;
  private readonly completion = once();
  readonly done = this.completion.done;
  private readonly settle = this.completion.settle;

  constructor(
    readonly dir: "up" | "down",
    readonly total: number,
  ) {}

  readonly handlers: StreamHandlers = {
    data: (chunk) => {
      if (this.dir === "up") {
        if (chunk.includes(ACK)) this.settle();
        return;
      }
      this.received += chunk.length;
      if (this.received >= this.total) this.settle();
    },
    drain: () => {
      if (this.dir === "up") this.pump();
    },
    close: (err) => this.settle(err ?? new Error(`stream closed after ${this.dir === "up" ? this.sent : this.received} of ${this.total} bytes`)),
  };

  begin(): void {
    const s = this.sock as BenchSocket;
    const h = header(this.dir === "up" ? MODE_UPLOAD : MODE_DOWNLOAD, this.total);
    if (s.write(h) !== h.length) {
      this.settle(new Error("short write of the stream header"));
      return;
    }
    if (this.dir === "up") this.pump();
  }

  private pump(): void {
    const s = this.sock as BenchSocket;
    for (let i = 0; this.sent < this.total && i < 1_000_000; i++) {
      const n = Math.min(CHUNK, this.total - this.sent);
      const w = s.write(FILL, 0, n);
      if (w < 0) return this.settle(new Error("socket closed while sending"));
      this.sent += w;
      if (w < n) return; // wait for drain
    }
  }

  close(): void {
    this.sock?.end();
  }
}

interface ThroughputResult {
  mode: "throughput";
  dir: "up" | "down";
  streams: number;
  bytes: number;
  seconds: number;
  gbps: number;
}

async function throughput(entry: Entry, streams: number, bytes: number, dir: "up" | "down", timeoutMs: number): Promise<ThroughputResult> {
  const per = Math.floor(bytes / streams);
  const list: TransferStream[] = [];
  for (let i = 0; i < streams; i++) list.push(new TransferStream(dir, i === streams - 1 ? bytes - per * (streams - 1) : per));
  // Connection setup is not part of the transfer time (as iperf reports it).
  await Promise.all(
    list.map(async (t) => {
      t.sock = await dial(entry, t.handlers, 10_000);
    }),
  );
  const t0 = performance.now();
  for (const t of list) t.begin();
  const timeout = Bun.sleep(timeoutMs).then(() => {
    throw new Error(`throughput: not done after ${timeoutMs} ms`);
  });
  try {
    await Promise.race([Promise.all(list.map((t) => t.done)), timeout]);
  } finally {
    for (const t of list) t.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  return { mode: "throughput", dir, streams, bytes, seconds, gbps: gbitPerSec(bytes, seconds) };
}

// ---------------------------------------------------------------------------------------------
// Latency: `size`-byte echo round trips over one warm connection.

interface LatencyResult extends LatencySummary {
  mode: "latency";
  size: number;
}

async function latency(entry: Entry, count: number, warmup: number, size: number, timeoutMs: number): Promise<LatencyResult> {
  const samples = new Float64Array(count);
  const payload = Buffer.alloc(size, 0x62);
  const total = warmup + count;
  let round = 0;
  let got = 0;
  let t0 = 0;
  let writer: QueuedWriter | undefined;
  const { done, settle } = once();
  const send = () => {
    t0 = performance.now();
    if (!writer?.send(payload)) settle(new Error("socket closed"));
  };
  const sock = await dial(
    entry,
    {
      data(chunk) {
        got += chunk.length;
        if (got < size) return;
        const t1 = performance.now();
        got -= size;
        if (round >= warmup) samples[round - warmup] = (t1 - t0) * 1000;
        round++;
        if (round >= total) settle();
        else send();
      },
      drain() {
        writer?.flush();
      },
      close(err) {
        settle(err ?? new Error(`connection closed after ${round} round trips`));
      },
    },
    10_000,
  );
  writer = new QueuedWriter(sock as Socket<unknown>);
  writer.send(Uint8Array.of(MODE_ECHO));
  send();
  const timer = setTimeout(() => settle(new Error(`latency: ${round}/${total} round trips after ${timeoutMs} ms`)), timeoutMs);
  try {
    await done;
  } finally {
    clearTimeout(timer);
    sock.end();
  }
  return { mode: "latency", size, ...summarizeLatency(samples) };
}

// ---------------------------------------------------------------------------------------------
// One short-lived connection: connect, `size`-byte request, echo response, close.

async function oneShot(entry: Entry, request: Buffer, timeoutMs: number): Promise<void> {
  let got = 0;
  let closed!: () => void;
  const whenClosed = new Promise<void>((r) => (closed = r));
  const answered = once();
  const { settle } = answered;
  const sock = await dial(
    entry,
    {
      data(chunk) {
        got += chunk.length;
        if (got >= request.length - 1) settle();
      },
      drain() {},
      close(err) {
        settle(err ?? new Error("closed before the response"));
        closed();
      },
    },
    timeoutMs,
  );
  await requestReply(sock, request, answered, timeoutMs, { timeout: `no response within ${timeoutMs} ms`, shortWrite: "short write of the request" });
  sock.end();
  await Promise.race([whenClosed, Bun.sleep(2000)]);
}

interface ConnRateResult {
  mode: "connrate";
  concurrency: number;
  ok: number;
  errors: number;
  firstError: string | undefined;
  seconds: number;
  perSec: number;
  connectMs: { p50: number; p99: number };
}

async function connRate(entry: Entry, concurrency: number, durationMs: number, size: number): Promise<ConnRateResult> {
  const request = Buffer.alloc(size + 1, 0x63);
  request[0] = MODE_ECHO;
  const maxErrors = 1000;
  const maxSamples = 1_000_000;
  const latenciesMs: number[] = [];
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const end = t0 + durationMs;
  const worker = async () => {
    for (let i = 0; performance.now() < end && errors < maxErrors && i < maxSamples; i++) {
      const s = performance.now();
      try {
        await oneShot(entry, request, 5000);
        ok++;
        if (latenciesMs.length < maxSamples) latenciesMs.push(performance.now() - s);
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
        await Bun.sleep(5);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const lat = summarizeLatency(latenciesMs.map((ms) => ms * 1000));
  return {
    mode: "connrate",
    concurrency,
    ok,
    errors,
    firstError,
    seconds,
    perSec: ok / seconds,
    connectMs: { p50: lat.p50Us / 1000, p99: lat.p99Us / 1000 },
  };
}

// ---------------------------------------------------------------------------------------------
// Idle connections: open N tunnels, a byte each way, hold them until told (or hold-ms passes).

async function openIdle(entry: Entry): Promise<BenchSocket> {
  const echoed = once();
  const { settle } = echoed;
  const sock = await dial(
    entry,
    { data: () => settle(), drain() {}, close: (err) => settle(err ?? new Error("closed")) },
    15_000,
  );
  await requestReply(sock, Uint8Array.of(MODE_ECHO, 0x78), echoed, 15_000, { timeout: "no echo within 15 s", shortWrite: "short write" });
  return sock;
}

async function readStdinLine(timeoutMs: number): Promise<string | undefined> {
  const reader = Bun.stdin.stream().getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  try {
    for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
      const next = await Promise.race([reader.read(), Bun.sleep(Math.max(1, deadline - Date.now())).then(() => undefined)]);
      if (!next || next.done) return text || undefined;
      text += decoder.decode(next.value, { stream: true });
      const nl = text.indexOf("\n");
      if (nl >= 0) return text.slice(0, nl);
    }
  } finally {
    reader.releaseLock();
  }
  return undefined;
}

async function idle(entry: Entry, conns: number, parallel: number, holdMs: number): Promise<Record<string, unknown>> {
  const open: BenchSocket[] = [];
  let next = 0;
  let failed = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const worker = async () => {
    for (; next < conns; ) {
      next++;
      try {
        open.push(await openIdle(entry));
      } catch (e) {
        failed++;
        firstError ??= (e as Error).message;
        if (failed > Math.max(100, conns / 10)) return; // the path is broken; stop hammering it
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, conns) }, worker));
  const openMs = performance.now() - t0;
  console.log(JSON.stringify({ event: "ready", opened: open.length, failed, firstError, openMs }));
  const line = await readStdinLine(holdMs);
  for (const s of open) s.end();
  await Bun.sleep(200);
  return { mode: "idle", event: "done", opened: open.length, failed, firstError, openMs, released: line === "close" ? "asked" : "timeout" };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: stringFlags(
      "host", "port", "entry", "streams", "bytes", "dir", "count", "warmup", "size", "concurrency",
      "duration-ms", "conns", "parallel", "hold-ms", "timeout-ms",
    ),
    strict: true,
  });
  if (mode === "serve") {
    if (!values.host) throw new Error("--host is required");
    serve(values.host, intArg(values.port, "port", 0));
    return;
  }
  if (!values.entry) throw new Error("--entry is required");
  const entry = parseEntry(values.entry);
  const timeoutMs = intArg(values["timeout-ms"], "timeout-ms", 120_000);
  let result: unknown;
  switch (mode) {
    case "throughput": {
      const dir = values.dir ?? "up";
      if (dir !== "up" && dir !== "down") throw new Error("--dir must be up or down");
      result = await throughput(entry, Math.max(1, intArg(values.streams, "streams", 1)), intArg(values.bytes, "bytes"), dir, timeoutMs);
      break;
    }
    case "latency":
      result = await latency(entry, Math.max(1, intArg(values.count, "count")), intArg(values.warmup, "warmup", 200), intArg(values.size, "size", 1024), timeoutMs);
      break;
    case "connrate":
      result = await connRate(entry, Math.max(1, intArg(values.concurrency, "concurrency", 32)), intArg(values["duration-ms"], "duration-ms", 5000), intArg(values.size, "size", 100));
      break;
    case "idle":
      result = await idle(entry, intArg(values.conns, "conns"), Math.max(1, intArg(values.parallel, "parallel", 64)), intArg(values["hold-ms"], "hold-ms", 300_000));
      break;
    default:
      throw new Error(`unknown mode ${mode ?? "(none)"}: serve | throughput | latency | connrate | idle`);
  }
  console.log(JSON.stringify(result));
  process.exit(0);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    console.log(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    process.exit(1);
  });
}
