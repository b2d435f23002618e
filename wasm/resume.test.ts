// Delivery guarantees of phase calls. Resuming a paused direction from outside the stream's own
// callbacks (a root context: callout response, queue wake-up) while more of the direction is
// still queued: as in Envoy (reference/waypoint.md §A.7, §A.9) nothing is lost, everything
// released reaches the caller in order, and the end-of-stream call's result carries what was not
// yet released. Also: no phase call or done() is left waiting (split chunks, batches that do not
// fit the worker channel, failed VMs).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileAssemblyScript, EXAMPLES } from "../plugins/build/index.ts";
import { ErrorCodes, isMeshError } from "../core/errors/index.ts";
import { HOST_CALLBACKS } from "./index.ts";
import { type FailStrategy, type HeaderPairs, type PhaseResult, WasmPlugin, type WasmStream } from "./plugin.ts";
import { SharedState } from "./shared.ts";
import { bytes, REQ, RESP, testPlugin, text, until } from "./testdata/plugins.ts";
import { pairsLiteral } from "./testdata/wat.ts";

/**
 * Pauses request headers (StopIteration) and remembers the stream; a queue item resumes it from
 * the root context. Body callbacks log and return Continue, or, with `buffer`, StopIterationAndBuffer
 * until the end of the stream.
 */
function pauser(buffer: boolean): string {
  return `(global $paused (mut i32) (i32.const 0))
    (func (export "proxy_on_configure") (param i32 i32) (result i32)
      (drop (call $proxy_register_shared_queue {{"resume"}} (i32.const 300))) (i32.const 1))
    (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
      (global.set $paused (local.get 0)) (i32.const 1))
    (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
      (call $log3 {{"body"}} (local.get 1) (local.get 2) (i32.const 0))
      ${buffer ? "(if (result i32) (local.get 2) (then (i32.const 0)) (else (i32.const 1)))" : "(i32.const 0)"})
    (func (export "proxy_on_request_trailers") (param i32 i32) (result i32)
      (call $log3 {{"trailers"}} (local.get 1) (i32.const 0) (i32.const 0)) (i32.const 0))
    (func (export "proxy_on_queue_ready") (param i32 i32)
      (drop (call $proxy_dequeue_shared_queue (local.get 1) (i32.const 256) (i32.const 260)))
      (drop (call $proxy_set_effective_context (global.get $paused)))
      (drop (call $proxy_continue_stream (i32.const 0))))`;
}

let vmCounter = 0;

async function pausePlugin(isolation: "worker" | "inline", buffer = false, failStrategy: FailStrategy = "FAIL_CLOSE") {
  const shared = new SharedState();
  const vmId = `resume-${++vmCounter}`;
  const t = await testPlugin(pauser(buffer), { isolation, sharedState: shared, vmId, failStrategy });
  await t.plugin.start();
  const queue = shared.resolveQueue(vmId, "resume");
  if (queue === undefined) throw new Error("the plugin did not register its queue");
  /** Wakes the plugin's root context, which resumes the paused request. */
  const resume = (): void => void shared.enqueue(queue, bytes("go"));
  return { ...t, resume };
}

/** What went upstream across a direction's results: headers once, body in order, trailers. */
function upstream(results: readonly PhaseResult[]): { headers: HeaderPairs[]; body: string; trailers: HeaderPairs[] } {
  return {
    headers: results.flatMap((r) => (r.headers ? [r.headers] : [])),
    body: results.map((r) => text(r.body) ?? "").join(""),
    trailers: results.flatMap((r) => (r.trailers ? [r.trailers] : [])),
  };
}

