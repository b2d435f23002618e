// The plugin lifecycle and stream semantics through the embedder API (reference/waypoint.md
// §A.7–A.9), in a worker and inline: call order, header edits, deferred continue and local
// responses, body buffering, callouts, timers, shared data and queues, metrics, properties.

import { describe, expect, test } from "bun:test";
import { ErrorCodes } from "../core/errors/index.ts";
import { renderPrometheus } from "./metrics.ts";
import { grpcFrame } from "./grpc.ts";
import type { HttpCallFn, StreamCallFn } from "./plugin.ts";
import { SharedState } from "./shared.ts";
import { bytes, REQ, RESP, testPlugin, testPlugin as testPluginIn, text, until } from "./testdata/plugins.ts";
import { pairsLiteral } from "./testdata/wat.ts";

const GET_A = pairsLiteral([":method", "GET", ":path", "/", ":authority", "a"]);

const RECORDER = `
(func (export "proxy_on_context_create") (param i32 i32) (call $log3 {{"create"}} (local.get 0) (local.get 1) (i32.const 0)))
(func (export "proxy_on_vm_start") (param i32 i32) (result i32) (call $log3 {{"vm_start"}} (local.get 0) (local.get 1) (i32.const 0)) (i32.const 1))
(func (export "proxy_on_configure") (param i32 i32) (result i32)
  (call $log3 {{"configure"}} (local.get 0) (local.get 1) (i32.const 0)) (call $log_buffer (i32.const 7)) (i32.const 1))
(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (call $log3 {{"request_headers"}} (local.get 0) (local.get 1) (local.get 2)) (i32.const 0))
(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (call $log3 {{"request_body"}} (local.get 0) (local.get 1) (local.get 2)) (i32.const 0))
(func (export "proxy_on_request_trailers") (param i32 i32) (result i32) (call $log3 {{"request_trailers"}} (local.get 0) (local.get 1) (i32.const 0)) (i32.const 0))
(func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (call $log3 {{"response_headers"}} (local.get 0) (local.get 1) (local.get 2)) (i32.const 0))
(func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (call $log3 {{"response_body"}} (local.get 0) (local.get 1) (local.get 2)) (i32.const 0))
(func (export "proxy_on_response_trailers") (param i32 i32) (result i32) (call $log3 {{"response_trailers"}} (local.get 0) (local.get 1) (i32.const 0)) (i32.const 0))
(func (export "proxy_on_done") (param i32) (result i32) (call $log3 {{"done"}} (local.get 0) (i32.const 0) (i32.const 0)) (i32.const 1))
(func (export "proxy_on_log") (param i32) (call $log3 {{"log"}} (local.get 0) (i32.const 0) (i32.const 0)) (call $log_map (i32.const 2)))
(func (export "proxy_on_delete") (param i32) (call $log3 {{"delete"}} (local.get 0) (i32.const 0) (i32.const 0)))
`;

// gRPC test plugins: log the trailing metadata's size and the close status, then go back to the waiting stream
const LOG_GRPC_END = `(func (export "proxy_on_grpc_receive_trailing_metadata") (param i32 i32 i32)
           (call $log3 {{"trailing"}} (i32.and (local.get 1) (i32.const 3)) (local.get 2) (i32.const 0)))
         (func (export "proxy_on_grpc_close") (param i32 i32 i32)
           (call $log3 {{"close"}} (i32.and (local.get 1) (i32.const 3)) (local.get 2) (i32.const 0))
           (drop (call $proxy_set_effective_context (global.get $waiting)))`;

