// @ts-nocheck — AssemblyScript 0.14 source (compiled by asc, not by tsc).
//
// # deny-by-header — example Proxy-Wasm filter
//
// Rejects requests that carry a configured request header: the filter answers them itself with a
// local response (`proxy_send_local_response`, default 403) so they never reach the upstream, and
// counts each rejection in a plugin counter metric (`proxy_define_metric` /
// `proxy_increment_metric`).
//
// pluginConfig (JSON object; every key optional; unknown keys are refused):
//
//   {
//     "header": "x-deny",                  // request header to look for        (default "x-deny")
//     "value": "yes",                      // deny only when the header's first value equals this;
//                                          // absent/null = deny whenever the header is present
//     "status": 403,                       // local response status, 200..599   (default 403)
//     "body": "denied\n",                  // local response body (text/plain)  (default below)
//     "metric": "deny_by_header_denied_total" // counter name                  (default shown)
//   }
//
// An empty/absent configuration means all defaults (deny when `x-deny` is present). A bad
// configuration makes `proxy_on_configure` return false.
//
// Host-side notes: the counter is defined from `proxy_on_configure` (root context); if the host has
// no metrics support (`proxy_define_metric` fails) the filter still denies, it just does not count.
// Only the first value of a repeated header is compared (`proxy_get_header_map_value`). The local
// response carries `content-type: text/plain; charset=utf-8`, details `deny_by_header`, and no
// gRPC status (grpc_status -1).
//
// SDK use: contexts, root-id registry, header/local-response/metric/callout wrappers come from
// `@solo-io/proxy-runtime` 0.1.8. The module's ABI exports come from ../../common/assembly/proxy.ts
// instead of the SDK's `proxy` module (same routing, without the SDK's per-stream reference leak
// under AssemblyScript 0.14), and the configuration is read by ../../common/assembly (the SDK's
// onConfigure reads it through a bad pointer and traps on an empty one).
//
// Root id: `deny-by-header` or empty.
//
// Host functions it imports: env.proxy_log, env.proxy_get_property, env.proxy_get_buffer_bytes,
// env.proxy_set_effective_context, env.proxy_get_header_map_value, env.proxy_send_local_response,
// env.proxy_define_metric, env.proxy_increment_metric, wasi_unstable.proc_exit.

// The ABI exports (malloc + proxy_on_*): the SDK's routing with its reference leaks fixed.
export * from "../../common/assembly/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, GrpcStatusValues,
  HeaderPair, Headers, LogLevelValues, WasmResultValues, log, send_local_response,
} from "@solo-io/proxy-runtime";
// Public in the SDK's runtime module but not re-exported from its index in 0.1.8.
import { define_metric, increment_metric, MetricTypeValues } from "@solo-io/proxy-runtime/runtime";
import { loadJsonConfiguration, headerValue, isHeaderName, REQUEST_HEADERS, StreamContext } from "../../common/assembly";

const DEFAULT_BODY = "request denied by deny-by-header\n";
const DEFAULT_METRIC = "deny_by_header_denied_total";

class DenyByHeaderRoot extends RootContext {
  header: string = "x-deny";
  matchValue: bool = false;
  value: string = "";
  status: u32 = 403;
  body: string = DEFAULT_BODY;
  metricName: string = "";
  metricId: u32 = 0;
  hasMetric: bool = false;

  createContext(context_id: u32): Context {
    return new DenyByHeader(context_id, this);
  }

  // Replaces the SDK's onConfigure (0.1.8 reads the configuration through a bad pointer).
  onConfigure(configuration_size: u32): bool {
    const c = loadJsonConfiguration(configuration_size);
    if (c === null) return false;
    const header = c.string("header", "x-deny");
    const matchValue = c.has("value");
    const value = c.string("value", "");
    const status = c.integer("status", 403, 200, 599);
    const body = c.string("body", DEFAULT_BODY);
    const metricName = c.string("metric", DEFAULT_METRIC);
    if (!isHeaderName(header)) c.invalid("header", "must be a lower-case header name");
    if (metricName.length == 0) c.invalid("metric", "must not be empty");
    if (!c.finish()) return false;
    this.header = header;
    this.matchValue = matchValue;
    this.value = value;
    this.status = status;
    this.body = body;
    if (metricName != this.metricName) this.defineCounter(metricName);
    return true;
  }

  defineCounter(name: string): void {
    this.metricName = name;
    const defined = define_metric(MetricTypeValues.Counter, name);
    this.hasMetric = defined.result == WasmResultValues.Ok;
    this.metricId = defined.metric_id;
    if (!this.hasMetric) {
      log(LogLevelValues.warn, "deny-by-header: cannot define metric " + name + " (status " +
        defined.result.toString() + "); denials will not be counted");
    }
  }

  countDenial(): void {
    if (!this.hasMetric) return;
    const result = increment_metric(this.metricId, 1);
    if (result != WasmResultValues.Ok) {
      log(LogLevelValues.warn, "deny-by-header: proxy_increment_metric failed: " + result.toString());
    }
  }
}

class DenyByHeader extends StreamContext {
  root: DenyByHeaderRoot;

  constructor(context_id: u32, root: DenyByHeaderRoot) {
    super(context_id, root);
    this.root = root;
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root;
    const found = headerValue(REQUEST_HEADERS, root.header);
    if (found === null) return FilterHeadersStatusValues.Continue;
    if (root.matchValue && found != root.value) return FilterHeadersStatusValues.Continue;

    root.countDenial();
    const headers: Headers = [];
    headers.push(new HeaderPair(String.UTF8.encode("content-type"), String.UTF8.encode("text/plain; charset=utf-8")));
    const result = send_local_response(root.status, "deny_by_header", String.UTF8.encode(root.body), headers,
      GrpcStatusValues.InvalidCode);
    if (result != WasmResultValues.Ok) {
      log(LogLevelValues.error, "deny-by-header: proxy_send_local_response failed: " + result.toString());
    }
    // The host also forces "stop" after a local response; returning it keeps the intent explicit.
    return FilterHeadersStatusValues.StopIteration;
  }
}

registerRootContext((context_id: u32): RootContext => new DenyByHeaderRoot(context_id), "deny-by-header");
registerRootContext((context_id: u32): RootContext => new DenyByHeaderRoot(context_id), "");
