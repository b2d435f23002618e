// Property tests: valid messages split anywhere parse identically; random and mutated bytes never
// throw, never buffer past the limits, and get the same verdict however they are split; whatever
// the serializer agrees to write parses back to exactly the same fields (no injection).
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Http1Error } from "./errors.ts";
import { writeRequestHead, writeResponseHead, encodeChunk, encodeLastChunk } from "./serializer.ts";
import { bytes, headsOf, parseRequests, parseResponses, split } from "./test-fixtures.ts";

const RUNS = 300;

const TCHARS = "!#$%&'*+-.^`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const NAME_CHARS = TCHARS.replace("_", "");
const VCHARS = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join("") + "\xa0\xe9\xff";
const PATH_CHARS = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i))
  .filter((c) => c !== "#")
  .join("");
const RESERVED = new Set(["host", "content-length", "transfer-encoding", "connection", "keep-alive", "expect", "te", "trailer", "upgrade", "proxy-connection"]);

const token = (chars: string, max: number) => fc.string({ unit: fc.constantFrom(...chars), minLength: 1, maxLength: max });
const fieldName = token(NAME_CHARS, 12).filter((n) => !RESERVED.has(n.toLowerCase()));
const fieldValue = fc
  .array(fc.oneof(token(VCHARS, 8), fc.constantFrom(" ", "\t")), { maxLength: 6 })
  .map((parts) => parts.join("").replace(/^[ \t]+|[ \t]+$/g, ""));
const fields = fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 8 });
const body = fc.uint8Array({ maxLength: 400 });

interface GenRequest {
  method: string;
  path: string;
  headers: [string, string][];
  body: Uint8Array;
  framing: "length" | "chunked";
  cuts: number[];
  trailers: [string, string][];
}

const request: fc.Arbitrary<GenRequest> = fc.record({
  method: token(TCHARS.replace("_", ""), 8).filter((m) => m !== "CONNECT"),
  path: token(PATH_CHARS, 40).map((p) => `/${p}`),
  headers: fields,
  body,
  framing: fc.constantFrom("length" as const, "chunked" as const),
  cuts: fc.array(fc.nat({ max: 400 }), { maxLength: 5 }),
  trailers: fields,
});

function encodeRequest(r: GenRequest): Uint8Array {
  let head = `${r.method} ${r.path} HTTP/1.1\r\nHost: svc.ns:80\r\n`;
  for (const [n, v] of r.headers) head += `${n}: ${v}\r\n`;
  const parts: Uint8Array[] = [];
  if (r.framing === "length") {
    head += `Content-Length: ${r.body.length}\r\n\r\n`;
    parts.push(bytes(head), r.body);
  } else {
    head += "Transfer-Encoding: chunked\r\n\r\n";
    parts.push(bytes(head));
    for (const piece of split(r.body, r.cuts)) if (piece.length > 0) parts.push(encodeChunk(piece));
    parts.push(encodeLastChunk(r.trailers));
  }
  return Buffer.concat(parts);
}

const cutsOf = (len: number) => fc.array(fc.nat({ max: Math.max(0, len) }), { maxLength: 20 });

