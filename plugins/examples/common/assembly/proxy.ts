// @ts-nocheck — AssemblyScript 0.14 source (compiled by asc, not by tsc).
//
// The module's Proxy-Wasm exports (ABI 0.2.0), for the examples to `export *` instead of
// `@solo-io/proxy-runtime/proxy`. It routes callbacks to the SDK's context classes exactly like
// the SDK's own `exports.ts`, with two fixes:
//
// 1. No leaked references. The SDK looks contexts up with `context_map.get(id) as Context` /
//    `as RootContext`; under AssemblyScript 0.14 that downcast retains once more than it releases,
//    so every stream callback leaks a reference to its stream context (no stream context is ever
//    freed: memory grows with every request) and every stream creation / callout leaks one on the
//    root (its 28-bit refcount overflows and aborts after 2^28 of them). Here streams live in a
//    map typed `Map<u32, Context>` (no downcast) and roots are fetched with the balanced
//    `getBaseContext` + `changetype`.
// 2. Garbage is collected. AssemblyScript 0.14 frees objects parked as possible cycle roots only in
//    `__collect()`, which nothing calls; `proxy_on_delete` calls it once the stream is gone.
//
// Also: callbacks for unknown context ids are logged and answered with Continue / false instead of
// trapping (a stream whose root does not exist yet creates it, as the SDK does), and the gRPC
// callbacks are not exported (0.1.8 cannot issue gRPC calls; its handlers are empty). Root
// contexts stay in the SDK's registry (`registerRootContext`, `plugin_root_id` lookup).

export { malloc, free } from "@solo-io/proxy-runtime/malloc";
import { RootContext, Context, LogLevelValues, log } from "@solo-io/proxy-runtime";
import { ensureRootContext, getBaseContext, deleteContext } from "@solo-io/proxy-runtime/runtime";

const streams = new Map<u32, Context>();
const roots = new Set<u32>(); // ids of root contexts in the SDK's registry

function rootContext(context_id: u32): RootContext {
  return changetype<RootContext>(getBaseContext(context_id));
}

function createRoot(context_id: u32): void {
  ensureRootContext(context_id); // aborts if plugin_root_id has no registered factory
  roots.add(context_id);
}

function unknownContext(context_id: u32, callback: string): void {
  log(LogLevelValues.error, callback + ": unknown context " + context_id.toString());
}

export function proxy_abi_version_0_2_0(): void {}

// -- root context ------------------------------------------------------------------------------

export function proxy_on_vm_start(root_context_id: u32, configuration_size: u32): u32 {
  if (!roots.has(root_context_id)) { unknownContext(root_context_id, "proxy_on_vm_start"); return 0; }
  return rootContext(root_context_id).onStart(configuration_size) ? 1 : 0;
}

export function proxy_validate_configuration(root_context_id: u32, configuration_size: u32): u32 {
  if (!roots.has(root_context_id)) { unknownContext(root_context_id, "proxy_validate_configuration"); return 0; }
  return rootContext(root_context_id).validateConfiguration(configuration_size) ? 1 : 0;
}

export function proxy_on_configure(root_context_id: u32, configuration_size: u32): u32 {
  if (!roots.has(root_context_id)) { unknownContext(root_context_id, "proxy_on_configure"); return 0; }
  return rootContext(root_context_id).onConfigure(configuration_size) ? 1 : 0;
}

export function proxy_on_tick(root_context_id: u32): void {
  if (!roots.has(root_context_id)) { unknownContext(root_context_id, "proxy_on_tick"); return; }
  rootContext(root_context_id).onTick();
}

export function proxy_on_queue_ready(root_context_id: u32, token: u32): void {
  if (!roots.has(root_context_id)) { unknownContext(root_context_id, "proxy_on_queue_ready"); return; }
  rootContext(root_context_id).onQueueReady(token);
}