for (const isolation of ["worker", "inline"] as const) {
  describe(`resume from a root context (${isolation})`, () => {
    test("a resume while the end-of-stream chunk is queued releases every chunk", async () => {
      const { plugin, logs, resume } = await pausePlugin(isolation);
      const s = plugin.stream();
      expect(await s.requestHeaders(REQ, false)).toEqual({ action: "stop" });
      // "part 1, " goes to the VM at once; the wake-up (a microtask) is queued behind it and
      // "part 2" behind that: the resume releases part 1 while the end-of-stream call waits
      resume();
      const r1 = s.requestBody(bytes("part 1, "), false);
      const r2 = s.requestBody(bytes("part 2"), true);
      const [a, b] = await Promise.all([r1, r2]);
      expect(a).toEqual({ action: "stop" });
      expect(b.action).toBe("continue");
      expect(b.headers).toEqual(REQ);
      expect(text(b.body)).toBe("part 1, part 2");
      expect(logs).toEqual(["body 8 0 0", "body 6 1 0"]);
      s.done();
      await plugin.stop();
    });

    test("a resume between two queued chunks, then trailers: nothing is dropped", async () => {
      const { plugin, logs, resume } = await pausePlugin(isolation);
      const s = plugin.stream();
      const h = s.requestHeaders(REQ, false);
      const b1 = s.requestBody(bytes("a"), false);
      resume();
      const b2 = s.requestBody(bytes("b"), false);
      const t = s.requestTrailers([["x-t", "1"]]);
      const all = await Promise.all([h, b1, b2, t]);
      const up = upstream(all);
      expect(up).toEqual({ headers: [REQ], body: "ab", trailers: [[["x-t", "1"]]] });
      expect(all[3]!.action).toBe("continue");
      expect(logs.at(-1)).toBe("trailers 1 0 0");
      s.done();
      await plugin.stop();
    });

    test("a resume with no call pending is carried into the next result", async () => {
      const { plugin, resume, logs } = await pausePlugin(isolation);
      const s = plugin.stream();
      expect(await s.requestHeaders(REQ, false)).toEqual({ action: "stop" });
      expect(await s.requestBody(bytes("x"), false)).toEqual({ action: "stop" });
      resume();
      await until(() => logs.length > 0, "the resume");
      const r = await s.requestBody(bytes("y"), true);
      expect(r.action).toBe("continue");
      expect(r.headers).toEqual(REQ);
      expect(text(r.body)).toBe("xy");
      s.done();
      await plugin.stop();
    });

    test("any interleaving of chunks, awaits and the resume: released once, in order, all of it", async () => {
      for (const buffer of [false, true]) {
        const { plugin, resume } = await pausePlugin(isolation, buffer);
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.stringMatching(/^[a-z]{1,4}$/), { minLength: 1, maxLength: 5 }),
            fc.boolean(),
            fc.nat(),
            fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }),
            async (chunks, withTrailers, resumeAt, awaitAfter) => {
              const s = plugin.stream();
              const calls: (() => Promise<PhaseResult>)[] = [() => s.requestHeaders(REQ, false)];
              chunks.forEach((c, i) => calls.push(() => s.requestBody(bytes(c), i === chunks.length - 1 && !withTrailers)));
              if (withTrailers) calls.push(() => s.requestTrailers([["x-t", "1"]]));
              const at = resumeAt % (calls.length + 1);
              const results: Promise<PhaseResult>[] = [];
              for (let i = 0; i < calls.length; i++) {
                if (i === at) resume();
                results.push(calls[i]!());
                // the end-of-stream call waits for the resume: only earlier calls may be awaited here
                if (awaitAfter[i] && i < calls.length - 1) await results[i];
              }
              if (at === calls.length) resume();
              const all = await Promise.all(results);
              s.done();
              const up = upstream(all);
              expect(up.headers).toEqual([REQ]);
              expect(up.body).toBe(chunks.join(""));
              expect(up.trailers).toEqual(withTrailers ? [[["x-t", "1"]]] : []);
              expect(all.at(-1)!.action).toBe("continue");
              for (const r of all.slice(0, -1)) expect(["continue", "stop"]).toContain(r.action);
            },
          ),
          { numRuns: 40 },
        );
        await plugin.stop();
      }
    });

    test("trailers that arrived during the pause reach the plugin after a buffering body callback", async () => {
      const { plugin, logs, resume } = await pausePlugin(isolation, true);
      const s = plugin.stream();
      const h = s.requestHeaders(REQ, false);
      const b = s.requestBody(bytes("abc"), false);
      const t = s.requestTrailers([["x-t", "1"]]);
      expect(await h).toEqual({ action: "stop" });
      expect(await b).toEqual({ action: "stop" });
      resume();
      const r = await t;
      // on_request_body (not the end: trailers follow) buffers; on_request_trailers continues
      expect(logs).toEqual(["body 3 0 0", "trailers 1 0 0"]);
      expect(r.action).toBe("continue");
      expect(r.headers).toEqual(REQ);
      expect(text(r.body)).toBe("abc");
      expect(r.trailers).toEqual([["x-t", "1"]]);
      s.done();
      await plugin.stop();
    });

    test("FAIL_OPEN: what a resume released before the plugin went away still goes out", async () => {
      const { plugin, resume, logs } = await pausePlugin(isolation, false, "FAIL_OPEN");
      const s = plugin.stream();
      expect(await s.requestHeaders(REQ, false)).toEqual({ action: "stop" });
      expect(await s.requestBody(bytes("x"), false)).toEqual({ action: "stop" });
      resume();
      await until(() => logs.length > 0, "the resume");
      await plugin.stop(); // the next call continues without the plugin
      const r = await s.requestBody(bytes("y"), true);
      expect(r.action).toBe("continue");
      expect(isMeshError(r.failure, ErrorCodes.WASM_TRAP)).toBe(true);
      expect(r.headers).toEqual(REQ);
      expect(text(r.body)).toBe("xy");
    });

    test("done() resolves once on_done, on_log and on_delete ran; it need not be awaited", async () => {
      const { plugin, logs } = await testPlugin(
        `(func (export "proxy_on_done") (param i32) (result i32) (call $log3 {{"done"}} (local.get 0) (i32.const 0) (i32.const 0)) (i32.const 1))
         (func (export "proxy_on_log") (param i32) (call $log3 {{"log"}} (local.get 0) (i32.const 0) (i32.const 0)))
         (func (export "proxy_on_delete") (param i32) (call $log3 {{"delete"}} (local.get 0) (i32.const 0) (i32.const 0)))`,
        { isolation },
      );
      await plugin.start();
      const s = plugin.stream();
      await s.requestHeaders(REQ, true);
      await s.done();
      expect(logs).toEqual(["done 2 0 0", "log 2 0 0", "delete 2 0 0"]);
      await s.done(); // again: already complete
      // a stream that never reached the VM completes at once; done() without await is fine
      await plugin.stream().done();
      plugin.stream().done();
      await plugin.stop();
      expect(logs).toEqual(["done 2 0 0", "log 2 0 0", "delete 2 0 0", "done 1 0 0", "delete 1 0 0"]); // then the root context
    });
  });
}

