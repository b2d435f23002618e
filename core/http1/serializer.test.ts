// Serializer and header helpers: refusals of anything that could inject a line or a message,
// framing fields owned by the codec, hop-by-hop stripping and X-Forwarded-For.
import { describe, expect, test } from "bun:test";
import { ErrorCodes } from "../errors/index.ts";
import { Http1Error } from "./errors.ts";
import { HeaderList, appendForwardedFor, stripHopByHop } from "./headers.ts";
import { resolveHttp1Limits } from "./limits.ts";
import { encodeChunk, encodeLastChunk, errorResponse, writeRequestHead, writeResponseHead } from "./serializer.ts";

const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");

function refused(fn: () => unknown, reason: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(Http1Error);
  expect((err as Http1Error).code).toBe(ErrorCodes.HTTP1_INVALID_FIELD);
  expect((err as Http1Error).reason).toBe(reason);
}

describe("writing heads", () => {
  test("request head with codec-owned framing", () => {
    const h = writeRequestHead("POST", "/a?b", [["Host", "svc"], ["Content-Length", "999"], ["Transfer-Encoding", "gzip"], ["Connection", "upgrade"], ["X-A", "1"]], { kind: "length", length: 3 });
    expect(text(h)).toBe("POST /a?b HTTP/1.1\r\nHost: svc\r\nX-A: 1\r\ncontent-length: 3\r\n\r\n");
    expect(text(writeRequestHead("GET", "/", [["Host", "svc"]], { kind: "none" }, { close: true }))).toBe("GET / HTTP/1.1\r\nHost: svc\r\nconnection: close\r\n\r\n");
    expect(text(writeRequestHead("PUT", "/", [["Host", "svc"]], { kind: "none" }))).toBe("PUT / HTTP/1.1\r\nHost: svc\r\ncontent-length: 0\r\n\r\n");
    expect(text(writeRequestHead("POST", "/", [], { kind: "chunked" }))).toBe("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n");
  });

  test("response head: framing per status and request", () => {
    expect(text(writeResponseHead(200, undefined, [["X-A", "1"]], { kind: "length", length: 2 }))).toBe("HTTP/1.1 200 OK\r\nX-A: 1\r\ncontent-length: 2\r\n\r\n");
    expect(text(writeResponseHead(200, "Fine", [], { kind: "none" }))).toBe("HTTP/1.1 200 Fine\r\ncontent-length: 0\r\n\r\n");
    expect(text(writeResponseHead(204, undefined, [], { kind: "length", length: 5 }))).toBe("HTTP/1.1 204 No Content\r\n\r\n");
    expect(text(writeResponseHead(304, undefined, [], { kind: "length", length: 5 }))).toBe("HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n");
    expect(text(writeResponseHead(200, undefined, [], { kind: "none" }, { headRequest: true }))).toBe("HTTP/1.1 200 OK\r\n\r\n");
    expect(text(writeResponseHead(200, undefined, [], { kind: "close" }))).toBe("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
    expect(text(writeResponseHead(200, undefined, [], { kind: "length", length: 0 }, { keepAlive10: true }))).toBe("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n");
    expect(text(writeResponseHead(599, undefined, [], { kind: "none" }))).toBe("HTTP/1.1 599 \r\ncontent-length: 0\r\n\r\n");
  });

  test("obs-text values round-trip byte for byte", () => {
    expect(Array.from(writeResponseHead(200, undefined, [["X-A", "caf\xe9"]], { kind: "none" }).subarray(17, 28))).toEqual(Array.from(Buffer.from("X-A: caf\xe9\r\n", "latin1")));
  });

  test("injection attempts are refused", () => {
    refused(() => writeResponseHead(200, undefined, [["X-A", "a\r\nSet-Cookie: x=1"]], { kind: "none" }), "invalid_header_value");
    refused(() => writeResponseHead(200, undefined, [["X-A", "a\nb"]], { kind: "none" }), "invalid_header_value");
    refused(() => writeResponseHead(200, undefined, [["X-A", "a\rb"]], { kind: "none" }), "invalid_header_value");
    refused(() => writeResponseHead(200, undefined, [["X-A", "a\x00b"]], { kind: "none" }), "invalid_header_value");
    refused(() => writeResponseHead(200, undefined, [["X-A", " padded"]], { kind: "none" }), "invalid_header_value");
    refused(() => writeResponseHead(200, undefined, [["X-A", "\u0100"]], { kind: "none" }), "invalid_header_value");
    refused(() => writeResponseHead(200, undefined, [["X-A\r\nX-B", "1"]], { kind: "none" }), "invalid_header_name");
    refused(() => writeResponseHead(200, undefined, [["X A", "1"]], { kind: "none" }), "invalid_header_name");
    refused(() => writeResponseHead(200, undefined, [["", "1"]], { kind: "none" }), "invalid_header_name");
    refused(() => writeResponseHead(200, "OK\r\nX: y", [], { kind: "none" }), "invalid_reason");
    refused(() => writeResponseHead(42, undefined, [], { kind: "none" }), "invalid_status");
    refused(() => writeRequestHead("GET /x HTTP/1.1\r\n", "/", [], { kind: "none" }), "invalid_method");
    refused(() => writeRequestHead("GET", "/a b", [], { kind: "none" }), "invalid_target");
    refused(() => writeRequestHead("GET", "/a\r\nX: 1", [], { kind: "none" }), "invalid_target");
    refused(() => writeRequestHead("GET", "", [], { kind: "none" }), "invalid_target");
    refused(() => writeRequestHead("GET", "/", [], { kind: "close" }), "invalid_framing");
    refused(() => writeRequestHead("GET", "/", [], { kind: "length", length: -1 }), "invalid_content_length");
  });

  test("chunks and trailers", () => {
    expect(text(encodeChunk(Buffer.from("hello world, chunked")))).toBe("14\r\nhello world, chunked\r\n");
    expect(text(encodeLastChunk())).toBe("0\r\n\r\n");
    expect(text(encodeLastChunk([["X-Sum", "abc"]]))).toBe("0\r\nX-Sum: abc\r\n\r\n");
    refused(() => encodeLastChunk([["Content-Length", "5"]]), "forbidden_trailer");
    refused(() => encodeLastChunk([["X-T", "a\r\n\r\nGET / HTTP/1.1"]]), "invalid_header_value");
  });

  test("error response closes the connection", () => {
    const e = new Http1Error(ErrorCodes.HTTP1_FRAMING, "content_length_and_transfer_encoding", "x");
    expect(text(errorResponse(e))).toBe(
      "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 37\r\nconnection: close\r\n\r\ncontent_length_and_transfer_encoding\n",
    );
  });
});

describe("header helpers", () => {
  test("HeaderList keeps order and case, looks up case-insensitively", () => {
    const h = HeaderList.from([["Accept", "a"], ["X-A", "1"], ["x-a", "2"], ["Set-Cookie", "c=1"], ["set-cookie", "d=2"]]);
    expect(h.get("x-A")).toBe("1, 2");
    expect(h.getAll("SET-COOKIE")).toEqual(["c=1", "d=2"]);
    expect(h.count("x-a")).toBe(2);
    h.set("X-a", "3");
    expect([...h]).toEqual([["Accept", "a"], ["X-a", "3"], ["Set-Cookie", "c=1"], ["set-cookie", "d=2"]]);
    expect(h.delete("set-cookie")).toBe(2);
    h.append("New", "v");
    expect([...h]).toEqual([["Accept", "a"], ["X-a", "3"], ["New", "v"]]);
    expect(h.has("new")).toBe(true);
    expect(h.get("missing")).toBeUndefined();
  });

  test("hop-by-hop fields and the ones Connection names are stripped, Host never", () => {
    const h = HeaderList.from([
      ["Host", "svc"],
      ["Connection", "keep-alive, X-Secret, host, Content-Length"],
      ["Keep-Alive", "timeout=5"],
      ["Proxy-Connection", "keep-alive"],
      ["TE", "trailers"],
      ["Transfer-Encoding", "chunked"],
      ["Upgrade", "websocket"],
      ["X-Secret", "1"],
      ["Content-Length", "5"],
      ["Authorization", "Bearer x"],
    ]);
    expect([...stripHopByHop(h)]).toEqual([["Host", "svc"], ["Content-Length", "5"], ["Authorization", "Bearer x"]]);
    expect(h.size).toBe(10); // the original is untouched
  });

  test("x-forwarded-for appends the client address", () => {
    const h = HeaderList.from([["X-Forwarded-For", "1.1.1.1"], ["x-forwarded-for", "2.2.2.2"]]);
    appendForwardedFor(h, "10.0.0.1");
    expect(h.getAll("x-forwarded-for")).toEqual(["1.1.1.1, 2.2.2.2, 10.0.0.1"]);
    const empty = new HeaderList();
    appendForwardedFor(empty, "10.0.0.2");
    expect([...empty]).toEqual([["x-forwarded-for", "10.0.0.2"]]);
  });

  test("limits are validated once", () => {
    expect(() => resolveHttp1Limits({ maxHeadBytes: 0 })).toThrow();
    expect(() => resolveHttp1Limits({ maxHeaderCount: 1.5 })).toThrow();
    expect(() => resolveHttp1Limits({ maxStartLineBytes: 100_000 })).toThrow();
    const l = resolveHttp1Limits({ maxBodyBytes: 10 });
    expect(resolveHttp1Limits(l)).toBe(l);
    expect(resolveHttp1Limits({}).maxBodyBytes).toBe(Infinity);
  });
});
