// @ts-nocheck — AssemblyScript 0.14 source (compiled by asc, not by tsc).
//
// TEST DATA (plugins/testdata) — lifecycle-recorder: an SDK-based (`@solo-io/proxy-runtime` 0.1.8)
// plugin that logs every callback the SDK routes to it, so a host test can assert the call order.
//
// Each callback logs exactly one line at INFO (proxy_log level 2):
//   "lifecycle <abi callback name> <context id> [<numeric args>...]"
// e.g. "lifecycle proxy_on_context_create 1 0", "lifecycle proxy_on_vm_start 1 0",
//      "lifecycle proxy_on_configure 1 5 hello" (the configuration text is appended),
//      "lifecycle proxy_on_context_create 2 1", "lifecycle proxy_on_request_headers 2 4 1",
//      "lifecycle proxy_on_done 2", "lifecycle proxy_on_log 2", "lifecycle proxy_on_delete 2".
// Booleans (end_of_stream) are 0/1. The SDK itself logs many lines at DEBUG; filter on the
// "lifecycle " prefix. Every callback returns Continue / true and makes no other hostcall, so the
// module imports only the SDK baseline (proxy_log, proxy_get_property, proxy_get_buffer_bytes,
// proxy_set_effective_context, wasi_unstable.proc_exit).
//
// SDK constraints the host must meet (reference §B.3): `plugin_root_id` must be
// "lifecycle-recorder" or ""; proxy_on_context_create(root, 0) before root callbacks and
// proxy_on_context_create(stream, root) before stream callbacks. Not recorded: callbacks the 0.1.8
// SDK does not route (proxy_on_foreign_function, TCP callbacks — not exported by 0.1.8).
//
// Deliberately uses the SDK's own exports (`@solo-io/proxy-runtime/proxy`), so the module has the
// exact shape of an unmodified 0.1.8 plugin (including its gRPC callbacks and the misnamed
// `proxy_on_grpc_trailing_metadata`). Under AssemblyScript 0.14 those exports leak one reference per
// stream callback, so each stream context stays allocated: fine for tests, not a template (the
// examples use plugins/examples/common/assembly/proxy.ts instead).

export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, FilterDataStatusValues,
  FilterTrailersStatusValues, FilterMetadataStatusValues, LogLevelValues, log,
} from "@solo-io/proxy-runtime";
import { get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";

function record(line: string): void {
  log(LogLevelValues.info, "lifecycle " + line);
}

function flag(b: bool): string {
  return b ? "1" : "0";
}

class RecorderRoot extends RootContext {
  constructor(context_id: u32) {
    super(context_id);
    // The SDK constructs the root context from proxy_on_context_create(root_id, 0).
    record("proxy_on_context_create " + context_id.toString() + " 0");
  }

  createContext(context_id: u32): Context {
    record("proxy_on_context_create " + context_id.toString() + " " + this.context_id.toString());
    return new Recorder(context_id, this);
  }

  onStart(vm_configuration_size: usize): bool {
    record("proxy_on_vm_start " + this.context_id.toString() + " " + vm_configuration_size.toString());
    return true;
  }

  validateConfiguration(configuration_size: usize): bool {
    record("proxy_validate_configuration " + this.context_id.toString() + " " + configuration_size.toString());
    return true;
  }

  // Replaces the SDK's onConfigure (0.1.8 reads the configuration through a bad pointer).
  onConfigure(configuration_size: u32): bool {
    let line = "proxy_on_configure " + this.context_id.toString() + " " + configuration_size.toString();
    if (configuration_size > 0) line += " " + String.UTF8.decode(get_buffer_bytes(7, 0, configuration_size));
    record(line);
    return true;
  }

  onTick(): void {
    record("proxy_on_tick " + this.context_id.toString());
  }

  onQueueReady(token: u32): void {
    record("proxy_on_queue_ready " + this.context_id.toString() + " " + token.toString());
  }

  onHttpCallResponse(token: u32, headers: u32, body_size: u32, trailers: u32): void {
    record("proxy_on_http_call_response " + this.context_id.toString() + " " + token.toString() + " " +
      headers.toString() + " " + body_size.toString() + " " + trailers.toString());
  }

  onDone(): bool {
    record("proxy_on_done " + this.context_id.toString());
    return true;
  }

  onDelete(): void {
    record("proxy_on_delete " + this.context_id.toString());
  }
}

class Recorder extends Context {
  constructor(context_id: u32, root: RecorderRoot) {
    super(context_id, root);
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    record("proxy_on_request_headers " + this.context_id.toString() + " " + headers.toString() + " " + flag(end_of_stream));
    return FilterHeadersStatusValues.Continue;
  }

  onRequestBody(body_buffer_length: usize, end_of_stream: bool): FilterDataStatusValues {
    record("proxy_on_request_body " + this.context_id.toString() + " " + body_buffer_length.toString() + " " + flag(end_of_stream));
    return FilterDataStatusValues.Continue;
  }

  onRequestTrailers(trailers: u32): FilterTrailersStatusValues {
    record("proxy_on_request_trailers " + this.context_id.toString() + " " + trailers.toString());
    return FilterTrailersStatusValues.Continue;
  }

  onRequestMetadata(elements: u32): FilterMetadataStatusValues {
    record("proxy_on_request_metadata " + this.context_id.toString() + " " + elements.toString());
    return FilterMetadataStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    record("proxy_on_response_headers " + this.context_id.toString() + " " + headers.toString() + " " + flag(end_of_stream));
    return FilterHeadersStatusValues.Continue;
  }

  onResponseBody(body_buffer_length: usize, end_of_stream: bool): FilterDataStatusValues {
    record("proxy_on_response_body " + this.context_id.toString() + " " + body_buffer_length.toString() + " " + flag(end_of_stream));
    return FilterDataStatusValues.Continue;
  }

  onResponseTrailers(trailers: u32): FilterTrailersStatusValues {
    record("proxy_on_response_trailers " + this.context_id.toString() + " " + trailers.toString());
    return FilterTrailersStatusValues.Continue;
  }

  onResponseMetadata(elements: u32): FilterMetadataStatusValues {
    record("proxy_on_response_metadata " + this.context_id.toString() + " " + elements.toString());
    return FilterMetadataStatusValues.Continue;
  }

  onDone(): bool {
    record("proxy_on_done " + this.context_id.toString());
    return true;
  }

  onLog(): void {
    record("proxy_on_log " + this.context_id.toString());
  }

  onDelete(): void {
    record("proxy_on_delete " + this.context_id.toString());
  }
}

registerRootContext((context_id: u32): RootContext => new RecorderRoot(context_id), "lifecycle-recorder");
registerRootContext((context_id: u32): RootContext => new RecorderRoot(context_id), "");
