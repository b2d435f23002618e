;; TEST DATA (plugins/testdata) — misbehaving Proxy-Wasm plugin: grows memory without bound.
;; A well-formed ABI 0.2.1 module (marker, memory, malloc, lifecycle callbacks) whose
;; proxy_on_request_headers calls `memory.grow` 16 pages (1 MiB) at a time until the engine
;; refuses, then traps (`unreachable`). Its memory declares no maximum. The new pages are never
;; written, so on an unprotected host this costs address space, not resident memory. A host test
;; checks that the host bounds a plugin's memory (e.g. inspects `memory.buffer.byteLength` after
;; each callback, or runs plugins where growth is capped) and fails the VM. No imports.
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
    (loop $grow
      (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))