export function proxy_on_http_call_response(root_context_id: u32, token: u32, headers: u32, body_size: u32, trailers: u32): void {
  if (!roots.has(root_context_id)) { unknownContext(root_context_id, "proxy_on_http_call_response"); return; }
  rootContext(root_context_id).onHttpCallResponse(token, headers, body_size, trailers);
}

// -- context lifecycle -------------------------------------------------------------------------

export function proxy_on_context_create(context_id: u32, parent_context_id: u32): void {
  if (parent_context_id == 0) {
    if (!roots.has(context_id)) createRoot(context_id);
    return;
  }
  if (streams.has(context_id)) return;
  if (!roots.has(parent_context_id)) createRoot(parent_context_id);
  streams.set(context_id, rootContext(parent_context_id).createContext(context_id));
}

export function proxy_on_done(context_id: u32): u32 {
  if (streams.has(context_id)) return streams.get(context_id).onDone() ? 1 : 0;
  if (roots.has(context_id)) return rootContext(context_id).onDone() ? 1 : 0;
  unknownContext(context_id, "proxy_on_done");
  return 1;
}

export function proxy_on_log(context_id: u32): void {
  if (streams.has(context_id)) streams.get(context_id).onLog();
}

export function proxy_on_delete(context_id: u32): void {
  if (streams.has(context_id)) {
    deleteStream(context_id);
  } else if (roots.has(context_id)) {
    rootContext(context_id).onDelete();
    deleteContext(context_id);
    roots.delete(context_id);
  } else {
    unknownContext(context_id, "proxy_on_delete");
  }
  __collect();
}

// Separate function so the stream's last local reference is released before `__collect` runs.
function deleteStream(context_id: u32): void {
  const ctx = streams.get(context_id);
  ctx.onDelete();
  streams.delete(context_id);
}

// -- HTTP stream -------------------------------------------------------------------------------

export function proxy_on_request_headers(context_id: u32, headers: u32, end_of_stream: u32): i32 {
  if (!streams.has(context_id)) { unknownContext(context_id, "proxy_on_request_headers"); return 0; }
  return streams.get(context_id).onRequestHeaders(headers, end_of_stream != 0);
}

export function proxy_on_request_body(context_id: u32, body_buffer_length: u32, end_of_stream: u32): i32 {
  if (!streams.has(context_id)) { unknownContext(context_id, "proxy_on_request_body"); return 0; }
  return streams.get(context_id).onRequestBody(body_buffer_length, end_of_stream != 0);
}

export function proxy_on_request_trailers(context_id: u32, trailers: u32): i32 {
  if (!streams.has(context_id)) { unknownContext(context_id, "proxy_on_request_trailers"); return 0; }
  return streams.get(context_id).onRequestTrailers(trailers);
}

export function proxy_on_request_metadata(context_id: u32, elements: u32): i32 {
  if (!streams.has(context_id)) { unknownContext(context_id, "proxy_on_request_metadata"); return 0; }
  return streams.get(context_id).onRequestMetadata(elements);
}

export function proxy_on_response_headers(context_id: u32, headers: u32, end_of_stream: u32): i32 {
  if (!streams.has(context_id)) { unknownContext(context_id, "proxy_on_response_headers"); return 0; }
  return streams.get(context_id).onResponseHeaders(headers, end_of_stream != 0);
}

export function proxy_on_response_body(context_id: u32, body_buffer_length: u32, end_of_stream: u32): i32 {
  if (!streams.has(context_id)) { unknownContext(context_id, "proxy_on_response_body"); return 0; }
  return streams.get(context_id).onResponseBody(body_buffer_length, end_of_stream != 0);
}

export function proxy_on_response_trailers(context_id: u32, trailers: u32): i32 {
  if (!streams.has(context_id)) { unknownContext(context_id, "proxy_on_response_trailers"); return 0; }
  return streams.get(context_id).onResponseTrailers(trailers);
}

export function proxy_on_response_metadata(context_id: u32, elements: u32): i32 {
  if (!streams.has(context_id)) { unknownContext(context_id, "proxy_on_response_metadata"); return 0; }
  return streams.get(context_id).onResponseMetadata(elements);
}
