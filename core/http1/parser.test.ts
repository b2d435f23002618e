// Table tests for the request and response parsers: every rejection gives an exact status, code and
// reason (parsed whole and byte by byte: the same answer), and accepted variants parse as expected.
import { describe, expect, test } from "bun:test";
import { bodyFraming } from "./framing.ts";
import type { Http1Limits } from "./limits.ts";
import { bytes, headsOf, parseRequests, parseResponses, split, type Recorded } from "./test-fixtures.ts";
import { H, rejections, type Rejection } from "./test-rejections.ts";

function check(r: Recorded, c: Rejection): void {
  expect(r.error).toBeDefined();
  expect({ status: r.error!.status, code: r.error!.code as string, reason: r.error!.reason }).toEqual({ status: c.status, code: c.code, reason: c.reason });
  // nothing for a refused head reaches a handler; body errors come after the head
  expect(r.heads).toBe(c.afterHead ? 1 : 0);
  expect(r.completes).toBe(0);
}

describe("request rejections", () => {
  for (const c of rejections) {
    test(`${c.name} -> ${c.status} ${c.reason}`, () => {
      const data = bytes(c.input);
      const whole = parseRequests([data], c.limits ?? {});
      check(whole, c);
      // byte by byte: the same verdict, and nothing more delivered
      const bytewise = parseRequests(split(data, Array.from({ length: data.length }, (_, i) => i)), c.limits ?? {});
      check(bytewise, c);
      expect(bytewise.events).toEqual(whole.events);
    });
  }

  test("header names with underscores can be allowed or dropped instead", () => {
    const input = bytes(`GET / HTTP/1.1\r\n${H}X_A: b\r\nX-B: c\r\n\r\n`);
    const allowed = parseRequests([input], { headersWithUnderscores: "allow" });
    expect(allowed.error).toBeUndefined();
    expect(headsOf(allowed)[0]!.headers).toEqual([["Host", "a"], ["X_A", "b"], ["X-B", "c"]]);
    const dropped = parseRequests([input], { headersWithUnderscores: "drop" });
    expect(headsOf(dropped)[0]!.headers).toEqual([["Host", "a"], ["X-B", "c"]]);
  });

  test("EOF inside a head or body is an error; between messages it is not", () => {
    expect(parseRequests([bytes("GET / HTTP/1.1\r\nHo")], {}, true).error?.reason).toBe("eof_in_head");
    expect(parseRequests([bytes(`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhel`)], {}, true).error?.reason).toBe("eof_in_body");
    const clean = parseRequests([bytes(`GET / HTTP/1.1\r\n${H}\r\n`)], {}, true);
    expect(clean.error).toBeUndefined();
    expect(clean.completes).toBe(1);
  });

  test("nothing after an error is parsed", () => {
    const r = parseRequests([bytes(`GET / HTTP/1.1\r\nHost : a\r\n\r\nGET /b HTTP/1.1\r\n${H}\r\n`)]);
    expect(r.events.filter((e) => e.kind !== "error")).toEqual([]);
  });
});

