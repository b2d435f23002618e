// Test support: builds small Proxy-Wasm modules from WAT with the `wabt` npm package.
//
// `pluginModule(body)` wraps `body` (WAT module fields) with every `env` and WASI import of this
// host (as $proxy_* / $wasi_* functions), an exported memory, a bump `malloc`, the ABI marker and
// helpers:
//   {{"text"}}          -> `(i32.const addr) (i32.const len)` of a data segment holding "text"
//   (call $log3 {{"name"}} a b c)  logs "name a b c" at INFO
//   (call $log_buffer type)        logs the whole buffer `type` at INFO
//   (call $log_map type)           logs "k=v;k=v;" for header map `type` at INFO
//   out-pointer scratch: 256, 260, 264, 268 (u32 slots)

import wabtInit from "wabt";
import { ENV_IMPORTS, WASI_IMPORTS } from "../imports.ts";

type Wabt = Awaited<ReturnType<typeof wabtInit>>;
let wabt: Wabt | undefined;

export async function watToWasm(name: string, text: string): Promise<Uint8Array> {
  wabt ??= await wabtInit();
  const m = wabt.parseWat(name, text, { bulk_memory: true, multi_value: true });
  try {
    m.validate();
    return new Uint8Array(m.toBinary({}).buffer);
  } finally {
    m.destroy();
  }
}

function importDecls(): string {
  const lines: string[] = [];
  const fn = (module: string, name: string, alias: string, t: { params: readonly string[]; results: readonly string[] }) => {
    const p = t.params.length ? ` (param ${t.params.join(" ")})` : "";
    const r = t.results.length ? ` (result ${t.results.join(" ")})` : "";
    lines.push(`(import "${module}" "${name}" (func $${alias}${p}${r}))`);
  };
  for (const [name, t] of Object.entries(ENV_IMPORTS)) fn("env", name, name, t);
  for (const [name, t] of Object.entries(WASI_IMPORTS)) fn("wasi_snapshot_preview1", name, `wasi_${name}`, t);
  return lines.join("\n");
}

const PRELUDE = `
(memory (export "memory") 2)
(global $heap (mut i32) (i32.const 65536))
(func $malloc (export "malloc") (param $n i32) (result i32)
  (local $p i32) (local $need i32)
  (local.set $p (global.get $heap))
  (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
  (local.set $need (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
  (if (i32.gt_s (local.get $need) (i32.const 0))
    (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (local.get $need) (i32.const 16)) (i32.const 1))) (i32.const -1))
      (then (return (i32.const 0))))))
  (local.get $p))
(func $utoa (param $v i32) (param $out i32) (result i32)
  (local $tmp i32) (local $len i32) (local $i i32)
  (local.set $tmp (local.get $v))
  (local.set $len (i32.const 1))
  (block $done (loop $count
    (br_if $done (i32.lt_u (local.get $tmp) (i32.const 10)))
    (local.set $tmp (i32.div_u (local.get $tmp) (i32.const 10)))
    (local.set $len (i32.add (local.get $len) (i32.const 1)))
    (br $count)))
  (local.set $i (local.get $len))
  (local.set $tmp (local.get $v))
  (loop $write
    (local.set $i (i32.sub (local.get $i) (i32.const 1)))
    (i32.store8 (i32.add (local.get $out) (local.get $i)) (i32.add (i32.const 48) (i32.rem_u (local.get $tmp) (i32.const 10))))
    (local.set $tmp (i32.div_u (local.get $tmp) (i32.const 10)))
    (br_if $write (i32.gt_u (local.get $i) (i32.const 0))))
  (local.get $len))
(func $log3 (param $p i32) (param $n i32) (param $a i32) (param $b i32) (param $c i32)
  (local $o i32)
  (memory.copy (i32.const 512) (local.get $p) (local.get $n))
  (local.set $o (i32.add (i32.const 512) (local.get $n)))
  (i32.store8 (local.get $o) (i32.const 32))
  (local.set $o (i32.add (local.get $o) (i32.const 1)))
  (local.set $o (i32.add (local.get $o) (call $utoa (local.get $a) (local.get $o))))
  (i32.store8 (local.get $o) (i32.const 32))
  (local.set $o (i32.add (local.get $o) (i32.const 1)))
  (local.set $o (i32.add (local.get $o) (call $utoa (local.get $b) (local.get $o))))
  (i32.store8 (local.get $o) (i32.const 32))
  (local.set $o (i32.add (local.get $o) (i32.const 1)))
  (local.set $o (i32.add (local.get $o) (call $utoa (local.get $c) (local.get $o))))
  (drop (call $proxy_log (i32.const 2) (i32.const 512) (i32.sub (local.get $o) (i32.const 512)))))
(func $log_buffer (param $type i32)
  (if (i32.eqz (call $proxy_get_buffer_bytes (local.get $type) (i32.const 0) (i32.const -1) (i32.const 256) (i32.const 260)))
    (then (drop (call $proxy_log (i32.const 2) (i32.load (i32.const 256)) (i32.load (i32.const 260)))))
    (else (drop (call $proxy_log (i32.const 2) (i32.const 0) (i32.const 0))))))
(func $log_map (param $type i32)
  (local $base i32) (local $n i32) (local $i i32) (local $str i32) (local $o i32) (local $kl i32) (local $vl i32)
  (if (call $proxy_get_header_map_pairs (local.get $type) (i32.const 256) (i32.const 260))
    (then (return)))
  (local.set $base (i32.load (i32.const 256)))
  (local.set $o (global.get $heap))
  (drop (call $malloc (i32.const 4096)))
  (local.set $n (if (result i32) (i32.load (i32.const 260)) (then (i32.load (local.get $base))) (else (i32.const 0))))
  (local.set $str (i32.add (i32.add (local.get $base) (i32.const 4)) (i32.mul (local.get $n) (i32.const 8))))
  (local.set $i (i32.const 0))
  (local.set $kl (local.get $o))
  (block $done (loop $each
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (local.set $kl (i32.load (i32.add (i32.add (local.get $base) (i32.const 4)) (i32.mul (local.get $i) (i32.const 8)))))
    (local.set $vl (i32.load (i32.add (i32.add (local.get $base) (i32.const 8)) (i32.mul (local.get $i) (i32.const 8)))))
    (memory.copy (local.get $o) (local.get $str) (local.get $kl))
    (local.set $o (i32.add (local.get $o) (local.get $kl)))
    (i32.store8 (local.get $o) (i32.const 61))
    (local.set $o (i32.add (local.get $o) (i32.const 1)))
    (local.set $str (i32.add (local.get $str) (i32.add (local.get $kl) (i32.const 1))))
    (memory.copy (local.get $o) (local.get $str) (local.get $vl))
    (local.set $o (i32.add (local.get $o) (local.get $vl)))
    (i32.store8 (local.get $o) (i32.const 59))
    (local.set $o (i32.add (local.get $o) (i32.const 1)))
    (local.set $str (i32.add (local.get $str) (i32.add (local.get $vl) (i32.const 1))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $each)))
  (drop (call $proxy_log (i32.const 2) (i32.sub (global.get $heap) (i32.const 4096))
    (i32.sub (local.get $o) (i32.sub (global.get $heap) (i32.const 4096))))))
`;

