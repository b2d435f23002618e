// @ts-nocheck — AssemblyScript 0.14 source (compiled by asc, not by tsc).
//
// TEST DATA (plugins/testdata) — body-buffer: an SDK-based (`@solo-io/proxy-runtime` 0.1.8) plugin
// that exercises request-body buffering and body replacement.
//
// proxy_on_request_body(ctx, size, end_of_stream):
//   - logs "body-buffer proxy_on_request_body <ctx> <size> <eos 0|1>" at INFO, so a test can see
//     that `size` grows while the body is buffered;
//   - before end of stream: returns StopIterationAndBuffer (1);
//   - at end of stream: reads the whole buffered body (`proxy_get_buffer_bytes(0, 0, size)`),
//     upper-cases ASCII a-z, replaces the body with it (`proxy_set_buffer_bytes(0, 0, size, …)`,
//     "replace all"; same length, so content-length stays valid), logs
//     "body-buffer replaced <ctx> <bytes> status <proxy_status>", and returns Continue (0).
// Everything else is the SDK default (Continue). `proxy_set_buffer_bytes` is declared in ./abi.ts
// because 0.1.8 lacks it.
//
// Imports: the SDK baseline (proxy_log, proxy_get_property, proxy_get_buffer_bytes,
// proxy_set_effective_context, wasi_unstable.proc_exit) + env.proxy_set_buffer_bytes.
// Root id: "body-buffer" or "". The plugin configuration is ignored (any, including empty).
//
// Deliberately uses the SDK's own exports (`@solo-io/proxy-runtime/proxy`), so the module has the
// exact shape of an unmodified 0.1.8 plugin (including its gRPC callbacks and the misnamed
// `proxy_on_grpc_trailing_metadata`). Under AssemblyScript 0.14 those exports leak one reference per
// stream callback, so each stream context stays allocated: fine for tests, not a template (the
// examples use plugins/examples/common/assembly/proxy.ts instead).

export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterDataStatusValues, LogLevelValues, log,
} from "@solo-io/proxy-runtime";
import { get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";
import { proxy_set_buffer_bytes } from "./abi";

const HTTP_REQUEST_BODY: i32 = 0; // proxy_buffer_type_t

class BodyBufferRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new BodyBuffer(context_id, this);
  }

  // Replaces the SDK's onConfigure (0.1.8 reads the configuration through a bad pointer); the
  // configuration is not used.
  onConfigure(_configuration_size: u32): bool {
    return true;
  }
}

class BodyBuffer extends Context {
  constructor(context_id: u32, root: BodyBufferRoot) {
    super(context_id, root);
  }

  onRequestBody(body_buffer_length: usize, end_of_stream: bool): FilterDataStatusValues {
    const id = this.context_id.toString();
    log(LogLevelValues.info, "body-buffer proxy_on_request_body " + id + " " + body_buffer_length.toString() + " " +
      (end_of_stream ? "1" : "0"));
    if (!end_of_stream) return FilterDataStatusValues.StopIterationAndBuffer;

    const body = get_buffer_bytes(HTTP_REQUEST_BODY, 0, <u32>body_buffer_length);
    const bytes = Uint8Array.wrap(body);
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i];
      if (c >= 0x61 && c <= 0x7a) bytes[i] = c - 0x20;
    }
    const status = proxy_set_buffer_bytes(HTTP_REQUEST_BODY, 0, <u32>body.byteLength, changetype<usize>(body), body.byteLength);
    log(LogLevelValues.info, "body-buffer replaced " + id + " " + body.byteLength.toString() + " status " + status.toString());
    return FilterDataStatusValues.Continue;
  }
}

registerRootContext((context_id: u32): RootContext => new BodyBufferRoot(context_id), "body-buffer");
registerRootContext((context_id: u32): RootContext => new BodyBufferRoot(context_id), "");
