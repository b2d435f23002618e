// The import surface this host provides, with the signature each import must have. One table
// feeds `missingImports` (what `mesh plugin check` reports) and a test that the linked import
// objects contain exactly these names.

import type { FuncType, ValType } from "./binary.ts";

function sig(params: string, results = "i32"): FuncType {
  const p = params === "" ? [] : (params.split(" ") as ValType[]);
  const r = results === "" ? [] : (results.split(" ") as ValType[]);
  return { params: p, results: r };
}
const i32s = (n: number): string => Array.from({ length: n }, () => "i32").join(" ");

/** Proxy-Wasm host functions in module `env` (spec 0.2.1, plus 0.1.0 legacy and SDK extras). */
export const ENV_IMPORTS: Readonly<Record<string, FuncType>> = {
  // lifecycle / context
  proxy_done: sig(""),
  proxy_set_effective_context: sig(i32s(1)),
  proxy_call_foreign_function: sig(i32s(6)),
  // logging, clocks, timers
  proxy_log: sig(i32s(3)),
  proxy_get_log_level: sig(i32s(1)),
  proxy_get_current_time_nanoseconds: sig(i32s(1)),
  proxy_set_tick_period_milliseconds: sig(i32s(1)),
  // buffers
  proxy_get_buffer_bytes: sig(i32s(5)),
  proxy_get_buffer_status: sig(i32s(3)),
  proxy_set_buffer_bytes: sig(i32s(5)),
  // header maps
  proxy_get_header_map_size: sig(i32s(2)),
  proxy_get_header_map_pairs: sig(i32s(3)),
  proxy_set_header_map_pairs: sig(i32s(3)),
  proxy_get_header_map_value: sig(i32s(5)),
  proxy_add_header_map_value: sig(i32s(5)),
  proxy_replace_header_map_value: sig(i32s(5)),
  proxy_remove_header_map_value: sig(i32s(3)),
  // stream control
  proxy_continue_stream: sig(i32s(1)),
  proxy_close_stream: sig(i32s(1)),
  proxy_send_local_response: sig(i32s(8)),
  proxy_get_status: sig(i32s(3)),
  // callouts
  proxy_http_call: sig(i32s(10)),
  proxy_grpc_call: sig(i32s(12)),
  proxy_grpc_stream: sig(i32s(9)),
  proxy_grpc_send: sig(i32s(4)),
  proxy_grpc_cancel: sig(i32s(1)),
  proxy_grpc_close: sig(i32s(1)),
  // shared data and queues
  proxy_get_shared_data: sig(i32s(5)),
  proxy_set_shared_data: sig(i32s(5)),
  proxy_register_shared_queue: sig(i32s(3)),
  proxy_resolve_shared_queue: sig(i32s(5)),
  proxy_enqueue_shared_queue: sig(i32s(3)),
  proxy_dequeue_shared_queue: sig(i32s(3)),
  // metrics
  proxy_define_metric: sig(i32s(4)),
  proxy_increment_metric: sig("i32 i64"),
  proxy_record_metric: sig("i32 i64"),
  proxy_get_metric: sig(i32s(2)),
  // properties
  proxy_get_property: sig(i32s(4)),
  proxy_set_property: sig(i32s(4)),
  // ABI 0.1.0 only
  proxy_get_configuration: sig(i32s(2)),
  proxy_continue_request: sig(""),
  proxy_continue_response: sig(""),
  proxy_clear_route_cache: sig(""),
  // toolchain extras: Emscripten (C++ SDK) and AssemblyScript built without `--use abort=...`
  emscripten_notify_memory_growth: sig(i32s(1), ""),
  pthread_equal: sig(i32s(2)),
  abort: sig(i32s(4), ""),
  trace: sig("i32 i32 f64 f64 f64 f64 f64", ""),
  seed: sig("", "f64"),
};