describe("nothing is left waiting", () => {
  for (const isolation of ["worker", "inline"] as const) {
    test(`a chunk above the buffer bound is fed in pieces before a call made meanwhile (${isolation})`, async () => {
      const { plugin, logs } = await testPlugin(
        `(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
           (call $log3 {{"body"}} (local.get 1) (local.get 2) (i32.const 0)) (i32.const 0))
         (func (export "proxy_on_request_trailers") (param i32 i32) (result i32)
           (call $log3 {{"trailers"}} (local.get 1) (i32.const 0) (i32.const 0)) (i32.const 0))`,
        { isolation, maxBufferBytes: 8 },
      );
      await plugin.start();
      const s = plugin.stream();
      const all = await Promise.all([
        s.requestHeaders(REQ, false),
        s.requestBody(bytes("0123456789abcdefXY"), false),
        s.requestTrailers([["x-t", "1"]]),
      ]);
      expect(logs).toEqual(["body 8 0 0", "body 8 0 0", "body 2 0 0", "trailers 1 0 0"]);
      expect(upstream(all)).toEqual({ headers: [REQ], body: "0123456789abcdefXY", trailers: [[["x-t", "1"]]] });
      s.done();
      await plugin.stop();
    });
  }

  test("concurrent bodies beyond the channel's capacity go in several round trips", async () => {
    // channel bound: 4 × 64 KiB + 64 × 1 KiB + 8 MiB; 40 streams × 256 KiB = 10 MiB at once
    const { plugin } = await testPlugin(`(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))`, {
      maxBufferBytes: 256 << 10,
      maxHeaderBytes: 1024,
      maxMemoryPages: 64,
    });
    await plugin.start();
    const chunk = new Uint8Array(256 << 10).map((_, i) => i & 0xff);
    const streams = Array.from({ length: 40 }, () => plugin.stream());
    const results = await Promise.all(
      streams.map(async (s) => {
        const [h, b] = await Promise.all([s.requestHeaders(REQ, false), s.requestBody(chunk, true)]);
        return [h.action, b.action, b.body?.length] as const;
      }),
    );
    for (const r of results) expect(r).toEqual(["continue", "continue", chunk.length]);
    await Promise.all(streams.map((s) => s.done()));
    await plugin.stop();
  });

  test("a command that cannot cross to the worker fails its stream only; an oversized callout answer is a failed callout", async () => {
    const { plugin, logs, hostLogs } = await testPlugin(
      `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
         (if (i32.eqz (call $proxy_get_header_map_value (i32.const 0) {{"x-call"}} (i32.const 256) (i32.const 260)))
           (then (drop (call $proxy_http_call {{"big"}} ${pairsLiteral([":method", "GET", ":path", "/", ":authority", "a"])}
                   (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 300)))))
         (i32.const 0))
       (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
         (call $log3 {{"call_response"}} (local.get 2) (local.get 3) (local.get 4)))`,
      {
        maxBufferBytes: 1024,
        maxHeaderBytes: 1024,
        // the channel to a worker is what bounds a command here
        isolation: "worker",
        httpCall: async () => ({ headers: [[":status", "200"]], body: new Uint8Array(9 << 20) }),
      },
    );
    await plugin.start();
    // the channel holds about 8.1 MiB: a 9 MiB header value cannot be passed to the VM
    const huge: [string, string][] = [...REQ, ["x-big", "x".repeat(9 << 20)]];
    const [r, ok] = await Promise.all([plugin.stream().requestHeaders(huge, true), plugin.stream().requestHeaders(REQ, true)]);
    expect(r.action).toBe("local");
    expect(r.response!.status).toBe(503);
    expect(isMeshError(r.failure, ErrorCodes.WASM_BUFFER_LIMIT)).toBe(true);
    expect(ok).toEqual({ action: "continue", headers: REQ });
    expect(hostLogs.some((l) => l.includes("cannot pass a command to the plugin"))).toBe(true);
    // a 9 MiB callout answer: the plugin sees a failed callout
    expect((await plugin.stream().requestHeaders([...REQ, ["x-call", "1"]], true)).action).toBe("continue");
    await until(() => logs.length > 0, "the callout response");
    expect(logs).toEqual(["call_response 0 0 0"]);
    // and the plugin keeps working
    expect((await plugin.stream().requestHeaders(REQ, true)).action).toBe("continue");
    expect(plugin.starts).toBe(1);
    await plugin.stop();
  });

  test("done() resolves when the VM failed or the plugin stopped before on_done ran", async () => {
    const { plugin } = await testPlugin(
      `(func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (unreachable))`,
    );
    await plugin.start();
    const a = plugin.stream();
    const b = plugin.stream();
    await a.requestHeaders(REQ, true);
    await b.requestHeaders(REQ, true);
    const doneA = a.done(); // queued for the next round trip, which traps
    expect((await b.responseHeaders(RESP, true)).action).toBe("local");
    await doneA;
    const c = plugin.stream();
    await c.requestHeaders(REQ, true);
    const doneC = c.done();
    await plugin.stop();
    await doneC;
    await b.done();
  });
});

