// @ts-nocheck — AssemblyScript 0.14 source (compiled by asc, not by tsc).
//
// # add-header — example Proxy-Wasm filter
//
// Adds one header to every response sent back downstream and one header to every request sent
// to the upstream.
//
// pluginConfig (JSON object; every key optional; unknown keys are refused):
//
//   {
//     "header": "x-hello",              // response header name   (default "x-hello")
//     "value": "world",                 // response header value  (default "world")
//     "request_header": "x-wasm-filter",// request header name    (default "x-wasm-filter")
//     "request_value": "add-header"     // request header value   (default "add-header")
//   }
//
// An empty/absent configuration means all defaults. Names must be lower-case HTTP tokens and values
// must not contain control characters; otherwise `proxy_on_configure` returns false and the host
// must treat the plugin as unusable.
//
// SDK use: contexts, root-id registry, header/local-response/metric/callout wrappers come from
// `@solo-io/proxy-runtime` 0.1.8. The module's ABI exports come from ../../common/assembly/proxy.ts
// instead of the SDK's `proxy` module (same routing, without the SDK's per-stream reference leak
// under AssemblyScript 0.14), and the configuration is read by ../../common/assembly (the SDK's
// onConfigure reads it through a bad pointer and traps on an empty one).
//
// Root id: register the plugin as `add-header` (Istio `WasmPlugin.spec.pluginName`) or leave it
// empty. Headers are *added* (an existing header of the same name is kept, not replaced).
//
// Build (from the repository root, where node_modules is):
//   ./node_modules/.bin/bun node_modules/assemblyscript/bin/asc \
//     plugins/examples/add-header/assembly/index.ts -b add-header.wasm --use abort=abort_proc_exit -O3
// or `compileAssemblyScript()` / `buildExamples()` from `plugins/build`.
//
// Host functions it imports: env.proxy_log, env.proxy_get_property, env.proxy_get_buffer_bytes,
// env.proxy_set_effective_context, env.proxy_add_header_map_value, wasi_unstable.proc_exit.

// The ABI exports (malloc + proxy_on_*): the SDK's routing with its reference leaks fixed.
export * from "../../common/assembly/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context,
} from "@solo-io/proxy-runtime";
import { loadJsonConfiguration, isHeaderName, isHeaderValue, StreamContext } from "../../common/assembly";

class AddHeaderRoot extends RootContext {
  responseHeader: string = "x-hello";
  responseValue: string = "world";
  requestHeader: string = "x-wasm-filter";
  requestValue: string = "add-header";

  createContext(context_id: u32): Context {
    return new AddHeader(context_id, this);
  }

  // Replaces the SDK's onConfigure (0.1.8 reads the configuration through a bad pointer).
  onConfigure(configuration_size: u32): bool {
    const c = loadJsonConfiguration(configuration_size);
    if (c === null) return false;
    const responseHeader = c.string("header", "x-hello");
    const responseValue = c.string("value", "world");
    const requestHeader = c.string("request_header", "x-wasm-filter");
    const requestValue = c.string("request_value", "add-header");
    if (!isHeaderName(responseHeader)) c.invalid("header", "must be a lower-case header name");
    if (!isHeaderValue(responseValue)) c.invalid("value", "must not contain control characters");
    if (!isHeaderName(requestHeader)) c.invalid("request_header", "must be a lower-case header name");
    if (!isHeaderValue(requestValue)) c.invalid("request_value", "must not contain control characters");
    if (!c.finish()) return false;
    this.responseHeader = responseHeader;
    this.responseValue = responseValue;
    this.requestHeader = requestHeader;
    this.requestValue = requestValue;
    return true;
  }
}

class AddHeader extends StreamContext {
  root: AddHeaderRoot;

  constructor(context_id: u32, root: AddHeaderRoot) {
    super(context_id, root);
    this.root = root;
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.request.add(this.root.requestHeader, this.root.requestValue);
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add(this.root.responseHeader, this.root.responseValue);
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32): RootContext => new AddHeaderRoot(context_id), "add-header");
// Envoy's default root id is "" (WasmPlugin without pluginName).
registerRootContext((context_id: u32): RootContext => new AddHeaderRoot(context_id), "");
