import { describe, expect, test } from "bun:test";
import { H2FrameGuard } from "./h2-guard.ts";

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

function frame(type: number, flags: number, stream: number, payload = 0): Uint8Array {
  const f = new Uint8Array(9 + payload);
  f[0] = (payload >> 16) & 0xff;
  f[1] = (payload >> 8) & 0xff;
  f[2] = payload & 0xff;
  f[3] = type;
  f[4] = flags;
  f[5] = (stream >>> 24) & 0x7f;
  f[6] = (stream >>> 16) & 0xff;
  f[7] = (stream >>> 8) & 0xff;
  f[8] = stream & 0xff;
  return f;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe("HTTP/2 frame guard", () => {
  test("ordinary traffic passes, however it is split", () => {
    const g = new H2FrameGuard();
    const bytes = concat(PREFACE, frame(4, 0, 0, 6), frame(1, 4, 1, 30), frame(0, 1, 1, 100), frame(1, 5, 3, 20));
    for (let i = 0; i < bytes.length; i += 7) expect(g.inspect(bytes.subarray(i, i + 7))).toBe(true);
  });

  test("a CONTINUATION flood is stopped by count and by header block size", () => {
    const g = new H2FrameGuard({ maxHeaderBlockBytes: 1 << 20, maxContinuationFrames: 10, maxResetsPerSecond: 100, maxControlFramesPerSecond: 100, maxFramePayload: 16384 });
    let ok = g.inspect(concat(PREFACE, frame(1, 0, 1, 10)));
    for (let i = 0; i < 11 && ok; i++) ok = g.inspect(frame(9, 0, 1, 10));
    expect(ok).toBe(false);
    expect(g.violation).toContain("CONTINUATION");
    const g2 = new H2FrameGuard({ maxHeaderBlockBytes: 30_000, maxContinuationFrames: 100, maxResetsPerSecond: 100, maxControlFramesPerSecond: 100, maxFramePayload: 16384 });
    ok = g2.inspect(concat(PREFACE, frame(1, 0, 1, 16000)));
    ok = ok && g2.inspect(frame(9, 0, 1, 16000));
    expect(ok).toBe(false);
    expect(g2.violation).toContain("header block");
  });

  test("a header block interrupted by another frame is a violation", () => {
    const g = new H2FrameGuard();
    expect(g.inspect(concat(PREFACE, frame(1, 0, 1, 10), frame(0, 0, 1, 5)))).toBe(false);
  });

  test("rapid resets and control-frame floods are bounded per second", () => {
    let now = 0;
    const g = new H2FrameGuard({ maxHeaderBlockBytes: 65536, maxContinuationFrames: 10, maxResetsPerSecond: 5, maxControlFramesPerSecond: 5, maxFramePayload: 16384 }, () => now);
    expect(g.inspect(PREFACE)).toBe(true);
    for (let i = 0; i < 5; i++) expect(g.inspect(concat(frame(1, 5, 2 * i + 1, 4), frame(3, 0, 2 * i + 1, 4)))).toBe(true);
    now = 1500; // a new second: the budget refills
    for (let i = 0; i < 5; i++) expect(g.inspect(frame(3, 0, 11 + 2 * i, 4))).toBe(true);
    expect(g.inspect(frame(3, 0, 21, 4))).toBe(false);
    const pings = new H2FrameGuard({ maxHeaderBlockBytes: 65536, maxContinuationFrames: 10, maxResetsPerSecond: 5, maxControlFramesPerSecond: 5, maxFramePayload: 16384 }, () => 0);
    pings.inspect(PREFACE);
    let ok = true;
    for (let i = 0; i < 6 && ok; i++) ok = pings.inspect(frame(6, 0, 0, 8));
    expect(ok).toBe(false);
  });

  test("a frame larger than the advertised maximum is a violation", () => {
    const g = new H2FrameGuard();
    expect(g.inspect(concat(PREFACE, frame(0, 0, 1, 0).map((b, i) => (i === 0 ? 1 : b))))).toBe(false);
  });
});
