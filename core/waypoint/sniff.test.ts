import { describe, expect, test } from "bun:test";
import { sniffProtocol } from "./sniff.ts";

const enc = (s: string) => new TextEncoder().encode(s);

describe("protocol detection inside a tunnel", () => {
  test("the HTTP/2 preface is h2 once complete", () => {
    expect(sniffProtocol(enc("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))).toBe("h2");
    expect(sniffProtocol(enc("PRI * HTTP/2.0\r\n"))).toBeUndefined();
  });
  test("a request line is h1, even a partial one", () => {
    expect(sniffProtocol(enc("GET / HTTP/1.1\r\n"))).toBe("h1");
    expect(sniffProtocol(enc("POST /x"))).toBe("h1");
    expect(sniffProtocol(enc("PROPFIND"))).toBeUndefined();
  });
  test("a malformed method on an HTTP request line is still h1, so the parser rejects it", () => {
    expect(sniffProtocol(enc("G(T / HTTP/1.1\r\n"))).toBe("h1");
    expect(sniffProtocol(enc("get /admin HTTP/1.1\r\n"))).toBe("h1");
  });
  test("binary and other text protocols are tcp", () => {
    expect(sniffProtocol(new Uint8Array([0x16, 0x03, 0x01, 0x00]))).toBe("tcp");
    expect(sniffProtocol(enc("*1\r\n$4\r\nPING\r\n"))).toBe("tcp");
    expect(sniffProtocol(enc("PING\r\n"))).toBe("tcp");
    expect(sniffProtocol(enc("hello"))).toBeUndefined();
    expect(sniffProtocol(enc("x".repeat(9000)))).toBe("tcp");
  });
});
