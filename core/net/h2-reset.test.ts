// What a reset puts on the wire. Bun's `close(code)` ends a stream (DATA with END_STREAM) before
// its RST_STREAM, and on a stream the peer has already ended sends no RST_STREAM at all, so a peer
// would read a cut-off request or response as complete. resetH2Stream must write one RST_STREAM
// and nothing else; each case is checked by a raw frame reader on the other end of a real socket.
import { afterEach, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import net from "node:net";
import { FrameFlag, FrameType, H2_PREFACE, encodeFrame, headersFrame, parseFrames, settingsFrame, type H2Frame } from "../../test/harness/h2-frames.ts";
import { h2ByteStream, h2constants, resetH2Stream, type H2ClientStream, type H2ServerStream } from "./index.ts";

/** Frames a raw peer received on one socket, SETTINGS answered. */
class RawPeer {
  readonly frames: H2Frame[] = [];
  private buf = Buffer.alloc(0);
  private preface: boolean;
  constructor(
    readonly sock: net.Socket,
    expectPreface: boolean,
  ) {
    this.preface = !expectPreface;
    sock.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      const r = parseFrames(this.buf, !this.preface);
      if (r.preface) this.preface = true;
      this.buf = this.buf.subarray(this.buf.length - r.trailing);
      for (const f of r.frames) {
        if (f.type === FrameType.SETTINGS && !(f.flags & FrameFlag.ACK)) sock.write(settingsFrame([], true));
        this.frames.push(f);
      }
    });
    sock.on("error", () => {});
  }
  on(streamId: number): string[] {
    return this.frames
      .filter((f) => f.streamId === streamId && f.type !== FrameType.WINDOW_UPDATE && f.type !== FrameType.PRIORITY)
      .map((f) => (f.type === FrameType.RST_STREAM ? `RST_STREAM ${f.payload.readUInt32BE(0)}` : `${f.type === FrameType.DATA ? "DATA" : f.type === FrameType.HEADERS ? "HEADERS" : `type ${f.type}`}${f.flags & FrameFlag.END_STREAM ? " END_STREAM" : ""}`));
  }
  async until(pred: () => boolean): Promise<void> {
    for (let i = 0; i < 200 && !pred(); i++) await Bun.sleep(5);
  }
}

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A node:http2 server and a raw client that sends `requests`; resolves with each server stream. */
async function serverSide(requests: Buffer[]): Promise<{ peer: RawPeer; streams: H2ServerStream[] }> {
  const streams: H2ServerStream[] = [];
  const server = http2.createServer();
  server.on("stream", (s: H2ServerStream) => {
    s.on("error", () => {});
    streams.push(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const sock = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  closers.push(() => {
    sock.destroy();
    server.close();
  });
  const peer = new RawPeer(sock, false);
  await new Promise<void>((r) => sock.once("connect", r));
  sock.write(Buffer.concat([H2_PREFACE, settingsFrame(), ...requests]));
  await peer.until(() => streams.length === requests.length);
  expect(streams.length).toBe(requests.length);
  return { peer, streams };
}

/** A raw server and a node:http2 client session on it. */
async function clientSide(): Promise<{ peer: RawPeer; session: http2.ClientHttp2Session }> {
  let peer!: RawPeer;
  const server = net.createServer((sock) => {
    peer = new RawPeer(sock, true);
    sock.write(settingsFrame());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  session.on("error", () => {});
  closers.push(() => {
    session.destroy();
    server.close();
  });
  await new Promise<void>((r) => session.once("connect", r));
  return { peer, session };
}

const GET = (id: number) => headersFrame(id, [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "a"]], true);
const POST = (id: number) => headersFrame(id, [[":method", "POST"], [":scheme", "http"], [":path", "/"], [":authority", "a"]], false);

describe("resetH2Stream puts one RST_STREAM on the wire, no END_STREAM before it", () => {
  test("a response cut off mid-body (the request had ended): the client gets RST_STREAM, not a complete response", async () => {
    const { peer, streams } = await serverSide([GET(1), GET(3)]);
    for (const s of streams) {
      s.respond({ ":status": 200 }, { waitForTrailers: s.id === 3 });
      s.write("partial");
    }
    await peer.until(() => peer.on(3).length === 2);
    resetH2Stream(streams[0]!, h2constants.NGHTTP2_INTERNAL_ERROR);
    resetH2Stream(streams[1]!, h2constants.NGHTTP2_INTERNAL_ERROR);
    await peer.until(() => peer.on(3).length === 3 && peer.on(1).length === 3);
    await Bun.sleep(50);
    expect(peer.on(1)).toEqual(["HEADERS", "DATA", "RST_STREAM 2"]);
    expect(peer.on(3)).toEqual(["HEADERS", "DATA", "RST_STREAM 2"]);
  });

  test("a request refused while its body is open: RST_STREAM with the code given", async () => {
    const { peer, streams } = await serverSide([POST(1)]);
    resetH2Stream(streams[0]!, h2constants.NGHTTP2_REFUSED_STREAM);
    await peer.until(() => peer.on(1).length > 0);
    await Bun.sleep(50);
    expect(peer.on(1)).toEqual(["RST_STREAM 7"]);
  });

  test("an upstream request cancelled mid-body: the server gets RST_STREAM CANCEL, never a request that looks whole", async () => {
    const { peer, session } = await clientSide();
    const plain: H2ClientStream = session.request({ ":method": "POST", ":path": "/a" }, { endStream: false });
    const trailered: H2ClientStream = session.request({ ":method": "POST", ":path": "/b" }, { endStream: false, waitForTrailers: true });
    for (const s of [plain, trailered]) {
      s.on("error", () => {});
      s.write("part");
    }
    await peer.until(() => peer.on(3).length === 2);
    resetH2Stream(plain, h2constants.NGHTTP2_CANCEL);
    resetH2Stream(trailered, h2constants.NGHTTP2_CANCEL);
    await peer.until(() => peer.on(1).length === 3 && peer.on(3).length === 3);
    await Bun.sleep(50);
    expect(peer.on(1)).toEqual(["HEADERS", "DATA", "RST_STREAM 8"]);
    expect(peer.on(3)).toEqual(["HEADERS", "DATA", "RST_STREAM 8"]);
  });

  test("a tunnel's ByteStream destroyed: CANCEL, or INTERNAL_ERROR for an error; a finished stream gets nothing more", async () => {
    const { peer, session } = await clientSide();
    const [a, b, c] = [1, 2, 3].map(() => {
      const s = session.request({ ":method": "CONNECT", ":authority": "10.0.0.1:80" }, { endStream: false });
      s.on("error", () => {});
      return s;
    }) as [H2ClientStream, H2ClientStream, H2ClientStream];
    await peer.until(() => peer.on(5).length === 1);
    h2ByteStream(a).destroy();
    h2ByteStream(b).destroy(new Error("the app reset its connection"));
    // c is answered and ended by the peer and ends its side: closed, nothing to reset
    peer.sock.write(encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, 5, Buffer.from([0x88])));
    const bc = h2ByteStream(c);
    await new Promise<void>((r) => (c.closed ? r() : (c.once("close", () => r()), c.resume(), c.end())));
    bc.destroy();
    await peer.until(() => peer.on(1).length === 2 && peer.on(3).length === 2);
    await Bun.sleep(50);
    expect(peer.on(1)).toEqual(["HEADERS", "RST_STREAM 8"]);
    expect(peer.on(3)).toEqual(["HEADERS", "RST_STREAM 2"]);
    expect(peer.on(5)).toEqual(["HEADERS", "DATA END_STREAM"]);
  });
});
