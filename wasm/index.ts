// Public entry of wasm/: the Proxy-Wasm host the waypoint runs plugins with.
//
//   const plugin = new WasmPlugin({ name, rootId, bytes, configuration, httpCall, log });
//   await plugin.start();                       // MeshError WASM_* on failure
//   const s = plugin.stream({ source, destination, protocol, startTimeMs });
//   const r = await s.requestHeaders(headers, endOfStream);   // PhaseResult
//   ... responseHeaders / bodies / trailers ...
//   s.done({ responseCodeDetails });            // Promise: resolves once on_done/on_log/on_delete ran
//   renderPrometheus([{ plugin: plugin.name, metrics: plugin.metrics() }]);
//   await plugin.stop();

export {
  failStrategyResult,
  WasmPlugin,
  type FailStrategy,
  type PluginIsolation,
  type HeaderPairs,
  type HttpCallFn,
  type StreamCallFn,
  type CalloutStream,
  type CalloutStreamEvents,
  type HttpCallResult,
  type LocalResponse,
  type PhaseResult,
  type PluginLogEntry,
  type WasmPluginOptions,
  type WasmStream,
} from "./plugin.ts";
export {
  checkModule,
  describeModule,
  missingImports,
  type ImportProblem,
  type ModuleImport,
  type ModuleReport,
} from "./module-info.ts";
export {
  ENV_IMPORTS,
  UNSUPPORTED_HOST_FUNCTIONS,
  WASI_IMPLEMENTED,
  WASI_IMPORTS,
  WASI_MODULES,
  providedImport,
} from "./imports.ts";
export { HISTOGRAM_BUCKETS, PluginMetricStore, prometheusName, renderPrometheus, type HistogramSnapshot, type PluginMetric } from "./metrics.ts";
export { grpcFrame } from "./grpc.ts";
export type { PeerProperties, PropertyValue, StreamCompletion, StreamProperties } from "./properties.ts";
export { processSharedState, SharedState } from "./shared.ts";
export { decodePairs, encodePairs } from "./serialization.ts";
export { type AbiVersion, HOST_CALLBACKS, LOG_LEVEL_NAMES, type LogLevelName, Status } from "./abi.ts";

import { ENV_IMPORTS as ENV_TABLE, WASI_IMPORTS as WASI_TABLE, WASI_MODULES as WASI_MODULE_NAMES } from "./imports.ts";

/** Every import this host provides, as `module.name`, for `mesh plugin check`. */
export function providedImports(): string[] {
  return [
    ...Object.keys(ENV_TABLE).map((n) => `env.${n}`),
    ...WASI_MODULE_NAMES.flatMap((m) => Object.keys(WASI_TABLE).map((n) => `${m}.${n}`)),
  ];
}
