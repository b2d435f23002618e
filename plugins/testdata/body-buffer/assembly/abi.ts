// @ts-nocheck — AssemblyScript 0.14 source (compiled by asc, not by tsc).
//
// The one host function body-buffer needs that `@solo-io/proxy-runtime` 0.1.8 does not provide:
// its imports.ts declares `proxy_set_buffer_status` bound to the *get* status import and has no
// `proxy_set_buffer_bytes` at all. Signature from the Proxy-Wasm ABI 0.2.x:
//   proxy_set_buffer_bytes(buffer_type, start, size, data_ptr, data_size) -> proxy_status_t
// Replaces `size` bytes at `start` with the data (start 0, size = current length: replace all).

// @ts-ignore: decorator
@external("env", "proxy_set_buffer_bytes")
export declare function proxy_set_buffer_bytes(buffer_type: i32, start: u32, size: u32, data_ptr: usize, data_size: usize): u32;
