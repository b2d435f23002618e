import { describe, expect, test } from "bun:test";
import type { BodySink, BodySource, HeaderPairs, HookRequest } from "../core/waypoint/index.ts";
import type { PhaseResult, WasmStream } from "../wasm/index.ts";
import { RequestFlow, ResponseFlow } from "./flow.ts";

/** A body delivered the way the HTTP/1 upstream reader does: chunks pulled in an async loop, then the end. */
function pulledBody(chunks: string[], gapMs = 0): BodySource {
  return {
    empty: chunks.length === 0,
    pause() {},
    resume() {},
    start(sink: BodySink) {
      void (async () => {
        for (const c of chunks) {
          sink.data(new TextEncoder().encode(c));
          if (gapMs) await Bun.sleep(gapMs);
          else await Promise.resolve(undefined);
        }
        sink.end();
      })();
    },
  };
}

/** A plugin stream that continues everything and records each call. */
function recordingStream(calls: string[], edit?: (h: readonly (readonly [string, string])[]) => [string, string][]): WasmStream {
  const ok = (r: Partial<PhaseResult>): Promise<PhaseResult> => Promise.resolve({ action: "continue", ...r } as PhaseResult);
  return {
    requestHeaders: (h, eos) => (calls.push(`reqH eos=${eos}`), ok({ headers: edit ? edit(h) : h })),
    requestBody: (c, eos) => (calls.push(`reqB ${new TextDecoder().decode(c)} eos=${eos}`), ok({ body: c })),
    requestTrailers: (t) => (calls.push("reqT"), ok({ trailers: t })),
    responseHeaders: (h, eos) => (calls.push(`resH eos=${eos}`), ok({ headers: h })),
    responseBody: (c, eos) => (calls.push(`resB ${new TextDecoder().decode(c)} eos=${eos}`), ok({ body: c })),
    responseTrailers: (t) => (calls.push("resT"), ok({ trailers: t })),
    done: () => Promise.resolve(),
  } as WasmStream;
}

function collect(body: BodySource): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    body.start({ data: (c) => (out += new TextDecoder().decode(c)), end: () => resolve(out), error: reject });
  });
}

const req = (): HookRequest => ({ origin: {} as never, method: "POST", path: "/p", authority: "svc", headers: [["x-a", "1"]], protocol: "HTTP/1.1" });

describe("a message through the plugin chain", () => {
  test("a small body read to its end reaches the plugin as one call with end of stream", async () => {
    const calls: string[] = [];
    const flow = new ResponseFlow(1, () => recordingStream(calls), () => undefined);
    const out = await flow.run(200, [["content-type", "text/plain"]], pulledBody(["hello"]));
    expect(out.kind).toBe("forward");
    if (out.kind !== "forward") return;
    expect(await collect(out.body)).toBe("hello");
    expect(calls).toEqual(["resH eos=false", "resB hello eos=true"]);
  });

  test("a body still streaming is passed on chunk by chunk", async () => {
    const calls: string[] = [];
    const flow = new ResponseFlow(1, () => recordingStream(calls), () => undefined);
    const out = await flow.run(200, [], pulledBody(["a", "b"], 5));
    if (out.kind !== "forward") throw new Error("not forwarded");
    expect(await collect(out.body)).toBe("ab");
    expect(calls[0]).toBe("resH eos=false");
    expect(calls.at(-1)).toMatch(/eos=true$/);
    expect(calls.filter((c) => c.startsWith("resB")).map((c) => c.split(" ")[1]).join("")).toContain("a");
  });

  test("request: plugins run in order around the authorization, and their header edits reach the request", async () => {
    const order: string[] = [];
    const calls: string[] = [];
    const streams = [
      recordingStream(calls, (h) => [...h.map(([k, v]) => [k, v] as [string, string]), ["x-authn", "1"]]),
      recordingStream(calls, (h) => h.map(([k, v]) => (k === ":path" ? [k, "/rewritten"] : [k, v]) as [string, string])),
    ];
    const phases = ["AUTHN", "STATS"] as const;
    const flow = new RequestFlow(2, (i) => phases[i]!, (i) => streams[i], () => ({ action: "continue" }));
    const r = req();
    const out = await flow.run(r, pulledBody(["body"]), () => {
      order.push(`authz sees x-authn=${r.headers.some(([k]) => k === "x-authn")} path=${r.path}`);
      return undefined;
    });
    expect(out.kind).toBe("forward");
    expect(order).toEqual(["authz sees x-authn=true path=/p"]);
    expect(r.path).toBe("/rewritten");
    if (out.kind === "forward") expect(await collect(out.body)).toBe("body");
  });

  test("the authorization's refusal is the request's answer; later plugins never see it", async () => {
    const calls: string[] = [];
    const flow = new RequestFlow(1, () => "STATS", () => recordingStream(calls), () => ({ action: "continue" }));
    const out = await flow.run(req(), pulledBody([]), () => ({ status: 403, body: "RBAC: access denied" }));
    expect(out).toMatchObject({ kind: "local", reply: { status: 403 } });
    expect(calls).toEqual([]);
  });

  test("a plugin's local reply mid-body fails the released body with the reply", async () => {
    let n = 0;
    const stream = {
      ...recordingStream([]),
      requestBody: () => Promise.resolve(n++ === 0 ? ({ action: "continue", body: new TextEncoder().encode("x") } as PhaseResult) : ({ action: "local", response: { status: 413, body: new Uint8Array(0), headers: [], grpcStatus: undefined, details: "too big" } } as PhaseResult)),
    } as WasmStream;
    const flow = new RequestFlow(1, () => "UNSPECIFIED_PHASE", () => stream, () => ({ action: "continue" }));
    const out = await flow.run(req(), pulledBody(["a", "b"], 5), () => undefined);
    if (out.kind !== "forward") throw new Error("not forwarded");
    const err = await collect(out.body).then(() => undefined, (e: Error & { reply?: { status: number } }) => e);
    expect(err?.reply?.status).toBe(413);
  });
});

