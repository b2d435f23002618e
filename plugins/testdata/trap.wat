;; TEST DATA (plugins/testdata) — misbehaving Proxy-Wasm plugin: traps.
;; A well-formed ABI 0.2.1 module (marker, memory, malloc, lifecycle callbacks) whose
;; proxy_on_request_headers executes `unreachable`. Everything before it (context create,
;; vm_start, configure) succeeds, so a host test can check what happens after a trap in a stream
;; callback (VM marked failed, fail-open/fail-closed policy, restart). No imports.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  ;; Bump allocator: enough for a host that copies configuration/header maps in.
  (func (export "malloc") (param $size i32) (result i32)
    (local $p i32)
    (local $end i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x10000000)) (then (return (i32.const 0))))
    (local.set $p (global.get $heap))
    (local.set $end (i32.and (i32.add (i32.add (local.get $p) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 0xffff)) (i32.const 16)) (memory.size)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    unreachable)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))
