// What a gRPC answer means to the plugin, for every shape the answer can take: the events a call
// or a stream reports (initial metadata, messages, trailing metadata, close with the status).
import { describe, expect, test } from "bun:test";
import { GrpcStatus, GrpcStreamReader, grpcAnswerEvents, grpcRequest, type GrpcStreamEventData } from "./grpc.ts";
import { GrpcEvent } from "./protocol.ts";

const enc = (s: string) => new TextEncoder().encode(s);
function frames(...messages: string[]): Uint8Array {
  return Buffer.concat(
    messages.map((m) => {
      const b = enc(m);
      const f = new Uint8Array(5 + b.length);
      new DataView(f.buffer).setUint32(1, b.length);
      f.set(b, 5);
      return f;
    }),
  );
}
/** The events as short strings: "initial k=v", "message text", "trailing k=v", "close N message". */
function show(events: readonly GrpcStreamEventData[]): string[] {
  const pairs = (p: readonly string[] | undefined) => (p ?? []).reduce<string[]>((a, x, i) => (i % 2 ? a : [...a, `${x}=${p![i + 1]}`]), []).join(",");
  return events.map((e) =>
    e.event === GrpcEvent.INITIAL
      ? `initial ${pairs(e.pairs)}`
      : e.event === GrpcEvent.MESSAGE
        ? `message ${new TextDecoder().decode(e.message)}`
        : e.event === GrpcEvent.TRAILING
          ? `trailing ${pairs(e.pairs)}`
          : `close ${e.status} ${e.statusMessage}`,
  );
}

describe("a unary call's answer", () => {
  test("headers, one message, trailers: metadata without pseudo-headers, the message, the status", () => {
    const ev = grpcAnswerEvents({ headers: [":status", "200", "content-type", "application/grpc"], body: frames("hello"), trailers: ["grpc-status", "0", "x-t", "1"] });
    expect(show(ev)).toEqual(["initial content-type=application/grpc", "message hello", "trailing grpc-status=0,x-t=1", "close 0 "]);
  });

  test("trailers-only (the status in the only header block): no initial metadata; grpc-message percent-decoded", () => {
    const ev = grpcAnswerEvents({ headers: [":status", "200", "grpc-status", "7", "grpc-message", "no%20way%21"], body: new Uint8Array(0), trailers: [] });
    expect(show(ev)).toEqual(["trailing grpc-status=7,grpc-message=no%20way%21", "close 7 no way!"]);
  });

  test("HTTP errors without a gRPC status map as gRPC clients map them; a 200 without one is UNKNOWN", () => {
    const at = (status: string) => grpcAnswerEvents({ headers: [":status", status], body: new Uint8Array(0), trailers: [] }).at(-1)!.status;
    expect(at("503")).toBe(GrpcStatus.UNAVAILABLE);
    expect(at("404")).toBe(GrpcStatus.UNIMPLEMENTED);
    expect(at("401")).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(at("500")).toBe(GrpcStatus.UNKNOWN);
    expect(at("200")).toBe(GrpcStatus.UNKNOWN);
  });

  test("malformed bodies are INTERNAL: truncated frames, compressed messages nobody offered", () => {
    const cut = frames("hello").subarray(0, 7);
    expect(grpcAnswerEvents({ headers: [":status", "200"], body: cut, trailers: ["grpc-status", "0"] }).at(-1)!.status).toBe(GrpcStatus.INTERNAL);
    const zipped = frames("x");
    zipped[0] = 1;
    const ev = grpcAnswerEvents({ headers: [":status", "200"], body: zipped, trailers: ["grpc-status", "0"] });
    expect(ev.some((e) => e.event === GrpcEvent.MESSAGE)).toBe(false);
    expect(ev.at(-1)!.status).toBe(GrpcStatus.INTERNAL);
  });

  test("a call that failed (no answer): only close, UNAVAILABLE with the reason", () => {
    expect(show(grpcAnswerEvents(undefined, "connection refused"))).toEqual(["close 14 connection refused"]);
  });
});

describe("a stream's answer as it arrives", () => {
  test("messages split across DATA chunks and several in one chunk come out whole, in order", () => {
    const got: GrpcStreamEventData[] = [];
    const r = new GrpcStreamReader((e) => got.push(e), () => {});
    r.headers([":status", "200"]);
    const all = frames("one", "two", "three");
    r.data(all.subarray(0, 3));
    r.data(all.subarray(3, 12));
    expect(show(got)).toEqual(["initial ", "message one"]);
    r.data(all.subarray(12));
    r.end(["grpc-status", "0"]);
    expect(show(got)).toEqual(["initial ", "message one", "message two", "message three", "trailing grpc-status=0", "close 0 "]);
  });

  test("a reset after some messages closes UNAVAILABLE; nothing after close", () => {
    const got: GrpcStreamEventData[] = [];
    let aborted = false;
    const r = new GrpcStreamReader((e) => got.push(e), () => (aborted = true));
    r.headers([":status", "200"]);
    r.data(frames("a"));
    r.error("stream reset");
    r.data(frames("b"));
    r.end(["grpc-status", "0"]);
    expect(show(got)).toEqual(["initial ", "message a", "close 14 stream reset"]);
    expect(aborted).toBe(false);
    const bad = new GrpcStreamReader(() => {}, () => (aborted = true));
    bad.headers([":status", "200"]);
    bad.data(new Uint8Array([1, 0, 0, 0, 0]));
    expect(aborted).toBe(true);
  });

  test("a message over the bound fails the stream with RESOURCE_EXHAUSTED before it is buffered", () => {
    const got: GrpcStreamEventData[] = [];
    let aborted = false;
    const r = new GrpcStreamReader((e) => got.push(e), () => (aborted = true), 16);
    r.headers([":status", "200"]);
    r.data(new Uint8Array([0, 0, 0, 1, 0])); // announces 256 bytes
    expect(aborted).toBe(true);
    expect(got.at(-1)!.status).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
  });
});

describe("grpcRequest", () => {
  test("a call as HTTP/2: POST /service/method, application/grpc, te, the deadline, the framed message", () => {
    const r = grpcRequest("authz:9000", "pkg.S", "M", ["x-a", "1", ":path", "/nope", "content-type", "text/plain"], enc("hi"), 0);
    expect(r.headers).toEqual([":method", "POST", ":path", "/pkg.S/M", ":authority", "authz:9000", "content-type", "application/grpc", "te", "trailers", "x-a", "1"]);
    expect([...r.body]).toEqual([0, 0, 0, 0, 2, 104, 105]);
  });
});
