// HTTP/2 abuse against the waypoint (reference/reliability.md §3 and §7 D): HTTP/2 with prior
// knowledge inside an HBONE tunnel, written frame by frame, from a client holding a genuine mesh
// identity. Each flood must end the attacker's session (GOAWAY or close) while the waypoint stays
// up, bounded in memory and responsive to other clients, and the app behind it (an h2c server that
// records every stream) must see nothing of the refused requests.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { meshCert, type PresentedCert } from "./fixtures.ts";
import {
  H2ErrorCode,
  RawInnerH2,
  RecordingH2App,
  TestMesh,
  TunnelClient,
  ZtunnelProcess,
  allocSubnet,
  getHeaders,
  localConfig,
  rssKiB,
  serviceKey,
  startWaypoint,
  until,
} from "../harness/index.ts";
import { FrameFlag, FrameType, encodeFrame, encodeHeaderBlock, headersFrame } from "../harness/h2-frames.ts";

const HOST = "server.default.svc.cluster.local";

let markerNo = 0;
const marker = (what: string): string => `/${what}-${++markerNo}-${process.pid}`;

function rstStream(streamId: number, code: number = H2ErrorCode.CANCEL): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return encodeFrame(FrameType.RST_STREAM, 0, streamId, p);
}

function ping(n: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(n, 4);
  return encodeFrame(FrameType.PING, 0, 0, p);
}

/** A header block split into HEADERS + CONTINUATION frames of at most `frameBytes` each. */
function splitHeaderBlock(streamId: number, block: Buffer, frameBytes = 16 * 1024, endStream = true): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < block.length || off === 0; off += frameBytes) {
    const part = block.subarray(off, off + frameBytes);
    const last = off + frameBytes >= block.length;
    const type = off === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    const flags = (last ? FrameFlag.END_HEADERS : 0) | (off === 0 && endStream ? FrameFlag.END_STREAM : 0);
    out.push(encodeFrame(type, flags, streamId, part));
    if (block.length === 0) break;
  }
  return out;
}

