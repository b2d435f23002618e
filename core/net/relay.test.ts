import { describe, expect, test } from "bun:test";
import { relay } from "./relay.ts";
import type { ByteStream, ByteStreamEvents } from "./stream.ts";

/** An in-memory stream: records what is written, lets the test emit events. */
class MemoryStream implements ByteStream {
  written: Uint8Array[] = [];
  ended = false;
  destroyed = false;
  paused = false;
  highWater = Infinity;
  buffered = 0;
  ev: Partial<ByteStreamEvents> = {};
  setEvents(e: Partial<ByteStreamEvents>) {
    this.ev = e;
  }
  write(c: Uint8Array) {
    this.written.push(c);
    this.buffered += c.byteLength;
    return this.buffered < this.highWater;
  }
  end() {
    this.ended = true;
  }
  destroy() {
    this.destroyed = true;
  }
  pause() {
    this.paused = true;
  }
  resume() {
    this.paused = false;
  }
  get bufferedBytes() {
    return this.buffered;
  }
  flush() {
    this.buffered = 0;
    this.ev.drain?.();
  }
}

const bytes = (s: string) => new TextEncoder().encode(s);

describe("relay", () => {
  test("copies both ways, counts bytes and carries half-close", async () => {
    const a = new MemoryStream();
    const b = new MemoryStream();
    const seen: [number, number][] = [];
    const r = relay(a, b, { addBytes: (x, y) => seen.push([x, y]) });
    a.ev.data!(bytes("hello"));
    expect(Buffer.concat(b.written).toString()).toBe("hello");
    a.ev.end!();
    expect(b.ended).toBe(true);
    expect(a.ended).toBe(false); // the other direction stays open
    b.ev.data!(bytes("late reply"));
    expect(Buffer.concat(a.written).toString()).toBe("late reply");
    a.buffered = 0;
    b.buffered = 0;
    b.ev.end!();
    expect(a.ended).toBe(true);
    const res = await r.done;
    expect(res).toEqual({ aToB: 5, bToA: 10 });
    expect(seen).toEqual([[5, 0], [0, 10]]);
  });

  test("backpressure pauses the reader until the writer drains", () => {
    const a = new MemoryStream();
    const b = new MemoryStream();
    b.highWater = 4;
    relay(a, b);
    a.ev.data!(bytes("12345"));
    expect(a.paused).toBe(true);
    b.flush();
    expect(a.paused).toBe(false);
  });

  test("an error on one side tears down the other and reports it", async () => {
    const a = new MemoryStream();
    const b = new MemoryStream();
    const r = relay(a, b);
    b.ev.close!(new Error("reset"));
    const res = await r.done;
    expect(res.error?.message).toBe("reset");
    expect(a.destroyed).toBe(true);
  });

  test("a clean close before the peer finished counts as an abort", async () => {
    const a = new MemoryStream();
    const b = new MemoryStream();
    const r = relay(a, b);
    a.ev.close!();
    const res = await r.done;
    expect(res.error).toBeDefined();
    expect(b.destroyed).toBe(true);
  });

  test("a clean close after our FIN to that side finishes normally", async () => {
    const a = new MemoryStream();
    const b = new MemoryStream();
    const r = relay(a, b);
    b.ev.end!(); // b finished: we end a
    expect(a.ended).toBe(true);
    a.ev.close!(); // Bun reports a's final FIN as close
    const res = await r.done;
    expect(res.error).toBeUndefined();
    expect(b.ended).toBe(true);
  });

  test("abort destroys both sides", async () => {
    const a = new MemoryStream();
    const b = new MemoryStream();
    const r = relay(a, b);
    r.abort(new Error("policy"));
    expect((await r.done).error?.message).toBe("policy");
    expect(a.destroyed && b.destroyed).toBe(true);
  });
});
