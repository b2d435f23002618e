import { describe, expect, test } from "bun:test";
import { Http1Body } from "./body.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function body(highWater = 1024): { b: Http1Body; flow: { paused: number; resumed: number; firstRead: number } } {
  const flow = { paused: 0, resumed: 0, firstRead: 0 };
  const b = new Http1Body({ pause: () => flow.paused++, resume: () => flow.resumed++, firstRead: () => flow.firstRead++ }, highWater);
  return { b, flow };
}

describe("Http1Body.readArrived", () => {
  test("gives what has arrived at once, null at the end, undefined while waiting", () => {
    const { b, flow } = body();
    expect(b.readArrived()).toBeUndefined();
    expect(flow.firstRead).toBe(1);
    b.push(enc("ab"));
    b.push(enc("cd"));
    expect(new TextDecoder().decode(b.readArrived()!)).toBe("ab");
    expect(new TextDecoder().decode(b.readArrived()!)).toBe("cd");
    expect(b.readArrived()).toBeUndefined();
    b.end();
    expect(b.readArrived()).toBeNull();
    expect(flow.firstRead).toBe(1);
  });

  test("throws the failure of a body that cannot complete", () => {
    const { b } = body();
    b.fail(new Error("connection reset"));
    expect(() => b.readArrived()).toThrow("connection reset");
  });

  test("reading below half the high-water mark resumes a paused transport", () => {
    const { b, flow } = body(4);
    b.push(enc("abc"));
    b.push(enc("def"));
    expect(flow.paused).toBe(1);
    b.readArrived();
    expect(flow.resumed).toBe(0); // 3 bytes still queued
    b.readArrived();
    expect(flow.resumed).toBe(1);
  });

  test("read() after readArrived() continues where it left off", async () => {
    const { b } = body();
    b.push(enc("x"));
    b.push(enc("y"));
    expect(new TextDecoder().decode(b.readArrived()!)).toBe("x");
    expect(new TextDecoder().decode((await b.read())!)).toBe("y");
    const next = b.read();
    b.end();
    expect(await next).toBeUndefined();
  });
});