describe("waypoint HTTP/2: frame-level abuse", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  const serverIp = `${subnet}2`;
  const waypointIp = `${subnet}10`;
  const serverVip = `${subnet}100`;
  let mesh: TestMesh;
  let waypoint: ZtunnelProcess;
  let app: RecordingH2App;
  let cert: PresentedCert;
  let client: TunnelClient;
  let rssStart = 0;
  const sessions: RawInnerH2[] = [];

  beforeAll(async () => {
    const config = localConfig({
      workloads: [
        { name: "client", ip: clientIp, node: "node-a" },
        { name: "server", ip: serverIp, node: "node-b", services: { [serviceKey("server")]: { 80: 8080 } } },
        { name: "waypoint", ip: waypointIp, node: "node-w", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
      ],
      services: [
        { name: "server", vip: serverVip, ports: { 80: 8080 }, waypoint: "waypoint" },
        { name: "waypoint", vip: `${subnet}102`, ports: { 15008: 15008 } },
      ],
    });
    app = await RecordingH2App.start(serverIp, 8080);
    mesh = await TestMesh.start({ config, nodes: ["node-b"] });
    waypoint = await startWaypoint(mesh);
    cert = await meshCert(mesh.caDir, "spiffe://cluster.local/ns/default/sa/client");
    client = new TunnelClient({ address: waypointIp, cert, localAddress: clientIp });
  }, 60_000);

  afterAll(async () => {
    for (const s of sessions) s.close();
    client?.close();
    await waypoint?.stop();
    await mesh?.stop();
    await app?.close();
  });

  /** A fresh tunnel to the service with an HTTP/2 session (preface + SETTINGS sent) inside. */
  async function inner(via: TunnelClient = client): Promise<RawInnerH2> {
    const t = await via.open(`${serverVip}:80`);
    expect(t.status).toBe(200);
    const s = new RawInnerH2(t.stream);
    sessions.push(s);
    return s;
  }

  /** One GET on a fresh session; its status (the first response on the session, so HPACK-readable). */
  async function healthy(via?: TunnelClient): Promise<number | undefined> {
    const path = marker("ok");
    const s = await inner(via);
    s.write(headersFrame(1, getHeaders(path, HOST), true));
    await s.waitFor(() => s.streamDone(1) || s.finished, 10_000);
    const status = s.firstStatus(1);
    s.close();
    if (status === 200 && app.streamsFor(path).length !== 1) return -1;
    return status;
  }

  /** The waypoint ended the attacker's session: GOAWAY (any code) or the tunnel closed. */
  async function sessionEnded(s: RawInnerH2, waitMs = 5000): Promise<{ ended: boolean; goaway: number | undefined }> {
    const ended = await s.waitFor(() => s.finished, waitMs);
    return { ended, goaway: s.goawayCode() };
  }

  test("control: a GET with prior knowledge reaches the app and is answered 200", async () => {
    rssStart = await rssKiB(waypoint.proc.pid);
    expect(await healthy()).toBe(200);
  });

  test("D23 CONTINUATION flood (empty frames): the session is ended after a small count, the waypoint stays healthy and small", async () => {
    const path = marker("cont");
    const s = await inner();
    const block = encodeHeaderBlock(getHeaders(path, HOST));
    const frames = [encodeFrame(FrameType.HEADERS, FrameFlag.END_STREAM, 1, block)];
    for (let i = 0; i < 10_000; i++) frames.push(encodeFrame(FrameType.CONTINUATION, 0, 1));
    s.write(frames);
    const r = await sessionEnded(s);
    expect(r.ended).toBe(true);
    if (r.goaway !== undefined) expect(r.goaway).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
    expect(s.responseHeaders(1)).toEqual([]);
    expect(app.streamsFor(path)).toEqual([]);
    expect(await healthy()).toBe(200);
  });

  test("D23 CONTINUATION flood with payload (a header block far past the cap): session ended, nothing reaches the app", async () => {
    const path = marker("contbig");
    const s = await inner();
    const block = encodeHeaderBlock([...getHeaders(path, HOST), ...Array.from({ length: 64 }, (_, i) => [`x-pad-${i}`, "p".repeat(4000)] as [string, string])]);
    s.write(splitHeaderBlock(1, block)); // ~256 KiB in 16 KiB frames
    const r = await sessionEnded(s);
    expect(r.ended).toBe(true);
    expect(app.streamsFor(path)).toEqual([]);
    expect(await healthy()).toBe(200);
  });

  test("D23 repeated CONTINUATION floods do not grow the waypoint's memory", async () => {
    for (let round = 0; round < 20; round++) {
      const s = await inner();
      const frames = [encodeFrame(FrameType.HEADERS, FrameFlag.END_STREAM, 1, encodeHeaderBlock(getHeaders(marker("contmem"), HOST)))];
      for (let i = 0; i < 20_000; i++) frames.push(encodeFrame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(0)));
      s.write(frames);
      expect((await sessionEnded(s)).ended).toBe(true);
      s.close();
    }
    expect(await healthy()).toBe(200);
    const grown = (await rssKiB(waypoint.proc.pid)) - rssStart;
    // generous: the floods above carried ~3.6 MB; a waypoint that buffered them would hold it all
    expect(grown).toBeLessThan(96 * 1024);
  });

  test("D21 rapid reset (HEADERS + RST_STREAM x1000): the session is ended, the app sees a bounded number of requests", async () => {
    const prefix = marker("rr");
    const s = await inner();
    const frames: Buffer[] = [];
    for (let i = 0; i < 1000; i++) {
      const id = 2 * i + 1;
      frames.push(headersFrame(id, getHeaders(`${prefix}-${i}`, HOST), true), rstStream(id));
    }
    s.write(frames);
    const r = await sessionEnded(s);
    expect(r.ended).toBe(true);
    if (r.goaway !== undefined) expect(r.goaway).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
    await Bun.sleep(300);
    const reached = app.streamsFor(prefix).length;
    // the guard allows 200 resets per second; everything after the breach is dropped unread
    expect(reached).toBeLessThanOrEqual(250);
    expect(await healthy()).toBe(200);
  });

  /** Frames the waypoint sent on `ids` other than RST_STREAM and PRIORITY, as readable strings. */
  function framesOn(s: RawInnerH2, ids: ReadonlySet<number>): string[] {
    return s.frames.filter((f) => ids.has(f.streamId) && f.type !== FrameType.PRIORITY && f.type !== FrameType.RST_STREAM).map((f) => `${f.streamId}:type ${f.type}:flags ${f.flags}`);
  }

  test("streams the client reset get no further frames from the waypoint (RFC 9113 §5.1), and reach no app", async () => {
    const prefix = marker("rst");
    const s = await inner();
    // 150 pairs: past the 100-stream limit, within the reset budget, so the session lives on. One
    // write per pair: a pair then travels in one DATA frame of the tunnel, so the waypoint reads the
    // reset with its request. (One 11 KiB write could be cut between a request and its reset where
    // the tunnel's flow-control window ends; that request may then reach the app before its reset,
    // which RFC 9113 allows.)
    for (let i = 0; i < 150; i++) s.write([headersFrame(2 * i + 1, getHeaders(`${prefix}-${i}`, HOST), true), rstStream(2 * i + 1)]);
    await Bun.sleep(500);
    expect(framesOn(s, new Set(Array.from({ length: 150 }, (_, i) => 2 * i + 1)))).toEqual([]);
    expect(app.streamsFor(prefix).filter((x) => x.complete).length).toBe(0);
    expect(s.finished).toBe(false);
    s.close();
  });

  test("requests reset while their body is still open: nothing more from the waypoint on them, and the app's streams are cancelled, never completed", async () => {
    const prefix = marker("rstpost");
    const s = await inner();
    const ids = Array.from({ length: 50 }, (_, i) => 2 * i + 1);
    // opened first and reset later, so these requests do reach the app before their reset
    s.write(ids.map((id) => headersFrame(id, [[":method", "POST"], [":scheme", "http"], [":path", `${prefix}-${id}`], [":authority", HOST]], false)));
    await s.waitFor(() => app.streamsFor(prefix).length === ids.length || s.finished, 10_000);
    expect(app.streamsFor(prefix).length).toBe(ids.length);
    s.write(ids.map((id) => rstStream(id)));
    await until(() => app.streamsFor(prefix).every((x) => x.reset), 10_000, "the app's streams to be cancelled");
    await Bun.sleep(200);
    // the app never answered (no request ended), so anything on these streams would be the
    // waypoint's own answer to a stream the client had already reset
    expect(framesOn(s, new Set(ids))).toEqual([]);
    expect(app.streamsFor(prefix).filter((x) => x.complete)).toEqual([]);
    expect(await healthy()).toBe(200);
    s.close();
  });

  test("D26 stream exhaustion: streams past the concurrency limit are refused, other clients are still served", async () => {
    const prefix = marker("exh");
    const s = await inner();
    const frames: Buffer[] = [];
    // POSTs that never end: each holds a stream open at the waypoint and at the app.
    for (let i = 0; i < 150; i++) frames.push(headersFrame(2 * i + 1, [[":method", "POST"], [":scheme", "http"], [":path", `${prefix}-${i}`], [":authority", HOST]], false));
    s.write(frames);
    await s.waitFor(() => app.streamsFor(prefix).length >= 100 || s.finished, 10_000);
    await Bun.sleep(300);
    const atApp = app.streamsFor(prefix).length;
    expect(atApp).toBeLessThanOrEqual(100);
    // every stream past the 100th was refused (RST_STREAM) or the session was ended; none answered
    const excess = Array.from({ length: 50 }, (_, i) => 2 * (100 + i) + 1);
    const unrefused = excess.filter((id) => s.resetCode(id) === undefined);
    if (!s.finished) expect(unrefused).toEqual([]);
    for (const id of excess) expect([id, s.responseHeaders(id).length]).toEqual([id, 0]);
    const refusedCodes = [...new Set(excess.map((id) => s.resetCode(id)).filter((c) => c !== undefined))];
    const allowed: number[] = [H2ErrorCode.REFUSED_STREAM, H2ErrorCode.PROTOCOL_ERROR];
    for (const c of refusedCodes) expect(allowed).toContain(c!);
    // meanwhile another client (another tunnel, another connection) is served
    const other = new TunnelClient({ address: waypointIp, cert, localAddress: clientIp });
    try {
      expect(await healthy(other)).toBe(200);
    } finally {
      other.close();
    }
    // the attacker leaves: the waypoint cancels the requests it had opened at the app
    s.close();
    await until(() => app.streamsFor(prefix).every((x) => x.reset || x.complete), 10_000, "the app's streams to be cancelled");
  });

  test("D26 a GET refused past the limit gets RST_STREAM REFUSED_STREAM (retry-safe, RFC 9113 §8.7), never a bare DATA frame", async () => {
    const prefix = marker("exhget");
    const s = await inner();
    const hold: Buffer[] = [];
    for (let i = 0; i < 100; i++) hold.push(headersFrame(2 * i + 1, [[":method", "POST"], [":scheme", "http"], [":path", `${prefix}-${i}`], [":authority", HOST]], false));
    s.write(hold);
    await s.waitFor(() => app.streamsFor(prefix).length >= 100 || s.finished, 10_000);
    const gets = Array.from({ length: 10 }, (_, i) => 2 * (100 + i) + 1);
    s.write(gets.map((id) => headersFrame(id, getHeaders(`${prefix}-get-${id}`, HOST), true)));
    await s.waitFor(() => gets.every((id) => s.streamDone(id)) || s.finished, 5000);
    const seen = Object.fromEntries(gets.map((id) => [id, s.frames.filter((f) => f.streamId === id).map((f) => (f.type === FrameType.RST_STREAM ? `RST_STREAM ${f.payload.readUInt32BE(0)}` : `type ${f.type}`)).join(",")]));
    expect(seen).toEqual(Object.fromEntries(gets.map((id) => [id, `RST_STREAM ${H2ErrorCode.REFUSED_STREAM}`])));
    expect(app.streamsFor(`${prefix}-get`)).toEqual([]);
    s.close();
  });

  test("D25 PING flood: the session is ended", async () => {
    const s = await inner();
    s.write(Array.from({ length: 5000 }, (_, i) => ping(i)));
    const r = await sessionEnded(s);
    expect(r.ended).toBe(true);
    if (r.goaway !== undefined) expect(r.goaway).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
    const acks = s.frames.filter((f) => f.type === FrameType.PING && f.flags & FrameFlag.ACK).length;
    expect(acks).toBeLessThanOrEqual(1000);
    expect(await healthy()).toBe(200);
  });

  test("D25 SETTINGS flood: the session is ended", async () => {
    const s = await inner();
    s.write(Array.from({ length: 5000 }, () => encodeFrame(FrameType.SETTINGS, 0, 0)));
    const r = await sessionEnded(s);
    expect(r.ended).toBe(true);
    if (r.goaway !== undefined) expect(r.goaway).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
    expect(await healthy()).toBe(200);
  });

  test("D25 empty DATA frame flood: the session is ended", async () => {
    const s = await inner();
    const frames = [headersFrame(1, [[":method", "POST"], [":scheme", "http"], [":path", marker("empty")], [":authority", HOST]], false)];
    for (let i = 0; i < 5000; i++) frames.push(encodeFrame(FrameType.DATA, 0, 1));
    s.write(frames);
    expect((await sessionEnded(s)).ended).toBe(true);
    expect(await healthy()).toBe(200);
  });

  test("D24 a header list over 60 KiB (within the frame guard's block cap) is refused (431 or reset), never forwarded", async () => {
    const path = marker("bighdr");
    const s = await inner();
    const block = encodeHeaderBlock([...getHeaders(path, HOST), ...Array.from({ length: 10 }, (_, i) => [`x-big-${i}`, "b".repeat(7 * 1024)] as [string, string])]);
    s.write(splitHeaderBlock(1, block));
    await s.waitFor(() => s.streamDone(1) || s.finished, 5000);
    const status = s.firstStatus(1);
    const refused = status === 431 || s.resetCode(1) !== undefined || s.finished;
    expect({ status, refused }).toEqual({ status, refused: true });
    expect(status === undefined || status === 431).toBe(true);
    await Bun.sleep(100);
    expect(app.streamsFor(path)).toEqual([]);
    expect(await healthy()).toBe(200);
  });

  test("D24 more than 100 header fields are refused (431 or reset), never forwarded", async () => {
    const path = marker("manyhdr");
    const s = await inner();
    s.write(headersFrame(1, [...getHeaders(path, HOST), ...Array.from({ length: 150 }, (_, i) => [`x-f${i}`, "v"] as [string, string])], true));
    await s.waitFor(() => s.streamDone(1) || s.finished, 5000);
    const status = s.firstStatus(1);
    expect({ status, refused: status === 431 || s.resetCode(1) !== undefined || s.finished }).toEqual({ status, refused: true });
    expect(status === undefined || status === 431).toBe(true);
    await Bun.sleep(100);
    expect(app.streamsFor(path)).toEqual([]);
  });

  test("CONNECT inside the inner HTTP/2 session is answered 405 and nothing is opened", async () => {
    const s = await inner();
    s.write(headersFrame(1, [[":method", "CONNECT"], [":authority", `${serverIp}:8080`]], false));
    await s.waitFor(() => s.streamDone(1) || s.responseHeaders(1).length > 0 || s.finished, 5000);
    expect(s.firstStatus(1)).toBe(405);
    await Bun.sleep(100);
    expect(app.streams.filter((x) => x.method === "CONNECT")).toEqual([]);
  });

  test("connection-specific and malformed request headers are refused (400 or stream error), never forwarded", async () => {
    const cases: [string, [string, string][]][] = [
      ["connection: keep-alive", [["connection", "keep-alive"]]],
      ["keep-alive", [["keep-alive", "timeout=5"]]],
      ["transfer-encoding: chunked", [["transfer-encoding", "chunked"]]],
      ["upgrade: h2c", [["upgrade", "h2c"]]],
      ["proxy-connection", [["proxy-connection", "keep-alive"]]],
      ["te: gzip (only 'trailers' is allowed)", [["te", "gzip"]]],
      ["CR LF in a value", [["x-a", "b\r\nx-injected: 1"]]],
      ["upper-case field name", [["X-Upper", "a"]]],
    ];
    for (const [what, extra] of cases) {
      const path = marker("connhdr");
      const s = await inner();
      s.write(headersFrame(1, getHeaders(path, HOST, extra), true));
      await s.waitFor(() => s.streamDone(1) || s.finished, 5000);
      const status = s.firstStatus(1);
      const refused = status === 400 || s.resetCode(1) !== undefined || (s.finished && status === undefined);
      expect([what, status, refused]).toEqual([what, status, true]);
      await Bun.sleep(50);
      expect([what, app.streamsFor(path).length]).toEqual([what, 0]);
      s.close();
    }
  });

  test("malformed pseudo-headers are refused: no :path, relative :path, no :method", async () => {
    const cases: [string, [string, string][]][] = [
      ["no :path", [[":method", "GET"], [":scheme", "http"], [":authority", HOST]]],
      ["relative :path", [[":method", "GET"], [":scheme", "http"], [":path", "rel"], [":authority", HOST]]],
      ["no :method", [[":scheme", "http"], [":path", "/x"], [":authority", HOST]]],
      ["method with (", [[":method", "G(T"], [":scheme", "http"], [":path", "/x"], [":authority", HOST]]],
    ];
    const before = app.streams.length;
    for (const [what, headers] of cases) {
      const s = await inner();
      s.write(headersFrame(1, headers, true));
      await s.waitFor(() => s.streamDone(1) || s.finished, 5000);
      const status = s.firstStatus(1);
      expect([what, status === 400 || s.resetCode(1) !== undefined || (s.finished && status === undefined)]).toEqual([what, true]);
      s.close();
    }
    await Bun.sleep(100);
    expect(app.streams.length).toBe(before);
  });

  test("after every attack the waypoint process is up, serving, and its memory bounded", async () => {
    expect(waypoint.running).toBe(true);
    expect(await healthy()).toBe(200);
    const grown = (await rssKiB(waypoint.proc.pid)) - rssStart;
    expect(grown).toBeLessThan(128 * 1024);
    await until(() => waypoint.running, 100);
    expect(waypoint.records.filter((r) => r.level === "error" && r.scope !== "access")).toEqual([]);
  });
});
