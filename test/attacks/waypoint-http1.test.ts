// HTTP/1.1 smuggling and resource attacks on the waypoint (reference/reliability.md §7 C20), end to
// end with real processes: the attacker holds a genuine mesh identity, opens an HBONE CONNECT to
// the waypoint for the service VIP and writes raw bytes inside the tunnel. The app behind the
// server's ztunnel records every byte it receives: a refused request must be answered with its
// status and `Connection: close`, the connection closed, and nothing of it — least of all a
// second request hidden in its body — may reach the app.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { meshCert, type PresentedCert } from "./fixtures.ts";
import {
  RecordingHttpApp,
  TestMesh,
  TunnelClient,
  ZtunnelProcess,
  allocSubnet,
  headerOf,
  localConfig,
  parseResponses,
  rawExchange,
  serviceKey,
  startWaypoint,
  until,
  type AppEcho,
  type ParsedResponse,
  type RawExchange,
} from "../harness/index.ts";

const HOST = "server.default.svc.cluster.local";
const H = `Host: ${HOST}\r\n`;
/** Timeouts for this file's waypoints (MESH_HTTP_*): short, so the timeout cases are quick. */
const HEADER_TIMEOUT_MS = 300;
const IDLE_TIMEOUT_MS = 1000;

let caseNo = 0;
/** A fresh pair of markers: the attack request's path and a smuggled request's path. */
function markers(): { p: string; s: string } {
  caseNo++;
  return { p: `/atk-${caseNo}-${process.pid}`, s: `/smuggled-${caseNo}-${process.pid}` };
}

/** A complete request to `s`, the payload a smuggling attempt hides behind the first request. */
const smuggled = (s: string): string => `GET ${s} HTTP/1.1\r\n${H}\r\n`;

interface RejectionCase {
  readonly name: string;
  readonly input: (p: string, s: string) => string;
  readonly status: number;
}

const SMUGGLE_BODY = (s: string): string => `0\r\n\r\n${smuggled(s)}`;