/** Host functions that exist (so modules link) but cannot do their job in this host, and why. */
export const UNSUPPORTED_HOST_FUNCTIONS: Readonly<Record<string, string>> = {
  proxy_call_foreign_function:
    "only compress, uncompress (zlib) and clear_route_cache are registered; Envoy's CEL, declare_property, set_envoy_filter_state, sign and verify_signature are not: NOT_FOUND",
  proxy_clear_route_cache:
    "routes are matched after the request's plugins ran, so a header or path edit already steers the request (as Envoy clears its route cache on an edit); returns OK with nothing left to do",
  proxy_close_stream:
    "HTTP_REQUEST/HTTP_RESPONSE reset the stream (phase result action \"reset\"); DOWNSTREAM/UPSTREAM need network (TCP) filters, which this host does not run: UNIMPLEMENTED",
  proxy_continue_stream: "DOWNSTREAM/UPSTREAM need network (TCP) filters, which this host does not run: UNIMPLEMENTED",
};

/** WASI preview-1 functions, provided under both `wasi_snapshot_preview1` and `wasi_unstable`. */
export const WASI_IMPORTS: Readonly<Record<string, FuncType>> = {
  args_get: sig(i32s(2)),
  args_sizes_get: sig(i32s(2)),
  environ_get: sig(i32s(2)),
  environ_sizes_get: sig(i32s(2)),
  clock_res_get: sig(i32s(2)),
  clock_time_get: sig("i32 i64 i32"),
  fd_advise: sig("i32 i64 i64 i32"),
  fd_allocate: sig("i32 i64 i64"),
  fd_close: sig(i32s(1)),
  fd_datasync: sig(i32s(1)),
  fd_fdstat_get: sig(i32s(2)),
  fd_fdstat_set_flags: sig(i32s(2)),
  fd_fdstat_set_rights: sig("i32 i64 i64"),
  fd_filestat_get: sig(i32s(2)),
  fd_filestat_set_size: sig("i32 i64"),
  fd_filestat_set_times: sig("i32 i64 i64 i32"),
  fd_pread: sig("i32 i32 i32 i64 i32"),
  fd_prestat_get: sig(i32s(2)),
  fd_prestat_dir_name: sig(i32s(3)),
  fd_pwrite: sig("i32 i32 i32 i64 i32"),
  fd_read: sig(i32s(4)),
  fd_readdir: sig("i32 i32 i32 i64 i32"),
  fd_renumber: sig(i32s(2)),
  fd_seek: sig("i32 i64 i32 i32"),
  fd_sync: sig(i32s(1)),
  fd_tell: sig(i32s(2)),
  fd_write: sig(i32s(4)),
  path_create_directory: sig(i32s(3)),
  path_filestat_get: sig(i32s(5)),
  path_filestat_set_times: sig("i32 i32 i32 i32 i64 i64 i32"),
  path_link: sig(i32s(7)),
  path_open: sig("i32 i32 i32 i32 i32 i64 i64 i32 i32"),
  path_readlink: sig(i32s(6)),
  path_remove_directory: sig(i32s(3)),
  path_rename: sig(i32s(6)),
  path_symlink: sig(i32s(5)),
  path_unlink_file: sig(i32s(3)),
  poll_oneoff: sig(i32s(4)),
  proc_exit: sig(i32s(1), ""),
  proc_raise: sig(i32s(1)),
  sched_yield: sig(""),
  random_get: sig(i32s(2)),
  sock_accept: sig(i32s(3)),
  sock_recv: sig(i32s(6)),
  sock_send: sig(i32s(5)),
  sock_shutdown: sig(i32s(2)),
};

/** WASI calls that do real work; every other WASI import returns ERRNO_NOSYS (or BADF for fds). */
export const WASI_IMPLEMENTED: readonly string[] = [
  "args_get",
  "args_sizes_get",
  "environ_get",
  "environ_sizes_get",
  "clock_res_get",
  "clock_time_get",
  "fd_write",
  "fd_fdstat_get",
  "fd_prestat_get",
  "poll_oneoff",
  "proc_exit",
  "random_get",
  "sched_yield",
];

export const WASI_MODULES = ["wasi_snapshot_preview1", "wasi_unstable"] as const;

/** Looks up the signature this host provides for (module, name), or undefined. */
export function providedImport(module: string, name: string): FuncType | undefined {
  if (module === "env") return Object.hasOwn(ENV_IMPORTS, name) ? ENV_IMPORTS[name] : undefined;
  if ((WASI_MODULES as readonly string[]).includes(module)) {
    return Object.hasOwn(WASI_IMPORTS, name) ? WASI_IMPORTS[name] : undefined;
  }
  return undefined;
}
