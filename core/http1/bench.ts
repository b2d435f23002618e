// Micro-benchmark (not a test): what core/http1 costs per simple GET.
//   ./node_modules/.bin/bun core/http1/bench.ts
// 1. parser only: a minimal GET, a typical GET head (306 bytes, 7 fields) whole, split, and 100 pipelined per chunk;
// 2. response head serialization;
// 3. server connection end to end over an in-memory duplex pair (a raw client pipelines requests
//    and counts responses), against node:http (Bun's) served on the same kind of pair.
import http from "node:http";
import { duplexPair, type Duplex } from "node:stream";
import { RequestParser } from "./request-parser.ts";
import { writeResponseHead } from "./serializer.ts";
import { serveHttp1 } from "./server-conn.ts";

const GET =
  "GET /api/v1/reviews/12345?verbose=true HTTP/1.1\r\n" +
  "Host: reviews.default.svc.cluster.local:9080\r\n" +
  "User-Agent: curl/8.5.0\r\n" +
  "Accept: */*\r\n" +
  "X-Request-Id: 3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b\r\n" +
  "Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n" +
  "X-Forwarded-For: 10.0.0.1\r\n" +
  "Accept-Encoding: gzip\r\n\r\n";

function nsPer(label: string, n: number, fn: () => void): number {
  for (let i = 0; i < Math.min(n, 20_000); i++) fn(); // warm-up
  const t0 = Bun.nanoseconds();
  for (let i = 0; i < n; i++) fn();
  const ns = (Bun.nanoseconds() - t0) / n;
  console.log(`${label.padEnd(58)} ${ns.toFixed(0).padStart(7)} ns`);
  return ns;
}

function parserBench(): void {
  const one = Buffer.from(GET, "latin1");
  const batch = Buffer.from(GET.repeat(100), "latin1");
  let heads = 0;
  const p: RequestParser = new RequestParser({
    head: () => heads++,
    body: () => {},
    complete: () => p.next(),
    error: (e) => {
      throw e;
    },
  });
  const minimal = Buffer.from("GET / HTTP/1.1\r\nHost: svc\r\n\r\n", "latin1");
  nsPer(`parse a minimal GET (${minimal.length} bytes, Host only)`, 300_000, () => p.push(minimal));
  nsPer(`parse one GET (${one.length} bytes, 7 fields, one chunk)`, 300_000, () => p.push(one));
  const perBatch = nsPer("parse 100 pipelined GETs in one chunk (per batch)", 5_000, () => p.push(batch));
  console.log(`${"  = per request".padEnd(58)} ${(perBatch / 100).toFixed(0).padStart(7)} ns`);
  const split = [one.subarray(0, 37), one.subarray(37, 120), one.subarray(120)];
  nsPer("parse one GET split in 3 chunks", 300_000, () => {
    for (const c of split) p.push(c);
  });
  if (heads === 0) throw new Error("no heads parsed");
}

function serializerBench(): void {
  const fields: [string, string][] = [
    ["content-type", "application/json"],
    ["date", "Tue, 01 Jul 2025 10:00:00 GMT"],
    ["x-envoy-upstream-service-time", "3"],
    ["server", "istio-envoy"],
  ];
  nsPer("write a 200 response head (4 fields, content-length)", 300_000, () => {
    writeResponseHead(200, undefined, fields, { kind: "length", length: 42 });
  });
}

/** Pipelines `total` GETs through `side` in batches and resolves when all responses arrived. */
async function drive(side: Duplex, total: number, batch: number): Promise<number> {
  const batchBuf = Buffer.from(GET.repeat(batch), "latin1");
  const marker = Buffer.from("HTTP/1.1 200");
  let seen = 0;
  let sent = 0;
  let resolveBatch: () => void = () => {};
  side.on("data", (d: Buffer) => {
    for (let i = d.indexOf(marker); i !== -1; i = d.indexOf(marker, i + 1)) seen++;
    if (seen >= sent) resolveBatch();
  });
  const t0 = Bun.nanoseconds();
  while (sent < total) {
    sent += batch;
    const done = new Promise<void>((r) => (resolveBatch = r));
    side.write(batchBuf);
    await done;
  }
  return (Bun.nanoseconds() - t0) / total;
}

async function endToEnd(): Promise<void> {
  const TOTAL = 100_000;
  const BATCH = 50;
  const body = Buffer.from('{"id":12345,"reviewer":"r","rating":5}');

  const [s1, c1] = duplexPair();
  serveHttp1(s1, (_req, res) => {
    res.writeHead(200, [["content-type", "application/json"]]);
    res.end(body);
  });
  await drive(c1, 20_000, BATCH); // warm-up
  const ours = await drive(c1, TOTAL, BATCH);

  const [s2, c2] = duplexPair();
  const server = http.createServer({ keepAlive: true }, (_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  });
  server.emit("connection", s2);
  await drive(c2, 20_000, BATCH);
  const node = await drive(c2, TOTAL, BATCH);

  console.log(`${"server conn: GET -> 200 over a duplex pair (per request)".padEnd(58)} ${ours.toFixed(0).padStart(7)} ns`);
  console.log(`${"node:http (Bun) on the same pair (per request)".padEnd(58)} ${node.toFixed(0).padStart(7)} ns`);
  console.log(`${"  ratio core/http1 / node:http".padEnd(58)} ${(ours / node).toFixed(2).padStart(7)}`);
  c1.destroy();
  c2.destroy();
  server.close();
}

parserBench();
serializerBench();
await endToEnd();
process.exit(0);
