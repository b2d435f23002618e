import { describe, expect, test } from "bun:test";
import { Http1Body, HeaderList } from "../http1/index.ts";
import { H1BodySource } from "./h1-streams.ts";
import type { HeaderPairs } from "./exchange.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (c: Uint8Array) => new TextDecoder().decode(c);

function record(src: H1BodySource): { events: string[]; trailers: HeaderPairs | undefined } {
  const out: { events: string[]; trailers: HeaderPairs | undefined } = { events: [], trailers: undefined };
  src.start({
    data: (c) => out.events.push(`data ${dec(c)}`),
    end: (t) => {
      out.events.push("end");
      out.trailers = t;
    },
    error: (e) => out.events.push(`error ${e.message}`),
  });
  return out;
}

const flow = { pause() {}, resume() {} };

describe("H1BodySource", () => {
  test("a body that arrived whole is handed over, end included, before start() returns", () => {
    const b = new Http1Body(flow, 1024);
    b.push(enc("hello"));
    b.end(HeaderList.from([["x-checksum", "1"]]));
    const out = record(new H1BodySource(b, false));
    expect(out.events).toEqual(["data hello", "end"]);
    expect(out.trailers).toEqual([["x-checksum", "1"]]);
  });

  test("what arrives later follows asynchronously, in order", async () => {
    const b = new Http1Body(flow, 1024);
    b.push(enc("a"));
    const out = record(new H1BodySource(b, false));
    expect(out.events).toEqual(["data a"]);
    b.push(enc("b"));
    b.end();
    await Bun.sleep(0);
    expect(out.events).toEqual(["data a", "data b", "end"]);
  });

  test("a consumer that pauses inside data() gets nothing more until it resumes", async () => {
    const b = new Http1Body(flow, 1024);
    b.push(enc("1"));
    b.push(enc("2"));
    b.end();
    const src = new H1BodySource(b, false);
    const events: string[] = [];
    src.start({
      data: (c) => {
        events.push(dec(c));
        src.pause();
      },
      end: () => events.push("end"),
      error: (e) => events.push(e.message),
    });
    await Bun.sleep(0);
    expect(events).toEqual(["1"]);
    src.resume();
    await Bun.sleep(0);
    expect(events).toEqual(["1", "2"]);
    src.resume();
    await Bun.sleep(0);
    expect(events).toEqual(["1", "2", "end"]);
  });

  test("a body that already failed reports the error at once", () => {
    const b = new Http1Body(flow, 1024);
    b.fail(new Error("peer reset"));
    expect(record(new H1BodySource(b, false)).events).toEqual(["error peer reset"]);
  });
});
