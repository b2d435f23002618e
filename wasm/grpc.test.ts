// What a gRPC callout's answer means to the plugin, for every shape the answer can take.
import { describe, expect, test } from "bun:test";
import { GrpcStatus, grpcOutcome, grpcRequest } from "./grpc.ts";

const enc = (s: string) => new TextEncoder().encode(s);
function frames(...messages: string[]): Uint8Array {
  const parts = messages.map((m) => {
    const b = enc(m);
    const f = new Uint8Array(5 + b.length);
    new DataView(f.buffer).setUint32(1, b.length);
    f.set(b, 5);
    return f;
  });
  return Buffer.concat(parts);
}
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("grpcOutcome", () => {
  test("headers, one message, trailers: metadata without pseudo-headers, the message, the status", () => {
    const o = grpcOutcome({ headers: [":status", "200", "content-type", "application/grpc"], body: frames("hello"), trailers: ["grpc-status", "0", "x-t", "1"] });
    expect(o.initial).toEqual(["content-type", "application/grpc"]);
    expect(o.messages.map(text)).toEqual(["hello"]);
    expect(o.trailing).toEqual(["grpc-status", "0", "x-t", "1"]);
    expect(o.status).toBe(GrpcStatus.OK);
  });

  test("trailers-only (the status in the only header block): no initial metadata, the message percent-decoded", () => {
    const o = grpcOutcome({ headers: [":status", "200", "grpc-status", "7", "grpc-message", "no%20way%21"], body: new Uint8Array(0), trailers: [] });
    expect(o.initial).toBeUndefined();
    expect(o.trailing).toEqual(["grpc-status", "7", "grpc-message", "no%20way%21"]);
    expect(o.status).toBe(7);
    expect(o.message).toBe("no way!");
  });

  test("several messages are delivered one by one", () => {
    expect(grpcOutcome({ headers: [":status", "200"], body: frames("a", "", "bc"), trailers: ["grpc-status", "0"] }).messages.map(text)).toEqual(["a", "", "bc"]);
  });

  test("HTTP errors without a gRPC status map as gRPC clients map them; a 200 without one is UNKNOWN", () => {
    const at = (status: string) => grpcOutcome({ headers: [":status", status], body: new Uint8Array(0), trailers: [] }).status;
    expect(at("503")).toBe(GrpcStatus.UNAVAILABLE);
    expect(at("404")).toBe(GrpcStatus.UNIMPLEMENTED);
    expect(at("401")).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(at("500")).toBe(GrpcStatus.UNKNOWN);
    expect(at("200")).toBe(GrpcStatus.UNKNOWN);
  });

  test("malformed bodies are INTERNAL: truncated frames, compressed messages nobody offered", () => {
    const cut = frames("hello").subarray(0, 7);
    expect(grpcOutcome({ headers: [":status", "200"], body: cut, trailers: ["grpc-status", "0"] }).status).toBe(GrpcStatus.INTERNAL);
    const zipped = frames("x");
    zipped[0] = 1;
    const o = grpcOutcome({ headers: [":status", "200"], body: zipped, trailers: ["grpc-status", "0"] });
    expect(o.status).toBe(GrpcStatus.INTERNAL);
    expect(o.messages).toEqual([]);
  });

  test("a call that failed (no answer): UNAVAILABLE with the reason, no metadata callbacks", () => {
    const o = grpcOutcome(undefined, "connection refused");
    expect(o).toEqual({ initial: undefined, messages: [], trailing: undefined, status: GrpcStatus.UNAVAILABLE, message: "connection refused" });
  });
});

describe("grpcRequest", () => {
  test("a unary call as HTTP/2: POST /service/method, application/grpc, te, the deadline, the framed message", () => {
    const r = grpcRequest("authz:9000", "pkg.S", "M", ["x-a", "1", ":path", "/nope", "content-type", "text/plain"], enc("hi"), 0);
    expect(r.headers).toEqual([":method", "POST", ":path", "/pkg.S/M", ":authority", "authz:9000", "content-type", "application/grpc", "te", "trailers", "x-a", "1"]);
    expect([...r.body]).toEqual([0, 0, 0, 0, 2, 104, 105]);
  });
});