/** A plugin stream with phaseNow (as a VM's): continues everything at once and records each call. */
function phaseStream(name: string, calls: string[]): WasmStream {
  const parts = ["headers", "body", "trailers", "headers+body"];
  return {
    ...recordingStream(calls),
    phaseNow: (_dir: 0 | 1, part: 0 | 1 | 2 | 3, h: HeaderPairs | undefined, c: Uint8Array | undefined, eos: boolean): PhaseResult => {
      calls.push(`${name} ${parts[part]}${c ? ` ${new TextDecoder().decode(c)}` : ""} eos=${eos}`);
      if (part === 0) return { action: "continue", headers: h! };
      if (part === 1) return { action: "continue", body: c! };
      if (part === 2) return { action: "continue", trailers: h! };
      return { action: "continue", headers: h!, body: c! };
    },
  } as WasmStream;
}

describe("headers with the body's first chunk", () => {
  test("a small message reaches each plugin as one call (headers and body) and leaves in one piece", async () => {
    const calls: string[] = [];
    const streams = [phaseStream("p0", calls), phaseStream("p1", calls)];
    const flow = new ResponseFlow(2, (i) => streams[i], () => undefined);
    const out = await flow.run(200, [["content-type", "text/plain"]], pulledBody(["hello"]));
    if (out.kind !== "forward") throw new Error("not forwarded");
    expect(calls).toEqual(["p1 headers+body hello eos=true", "p0 headers+body hello eos=true"]);
    expect(await collect(out.body)).toBe("hello");
  });

  test("a plugin stream without phaseNow gets two calls; so do the plugins after it", async () => {
    const calls: string[] = [];
    const streams = [recordingStream(calls), phaseStream("p1", calls)];
    const flow = new RequestFlow(2, () => "UNSPECIFIED_PHASE", (i) => streams[i], () => ({ action: "continue" }));
    const out = await flow.run(req(), pulledBody(["abc"]), () => undefined);
    if (out.kind !== "forward") throw new Error("not forwarded");
    expect(calls).toEqual(["reqH eos=false", "p1 headers eos=false", "reqB abc eos=true", "p1 body abc eos=true"]);
    expect(await collect(out.body)).toBe("abc");
  });

  test("a body that has not begun by the next event-loop turn: the head goes through alone and out at once", async () => {
    const calls: string[] = [];
    let startBody: (() => void) | undefined;
    const late: BodySource = {
      empty: false,
      pause() {},
      resume() {},
      start(sink: BodySink) {
        startBody = () => {
          sink.data(new TextEncoder().encode("late"));
          sink.end();
        };
      },
    };
    const flow = new ResponseFlow(1, () => phaseStream("p0", calls), () => undefined);
    const out = await flow.run(200, [], late);
    expect(out.kind).toBe("forward");
    expect(calls).toEqual(["p0 headers eos=false"]);
    startBody!();
    if (out.kind === "forward") expect(await collect(out.body)).toBe("late");
    expect(calls).toEqual(["p0 headers eos=false", "p0 body late eos=true"]);
  });

  test("a body that fails before its first chunk: the head still goes through, then the body fails", async () => {
    const failing: BodySource = { empty: false, pause() {}, resume() {}, start: (sink: BodySink) => queueMicrotask(() => sink.error(new Error("upstream reset"))) };
    const calls: string[] = [];
    const flow = new ResponseFlow(1, () => phaseStream("p0", calls), () => undefined);
    const out = await flow.run(200, [], failing);
    if (out.kind !== "forward") throw new Error("not forwarded");
    expect(await collect(out.body).then(() => "ended", (e: Error) => e.message)).toBe("upstream reset");
    expect(calls).toEqual(["p0 headers eos=false"]);
  });
});