describe("http-callout example", () => {
  let dir: string;
  let wasm: Uint8Array;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "mesh-wasm-resume-"));
    const example = EXAMPLES.find((e) => e.name === "http-callout")!;
    wasm = (await compileAssemblyScript(example.entry, join(dir, "http-callout.wasm"))).wasm;
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const delayMs of [0, 20]) {
    test(`body chunks queued behind the paused headers all go upstream (callout answers after ${delayMs} ms)`, async () => {
      const plugin = new WasmPlugin({
        name: "default.http-callout",
        rootId: "http-callout",
        bytes: wasm,
        configuration: JSON.stringify({ upstream: "authz.default.svc.cluster.local:8080", path: "/check" }),
        callbackBudgetMs: 500, // not what this test is about: a busy machine must not fail it
        httpCall: async () => {
          if (delayMs > 0) await Bun.sleep(delayMs);
          return { headers: [[":status", "200"], ["x-auth-user", "alice"]] };
        },
      });
      await plugin.start();
      for (let i = 0; i < 3; i++) {
        const s: WasmStream = plugin.stream();
        // as the waypoint's chain does when body chunks arrive while the headers are held
        const all = await Promise.all([
          s.requestHeaders([[":method", "POST"], [":path", "/upload"], [":authority", "svc"]], false),
          s.requestBody(bytes("part 1, "), false),
          s.requestBody(bytes("part 2"), true),
        ]);
        const up = upstream(all);
        expect(up.headers).toEqual([[[":method", "POST"], [":path", "/upload"], [":authority", "svc"], ["x-auth-user", "alice"]]]);
        expect(up.body).toBe("part 1, part 2");
        expect(all[2]!.action).toBe("continue");
        await s.done();
      }
      await plugin.stop();
    });
  }
});

test("HOST_CALLBACKS lists what the host calls", () => {
  expect(HOST_CALLBACKS).toContain("proxy_on_request_headers");
  expect(HOST_CALLBACKS).toContain("proxy_on_http_call_response");
  expect(HOST_CALLBACKS).toContain("proxy_on_memory_allocate");
  expect(HOST_CALLBACKS).not.toContain("proxy_on_new_connection");
  expect(new Set(HOST_CALLBACKS).size).toBe(HOST_CALLBACKS.length);
});