export interface ModuleOptions {
  /** ABI marker to export; "none" exports no marker. */
  readonly abi?: "0.2.1" | "0.2.0" | "0.1.0" | "none";
  /** Omit the import block (for modules that must import less than everything). */
  readonly bare?: boolean;
}

/** Decodes WAT string escapes (\\hh, \\n, \\t, \\\\, \\", \\') into bytes. */
function watBytes(raw: string): Uint8Array {
  const out: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== "\\") {
      out.push(...enc.encode(c));
      continue;
    }
    const n = raw[++i]!;
    if (/[0-9a-fA-F]/.test(n)) {
      out.push(Number.parseInt(raw.slice(i, i + 2), 16));
      i++;
    } else out.push(n === "n" ? 10 : n === "t" ? 9 : n.charCodeAt(0));
  }
  return new Uint8Array(out);
}

/** Expands {{"text"}} placeholders into data segments starting at 1024. */
function expandStrings(body: string): { body: string; data: string } {
  let next = 1024;
  const seen = new Map<string, number>();
  const segs: string[] = [];
  const out = body.replace(/\{\{"((?:[^"\\]|\\.)*)"\}\}/g, (_m, raw: string) => {
    const bytes = watBytes(raw);
    let addr = seen.get(raw);
    if (addr === undefined) {
      addr = next;
      seen.set(raw, addr);
      next += bytes.length + 8 - ((bytes.length + 8) % 8);
      const escaped = Array.from(bytes, (b) => `\\${b.toString(16).padStart(2, "0")}`).join("");
      segs.push(`(data (i32.const ${addr}) "${escaped}")`);
    }
    if (next > 8000) throw new Error("test strings exceed the data area");
    return `(i32.const ${addr}) (i32.const ${bytes.length})`;
  });
  return { body: out, data: segs.join("\n") };
}

export function pluginWat(body: string, opts: ModuleOptions = {}): string {
  const abi = opts.abi ?? "0.2.1";
  const marker = abi === "none" ? "" : `(func (export "proxy_abi_version_${abi.replace(/\./g, "_")}"))`;
  const { body: b, data } = expandStrings(body);
  return `(module\n${opts.bare ? "" : importDecls()}\n${PRELUDE}\n${marker}\n${b}\n${data}\n)`;
}

export async function pluginModule(body: string, opts: ModuleOptions = {}): Promise<Uint8Array> {
  return watToWasm("plugin.wat", pluginWat(body, opts));
}

/** A serialized header map as a placeholder string: `{{"..."}}` of encodePairs(flat). */
export function pairsLiteral(flat: readonly string[]): string {
  const n = flat.length >> 1;
  const parts: number[] = [];
  const u32 = (v: number) => parts.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  const enc = flat.map((s) => new TextEncoder().encode(s));
  u32(n);
  for (let i = 0; i < n; i++) {
    u32(enc[2 * i]!.length);
    u32(enc[2 * i + 1]!.length);
  }
  for (const e of enc) parts.push(...e, 0);
  return `{{"${parts.map((b) => `\\${b.toString(16).padStart(2, "0")}`).join("")}"}}`;
}