describe("valid requests", () => {
  test("parse to what was generated, identically however the bytes are split", () => {
    fc.assert(
      fc.property(
        fc.array(request, { minLength: 1, maxLength: 3 }).chain((reqs) => {
          const wire = Buffer.concat(reqs.map(encodeRequest));
          return fc.tuple(fc.constant(reqs), fc.constant(wire), cutsOf(wire.length));
        }),
        ([reqs, wire, cuts]) => {
          const whole = parseRequests([wire]);
          expect(whole.error).toBeUndefined();
          expect(whole.completes).toBe(reqs.length);
          const heads = headsOf(whole);
          reqs.forEach((r, i) => {
            const h = heads[i]!;
            expect(h.method).toBe(r.method);
            expect(h.path).toBe(r.path);
            expect(h.headers.slice(1, 1 + r.headers.length)).toEqual(r.headers);
          });
          const bodies = whole.events.filter((e) => e.kind === "body").map((e) => (e as { data: string }).data);
          expect(bodies).toEqual(reqs.filter((r) => r.body.length > 0).map((r) => Buffer.from(r.body).toString("latin1")));
          const splitParse = parseRequests(split(wire, cuts));
          expect(splitParse.events).toEqual(whole.events);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

const LIMITS = { maxStartLineBytes: 128, maxHeadBytes: 512, maxHeaderCount: 10, maxTrailerBytes: 128, maxChunkExtensionBytes: 64, maxBodyBytes: 4096 };
const LINE_BOUND = Math.max(LIMITS.maxHeadBytes, 16 + 2 + 64 + LIMITS.maxChunkExtensionBytes, LIMITS.maxTrailerBytes);

/** Random input biased toward HTTP syntax so the fuzzing gets past the request line. */
const fragments = fc.constantFrom(
  "GET ", "POST ", "/", "/a?b", " HTTP/1.1", " HTTP/1.0", "\r\n", "\r", "\n", "Host: a", ":", " ", "\t",
  "Content-Length: ", "Transfer-Encoding: ", "chunked", "gzip", ",", "0", "5", "a", "ff", ";ext=1", "\x00", "\xff", "_", "X-A: b",
);
/** Messages assembled from plausible and broken lines, so the fuzzing reaches heads, bodies and trailers. */
const rare = <T>(common: fc.Arbitrary<T>, odd: fc.Arbitrary<T>, weight = 12): fc.Arbitrary<T> =>
  fc.oneof({ arbitrary: common, weight }, { arbitrary: odd, weight: 1 });
const eol = rare(fc.constant("\r\n"), fc.constantFrom("\n", "\r", "\r\r\n"), 25);
const startLine = rare(
  fc.constantFrom("GET / HTTP/1.1", "POST /x HTTP/1.1", "GET / HTTP/1.0", "OPTIONS * HTTP/1.1", "GET http://a/ HTTP/1.1"),
  fc.constantFrom("GET http://b/ HTTP/1.1", "CONNECT a:1 HTTP/1.1", "GET / HTTP/2.0", "GET  / HTTP/1.1", "G(T / HTTP/1.1", "GET /#f HTTP/1.1", ""),
  6,
);
const hostLine = rare(fc.constant("Host: a"), fc.constantFrom("Host: b", "Host:", "X-No-Host: 1"), 8);
const fieldLine = rare(
  fc.constantFrom("X-A: b", "Accept: */*", "X-C: caf\xe9", "Content-Length: 5", "Content-Length: 0", "Transfer-Encoding: chunked", "Connection: keep-alive", "Expect: 100-continue"),
  fc.constantFrom(
    "Host: a", "Content-Length: 5, 5", "Content-Length: +5", "Transfer-Encoding: gzip, chunked", "Transfer-Encoding: chunked, gzip",
    "Connection: close", " folded", "X_A: b", "X-A : b", "X-B: \x00",
  ),
  4,
);
const bodyPart = fc.constantFrom("5\r\nhello\r\n", "0\r\n\r\n", "0\r\nX-T: 1\r\n\r\n", "hello", "ff;x=1\r\n", "5 \r\n", "\r\n", "3\nabc\r\n", "abcde");
const structured = fc
  .array(
    fc.tuple(startLine, eol, fc.array(fc.tuple(fieldLine, eol), { maxLength: 5 }).chain((fl) => hostLine.map((h) => [[h, "\r\n"] as [string, string], ...fl])), eol, fc.array(bodyPart, { maxLength: 4 })),
    { minLength: 1, maxLength: 3 },
  )
  .map((msgs) => bytes(msgs.map(([s, e1, fl, e2, b]) => s + e1 + fl.map(([f, e]) => f + e).join("") + e2 + b.join("")).join("")));

const httpish = fc.array(fc.oneof(fragments, fc.string({ maxLength: 4 }), fc.uint8Array({ maxLength: 8 }).map((u) => Buffer.from(u).toString("latin1"))), { maxLength: 120 }).map((xs) => bytes(xs.join("")));

describe("hostile input", () => {
  test("random bytes: no throw, bounded buffering, same verdict for any split", () => {
    let heads = 0;
    let completes = 0;
    const reasons = new Set<string>();
    fc.assert(
      fc.property(
        fc.oneof(structured, structured, httpish, fc.uint8Array({ maxLength: 2000 })).chain((data) => fc.tuple(fc.constant(data), cutsOf(data.length), fc.boolean())),
        ([data, cuts, eof]) => {
          const whole = parseRequests([data], LIMITS, eof);
          const pieces = parseRequests(split(data, cuts), LIMITS, eof);
          expect(pieces.events).toEqual(whole.events);
          expect(pieces.maxBuffered).toBeLessThanOrEqual(LINE_BOUND);
          if (whole.error) expect(whole.error).toBeInstanceOf(Http1Error);
          heads += whole.heads;
          completes += whole.completes;
          if (whole.error) reasons.add(whole.error.reason);
          const resp = parseResponses(split(data, cuts), ["GET", "GET", "HEAD"], LIMITS, eof);
          expect(resp.events).toEqual(parseResponses([data], ["GET", "GET", "HEAD"], LIMITS, eof).events);
          expect(resp.maxBuffered).toBeLessThanOrEqual(LINE_BOUND);
        },
      ),
      { numRuns: RUNS * 3 },
    );
    // the generator must keep reaching past the request line, or this test proves little (heads
    // over 900 runs: 149-202 in 13 samples; RUNS / 2 = 150 failed once in CI-like runs)
    expect(heads).toBeGreaterThan(RUNS / 3);
    expect(completes).toBeGreaterThan(RUNS / 4);
    expect(reasons.size).toBeGreaterThan(10);
  });

  test("mutated valid requests: no throw, same verdict for any split, errors only as Http1Error", () => {
    const mutation = fc.record({
      at: fc.nat(),
      kind: fc.constantFrom("insert", "replace", "delete"),
      byte: fc.constantFrom(0x0d, 0x0a, 0x20, 0x09, 0x00, 0x3a, 0x2c, 0x3b, 0x5f, 0x30, 0x7f, 0xff, 0x41),
    });
    fc.assert(
      fc.property(
        request.chain((r) => {
          const wire = encodeRequest(r);
          return fc.tuple(fc.constant(wire), fc.array(mutation, { minLength: 1, maxLength: 3 }), cutsOf(wire.length + 3));
        }),
        ([wire, mutations, cuts]) => {
          const buf = Array.from(wire);
          for (const m of mutations) {
            const at = m.at % (buf.length + 1);
            if (m.kind === "insert") buf.splice(at, 0, m.byte);
            else if (m.kind === "replace" && at < buf.length) buf[at] = m.byte;
            else if (m.kind === "delete") buf.splice(at, 1);
          }
          const data = Uint8Array.from(buf);
          const whole = parseRequests([data], LIMITS);
          const pieces = parseRequests(split(data, cuts), LIMITS);
          expect(pieces.events).toEqual(whole.events);
          expect(pieces.maxBuffered).toBeLessThanOrEqual(LINE_BOUND);
        },
      ),
      { numRuns: RUNS * 2 },
    );
  });
});

describe("serializer output parses back unchanged", () => {
  const anyString = fc.string({ unit: fc.oneof(fc.constantFrom("\r", "\n", "\x00", ":", " ", "\t", "\u0100", "\x7f"), fc.string({ minLength: 1, maxLength: 1 })), maxLength: 16 });

  test("arbitrary names and values: refused (HTTP1_INVALID_FIELD) or parsed back exactly", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.oneof(fieldName, anyString), fc.oneof(fieldValue, anyString)), { maxLength: 6 }), fc.oneof(token(PATH_CHARS, 20).map((p) => `/${p}`), anyString), (pairs, target) => {
        const headers: [string, string][] = [["Host", "a"], ...pairs];
        let head: Uint8Array;
        try {
          head = writeRequestHead("GET", target, headers, { kind: "none" });
        } catch (e) {
          expect(e).toBeInstanceOf(Http1Error);
          expect((e as Http1Error).code).toBe("HTTP1_INVALID_FIELD");
          return;
        }
        const r = parseRequests([head], { headersWithUnderscores: "allow" });
        const framingNames = new Set(["content-length", "transfer-encoding", "connection", "keep-alive"]);
        const expected = headers.filter(([n]) => !framingNames.has(n.toLowerCase()));
        if (r.error) {
          // the serializer writes any syntactically valid field; only the parser's semantic checks may refuse it
          expect(["multiple_host", "invalid_host", "invalid_target", "missing_host", "too_many_headers"]).toContain(r.error.reason);
          return;
        }
        expect(r.heads).toBe(1);
        expect(r.completes).toBe(1);
        expect(headsOf(r)[0]!.headers).toEqual(expected);
        expect(headsOf(r)[0]!.target).toBe(target);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test("responses with bodies and trailers round-trip", () => {
    fc.assert(
      fc.property(fc.integer({ min: 200, max: 599 }), fields, body, fc.array(fc.nat({ max: 400 }), { maxLength: 4 }), fields, fc.boolean(), (status, hs, b, cuts, trailers, chunked) => {
        const parts: Uint8Array[] = [];
        if (chunked) {
          parts.push(writeResponseHead(status, undefined, hs, { kind: "chunked" }));
          for (const piece of split(b, cuts)) if (piece.length > 0) parts.push(encodeChunk(piece));
          parts.push(encodeLastChunk(trailers));
        } else {
          parts.push(writeResponseHead(status, undefined, hs, { kind: "length", length: b.length }), b);
        }
        const wire = Buffer.concat(parts);
        const r = parseResponses([wire], ["GET"]);
        expect(r.error).toBeUndefined();
        const noBody = status === 204 || status === 304;
        const head = headsOf(r)[0]!;
        expect(head.status).toBe(status);
        expect(head.headers.slice(0, hs.length)).toEqual(hs);
        const got = r.events.filter((e) => e.kind === "body").map((e) => (e as { data: string }).data).join("");
        expect(got).toBe(noBody ? "" : Buffer.from(b).toString("latin1"));
        if (chunked && !noBody && trailers.length > 0) expect(r.events.find((e) => e.kind === "trailers")).toEqual({ kind: "trailers", pairs: trailers });
      }),
      { numRuns: RUNS },
    );
  });
});
