// Proxy-Wasm ABI constants (reference/waypoint.md §A.3). Values are the wire values; names follow
// the spec where it has one and the C++ SDK otherwise.

export type AbiVersion = "0.1.0" | "0.2.0" | "0.2.1";

/** Marker export that advertises each ABI version, newest first (detection order). */
export const ABI_MARKERS: readonly (readonly [AbiVersion, string])[] = [
  ["0.2.1", "proxy_abi_version_0_2_1"],
  ["0.2.0", "proxy_abi_version_0_2_0"],
  ["0.1.0", "proxy_abi_version_0_1_0"],
];

/** Callbacks the host invokes on a module's contexts (vm.ts); other exports are never called. */
export const CONTEXT_CALLBACKS = [
  "proxy_on_context_create",
  "proxy_on_vm_start",
  "proxy_on_configure",
  "proxy_on_tick",
  "proxy_on_queue_ready",
  "proxy_on_request_headers",
  "proxy_on_request_body",
  "proxy_on_request_trailers",
  "proxy_on_response_headers",
  "proxy_on_response_body",
  "proxy_on_response_trailers",
  "proxy_on_http_call_response",
  "proxy_on_grpc_receive_initial_metadata",
  "proxy_on_grpc_receive",
  "proxy_on_grpc_receive_trailing_metadata",
  "proxy_on_grpc_close",
  "proxy_on_done",
  "proxy_on_log",
  "proxy_on_delete",
] as const;

/**
 * Every `proxy_on_*` export the host drives: the context callbacks plus the allocator
 * `proxy_on_memory_allocate` (used when the module has no `malloc`).
 */
export const HOST_CALLBACKS: readonly string[] = [...CONTEXT_CALLBACKS, "proxy_on_memory_allocate"];

export const Status = {
  OK: 0,
  NOT_FOUND: 1,
  BAD_ARGUMENT: 2,
  SERIALIZATION_FAILURE: 3,
  PARSE_FAILURE: 4,
  BAD_EXPRESSION: 5,
  INVALID_MEMORY_ACCESS: 6,
  EMPTY: 7,
  CAS_MISMATCH: 8,
  RESULT_MISMATCH: 9,
  INTERNAL_FAILURE: 10,
  BROKEN_CONNECTION: 11,
  UNIMPLEMENTED: 12,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

export const LogLevel = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4, CRITICAL: 5 } as const;
export type LogLevelValue = (typeof LogLevel)[keyof typeof LogLevel];
export const LOG_LEVEL_NAMES = ["trace", "debug", "info", "warn", "error", "critical"] as const;
export type LogLevelName = (typeof LOG_LEVEL_NAMES)[number];

export const MapType = {
  HTTP_REQUEST_HEADERS: 0,
  HTTP_REQUEST_TRAILERS: 1,
  HTTP_RESPONSE_HEADERS: 2,
  HTTP_RESPONSE_TRAILERS: 3,
  GRPC_CALL_INITIAL_METADATA: 4,
  GRPC_CALL_TRAILING_METADATA: 5,
  HTTP_CALL_RESPONSE_HEADERS: 6,
  HTTP_CALL_RESPONSE_TRAILERS: 7,
} as const;
export const MAP_TYPE_MAX = 7;

export const BufferType = {
  HTTP_REQUEST_BODY: 0,
  HTTP_RESPONSE_BODY: 1,
  DOWNSTREAM_DATA: 2,
  UPSTREAM_DATA: 3,
  HTTP_CALL_RESPONSE_BODY: 4,
  GRPC_CALL_MESSAGE: 5,
  VM_CONFIGURATION: 6,
  PLUGIN_CONFIGURATION: 7,
  FOREIGN_FUNCTION_ARGUMENTS: 8,
} as const;
export const BUFFER_TYPE_MAX = 8;

export const StreamType = { HTTP_REQUEST: 0, HTTP_RESPONSE: 1, DOWNSTREAM: 2, UPSTREAM: 3 } as const;

export const MetricType = { COUNTER: 0, GAUGE: 1, HISTOGRAM: 2 } as const;
export type MetricTypeValue = (typeof MetricType)[keyof typeof MetricType];

/** Header callbacks: 0 continue, 1 stop, 2 continue-and-end-stream, 3/4 stop-all (buffer/watermark). */
export const FilterHeadersStatus = {
  Continue: 0,
  StopIteration: 1,
  ContinueAndEndStream: 2,
  StopAllIterationAndBuffer: 3,
  StopAllIterationAndWatermark: 4,
} as const;

export const FilterDataStatus = {
  Continue: 0,
  StopIterationAndBuffer: 1,
  StopIterationAndWatermark: 2,
  StopIterationNoBuffer: 3,
} as const;

export const FilterTrailersStatus = { Continue: 0, StopIteration: 1 } as const;

/** gRPC status codes a local response may carry; anything outside 0..16 means "not gRPC". */
export const GRPC_STATUS_MAX = 16;

/** WASI errno values the host returns (wasi_snapshot_preview1). */
export const Errno = {
  SUCCESS: 0,
  BADF: 8,
  FAULT: 21,
  INVAL: 28,
  NOENT: 44,
  NOSYS: 52,
  NOTSUP: 58,
} as const;

export const WASM_PAGE_BYTES = 65536;