for (const isolation of ["worker", "inline", "auto"] as const) {
  // every stream test in each place a VM can run
  const testPlugin: typeof testPluginIn = (body, opts = {}, m) => testPluginIn(body, { isolation, ...opts }, m);
  describe(`lifecycle (${isolation})`, () => {
    test("start sequence and the full call order of one stream", async () => {
      const { plugin, logs } = await testPlugin(RECORDER, { isolation, configuration: '{"greeting":"hi"}', vmConfiguration: "vm" });
      await plugin.start();
      expect(logs).toEqual(["create 1 0 0", "vm_start 1 2 0", "configure 1 17 0", '{"greeting":"hi"}']);
      const s = plugin.stream();
      expect((await s.requestHeaders(REQ, false)).action).toBe("continue");
      expect((await s.requestBody(bytes("abc"), false)).body).toEqual(bytes("abc"));
      expect((await s.requestBody(bytes("de"), false)).body).toEqual(bytes("de"));
      expect((await s.requestTrailers([["grpc-status", "0"]])).trailers).toEqual([["grpc-status", "0"]]);
      expect((await s.responseHeaders(RESP, false)).headers).toBe(RESP); // unmodified: the same array
      expect((await s.responseBody(bytes("xyz"), true)).action).toBe("continue");
      s.done({ responseCodeDetails: "via_upstream" });
      await plugin.stop();
      expect(logs.slice(4)).toEqual([
        "create 2 1 0",
        "request_headers 2 5 0",
        "request_body 2 3 0",
        "request_body 2 2 0",
        "request_trailers 2 1 0",
        "response_headers 2 2 0",
        "response_body 2 3 1",
        "done 2 0 0",
        "log 2 0 0",
        ":status=200;content-type=text/plain;",
        "delete 2 0 0",
        "done 1 0 0",
        "delete 1 0 0",
      ]);
    });

    test("header edits come back; untouched phases return the caller's array", async () => {
      const { plugin } = await testPlugin(
        `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (drop (call $proxy_replace_header_map_value (i32.const 0) {{":path"}} {{"/rewritten"}}))
           (drop (call $proxy_remove_header_map_value (i32.const 0) {{"user-agent"}}))
           (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-plugin"}} {{"yes"}})) (i32.const 0))
         (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
           (drop (call $proxy_add_header_map_value (i32.const 2) {{"hello"}} {{"world"}})) (i32.const 0))`,
        { isolation },
      );
      await plugin.start();
      for (let i = 0; i < 3; i++) {
        const s = plugin.stream();
        const r1 = await s.requestHeaders(REQ, true);
        expect(r1).toEqual({
          action: "continue",
          headers: [
            [":method", "GET"],
            [":path", "/rewritten"],
            [":authority", "svc.ns.svc.cluster.local"],
            [":scheme", "http"],
            ["x-plugin", "yes"],
          ],
        });
        const r2 = await s.responseHeaders(RESP, true);
        expect(r2.headers).toEqual([...RESP, ["hello", "world"]]);
        s.done();
      }
      await plugin.stop();
    });

    test("callout: pause, proxy_http_call, resume with an added header or answer 401", async () => {
      const calls: { upstream: string; headers: readonly (readonly [string, string])[]; timeoutMs: number }[] = [];
      let status = "200";
      const httpCall: HttpCallFn = async (upstream, headers, _body, _trailers, timeoutMs) => {
        calls.push({ upstream, headers, timeoutMs });
        await Bun.sleep(1);
        return { headers: [[":status", status]], body: bytes("ok") };
      };
      const { plugin, logs } = await testPlugin(
        `(global $waiting (mut i32) (i32.const 0))
         (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (global.set $waiting (local.get 0))
           (if (call $proxy_http_call {{"auth"}}
                 ${pairsLiteral([":method", "POST", ":path", "/check", ":authority", "auth.local"])}
                 (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 250) (i32.const 300))
             (then (unreachable)))
           (i32.const 1))
         (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
           (call $log3 {{"call_response"}} (local.get 2) (local.get 3) (local.get 4))
           (drop (call $proxy_set_effective_context (global.get $waiting)))
           (call $log_buffer (i32.const 4))
           (drop (call $proxy_get_header_map_value (i32.const 6) {{":status"}} (i32.const 256) (i32.const 260)))
           (if (i32.eq (i32.load8_u (i32.load (i32.const 256))) (i32.const 50))
             (then
               (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-auth"}} {{"ok"}}))
               (drop (call $proxy_continue_stream (i32.const 0))))
             (else
               (drop (call $proxy_send_local_response (i32.const 401) {{"not authorized"}} {{"denied"}}
                 ${pairsLiteral(["x-deny", "1"])} (i32.const 16))))))`,
        { isolation, httpCall },
      );
      await plugin.start();
      const s = plugin.stream();
      const r = await s.requestHeaders(REQ, true);
      expect(r.action).toBe("continue");
      expect(r.headers).toEqual([...REQ, ["x-auth", "ok"]]);
      expect(calls).toEqual([
        { upstream: "auth", headers: [[":method", "POST"], [":path", "/check"], [":authority", "auth.local"]], timeoutMs: 250 },
      ]);
      expect(logs).toEqual(["call_response 1 2 0", "ok"]);
      s.done();

      status = "403";
      const s2 = plugin.stream();
      const r2 = await s2.requestHeaders(REQ, true);
      expect(r2.action).toBe("local");
      expect(r2.response!.status).toBe(401);
      expect(text(r2.response!.body)).toBe("denied");
      expect(r2.response!.headers).toEqual([["x-deny", "1"]]);
      expect(r2.response!.grpcStatus).toBe(16);
      expect(r2.response!.details).toBe("not_authorized");
      s2.done();
      await plugin.stop();
    });

    test("gRPC callout: proxy_grpc_call goes out as gRPC over HTTP/2; metadata, message, trailers and close come back in order", async () => {
      const calls: { kind: string; headers: readonly (readonly [string, string])[]; body: Uint8Array }[] = [];
      const frame = (m: string) => grpcFrame(bytes(m));
      let grpcStatus = "0";
      const httpCall: HttpCallFn = async (_upstream, headers, body, _trailers, _timeoutMs, kind) => {
        calls.push({ kind, headers, body });
        return { headers: [[":status", "200"], ["content-type", "application/grpc"], ["x-initial", "i"]], body: frame("allowed"), trailers: [["grpc-status", grpcStatus], ["grpc-message", "no%20way"]] };
      };
      const { plugin, logs } = await testPlugin(
        `(global $waiting (mut i32) (i32.const 0))
         (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (global.set $waiting (local.get 0))
           (if (call $proxy_grpc_call {{"authz:9000"}} {{"pkg.Auth"}} {{"Check"}} ${pairsLiteral(["x-tenant", "t1"])}
                 {{"ask"}} (i32.const 300) (i32.const 300))
             (then (unreachable)))
           (i32.const 1))
         (func (export "proxy_on_grpc_receive_initial_metadata") (param i32 i32 i32)
           (call $log3 {{"initial"}} (i32.and (local.get 1) (i32.const 3)) (local.get 2) (i32.const 0))
           (call $log_map (i32.const 4)))
         (func (export "proxy_on_grpc_receive") (param i32 i32 i32)
           (call $log3 {{"message"}} (i32.and (local.get 1) (i32.const 3)) (local.get 2) (i32.const 0))
           (call $log_buffer (i32.const 5)))
         ${LOG_GRPC_END}
           (if (i32.eqz (local.get 2))
             (then (drop (call $proxy_continue_stream (i32.const 0))))
             (else (drop (call $proxy_send_local_response (i32.const 403) {{"grpc denied"}} {{"denied"}} (i32.const 0) (i32.const 0) (local.get 2))))))`,
        { isolation, httpCall },
      );
      await plugin.start();
      const s = plugin.stream();
      expect((await s.requestHeaders(REQ, true)).action).toBe("continue");
      expect(calls.length).toBe(1);
      expect(calls[0]!.kind).toBe("grpc");
      expect(calls[0]!.headers).toEqual([
        [":method", "POST"], [":path", "/pkg.Auth/Check"], [":authority", "authz:9000"], ["content-type", "application/grpc"],
        ["te", "trailers"], ["grpc-timeout", "300m"], ["x-tenant", "t1"],
      ]);
      expect([...calls[0]!.body]).toEqual([0, 0, 0, 0, 3, ...bytes("ask")]);
      expect(logs).toEqual(["initial 1 2 0", "content-type=application/grpc;x-initial=i;", "message 1 7 0", "allowed", "trailing 1 2 0", "close 1 0 0"]);
      s.done();
      logs.length = 0;
      grpcStatus = "7";
      const s2 = plugin.stream();
      const r2 = await s2.requestHeaders(REQ, true);
      expect(r2.action).toBe("local");
      expect(r2.response!.status).toBe(403);
      expect(r2.response!.grpcStatus).toBe(7);
      expect(logs.at(-1)).toBe("close 1 7 0");
      s2.done();
      await plugin.stop();
    });

    test("gRPC stream: messages out as they are sent, each answer message in as it arrives, then trailing metadata and close", async () => {
      const sent: string[] = [];
      let opened: readonly (readonly [string, string])[] = [];
      const frame = (m: string) => grpcFrame(bytes(m));
      // an echo service: answers each message with its upper case; the status when the client half-closes
      const streamCall: StreamCallFn = (_upstream, headers, events) => {
        opened = headers;
        setTimeout(() => events.headers([[":status", "200"], ["content-type", "application/grpc"]]), 1);
        return {
          write: (chunk, end) => {
            const text = new TextDecoder().decode(chunk.subarray(5));
            sent.push(`${text}${end ? " (end)" : ""}`);
            setTimeout(() => {
              events.data(frame(text.toUpperCase()));
              if (end) events.end([["grpc-status", "0"]]);
            }, 2);
          },
          end: () => {
            sent.push("(half-close)");
            setTimeout(() => events.end([["grpc-status", "0"]]), 5);
          },
          cancel: () => sent.push("(cancel)"),
        };
      };
      const { plugin, logs } = await testPlugin(
        `(global $waiting (mut i32) (i32.const 0)) (global $stream (mut i32) (i32.const 0))
         (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (global.set $waiting (local.get 0))
           (if (call $proxy_grpc_stream {{"chat:9000"}} {{"pkg.Chat"}} {{"Talk"}} (i32.const 0) (i32.const 0) (i32.const 300))
             (then (unreachable)))
           (global.set $stream (i32.load (i32.const 300)))
           (drop (call $proxy_grpc_send (global.get $stream) {{"hi"}} (i32.const 0)))
           (drop (call $proxy_grpc_send (global.get $stream) {{"there"}} (i32.const 0)))
           (drop (call $proxy_grpc_close (global.get $stream)))
           (i32.const 1))
         (func (export "proxy_on_grpc_receive_initial_metadata") (param i32 i32 i32)
           (call $log3 {{"initial"}} (i32.and (local.get 1) (i32.const 3)) (local.get 2) (i32.const 0)))
         (func (export "proxy_on_grpc_receive") (param i32 i32 i32)
           (call $log_buffer (i32.const 5)))
         ${LOG_GRPC_END}
           (drop (call $proxy_continue_stream (i32.const 0))))`,
        { isolation, streamCall },
      );
      await plugin.start();
      const s = plugin.stream();
      expect((await s.requestHeaders(REQ, true)).action).toBe("continue");
      expect(opened).toContainEqual([":path", "/pkg.Chat/Talk"]);
      expect(sent).toEqual(["hi", "there", "(half-close)"]);
      expect(logs).toEqual(["initial 2 1 0", "HI", "THERE", "trailing 2 1 0", "close 2 0 0"]);
      s.done();
      await plugin.stop();
    });

    test("gRPC stream without a handler: it closes at once with UNAVAILABLE", async () => {
      const { plugin, logs } = await testPlugin(
        `(global $waiting (mut i32) (i32.const 0))
         (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (global.set $waiting (local.get 0))
           (drop (call $proxy_grpc_stream {{"chat:9000"}} {{"pkg.Chat"}} {{"Talk"}} (i32.const 0) (i32.const 0) (i32.const 300)))
           (i32.const 1))
         (func (export "proxy_on_grpc_close") (param i32 i32 i32)
           (call $log3 {{"close"}} (i32.and (local.get 1) (i32.const 3)) (local.get 2) (i32.const 0))
           (drop (call $proxy_set_effective_context (global.get $waiting)))
           (drop (call $proxy_continue_stream (i32.const 0))))`,
        { isolation },
      );
      await plugin.start();
      expect((await plugin.stream().requestHeaders(REQ, true)).action).toBe("continue");
      expect(logs).toEqual(["close 2 14 0"]);
      await plugin.stop();
    });

    test("stop: proxy_on_done returning false keeps the root context working until it calls proxy_done, then proxy_on_delete", async () => {
      const { plugin, logs } = await testPlugin(
        `(global $ticks (mut i32) (i32.const 0))
         (func (export "proxy_on_done") (param i32) (result i32)
           (call $log3 {{"on_done"}} (local.get 0) (i32.const 0) (i32.const 0))
           (drop (call $proxy_set_tick_period_milliseconds (i32.const 5)))
           (i32.const 0))
         (func (export "proxy_on_tick") (param i32)
           (global.set $ticks (i32.add (global.get $ticks) (i32.const 1)))
           (if (i32.eq (global.get $ticks) (i32.const 2))
             (then
               (call $log3 {{"finished"}} (local.get 0) (global.get $ticks) (i32.const 0))
               (drop (call $proxy_done)))))
         (func (export "proxy_on_delete") (param i32)
           (call $log3 {{"on_delete"}} (local.get 0) (i32.const 0) (i32.const 0)))`,
        { isolation },
      );
      await plugin.start();
      await plugin.stop();
      expect(logs).toEqual(["on_done 1 0 0", "finished 1 2 0", "on_delete 1 0 0"]);
    });

    test("stop: a plugin that never calls proxy_done is stopped after rootDoneTimeoutMs, with a warning", async () => {
      const { plugin, logs, hostLogs } = await testPlugin(
        `(func (export "proxy_on_done") (param i32) (result i32) (i32.const 0))
         (func (export "proxy_on_delete") (param i32)
           (call $log3 {{"on_delete"}} (local.get 0) (i32.const 0) (i32.const 0)))`,
        { isolation, rootDoneTimeoutMs: 50 },
      );
      await plugin.start();
      const t0 = performance.now();
      await plugin.stop();
      expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
      expect(logs).toEqual([]);
      expect(hostLogs.some((l) => l.includes("proxy_done did not come within 50 ms"))).toBe(true);
    });

    test("a failed callout is delivered with zero headers; get_status carries the reason", async () => {
      const { plugin, logs } = await testPlugin(
        `(global $waiting (mut i32) (i32.const 0))
         (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (global.set $waiting (local.get 0))
           (drop (call $proxy_http_call {{"auth"}}
                 ${GET_A}
                 (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 300)))
           (i32.const 1))
         (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
           (call $log3 {{"call_response"}} (local.get 2) (local.get 3) (local.get 4))
           (drop (call $proxy_get_status (i32.const 264) (i32.const 256) (i32.const 260)))
           (drop (call $proxy_log (i32.const 2) (i32.load (i32.const 256)) (i32.load (i32.const 260))))
           (drop (call $proxy_set_effective_context (global.get $waiting)))
           (drop (call $proxy_send_local_response (i32.const 500) {{"callout failed"}} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1))))`,
        { isolation, httpCall: async () => Promise.reject(new Error("connection refused")) },
      );
      await plugin.start();
      const r = await plugin.stream().requestHeaders(REQ, true);
      expect(r.action).toBe("local");
      expect(r.response!.status).toBe(500);
      expect(r.response!.grpcStatus).toBeUndefined();
      expect(logs).toEqual(["call_response 0 0 0", "connection refused"]);
      await plugin.stop();
    });

    test("continue and local response requested inside the callback are applied after it returns", async () => {
      const { plugin } = await testPlugin(
        `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (drop (call $proxy_continue_stream (i32.const 0)))
           (i32.const 1))
         (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
           (drop (call $proxy_send_local_response (i32.const 418) {{"teapot"}} {{"short and stout"}} (i32.const 0) (i32.const 0) (i32.const -1)))
           (i32.const 0))`,
        { isolation },
      );
      await plugin.start();
      const s = plugin.stream();
      expect((await s.requestHeaders(REQ, true)).action).toBe("continue"); // returned stop, continued after
      const r = await s.responseHeaders(RESP, true); // returned continue, the local response wins
      expect(r.action).toBe("local");
      expect(r.response!.status).toBe(418);
      expect(text(r.response!.body)).toBe("short and stout");
      expect((await s.responseBody(bytes("x"), true)).action).toBe("local"); // the stream is over
      s.done();
      await plugin.stop();
    });

    test("proxy_close_stream resets the stream", async () => {
      const { plugin } = await testPlugin(
        `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (drop (call $proxy_close_stream (i32.const 0))) (i32.const 0))`,
        { isolation },
      );
      await plugin.start();
      expect((await plugin.stream().requestHeaders(REQ, true)).action).toBe("reset");
      await plugin.stop();
    });

    test("body buffering: StopIterationAndBuffer accumulates, the edited body is released at the end", async () => {
      const { plugin, logs } = await testPlugin(
        `(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
           (call $log3 {{"body"}} (local.get 1) (local.get 2) (i32.const 0))
           (if (result i32) (local.get 2)
             (then
               (call $log_buffer (i32.const 0))
               (drop (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 0) {{"["}}))
               (drop (call $proxy_set_buffer_bytes (i32.const 0) (i32.const -1) (i32.const 0) {{"]"}}))
               (i32.const 0))
             (else (i32.const 1))))`,
        { isolation },
      );
      await plugin.start();
      const s = plugin.stream();
      expect((await s.requestHeaders(REQ, false)).action).toBe("continue");
      expect(await s.requestBody(bytes("hello "), false)).toEqual({ action: "stop" });
      expect(await s.requestBody(bytes("big "), false)).toEqual({ action: "stop" });
      const r = await s.requestBody(bytes("world"), true);
      expect(r.action).toBe("continue");
      expect(text(r.body)).toBe("[hello big world]");
      expect(logs).toEqual(["body 6 0 0", "body 10 0 0", "body 15 1 0", "hello big world"]);
      // buffered but unmodified: the host hands back the bytes it kept
      const s2 = plugin.stream();
      await s2.requestHeaders(REQ, false);
      await s2.requestBody(bytes("a"), false);
      logs.length = 0;
      await plugin.stop();
    });

    test("a paused request holds its body without calling the plugin, then shows it all on resume", async () => {
      let release: () => void = () => {};
      const gate = new Promise<void>((r) => (release = r));
      const { plugin, logs } = await testPlugin(
        `(global $waiting (mut i32) (i32.const 0))
         (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (global.set $waiting (local.get 0))
           (drop (call $proxy_http_call {{"auth"}}
                 ${GET_A}
                 (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 300)))
           (i32.const 1))
         (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
           (call $log3 {{"body"}} (local.get 1) (local.get 2) (i32.const 0))
           (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-seen"}} {{"body"}}))
           (i32.const 0))
         (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
           (drop (call $proxy_set_effective_context (global.get $waiting)))
           (drop (call $proxy_continue_stream (i32.const 0))))`,
        {
          isolation,
          httpCall: async () => {
            await gate;
            return { headers: [[":status", "200"]] };
          },
        },
      );
      await plugin.start();
      const s = plugin.stream();
      const r1 = await s.requestHeaders(REQ, false);
      expect(r1).toEqual({ action: "stop" });
      expect(await s.requestBody(bytes("part1-"), false)).toEqual({ action: "stop" });
      const last = s.requestBody(bytes("part2"), true); // waits: end of stream, still paused
      await Bun.sleep(5);
      expect(logs).toEqual([]); // the plugin has not seen any body yet
      release();
      const r = await last;
      expect(r.action).toBe("continue");
      expect(r.headers).toEqual([...REQ]); // released as they were when the plugin paused
      expect(text(r.body)).toBe("part1-part2");
      expect(logs).toEqual(["body 11 1 0"]);
      await plugin.stop();
    });

    test("a body beyond the buffer bound ends the stream with 413", async () => {
      const { plugin, hostLogs } = await testPlugin(
        `(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 1))`,
        { isolation, maxBufferBytes: 8 },
      );
      await plugin.start();
      const s = plugin.stream();
      await s.requestHeaders(REQ, false);
      expect((await s.requestBody(bytes("12345"), false)).action).toBe("stop");
      const r = await s.requestBody(bytes("67890"), true);
      expect(r.action).toBe("local");
      expect(r.response!.status).toBe(413);
      expect(r.response!.details).toBe("request_payload_too_large");
      void hostLogs;
      await plugin.stop();
    });

    test("timers: proxy_set_tick_period_milliseconds drives proxy_on_tick on the root context", async () => {
      const { plugin, logs } = await testPlugin(
        `(global $n (mut i32) (i32.const 0))
         (func (export "proxy_on_configure") (param i32 i32) (result i32)
           (drop (call $proxy_set_tick_period_milliseconds (i32.const 5))) (i32.const 1))
         (func (export "proxy_on_tick") (param i32)
           (global.set $n (i32.add (global.get $n) (i32.const 1)))
           (call $log3 {{"tick"}} (local.get 0) (global.get $n) (i32.const 0))
           (if (i32.eq (global.get $n) (i32.const 3)) (then (drop (call $proxy_set_tick_period_milliseconds (i32.const 0))))))`,
        { isolation },
      );
      await plugin.start();
      await until(() => logs.length >= 3, "three ticks");
      await Bun.sleep(30);
      expect(logs).toEqual(["tick 1 1 0", "tick 1 2 0", "tick 1 3 0"]); // period 0 stopped the timer
      await plugin.stop();
    });

    test("metrics survive in the host and render as Prometheus text", async () => {
      const { plugin } = await testPlugin(
        `(global $c (mut i32) (i32.const 0)) (global $h (mut i32) (i32.const 0))
         (func (export "proxy_on_configure") (param i32 i32) (result i32)
           (drop (call $proxy_define_metric (i32.const 0) {{"requests.total"}} (i32.const 300)))
           (global.set $c (i32.load (i32.const 300)))
           (drop (call $proxy_define_metric (i32.const 2) {{"req_size"}} (i32.const 300)))
           (global.set $h (i32.load (i32.const 300)))
           (i32.const 1))
         (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (drop (call $proxy_increment_metric (global.get $c) (i64.const 1)))
           (drop (call $proxy_record_metric (global.get $h) (i64.extend_i32_u (local.get 1))))
           (i32.const 0))`,
        { isolation, name: "ns.sizer" },
      );
      await plugin.start();
      for (let i = 0; i < 3; i++) await plugin.stream().requestHeaders(REQ, true);
      const m = plugin.metrics();
      expect(m.find((x) => x.name === "requests.total")).toEqual({
        name: "requests.total",
        promName: "wasm_requests_total",
        type: "counter",
        value: 3,
      });
      const h = m.find((x) => x.name === "req_size")!;
      expect(h.histogram!.count).toBe(3);
      expect(h.histogram!.sum).toBe(15);
      const prom = renderPrometheus([{ plugin: plugin.name, metrics: m }]);
      expect(prom).toContain("# TYPE wasm_requests_total counter\n");
      expect(prom).toContain('wasm_requests_total{plugin="ns.sizer"} 3\n');
      expect(prom).toContain('wasm_req_size_bucket{plugin="ns.sizer",le="5"} 3');
      expect(prom).toContain('wasm_req_size_bucket{plugin="ns.sizer",le="1"} 0');
      expect(prom).toContain('wasm_req_size_count{plugin="ns.sizer"} 3');
      await plugin.stop();
    });

    test("properties: per-stream values from the embedder and the current headers", async () => {
      const { plugin, logs } = await testPlugin(
        `(func $prop (param i32 i32)
           (if (i32.eqz (call $proxy_get_property (local.get 0) (local.get 1) (i32.const 256) (i32.const 260)))
             (then (drop (call $proxy_log (i32.const 2) (i32.load (i32.const 256)) (i32.load (i32.const 260)))))
             (else (call $log3 {{"missing"}} (i32.const 0) (i32.const 0) (i32.const 0)))))
         (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (call $prop {{"source\\00principal"}})
           (call $prop {{"request\\00url_path"}})
           (call $prop {{"request\\00protocol"}})
           (call $prop {{"xds\\00cluster_name"}})
           (call $prop {{"plugin_name"}})
           (i32.const 0))
         (func (export "proxy_on_log") (param i32)
           (call $prop {{"response\\00code_details"}}))`,
        { isolation },
      );
      await plugin.start();
      const s = plugin.stream({
        source: { address: "10.0.0.9", port: 33000, principal: "spiffe://cluster.local/ns/default/sa/sleep" },
        protocol: "HTTP/1.1",
        extra: { "xds.cluster_name": "inbound|8080||" },
      });
      await s.requestHeaders(REQ, true);
      s.done({ responseCodeDetails: "via_upstream" });
      await plugin.stop();
      expect(logs).toEqual([
        "spiffe://cluster.local/ns/default/sa/sleep",
        "/hello",
        "HTTP/1.1",
        "inbound|8080||",
        "test.plugin",
        "via_upstream",
      ]);
    });

    test("streams are isolated: each result carries only its own stream's data", async () => {
      const { plugin } = await testPlugin(
        `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
           (drop (call $proxy_get_header_map_value (i32.const 0) {{":path"}} (i32.const 256) (i32.const 260)))
           (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-echo"}} (i32.load (i32.const 256)) (i32.load (i32.const 260))))
           (i32.const 0))`,
        { isolation },
      );
      await plugin.start();
      const streams = Array.from({ length: 20 }, () => plugin.stream());
      const results = await Promise.all(streams.map((s, i) => s.requestHeaders([[":path", `/p${i}`]], true)));
      results.forEach((r, i) => expect(r.headers).toEqual([[":path", `/p${i}`], ["x-echo", `/p${i}`]]));
      for (const s of streams) s.done();
      await plugin.stop();
    });

    test("large bodies cross the channel intact; chunks above the bound are fed in pieces", async () => {
      const { plugin, logs } = await testPlugin(
        `(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
           (call $log3 {{"body"}} (local.get 1) (local.get 2) (i32.const 0))
           (if (result i32) (local.get 2) (then (i32.const 0)) (else (i32.const 1))))
         (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
           (call $log3 {{"resp"}} (local.get 1) (local.get 2) (i32.const 0)) (i32.const 0))`,
        { isolation, maxBufferBytes: 512 * 1024, maxMemoryPages: 64 },
      );
      await plugin.start();
      const big = new Uint8Array(300 * 1024).map((_, i) => (i * 7) & 0xff);
      const s = plugin.stream();
      await s.requestHeaders(REQ, false);
      expect((await s.requestBody(big.subarray(0, 100 * 1024), false)).action).toBe("stop");
      const r = await s.requestBody(big.subarray(100 * 1024), true);
      expect(r.action).toBe("continue");
      expect(r.body).toEqual(big);
      // 1.2 MiB in one chunk, bound 512 KiB: three body callbacks, the bytes come back in order
      const huge = new Uint8Array(1200 * 1024).map((_, i) => (i * 13) & 0xff);
      await s.responseHeaders(RESP, false);
      const rr = await s.responseBody(huge, true);
      expect(rr.action).toBe("continue");
      expect(rr.body).toEqual(huge);
      expect(logs).toEqual(["body 102400 0 0", "body 307200 1 0", "resp 524288 0 0", "resp 524288 0 0", "resp 180224 1 0"]);
      await plugin.stop();
    });

    test("phase calls of one direction made without awaiting run in order", async () => {
      const { plugin, logs } = await testPlugin(
        `(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
           (call $log3 {{"body"}} (local.get 1) (local.get 2) (i32.const 0)) (i32.const 0))`,
        { isolation },
      );
      await plugin.start();
      const s = plugin.stream();
      const all = await Promise.all([
        s.requestHeaders(REQ, false),
        s.requestBody(bytes("a"), false),
        s.requestBody(bytes("bb"), false),
        s.requestBody(bytes("ccc"), true),
      ]);
      expect(all.map((r) => r.action)).toEqual(["continue", "continue", "continue", "continue"]);
      expect(all.slice(1).map((r) => text(r.body))).toEqual(["a", "bb", "ccc"]);
      expect(logs).toEqual(["body 1 0 0", "body 2 0 0", "body 3 1 0"]);
      await plugin.stop();
    });

    test("a local response after the response headers went out becomes a reset", async () => {
      const { plugin } = await testPlugin(
        `(func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
           (drop (call $proxy_send_local_response (i32.const 500) {{"late"}} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))
           (i32.const 0))`,
        { isolation },
      );
      await plugin.start();
      const s = plugin.stream();
      await s.requestHeaders(REQ, true);
      expect((await s.responseHeaders(RESP, false)).action).toBe("continue");
      expect((await s.responseBody(bytes("x"), true)).action).toBe("reset");
      await plugin.stop();
    });

    test("WASI output of the module becomes log lines", async () => {
      const { plugin, logs } = await testPlugin(
        `(func (export "proxy_on_configure") (param i32 i32) (result i32)
           (i32.store (i32.const 300) (i32.const 1024))
           (i32.store (i32.const 304) (i32.const 12))
           (drop {{"from stdout\\n"}})
           (drop)
           (drop (call $wasi_fd_write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))
           (i32.const 1))`,
        { isolation },
      );
      await plugin.start();
      expect(logs).toEqual(["from stdout"]);
      await plugin.stop();
    });
  });
}

