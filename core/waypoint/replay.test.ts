import { describe, expect, test } from "bun:test";
import type { BodySink, BodySource, HeaderPairs } from "./exchange.ts";
import { ReplayableBody } from "./replay.ts";

/** A body source the test feeds by hand. */
class ManualBody implements BodySource {
  sink: BodySink | undefined;
  paused = false;
  constructor(readonly empty = false) {}
  start(sink: BodySink): void {
    this.sink = sink;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

function collect(src: BodySource): { chunks: string[]; ended: HeaderPairs | undefined | null; failed?: Error } {
  const out: { chunks: string[]; ended: HeaderPairs | undefined | null; failed?: Error } = { chunks: [], ended: null };
  src.start({
    data: (c) => out.chunks.push(new TextDecoder().decode(c)),
    end: (t) => (out.ended = t),
    error: (e) => (out.failed = e),
  });
  return out;
}

const enc = (s: string) => new TextEncoder().encode(s);

describe("replayable request body", () => {
  test("a retry gets every byte from the start, then what is still arriving", async () => {
    const src = new ManualBody();
    const body = new ReplayableBody(src, 1024);
    const first = collect(body.reader());
    src.sink!.data(enc("ab"));
    expect(first.chunks).toEqual(["ab"]);
    body.detach();
    const second = collect(body.reader());
    src.sink!.data(enc("cd"));
    src.sink!.end([["x-trailer", "1"]]);
    expect(second.chunks).toEqual(["ab", "cd"]);
    expect(second.ended).toEqual([["x-trailer", "1"]]);
    expect(first.chunks).toEqual(["ab"]); // the abandoned try got nothing more
    expect(body.received).toBe(4);
    const third = collect(body.reader());
    await Promise.resolve();
    expect(third.chunks).toEqual(["ab", "cd"]);
  });

  test("past the bound the copy is dropped and the body is no longer replayable", () => {
    const src = new ManualBody();
    const body = new ReplayableBody(src, 4);
    collect(body.reader());
    src.sink!.data(enc("abc"));
    expect(body.replayable).toBe(true);
    src.sink!.data(enc("de"));
    expect(body.replayable).toBe(false);
    src.sink!.end();
    expect(body.bufferedChunks).toBeUndefined();
  });

  test("backpressure from the current reader reaches the source; a detached one cannot pause it", () => {
    const src = new ManualBody();
    const body = new ReplayableBody(src);
    const r1 = body.reader();
    collect(r1);
    r1.pause();
    expect(src.paused).toBe(true);
    body.detach();
    expect(src.paused).toBe(false);
    r1.pause();
    expect(src.paused).toBe(false);
  });

  test("a failure reaches the current reader and a later one", () => {
    const src = new ManualBody();
    const body = new ReplayableBody(src);
    const a = collect(body.reader());
    src.sink!.error(new Error("client reset"));
    expect(a.failed?.message).toBe("client reset");
    const b = collect(body.reader());
    expect(b.failed?.message).toBe("client reset");
  });
});