const REJECTIONS: readonly RejectionCase[] = [
  // ---- framing ----
  { name: "CL then TE", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: ${SMUGGLE_BODY(s).length}\r\nTransfer-Encoding: chunked\r\n\r\n${SMUGGLE_BODY(s)}` },
  { name: "TE then CL", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${SMUGGLE_BODY(s)}` },
  { name: "CL with TE in another case", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}content-length: 5\r\ntransfer-encoding: CHUNKED\r\n\r\n${SMUGGLE_BODY(s)}` },
  { name: "duplicate Content-Length, equal", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: ${smuggled(s).length}\r\nContent-Length: ${smuggled(s).length}\r\n\r\n${smuggled(s)}` },
  { name: "duplicate Content-Length, different", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: ${smuggled(s).length}\r\n\r\n${smuggled(s)}` },
  { name: "Content-Length list", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: 0, ${smuggled(s).length}\r\n\r\n${smuggled(s)}` },
  { name: "Content-Length with a sign", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: +0\r\n\r\n${smuggled(s)}` },
  { name: "Content-Length negative", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n${smuggled(s)}` },
  { name: "Content-Length hex", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: 0x0\r\n\r\n${smuggled(s)}` },
  { name: "Content-Length huge", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: 99999999999999999999\r\n\r\n${smuggled(s)}` },
  { name: "Content-Length 2^53", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: 9007199254740992\r\n\r\n${smuggled(s)}` },
  { name: "Content-Length with trailing garbage", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: 0a\r\n\r\n${smuggled(s)}` },
  { name: "Transfer-Encoding gzip", status: 501, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n${SMUGGLE_BODY(s)}` },
  { name: "Transfer-Encoding chunked, gzip (chunked not last)", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n${SMUGGLE_BODY(s)}` },
  { name: "Transfer-Encoding gzip, chunked", status: 501, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n${SMUGGLE_BODY(s)}` },
  { name: "Transfer-Encoding chunked twice", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n${SMUGGLE_BODY(s)}` },
  { name: "Transfer-Encoding with a parameter", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked;q=1\r\n\r\n${SMUGGLE_BODY(s)}` },
  { name: "Transfer-Encoding on HTTP/1.0", status: 400, input: (p, s) => `POST ${p} HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n${SMUGGLE_BODY(s)}` },
  // ---- line syntax ----
  { name: "obs-fold", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\n${H}X-A: b\r\n ${smuggled(s).trim()}\r\n\r\n${smuggled(s)}` },
  { name: "obs-fold with a tab", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\n${H}X-A: b\r\n\tc\r\n\r\n${smuggled(s)}` },
  { name: "bare LF ends the request line", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\n${H}\r\n${smuggled(s)}` },
  { name: "bare LF ends a header field", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\n${H}X-A: b\nX-B: c\r\n\r\n${smuggled(s)}` },
  { name: "bare LF only", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\n${H.replace("\r\n", "\n")}\n${smuggled(s)}` },
  { name: "bare CR in a header value", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\n${H}X-A: b\rc\r\n\r\n${smuggled(s)}` },
  { name: "bare CR in the target", status: 400, input: (p, s) => `GET ${p}\rx HTTP/1.1\r\n${H}\r\n${smuggled(s)}` },
  // ---- request line ----
  { name: "method with (", status: 400, input: (p, s) => `G(T ${p} HTTP/1.1\r\n${H}\r\n${smuggled(s)}` },
  { name: "method with @", status: 400, input: (p, s) => `GE@T ${p} HTTP/1.1\r\n${H}\r\n${smuggled(s)}` },
  { name: "two spaces in the request line", status: 400, input: (p, s) => `GET  ${p} HTTP/1.1\r\n${H}\r\n${smuggled(s)}` },
  { name: "HTTP/2.0 on an HTTP/1 request line", status: 505, input: (p, s) => `GET ${p} HTTP/2.0\r\n${H}\r\n${smuggled(s)}` },
  { name: "HTTP/1.2", status: 505, input: (p, s) => `GET ${p} HTTP/1.2\r\n${H}\r\n${smuggled(s)}` },
  { name: "lower-case version", status: 400, input: (p, s) => `GET ${p} http/1.1\r\n${H}\r\n${smuggled(s)}` },
  { name: "CONNECT inside the tunnel", status: 405, input: (_p, s) => `CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: 10.0.0.1:443\r\n\r\n${smuggled(s)}` },
  // ---- target and Host ----
  { name: "absolute-form authority differs from Host", status: 400, input: (p, s) => `GET http://evil.example${p} HTTP/1.1\r\n${H}\r\n${smuggled(s)}` },
  { name: "absolute-form with userinfo", status: 400, input: (p, s) => `GET http://u@${HOST}${p} HTTP/1.1\r\n${H}\r\n${smuggled(s)}` },
  { name: "fragment in the target", status: 400, input: (p, s) => `GET ${p}#x HTTP/1.1\r\n${H}\r\n${smuggled(s)}` },
  { name: "missing Host", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\nX-A: b\r\n\r\n${smuggled(s)}` },
  { name: "two Host fields", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\n${H}Host: evil.example\r\n\r\n${smuggled(s)}` },
  { name: "two equal Host fields", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\n${H}${H}\r\n${smuggled(s)}` },
  { name: "Host with a path", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\nHost: ${HOST}/x\r\n\r\n${smuggled(s)}` },
  // ---- field syntax ----
  { name: "space before the colon", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\nHost : ${HOST}\r\n\r\n${smuggled(s)}` },
  { name: "space before the colon of Transfer-Encoding", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Content-Length: 0\r\nTransfer-Encoding : chunked\r\n\r\n${SMUGGLE_BODY(s)}` },
  { name: "NUL in a value", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\n${H}X-A: b\x00c\r\n\r\n${smuggled(s)}` },
  { name: "CTL in a value", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\n${H}X-A: b\x01c\r\n\r\n${smuggled(s)}` },
  { name: "header line without a colon", status: 400, input: (p, s) => `GET ${p} HTTP/1.1\r\n${H}X-A\r\n\r\n${smuggled(s)}` },
];

/** Errors found in a chunked body: the head is valid, so the waypoint may have started forwarding it. */
const CHUNK_REJECTIONS: readonly RejectionCase[] = [
  { name: "chunk size negative", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n${smuggled(s)}` },
  { name: "chunk size 0x prefix", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n${smuggled(s)}` },
  { name: "chunk size 2^64", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n${smuggled(s)}` },
  { name: "chunk size garbage", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5g\r\nhello\r\n0\r\n\r\n${smuggled(s)}` },
  { name: "chunk size with leading space", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n${smuggled(s)}` },
  { name: "chunk size empty", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n${smuggled(s)}` },
  { name: "chunk data longer than its size", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n${smuggled(s)}` },
  { name: "chunk size line ends in bare LF", status: 400, input: (p, s) => `POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n${smuggled(s)}` },
];

function fields(n: number, valueBytes = 1): string {
  let out = "";
  for (let i = 0; i < n; i++) out += `X-F${i}: ${"v".repeat(valueBytes)}\r\n`;
  return out;
}

describe("waypoint HTTP/1.1: smuggling and limits", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  const serverIp = `${subnet}2`;
  const waypointIp = `${subnet}10`;
  const midWaypointIp = `${subnet}11`;
  const smallWaypointIp = `${subnet}12`;
  const serverVip = `${subnet}100`;
  let mesh: TestMesh;
  let waypoint: ZtunnelProcess;
  let mid: ZtunnelProcess;
  let small: ZtunnelProcess;
  let app: RecordingHttpApp;
  let cert: PresentedCert;
  let client: TunnelClient;
  let midClient: TunnelClient;
  let smallClient: TunnelClient;
  /** every marker of every refused request, re-checked at the end */
  const refused: string[] = [];

  beforeAll(async () => {
    const config = localConfig({
      workloads: [
        { name: "client", ip: clientIp, node: "node-a" },
        { name: "server", ip: serverIp, node: "node-b", services: { [serviceKey("server")]: { 80: 8080 } } },
        { name: "waypoint", ip: waypointIp, node: "node-w", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
        { name: "waypoint-mid", ip: midWaypointIp, node: "node-w", serviceAccount: "waypoint", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
        { name: "waypoint-small", ip: smallWaypointIp, node: "node-w", serviceAccount: "waypoint", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
      ],
      services: [
        { name: "server", vip: serverVip, ports: { 80: 8080 }, waypoint: "waypoint" },
        { name: "waypoint", vip: `${subnet}102`, ports: { 15008: 15008 } },
      ],
    });
    app = await RecordingHttpApp.start(serverIp, 8080);
    mesh = await TestMesh.start({ config, nodes: ["node-b"] });
    const timeouts = { MESH_HTTP_HEADER_TIMEOUT: `${HEADER_TIMEOUT_MS}ms`, MESH_HTTP_IDLE_TIMEOUT: `${IDLE_TIMEOUT_MS}ms` };
    [waypoint, mid, small] = await Promise.all([
      startWaypoint(mesh, { env: timeouts }),
      startWaypoint(mesh, { uid: "test//waypoint-mid", env: { ...timeouts, MESH_HTTP_MAX_HEADER_BYTES: "32Ki", MESH_HTTP_MAX_HEADERS: "20" } }),
      // a header budget below the 16 KiB request-line cap
      startWaypoint(mesh, { uid: "test//waypoint-small", env: { ...timeouts, MESH_HTTP_MAX_HEADER_BYTES: "8Ki" } }),
    ]);
    cert = await meshCert(mesh.caDir, "spiffe://cluster.local/ns/default/sa/client");
    client = new TunnelClient({ address: waypointIp, cert, localAddress: clientIp });
    midClient = new TunnelClient({ address: midWaypointIp, cert, localAddress: clientIp });
    smallClient = new TunnelClient({ address: smallWaypointIp, cert, localAddress: clientIp });
  }, 60_000);

  afterAll(async () => {
    client?.close();
    midClient?.close();
    smallClient?.close();
    await Promise.all([waypoint?.stop(), mid?.stop(), small?.stop()]);
    await mesh?.stop();
    await app?.close();
  });

  /** A tunnel to the service through `via` (the default waypoint unless told). */
  async function tunnel(via: TunnelClient = client) {
    const t = await via.open(`${serverVip}:80`);
    expect(t.status).toBe(200);
    return t.stream;
  }

  /** Writes `input` in one write on a fresh tunnel; waits for the waypoint to close it. */
  async function attempt(input: string, via?: TunnelClient): Promise<RawExchange & { responses: ParsedResponse[] }> {
    const stream = await tunnel(via);
    const r = await rawExchange(stream, input, { waitMs: 5000 });
    stream.destroy();
    return { ...r, responses: parseResponses(r.text) };
  }

  /** A normal request on a fresh tunnel; the app's echo. Also a sentinel: the app is reachable and caught up. */
  async function control(via?: TunnelClient, extra = ""): Promise<{ status: number; echo: AppEcho | undefined; path: string }> {
    const { p } = markers();
    const stream = await tunnel(via);
    const r = await rawExchange(stream, `GET ${p} HTTP/1.1\r\n${H}${extra}Connection: close\r\n\r\n`, { waitMs: 5000 });
    stream.destroy();
    const res = parseResponses(r.text)[0];
    return { status: res?.status ?? 0, echo: res?.status === 200 ? (JSON.parse(res.body) as AppEcho) : undefined, path: p };
  }

  /** Summary of one refused attempt, compared as a whole so a failure names the case. */
  function outcome(r: RawExchange & { responses: ParsedResponse[] }): { status: number | undefined; responses: number; connectionClose: string | undefined; closed: boolean } {
    const first = r.responses[0];
    return { status: first?.status, responses: r.responses.length, connectionClose: first ? headerOf(first, "connection") : undefined, closed: r.ended };
  }

  test("control: a well-formed request through the tunnel reaches the app once", async () => {
    const c = await control();
    expect(c.status).toBe(200);
    expect(c.echo?.path).toBe(c.path);
    expect(app.requestsFor(c.path).map((r) => r.complete)).toEqual([true]);
  });

  test("C20 smuggling and malformed heads: exact status, Connection: close, connection closed, nothing reaches the app", async () => {
    for (const k of REJECTIONS) {
      const { p, s } = markers();
      refused.push(p, s);
      const r = await attempt(k.input(p, s));
      expect([k.name, outcome(r)]).toEqual([k.name, { status: k.status, responses: 1, connectionClose: "close", closed: true }]);
    }
    // Everything the app got so far was a control; give stragglers a chance to show up.
    expect((await control()).status).toBe(200);
    for (const m of refused) expect([m, app.received(m)]).toEqual([m, false]);
  });

  test("C20 bad chunk framing: answered 400 and closed; the request never completes at the app and what follows is never a request", async () => {
    for (const k of CHUNK_REJECTIONS) {
      const { p, s } = markers();
      refused.push(s);
      const r = await attempt(k.input(p, s));
      expect([k.name, outcome(r)]).toEqual([k.name, { status: k.status, responses: 1, connectionClose: "close", closed: true }]);
      // The head was valid, so a streaming proxy may have forwarded it; the body must never complete.
      await Bun.sleep(50);
      expect([k.name, app.requestsFor(p).filter((x) => x.complete).length]).toEqual([k.name, 0]);
    }
    expect((await control()).status).toBe(200);
    for (const m of refused) expect([m, app.received(m)]).toEqual([m, false]);
  });

  test("a bad chunk after the body is already streaming to the app: 400 to the client, the upstream request aborted, never completed or reused", async () => {
    const { p, s } = markers();
    refused.push(s);
    const stream = await tunnel();
    const chunks: Buffer[] = [];
    let ended = false;
    stream.on("data", (d: Buffer) => chunks.push(Buffer.from(d)));
    stream.once("end", () => (ended = true));
    stream.once("close", () => (ended = true));
    stream.write(`POST ${p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
    await until(() => app.requestsFor(p).length === 1, 5000, "the request head at the app");
    stream.write(`zz\r\n${smuggled(s)}`);
    await until(() => ended, 5000, "the waypoint to close the connection");
    stream.destroy();
    const res = parseResponses(Buffer.concat(chunks).toString("latin1"));
    expect(res.map((x) => [x.status, headerOf(x, "connection")])).toEqual([[400, "close"]]);
    await Bun.sleep(100);
    expect(app.requestsFor(p).map((x) => x.complete)).toEqual([false]);
    // The upstream connection that carried half a body must not carry the next request.
    for (let i = 0; i < 3; i++) {
      const c = await control();
      expect(c.status).toBe(200);
      expect(c.echo?.path).toBe(c.path);
      expect(app.requestsFor(c.path).map((x) => x.complete)).toEqual([true]);
    }
    expect(app.received(s)).toBe(false);
  });

  test("a request-looking body is only a body: one request at the app, the inner text inside its body", async () => {
    const { p, s } = markers();
    const body = smuggled(s);
    const r = await attempt(`POST ${p} HTTP/1.1\r\n${H}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    expect(r.responses.map((x) => x.status)).toEqual([200]);
    expect(app.requestsFor(p).map((x) => [x.method, x.complete, x.body.toString("latin1")])).toEqual([["POST", true, body]]);
    expect(app.requestsFor(s)).toEqual([]);
    // chunked on the way in: the waypoint re-frames, the same bytes arrive as one body
    const m2 = markers();
    const b2 = smuggled(m2.s);
    const r2 = await attempt(`POST ${m2.p} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${b2.length.toString(16)}\r\n${b2}\r\n0\r\n\r\n`);
    expect(r2.responses.map((x) => x.status)).toEqual([200]);
    expect(app.requestsFor(m2.p).map((x) => [x.complete, x.body.toString("latin1")])).toEqual([[true, b2]]);
    expect(app.requestsFor(m2.s)).toEqual([]);
  });

  test("a lower-case method is never rewritten: refused with 400 (Istio's behaviour), or passed on exactly as sent", async () => {
    const { p } = markers();
    const r = await attempt(`get ${p} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    const status = r.responses[0]?.status;
    await Bun.sleep(50);
    if (status === 400) expect(app.received(p)).toBe(false);
    else {
      // what the codec does today: a valid token, so a different method from GET
      expect(r.responses.map((x) => x.status)).toEqual([200]);
      expect(app.requestsFor(p).map((x) => x.method)).toEqual(["get"]);
    }
  });

  test("header names with underscores are passed on as written (Istio's ALLOW), never folded into dashes", async () => {
    const c = await control(undefined, "X_User: alice\r\n");
    expect(c.status).toBe(200);
    expect(c.echo?.headers["x_user"]).toBe("alice");
    expect(c.echo?.headers["x-user"]).toBeUndefined();
  });

  test("absolute-form whose authority is the Host is served, and the app gets origin-form", async () => {
    const { p } = markers();
    const r = await attempt(`GET http://${HOST}${p} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    expect(r.responses.map((x) => x.status)).toEqual([200]);
    expect(app.requestsFor(p).map((x) => x.target)).toEqual([p]);
  });

  test("limits at the defaults: > 60 KiB of header fields 431, > 100 fields 431, request line over 16 KiB 414; just below passes", async () => {
    const big = markers();
    refused.push(big.p);
    const r1 = await attempt(`GET ${big.p} HTTP/1.1\r\n${H}${fields(10, 7 * 1024)}\r\n`);
    expect(outcome(r1)).toEqual({ status: 431, responses: 1, connectionClose: "close", closed: true });
    const many = markers();
    refused.push(many.p);
    const r2 = await attempt(`GET ${many.p} HTTP/1.1\r\n${H}${fields(100)}\r\n`);
    expect(outcome(r2)).toEqual({ status: 431, responses: 1, connectionClose: "close", closed: true });
    const long = markers();
    refused.push(long.p);
    const r3 = await attempt(`GET ${long.p}?${"a".repeat(17 * 1024)} HTTP/1.1\r\n${H}\r\n`);
    expect(outcome(r3)).toEqual({ status: 414, responses: 1, connectionClose: "close", closed: true });
    // below the limits the same shapes are served
    const ok1 = await control(undefined, fields(8, 5 * 1024));
    expect(ok1.status).toBe(200);
    const ok2 = await control(undefined, fields(90));
    expect(ok2.status).toBe(200);
    expect(ok2.echo?.headers["x-f89"]).toBe("v");
    for (const m of [big.p, many.p, long.p]) expect([m, app.received(m)]).toEqual([m, false]);
  });

  test("limits from the environment (MESH_HTTP_MAX_HEADER_BYTES=32Ki, MESH_HTTP_MAX_HEADERS=20) on another replica", async () => {
    const big = markers();
    refused.push(big.p);
    const r1 = await attempt(`GET ${big.p} HTTP/1.1\r\n${H}${fields(5, 8 * 1024)}\r\n`, midClient);
    expect(outcome(r1)).toEqual({ status: 431, responses: 1, connectionClose: "close", closed: true });
    const many = markers();
    refused.push(many.p);
    const r2 = await attempt(`GET ${many.p} HTTP/1.1\r\n${H}${fields(21)}\r\n`, midClient);
    expect(outcome(r2)).toEqual({ status: 431, responses: 1, connectionClose: "close", closed: true });
    expect((await control(midClient, fields(3, 8 * 1024))).status).toBe(200);
    expect((await control(midClient, fields(15))).status).toBe(200);
    // the default replica still takes what this one refuses
    expect((await control(undefined, fields(5, 8 * 1024))).status).toBe(200);
    expect((await control(undefined, fields(21))).status).toBe(200);
    for (const m of [big.p, many.p]) expect([m, app.received(m)]).toEqual([m, false]);
    expect(mid.running).toBe(true);
  });

  test("a header budget below the request-line cap (MESH_HTTP_MAX_HEADER_BYTES=8Ki) is enforced, and the replica keeps serving", async () => {
    const big = markers();
    refused.push(big.p);
    const r1 = await attempt(`GET ${big.p} HTTP/1.1\r\n${H}${fields(3, 3 * 1024)}\r\n`, smallClient);
    expect(outcome(r1)).toEqual({ status: 431, responses: 1, connectionClose: "close", closed: true });
    // a request line longer than the whole head budget cannot pass either
    const long = markers();
    refused.push(long.p);
    const r2 = await attempt(`GET ${long.p}?${"a".repeat(10 * 1024)} HTTP/1.1\r\n${H}\r\n`, smallClient);
    expect([414, 431]).toContain(outcome(r2).status ?? 0);
    expect((await control(smallClient, fields(2, 2 * 1024))).status).toBe(200);
    expect(small.running).toBe(true);
    for (const m of [big.p, long.p]) expect([m, app.received(m)]).toEqual([m, false]);
  });

  test("a partial head then silence: 408 with Connection: close within the header timeout (MESH_HTTP_HEADER_TIMEOUT=300ms)", async () => {
    const { p } = markers();
    refused.push(p);
    const stream = await tunnel();
    // bounded well below the 10 s default, so an ignored knob fails here
    const r = await rawExchange(stream, `GET ${p} HTTP/1.1\r\n${H}X-A: b`, { waitMs: 5000 });
    stream.destroy();
    expect(outcome({ ...r, responses: parseResponses(r.text) })).toEqual({ status: 408, responses: 1, connectionClose: "close", closed: true });
    expect(app.received(p)).toBe(false);
  });

  test("a head dribbled byte by byte still gets 408: the header timeout runs from the first byte, not per read", async () => {
    const { p } = markers();
    refused.push(p);
    const stream = await tunnel();
    const chunks: Buffer[] = [];
    let ended = false;
    stream.on("data", (d: Buffer) => chunks.push(Buffer.from(d)));
    stream.once("end", () => (ended = true));
    stream.once("close", () => (ended = true));
    const head = `GET ${p} HTTP/1.1\r\n${H}${fields(200).slice(0, 3000)}`;
    stream.write(head.slice(0, 40)); // the request line at once (protocol detection), then a byte every 20 ms
    for (let i = 40; i < head.length && !ended; i++) {
      stream.write(head[i]!);
      await Bun.sleep(20);
      if (i > 40 + 200) break; // ~4 s of dribbling: far past the 300 ms budget, well short of the 10 s default
    }
    await until(() => ended, 500, "the waypoint to close the dribbling connection");
    stream.destroy();
    const res = parseResponses(Buffer.concat(chunks).toString("latin1"));
    expect(res.map((x) => [x.status, headerOf(x, "connection")])).toEqual([[408, "close"]]);
    expect(app.received(p)).toBe(false);
  });

  test("an idle keep-alive connection is closed after MESH_HTTP_IDLE_TIMEOUT (1s)", async () => {
    const { p } = markers();
    const stream = await tunnel();
    const r = await rawExchange(stream, `GET ${p} HTTP/1.1\r\n${H}\r\n`, { waitMs: 5000, done: (t) => parseResponses(t).length === 1 });
    expect(parseResponses(r.text).map((x) => x.status)).toEqual([200]);
    expect(r.ended).toBe(false); // keep-alive: still open after the response
    const rest = await rawExchange(stream, [], { waitMs: IDLE_TIMEOUT_MS + 5000 });
    stream.destroy();
    expect(rest.ended).toBe(true);
    expect(rest.text).toBe(""); // closed silently, no 408 on an idle connection
  });

  test("pipelining: two requests in one write get two responses, in order", async () => {
    const a = markers();
    const b = markers();
    const stream = await tunnel();
    const r = await rawExchange(stream, `GET ${a.p} HTTP/1.1\r\n${H}\r\nGET ${b.p} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { waitMs: 5000 });
    stream.destroy();
    const res = parseResponses(r.text);
    expect(res.map((x) => x.status)).toEqual([200, 200]);
    expect(res.map((x) => (JSON.parse(x.body) as AppEcho).path)).toEqual([a.p, b.p]);
    expect(r.ended).toBe(true);
  });

  test("pipelining: a bad request after a good one is refused and nothing after it is processed", async () => {
    const ok = markers();
    const bad = markers();
    const after = markers();
    refused.push(bad.p, after.p);
    const stream = await tunnel();
    const r = await rawExchange(stream, `GET ${ok.p} HTTP/1.1\r\n${H}\r\nGET ${bad.p} HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\nGET ${after.p} HTTP/1.1\r\n${H}\r\n`, { waitMs: 5000 });
    stream.destroy();
    const res = parseResponses(r.text);
    expect(res.map((x) => x.status)).toEqual([200, 400]);
    expect(headerOf(res[1]!, "connection")).toBe("close");
    expect(r.ended).toBe(true);
    expect(app.requestsFor(ok.p).length).toBe(1);
    expect(app.received(bad.p)).toBe(false);
    expect(app.received(after.p)).toBe(false);
  });

  test("after all of the above the waypoints are healthy and no refused marker ever reached the app", async () => {
    expect((await control()).status).toBe(200);
    await Bun.sleep(200);
    for (const m of refused) expect([m, app.received(m)]).toEqual([m, false]);
    expect(waypoint.running).toBe(true);
    expect(mid.running).toBe(true);
    expect(small.running).toBe(true);
    // access-log lines of failed requests carry level "error"; anything else at that level is a fault
    expect(waypoint.records.filter((r) => r.level === "error" && r.scope !== "access")).toEqual([]);
  });
});