describe("shared state across plugins (workers)", () => {
  test("shared data with CAS and a queue that wakes its owner in another worker", async () => {
    const shared = new SharedState();
    const owner = await testPlugin(
      `(func (export "proxy_on_configure") (param i32 i32) (result i32)
         (drop (call $proxy_register_shared_queue {{"events"}} (i32.const 300))) (i32.const 1))
       (func (export "proxy_on_queue_ready") (param i32 i32)
         (drop (call $proxy_dequeue_shared_queue (local.get 1) (i32.const 256) (i32.const 260)))
         (drop (call $proxy_log (i32.const 2) (i32.load (i32.const 256)) (i32.load (i32.const 260)))))`,
      { sharedState: shared, name: "owner", vmId: "shared-vm" },
    );
    const producer = await testPlugin(
      `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
         (drop (call $proxy_set_shared_data {{"k"}} {{"v1"}} (i32.const 0)))
         (drop (call $proxy_get_shared_data {{"k"}} (i32.const 256) (i32.const 260) (i32.const 264)))
         (call $log3 {{"cas_mismatch"}} (call $proxy_set_shared_data {{"k"}} {{"v2"}} (i32.add (i32.load (i32.const 264)) (i32.const 1))) (i32.const 0) (i32.const 0))
         (call $log3 {{"cas_ok"}} (call $proxy_set_shared_data {{"k"}} {{"v2"}} (i32.load (i32.const 264))) (i32.const 0) (i32.const 0))
         (if (i32.eqz (call $proxy_resolve_shared_queue {{"shared-vm"}} {{"events"}} (i32.const 300)))
           (then (drop (call $proxy_enqueue_shared_queue (i32.load (i32.const 300)) {{"hello from producer"}}))))
         (i32.const 0))`,
      { sharedState: shared, name: "producer", vmId: "shared-vm" },
    );
    await owner.plugin.start();
    await producer.plugin.start();
    await producer.plugin.stream().requestHeaders(REQ, true);
    expect(producer.logs).toEqual(["cas_mismatch 8 0 0", "cas_ok 0 0 0"]);
    expect(new TextDecoder().decode(shared.getData("shared-vm", "k")!.value)).toBe("v2");
    await until(() => owner.logs.length > 0, "the queue owner to be woken");
    expect(owner.logs).toEqual(["hello from producer"]);
    await owner.plugin.stop();
    await producer.plugin.stop();
  });

  test("an unknown error code never escapes: callouts without a handler fail cleanly", async () => {
    const { plugin, logs } = await testPlugin(
      `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
         (drop (call $proxy_http_call {{"x"}}
           ${GET_A}
           (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 300)))
         (i32.const 0))
       (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
         (call $log3 {{"response"}} (local.get 2) (local.get 3) (local.get 4)))`,
    );
    await plugin.start();
    expect((await plugin.stream().requestHeaders(REQ, true)).action).toBe("continue");
    await until(() => logs.length > 0, "the callout failure");
    expect(logs).toEqual(["response 0 0 0"]);
    expect(ErrorCodes.WASM_TRAP).toBe("WASM_TRAP");
    await plugin.stop();
  });
});