describe("accepted requests", () => {
  function head(input: string, limits: Partial<Http1Limits> = {}): Record<string, unknown> {
    const r = parseRequests([bytes(input)], limits);
    expect(r.error).toBeUndefined();
    return headsOf(r)[0]!;
  }

  test("origin-form GET", () => {
    expect(head(`GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\r\n`)).toMatchObject({
      method: "GET",
      target: "/a/b?c=d&e",
      targetForm: "origin",
      path: "/a/b?c=d&e",
      authority: "example.com:8080",
      version: "1.1",
      keepAlive: true,
      bodyKind: "none",
      expectContinue: false,
      headers: [["Host", "example.com:8080"], ["Accept", "*/*"]],
    });
  });

  test("absolute-form matching Host (case-insensitive)", () => {
    expect(head(`GET HTTP://Example.com/x?y HTTP/1.1\r\nHost: example.COM\r\n\r\n`)).toMatchObject({ targetForm: "absolute", path: "/x?y", authority: "example.COM" });
    expect(head(`GET http://a HTTP/1.1\r\n${H}\r\n`)).toMatchObject({ path: "/" });
    expect(head(`GET http://a?q HTTP/1.1\r\n${H}\r\n`)).toMatchObject({ path: "/?q" });
    expect(head(`GET https://[::1]:8443/ HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n`)).toMatchObject({ authority: "[::1]:8443" });
  });

  test("asterisk-form OPTIONS", () => {
    expect(head(`OPTIONS * HTTP/1.1\r\n${H}\r\n`)).toMatchObject({ targetForm: "asterisk", path: "*" });
  });

  test("methods are case-sensitive tokens, any token parses", () => {
    expect(head(`get / HTTP/1.1\r\n${H}\r\n`)).toMatchObject({ method: "get" });
    expect(head(`M-SEARCH / HTTP/1.1\r\n${H}\r\n`)).toMatchObject({ method: "M-SEARCH" });
  });

  test("OWS around values is trimmed, inner whitespace and obs-text kept", () => {
    expect(head(`GET / HTTP/1.1\r\n${H}X-A:  \t b \t c\t \r\nX-B:\r\nX-C: caf\xe9\r\n\r\n`)).toMatchObject({
      headers: [["Host", "a"], ["X-A", "b \t c"], ["X-B", ""], ["X-C", "caf\xe9"]],
    });
  });

  test("leading empty lines before the request line are ignored", () => {
    expect(head(`\r\n\r\nGET / HTTP/1.1\r\n${H}\r\n`)).toMatchObject({ method: "GET" });
  });

  test("HTTP/1.0: no Host needed, keep-alive only when asked", () => {
    expect(head(`GET / HTTP/1.0\r\n\r\n`)).toMatchObject({ version: "1.0", keepAlive: false, authority: undefined });
    expect(head(`GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n`)).toMatchObject({ keepAlive: true });
    expect(head(`GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n`)).toMatchObject({ keepAlive: false });
    expect(head(`GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`)).toMatchObject({ keepAlive: false });
    expect(head(`GET / HTTP/1.1\r\n${H}Connection: foo\r\nConnection: Close\r\n\r\n`)).toMatchObject({ keepAlive: false });
  });

  test("Expect: 100-continue on HTTP/1.1 only", () => {
    expect(head(`POST / HTTP/1.1\r\n${H}Expect: 100-Continue\r\nContent-Length: 1\r\n\r\n`)).toMatchObject({ expectContinue: true });
    expect(head(`POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n`)).toMatchObject({ expectContinue: false });
  });

  test("framing: Content-Length, chunked (any case), zero length", () => {
    expect(head(`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\n`)).toMatchObject({ bodyKind: "length", contentLength: 5 });
    expect(head(`POST / HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`)).toMatchObject({ bodyKind: "none", contentLength: 0 });
    expect(head(`POST / HTTP/1.1\r\n${H}Content-Length: 9007199254740991\r\n\r\n`)).toMatchObject({ contentLength: 9007199254740991 });
    expect(head(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\n\r\n`)).toMatchObject({ bodyKind: "chunked" });
    expect(head(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked , \r\n\r\n`)).toMatchObject({ bodyKind: "chunked" });
  });

  test("chunked body with extensions and trailers", () => {
    const r = parseRequests([bytes(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;name=value;x\r\nhello\r\n6 ; q="a b"\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-Other: two\r\n\r\n`)]);
    expect(r.error).toBeUndefined();
    expect(r.events.slice(1)).toEqual([
      { kind: "body", data: "hello world0123456789" },
      { kind: "trailers", pairs: [["X-Sum", "1"], ["X-Other", "two"]] },
      { kind: "complete" },
    ]);
  });

  test("pipelined requests come out one after another", () => {
    const r = parseRequests([bytes(`GET /1 HTTP/1.1\r\n${H}\r\nPOST /2 HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\n${H}\r\n`)]);
    expect(r.events.map((e) => (e.kind === "head" ? e.head.path : e.kind === "body" ? e.data : e.kind))).toEqual(["/1", "complete", "/2", "abc", "complete", "/3", "complete"]);
  });

  test("header and body limits at exactly the limit are accepted", () => {
    const line = `GET /${"a".repeat(86)} HTTP/1.1`;
    expect(line.length).toBe(100);
    expect(parseRequests([bytes(`${line}\r\n${H}\r\n`)], { maxStartLineBytes: 100 }).error).toBeUndefined();
    const fields = `${"X-A: b\r\n".repeat(99)}`;
    expect(parseRequests([bytes(`GET / HTTP/1.1\r\n${H}${fields}\r\n`)]).error).toBeUndefined();
    expect(parseRequests([bytes(`POST / HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\n0123456789`)], { maxBodyBytes: 10 }).error).toBeUndefined();
  });
});

describe("responses", () => {
  const UP = "HTTP1_UPSTREAM_PROTOCOL";
  const rejected: [string, string, string, string?][] = [
    ["CL with TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "content_length_and_transfer_encoding"],
    ["duplicate CL", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "duplicate_content_length"],
    ["TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported_transfer_encoding"],
    ["101 without Upgrade", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "unexpected_upgrade"],
    ["bad status code", "HTTP/1.1 2x0 OK\r\n\r\n", "invalid_status_line"],
    ["status below 100", "HTTP/1.1 099 Odd\r\n\r\n", "invalid_status_line"],
    ["no space after version", "HTTP/1.1200 OK\r\n\r\n", "invalid_status_line"],
    ["bad version", "HTTP/2.0 200 OK\r\n\r\n", "unsupported_version"],
    ["bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare_lf"],
    ["obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", "obs_fold"],
    ["bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid_chunk_size"],
    ["status line too long", `HTTP/1.1 200 ${"x".repeat(200)}\r\n\r\n`, "status_line_too_long", "limits"],
  ];
  for (const [name, input, reason, lim] of rejected) {
    test(`${name} -> 502 ${reason}`, () => {
      const r = parseResponses([bytes(input)], ["GET"], lim ? { maxStartLineBytes: 100 } : {});
      expect({ status: r.error?.status, code: r.error?.code, reason: r.error?.reason }).toEqual({ status: 502, code: UP, reason });
    });
  }

  test("upstream closing early -> 503 UPSTREAM_RESET", () => {
    expect(parseResponses([], ["GET"], {}, true).error).toMatchObject({ status: 503, code: "UPSTREAM_RESET", reason: "eof_before_response" });
    expect(parseResponses([bytes("HTTP/1.1 200 OK\r\nCont")], ["GET"], {}, true).error).toMatchObject({ status: 503, reason: "eof_in_head" });
    expect(parseResponses([bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")], ["GET"], {}, true).error).toMatchObject({ status: 503, reason: "eof_in_body" });
  });

  test("HEAD, 204 and 304 have no body whatever the fields say", () => {
    const r = parseResponses(
      [bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")],
      ["HEAD", "GET", "GET", "GET"],
    );
    expect(r.error).toBeUndefined();
    expect(r.events.map((e) => (e.kind === "head" ? e.head.status : e.kind === "body" ? e.data : e.kind))).toEqual([200, "complete", 204, "complete", 304, "complete", 200, "ok", "complete"]);
  });

  test("1xx responses are skipped (reported), then the final response", () => {
    const r = parseResponses([bytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")], ["POST"]);
    expect(r.events.map((e) => e.kind)).toEqual(["informational", "informational", "head", "body", "complete"]);
  });

  test("no framing fields: read until close, not reusable", () => {
    const r = parseResponses([bytes("HTTP/1.1 200 OK\r\n\r\nsome "), bytes("data")], ["GET"], {}, true);
    expect(r.error).toBeUndefined();
    expect(r.events[0]).toMatchObject({ head: { bodyKind: "close", keepAlive: false } });
    expect(r.events.slice(1)).toEqual([{ kind: "body", data: "some data" }, { kind: "complete" }]);
  });

  test("keep-alive verdicts", () => {
    const ka = (s: string): unknown => headsOf(parseResponses([bytes(s)], ["GET"]))[0]!.keepAlive;
    expect(ka("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")).toBe(true);
    expect(ka("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")).toBe(false);
    expect(ka("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")).toBe(false);
    expect(ka("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")).toBe(true);
  });

  test("a status line without a reason phrase is accepted", () => {
    const r = parseResponses([bytes("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")], ["GET"]);
    expect(r.events[0]).toMatchObject({ head: { status: 200, reason: "" } });
  });

  test("underscores are fine in response fields", () => {
    expect(parseResponses([bytes("HTTP/1.1 200 OK\r\nX_A: 1\r\nContent-Length: 0\r\n\r\n")], ["GET"]).error).toBeUndefined();
  });
});

describe("bodyFraming", () => {
  test("decisions", () => {
    expect(bodyFraming(undefined, 0, "", false)).toEqual({ kind: undefined, length: undefined });
    expect(bodyFraming(undefined, 1, "42", false)).toEqual({ kind: "length", length: 42 });
    expect(bodyFraming("chunked", 0, "", false)).toEqual({ kind: "chunked", length: undefined });
    expect(bodyFraming("CHUNKED", 0, "", false)).toEqual({ kind: "chunked", length: undefined });
    expect(bodyFraming("chunked", 1, "1", false)).toMatchObject({ reason: "content_length_and_transfer_encoding" });
    expect(bodyFraming("chunked", 0, "", true)).toMatchObject({ reason: "transfer_encoding_in_http10" });
  });
});
