// Test support: WasmPlugin instances over WAT modules, with their logs collected.

import { WasmPlugin, type WasmPluginOptions } from "../plugin.ts";
import { type ModuleOptions, pluginModule } from "./wat.ts";

export interface TestPlugin {
  readonly plugin: WasmPlugin;
  /** Messages the plugin logged (proxy_log / WASI), in order. */
  readonly logs: string[];
  /** Messages the host logged about the plugin. */
  readonly hostLogs: string[];
}

export async function testPlugin(
  body: string,
  opts: Partial<WasmPluginOptions> = {},
  moduleOpts: ModuleOptions = {},
): Promise<TestPlugin> {
  const bytes = await pluginModule(body, moduleOpts);
  const logs: string[] = [];
  const hostLogs: string[] = [];
  const plugin = new WasmPlugin({
    name: "test.plugin",
    rootId: "test_root",
    bytes,
    configuration: "{}",
    logLevel: "trace",
    ...opts,
    log: (e) => {
      (e.source === "plugin" ? logs : hostLogs).push(e.message);
      opts.log?.(e);
    },
  });
  return { plugin, logs, hostLogs };
}

/** Waits until `cond` holds (polling), failing with `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

export const REQ: [string, string][] = [
  [":method", "GET"],
  [":path", "/hello?x=1"],
  [":authority", "svc.ns.svc.cluster.local"],
  [":scheme", "http"],
  ["user-agent", "test"],
];
export const RESP: [string, string][] = [
  [":status", "200"],
  ["content-type", "text/plain"],
];

export const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));
export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * WAT body of a plugin that asks a gRPC service before letting a request through: a unary call to
 * `upstream` (mesh.test.Authz/Check) with the request's x-ask header as the message; the reply
 * message goes into request header `header`; PERMISSION_DENIED (7) answers 403, any other failure 503.
 */
export function grpcAskPlugin(upstream: string, header: string): string {
  return `
(global $waiting (mut i32) (i32.const 0))
(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
  (global.set $waiting (local.get 0))
  (i32.store (i32.const 256) (i32.const 0)) (i32.store (i32.const 260) (i32.const 0))
  (drop (call $proxy_get_header_map_value (i32.const 0) {{"x-ask"}} (i32.const 256) (i32.const 260)))
  (if (call $proxy_grpc_call {{"${upstream}"}} {{"mesh.test.Authz"}} {{"Check"}} (i32.const 0) (i32.const 0)
        (i32.load (i32.const 256)) (i32.load (i32.const 260)) (i32.const 2000) (i32.const 300))
    (then (unreachable)))
  (i32.const 1))
(func (export "proxy_on_grpc_receive") (param i32 i32 i32)
  (drop (call $proxy_set_effective_context (global.get $waiting)))
  (if (i32.eqz (call $proxy_get_buffer_bytes (i32.const 5) (i32.const 0) (local.get 2) (i32.const 264) (i32.const 268)))
    (then (drop (call $proxy_add_header_map_value (i32.const 0) {{"${header}"}} (i32.load (i32.const 264)) (i32.load (i32.const 268)))))))
(func (export "proxy_on_grpc_close") (param i32 i32 i32)
  (drop (call $proxy_set_effective_context (global.get $waiting)))
  (if (i32.eqz (local.get 2))
    (then (drop (call $proxy_continue_stream (i32.const 0))))
    (else (if (i32.eq (local.get 2) (i32.const 7))
      (then (drop (call $proxy_send_local_response (i32.const 403) {{"grpc_denied"}} {{"denied by the gRPC service"}} (i32.const 0) (i32.const 0) (local.get 2))))
      (else (drop (call $proxy_send_local_response (i32.const 503) {{"grpc_failed"}} {{"gRPC call failed"}} (i32.const 0) (i32.const 0) (local.get 2))))))))`;
}

/**
 * WAT body of a plugin that talks to a gRPC stream before letting a request through: it opens
 * `upstream` mesh.test.Chat/Echo, sends "hi" and "there", half-closes, collects the answer messages
 * and, when the stream closes OK, adds them (concatenated) as request header `header`; else 503.
 */
export function grpcStreamPlugin(upstream: string, header: string): string {
  return `
(global $waiting (mut i32) (i32.const 0))
(global $got (mut i32) (i32.const 0))
(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
  (local $s i32)
  (global.set $waiting (local.get 0))
  (global.set $got (i32.const 0))
  (if (call $proxy_grpc_stream {{"${upstream}"}} {{"mesh.test.Chat"}} {{"Echo"}} (i32.const 0) (i32.const 0) (i32.const 300))
    (then (unreachable)))
  (local.set $s (i32.load (i32.const 300)))
  (drop (call $proxy_grpc_send (local.get $s) {{"hi"}} (i32.const 0)))
  (drop (call $proxy_grpc_send (local.get $s) {{"there"}} (i32.const 0)))
  (drop (call $proxy_grpc_close (local.get $s)))
  (i32.const 1))
(func (export "proxy_on_grpc_receive") (param i32 i32 i32)
  (if (i32.eqz (call $proxy_get_buffer_bytes (i32.const 5) (i32.const 0) (local.get 2) (i32.const 264) (i32.const 268)))
    (then
      (memory.copy (i32.add (i32.const 1536) (global.get $got)) (i32.load (i32.const 264)) (i32.load (i32.const 268)))
      (global.set $got (i32.add (global.get $got) (i32.load (i32.const 268)))))))
(func (export "proxy_on_grpc_close") (param i32 i32 i32)
  (drop (call $proxy_set_effective_context (global.get $waiting)))
  (if (i32.eqz (local.get 2))
    (then
      (drop (call $proxy_add_header_map_value (i32.const 0) {{"${header}"}} (i32.const 1536) (global.get $got)))
      (drop (call $proxy_continue_stream (i32.const 0))))
    (else (drop (call $proxy_send_local_response (i32.const 503) {{"grpc_stream_failed"}} {{"gRPC stream failed"}} (i32.const 0) (i32.const 0) (local.get 2))))))`;
}