describe("phaseNow: a phase without a promise when the VM can run it at once", () => {
  const ADD = `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
      (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-now"}} {{"1"}})) (i32.const 0))
    (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
      (if (i32.eqz (local.get 2)) (then (return (i32.const 1)))) (i32.const 0))`;

  test("on the calling thread and idle: the result itself, the same as the named call would give", async () => {
    const { plugin } = await testPlugin(ADD, { isolation: "auto" });
    await plugin.start();
    const s = plugin.stream();
    const r = s.phaseNow(0, 0, REQ, undefined, true);
    expect(r instanceof Promise).toBe(false);
    expect((r as { headers: unknown }).headers).toEqual([...REQ, ["x-now", "1"]]);
    // a body the plugin buffers until its end: the first chunk is held (stop), the end releases both
    expect(s.phaseNow(1, 0, RESP, undefined, false)).toMatchObject({ action: "continue" });
    expect(s.phaseNow(1, 1, undefined, bytes("ab"), false)).toMatchObject({ action: "stop" });
    const end = s.phaseNow(1, 1, undefined, bytes("cd"), true);
    expect(end instanceof Promise).toBe(false);
    expect(text((end as { body: Uint8Array }).body)).toBe("abcd");
    await s.done();
    await plugin.stop();
  });

  for (const isolation of ["inline", "worker"] as const) {
    test(`headers with the first body chunk (part 3, ${isolation}): both callbacks in one call, in order, the headers not ending the stream`, async () => {
      const { plugin, logs } = await testPlugin(RECORDER, { isolation });
      await plugin.start();
      logs.length = 0;
      const s = plugin.stream();
      const r = await s.phaseNow(1, 3, RESP, bytes("xyz"), true);
      expect(r).toMatchObject({ action: "continue", body: bytes("xyz") });
      expect(r.headers).toBe(RESP); // unmodified: the same array
      await s.done();
      await plugin.stop();
      expect(logs.slice(0, 3)).toEqual(["create 2 1 0", "response_headers 2 2 0", "response_body 2 3 1"]);
    });

    test(`part 3 (${isolation}): a plugin that buffers the body releases the headers at once and the body at its end`, async () => {
      const { plugin } = await testPlugin(ADD, { isolation });
      await plugin.start();
      const s = plugin.stream();
      const first = await s.phaseNow(1, 3, RESP, bytes("ab"), false);
      expect(first.action).toBe("stop");
      expect(first.headers).toBe(RESP);
      expect(first.body).toBeUndefined();
      expect(text((await s.phaseNow(1, 1, undefined, bytes("cd"), true)).body!)).toBe("abcd");
      await s.done();
      await plugin.stop();
    });
  }

  test("part 3 with a first chunk over the buffer bound: headers, then the chunk piece by piece, one result", async () => {
    const { plugin, logs } = await testPlugin(RECORDER, { isolation: "inline", maxBufferBytes: 4 });
    await plugin.start();
    logs.length = 0;
    const s = plugin.stream();
    const r = await s.phaseNow(1, 3, RESP, bytes("abcdefghij"), true);
    expect(r.action).toBe("continue");
    expect(r.headers).toBe(RESP);
    expect(text(r.body!)).toBe("abcdefghij");
    await s.done();
    await plugin.stop();
    expect(logs.slice(0, 5)).toEqual(["create 2 1 0", "response_headers 2 2 0", "response_body 2 4 0", "response_body 2 4 0", "response_body 2 2 1"]);
  });

  test("in a worker: a promise with the same result", async () => {
    const { plugin } = await testPlugin(ADD, { isolation: "worker" });
    await plugin.start();
    const s = plugin.stream();
    const r = s.phaseNow(0, 0, REQ, undefined, true);
    expect(r instanceof Promise).toBe(true);
    expect((await r).headers).toEqual([...REQ, ["x-now", "1"]]);
    await s.done();
    await plugin.stop();
  });

  test("a phase of a direction that already waits queues behind it instead of overtaking", async () => {
    const { plugin } = await testPlugin(ADD, { isolation: "worker" });
    await plugin.start();
    const s = plugin.stream();
    const first = s.phaseNow(1, 0, RESP, undefined, false);
    const second = s.phaseNow(1, 1, undefined, bytes("x"), true);
    expect(first instanceof Promise && second instanceof Promise).toBe(true);
    const order: string[] = [];
    await Promise.all([Promise.resolve(first).then(() => order.push("headers")), Promise.resolve(second).then(() => order.push("body"))]);
    expect(order).toEqual(["headers", "body"]);
    await s.done();
    await plugin.stop();
  });
});
