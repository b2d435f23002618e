import { describe, expect, test } from "bun:test";
import { ErrorCodes } from "../errors/index.ts";
import { Socks5Handshake } from "./socks5.ts";

const greet = Uint8Array.of(5, 1, 0);

describe("SOCKS5 handshake", () => {
  test("IPv4 CONNECT, fed byte by byte, keeps early data", () => {
    const hs = new Socks5Handshake();
    const bytes = [...greet, 5, 1, 0, 1, 10, 0, 0, 7, 0x1f, 0x90, 0x41, 0x42];
    const steps = bytes.flatMap((b) => hs.feed(Uint8Array.of(b)));
    expect(steps[0]).toEqual({ type: "reply", bytes: Uint8Array.of(5, 0) });
    // the request completes before the trailing bytes arrive one at a time
    const req = steps.find((s) => s.type === "request");
    expect(req).toMatchObject({ type: "request", target: { kind: "ip", ip: "10.0.0.7", port: 8080 } });
  });
  test("early data in the same chunk is handed over", () => {
    const hs = new Socks5Handshake();
    const steps = hs.feed(Uint8Array.of(...greet, 5, 1, 0, 1, 10, 0, 0, 7, 0, 80, 0x41, 0x42));
    expect(steps[1]).toMatchObject({ type: "request", rest: Uint8Array.of(0x41, 0x42) });
  });
  test("IPv6 and domain targets", () => {
    const v6 = new Socks5Handshake().feed(Uint8Array.of(...greet, 5, 1, 0, 4, 0xfd, 0, ...new Array(13).fill(0), 1, 0, 80));
    expect(v6[1]).toMatchObject({ target: { kind: "ip", ip: "fd00::1", port: 80 } });
    const name = new TextEncoder().encode("Echo.Default.svc.cluster.local.");
    const d = new Socks5Handshake().feed(Uint8Array.of(...greet, 5, 1, 0, 3, name.length, ...name, 0, 80));
    expect(d[1]).toMatchObject({ target: { kind: "domain", domain: "echo.default.svc.cluster.local", port: 80 } });
  });
  test.each([
    ["SOCKS4", Uint8Array.of(4, 1, 0, 80, 1, 2, 3, 4, 0), 0x01],
    ["no acceptable auth method", Uint8Array.of(5, 1, 2), 0xff],
    ["BIND command", Uint8Array.of(...greet, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80), 0x07],
    ["UDP ASSOCIATE", Uint8Array.of(...greet, 5, 3, 0, 1, 1, 2, 3, 4, 0, 80), 0x07],
    ["unknown address type", Uint8Array.of(...greet, 5, 1, 0, 9, 1, 2, 3, 4, 0, 80), 0x08],
    ["port 0", Uint8Array.of(...greet, 5, 1, 0, 1, 1, 2, 3, 4, 0, 0), 0x01],
    ["bad domain characters", Uint8Array.of(...greet, 5, 1, 0, 3, 3, 0x61, 0x20, 0x62, 0, 80), 0x01],
  ])("rejects %s", (_name, bytes, code) => {
    const steps = new Socks5Handshake().feed(bytes);
    const err = steps.find((s) => s.type === "error");
    expect(err?.type).toBe("error");
    if (err?.type !== "error") return;
    expect(err.error.code).toBe(ErrorCodes.SOCKS_PROTOCOL);
    expect(err.reply?.[1]).toBe(code);
  });
  test("bounds the handshake size", () => {
    const hs = new Socks5Handshake();
    const steps = hs.feed(Uint8Array.of(5, 255, ...new Array(2000).fill(1)));
    expect(steps[0]?.type).toBe("error");
  });
});
