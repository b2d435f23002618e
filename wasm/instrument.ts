// Rewrites a plugin module so the host can bound it:
//
// 1. Budget checks. Bun 1.4.4 cannot preempt a Worker that spins in pure Wasm: worker.terminate()
//    never returns control (oven-sh/bun PR #36356; reproduced here) while a loop that calls into
//    JS is preemptible. So every function entry and loop header gets a fuel counter that calls
//    the host import `mesh_host.budget` once per FUEL_PER_CHECK iterations; the host checks the
//    callback's deadline there and throws when it has passed, and the call also lets terminate()
//    take effect.
// 2. Memory. A memory the module defines becomes an import (`mesh_host.memory`) the host creates
//    with `maximum` set to the plugin's page limit, so growth past the limit fails inside the
//    module, and instantiation avoids the ~0.4 ms JSC spends allocating module-owned memories
//    (reference/bun.md §7). `memory.grow` is routed through `mesh_host.grow` so the host knows
//    a failure came from the limit (WASM_MEMORY_LIMIT rather than a plain trap).
//
// The two function imports are appended after the module's own function imports, so every
// defined function's index shifts by two; calls, ref.func, exports, the start function and
// element segments are renumbered. The `name` custom section is dropped (its indices would be
// stale).

import { ErrorCodes, MeshError } from "../core/errors/index.ts";
import {
  BinaryError,
  type ImportEntry,
  type Limits,
  type RawSection,
  Reader,
  readImports,
  readLimits,
  readMemories,
  readTypes,
  SECTION_ORDER,
  SectionId,
  splitSections,
  valType,
  Writer,
  writeLimits,
} from "./binary.ts";

export const HOST_MODULE = "mesh_host";
export const BUDGET_IMPORT = "budget";
export const GROW_IMPORT = "grow";
export const MEMORY_IMPORT = "memory";

export interface InstrumentedModule {
  readonly bytes: Uint8Array;
  /** Memory limits after clamping, or undefined when the module has no memory. */
  readonly memory: { readonly initialPages: number; readonly maximumPages: number } | undefined;
}

interface Remap {
  readonly funcImports: number;
  readonly budgetFunc: number;
  readonly growFunc: number;
  readonly fuelGlobal: number;
}

const shift = (m: Remap, f: number): number => (f < m.funcImports ? f : f + 2);

function checkSequence(w: Writer, m: Remap): void {
  w.byte(0x23).u32(m.fuelGlobal); // global.get fuel
  w.byte(0x45); // i32.eqz
  w.byte(0x04).byte(0x40); // if (no result)
  w.byte(0x10).u32(m.budgetFunc); //   call budget -> new fuel
  w.byte(0x24).u32(m.fuelGlobal); //   global.set fuel
  w.byte(0x0b); // end
  w.byte(0x23).u32(m.fuelGlobal);
  w.byte(0x41).byte(0x01); // i32.const 1
  w.byte(0x6b); // i32.sub
  w.byte(0x24).u32(m.fuelGlobal);
}

function skipMemarg(r: Reader): void {
  const align = r.u32();
  if (align & 0x40) r.u32(); // multi-memory index
  r.u32();
}

/**
 * Copies instructions from r to w until `end` (code bodies) or until the `end` opcode that closes
 * a constant expression (`end === undefined`), rewriting function indices and inserting checks.
 */
function rewriteInstructions(r: Reader, w: Writer, m: Remap, end: number | undefined, instrument: boolean): void {
  let depth = 0;
  while (end === undefined || r.pos < end) {
    const start = r.pos;
    const op = r.byte();
    switch (op) {
      case 0x10: // call
      case 0x12: // return_call
      case 0xd2: // ref.func
        w.byte(op).u32(shift(m, r.u32()));
        continue;
      case 0x03: // loop
        r.s33();
        w.bytes(r.bytes.subarray(start, r.pos));
        if (instrument) checkSequence(w, m);
        depth++;
        continue;
      case 0x40: {
        // memory.grow
        r.u32();
        if (instrument) w.byte(0x10).u32(m.growFunc);
        else w.bytes(r.bytes.subarray(start, r.pos));
        continue;
      }
      case 0x0b:
        w.byte(op);
        if (end === undefined && depth === 0) return;
        depth--;
        continue;
      case 0x02:
      case 0x04:
      case 0x06: // block, if, try
        r.s33();
        depth++;
        break;
      case 0x1f: {
        // try_table
        r.s33();
        const n = r.u32();
        for (let i = 0; i < n; i++) {
          const kind = r.byte();
          if (kind <= 1) r.u32();
          r.u32();
        }
        depth++;
        break;
      }
      case 0x00:
      case 0x01:
      case 0x05:
      case 0x0a:
      case 0x0f:
      case 0x19:
      case 0x1a:
      case 0x1b:
      case 0xd1:
      case 0xd3:
      case 0xd4:
        break;
      case 0x07:
      case 0x08:
      case 0x09:
      case 0x0c:
      case 0x0d:
      case 0x14:
      case 0x15:
      case 0x18:
      case 0x20:
      case 0x21:
      case 0x22:
      case 0x23:
      case 0x24:
      case 0x25:
      case 0x26:
      case 0xd5:
      case 0xd6:
        r.u32();
        break;
      case 0x0e: {
        const n = r.u32();
        for (let i = 0; i <= n; i++) r.u32();
        break;
      }
      case 0x11:
      case 0x13:
        r.u32();
        r.u32();
        break;
      case 0x1c: {
        const n = r.u32();
        for (let i = 0; i < n; i++) valType(r.byte());
        break;
      }
      case 0x3f:
        r.u32();
        break;
      case 0x41:
        r.skipLeb(5);
        break;
      case 0x42:
        r.skipLeb(10);
        break;
      case 0x43:
        r.skip(4);
        break;
      case 0x44:
        r.skip(8);
        break;
      case 0xd0:
        r.s33();
        break;
      case 0xfc: {
        const sub = r.u32();
        if (sub <= 7) break;
        if (sub === 8 || sub === 10 || sub === 12 || sub === 14) {
          r.u32();
          r.u32();
        } else if (sub === 9 || sub === 11 || sub === 13 || (sub >= 15 && sub <= 17)) {
          r.u32();
        } else throw new BinaryError(`unknown instruction 0xfc ${sub} at offset ${start}`);
        break;
      }
      case 0xfd: {
        const sub = r.u32();
        if (sub <= 11) skipMemarg(r);
        else if (sub === 12 || sub === 13) r.skip(16);
        else if (sub >= 21 && sub <= 34) r.byte();
        else if (sub >= 84 && sub <= 91) {
          skipMemarg(r);
          r.byte();
        } else if (sub === 92 || sub === 93) skipMemarg(r);
        else if (sub > 0x113) throw new BinaryError(`unknown SIMD instruction ${sub} at offset ${start}`);
        break;
      }
      case 0xfe: {
        const sub = r.u32();
        if (sub === 3) r.byte();
        else if (sub <= 0x4e) skipMemarg(r);
        else throw new BinaryError(`unknown atomic instruction ${sub} at offset ${start}`);
        break;
      }
      default:
        if (op >= 0x28 && op <= 0x3e) {
          skipMemarg(r);
          break;
        }
        if (op >= 0x45 && op <= 0xc4) break;
        throw new BinaryError(
          `unsupported instruction 0x${op.toString(16)} at offset ${start}${op === 0xfb ? " (GC proposal)" : ""}`,
        );
    }
    w.bytes(r.bytes.subarray(start, r.pos));
  }
  if (r.pos !== end) throw new BinaryError(`function body overruns its size at offset ${r.pos}`);
}

function rewriteCode(body: Uint8Array, m: Remap): Writer {
  const r = new Reader(body);
  const n = r.u32();
  const out = new Writer().u32(n);
  for (let i = 0; i < n; i++) {
    const size = r.u32();
    const end = r.pos + size;
    if (end > r.end) throw new BinaryError(`function ${i}: body size runs past the code section`);
    const fn = new Writer();
    const localStart = r.pos;
    const groups = r.u32();
    for (let g = 0; g < groups; g++) {
      r.u32();
      valType(r.byte());
    }
    fn.bytes(body.subarray(localStart, r.pos));
    checkSequence(fn, m);
    rewriteInstructions(r, fn, m, end, true);
    out.sized(fn);
  }
  if (!r.done) throw new BinaryError("trailing bytes in the code section");
  return out;
}

function rewriteGlobals(body: Uint8Array | undefined, m: Remap): Writer {
  const r = new Reader(body ?? new Uint8Array([0]));
  const n = r.u32();
  const out = new Writer().u32(n + 1);
  for (let i = 0; i < n; i++) {
    const t = r.pos;
    valType(r.byte());
    r.byte();
    out.bytes(r.bytes.subarray(t, r.pos));
    rewriteInstructions(r, out, m, undefined, false);
  }
  if (!r.done) throw new BinaryError("trailing bytes in the global section");
  // the fuel counter: (global (mut i32) (i32.const 0)); 0 makes the first check ask the host
  out.byte(0x7f).byte(0x01).byte(0x41).byte(0x00).byte(0x0b);
  return out;
}

function rewriteExports(body: Uint8Array, m: Remap): Writer {
  const r = new Reader(body);
  const n = r.u32();
  const out = new Writer().u32(n);
  for (let i = 0; i < n; i++) {
    const nameStart = r.pos;
    const len = r.u32();
    r.skip(len);
    out.bytes(body.subarray(nameStart, r.pos));
    const kind = r.byte();
    const index = r.u32();
    out.byte(kind).u32(kind === 0 ? shift(m, index) : index);
  }
  return out;
}

function rewriteElements(body: Uint8Array, m: Remap): Writer {
  const r = new Reader(body);
  const n = r.u32();
  const out = new Writer().u32(n);
  const funcVec = (): void => {
    const k = r.u32();
    out.u32(k);
    for (let j = 0; j < k; j++) out.u32(shift(m, r.u32()));
  };
  const exprVec = (): void => {
    const k = r.u32();
    out.u32(k);
    for (let j = 0; j < k; j++) rewriteInstructions(r, out, m, undefined, false);
  };
  for (let i = 0; i < n; i++) {
    const flags = r.u32();
    out.u32(flags);
    switch (flags) {
      case 0:
        rewriteInstructions(r, out, m, undefined, false);
        funcVec();
        break;
      case 1:
      case 3:
        out.byte(r.byte());
        funcVec();
        break;
      case 2:
        out.u32(r.u32());
        rewriteInstructions(r, out, m, undefined, false);
        out.byte(r.byte());
        funcVec();
        break;
      case 4:
        rewriteInstructions(r, out, m, undefined, false);
        exprVec();
        break;
      case 5:
      case 7:
        out.byte(r.byte());
        exprVec();
        break;
      case 6:
        out.u32(r.u32());
        rewriteInstructions(r, out, m, undefined, false);
        out.byte(r.byte());
        exprVec();
        break;
      default:
        throw new BinaryError(`element segment ${i}: unknown flags ${flags}`);
    }
  }
  return out;
}

function writeImport(w: Writer, i: { module: string; name: string }, kind: number, desc: Uint8Array): void {
  w.name(i.module).name(i.name).byte(kind).bytes(desc);
}

function clampLimits(l: Limits, maxPages: number): { min: number; max: number } {
  if (l.shared) throw new BinaryError("shared (threads) memories are not supported");
  const max = Math.min(l.max ?? maxPages, maxPages);
  return { min: l.min, max: Math.max(max, l.min) };
}

/** Rewrites a module as described at the top of this file. Throws WASM_MODULE_INVALID on bad input. */
export function instrumentModule(bytes: Uint8Array, maxMemoryPages: number): InstrumentedModule {
  try {
    return instrument(bytes, maxMemoryPages);
  } catch (e) {
    if (e instanceof BinaryError) {
      throw new MeshError(ErrorCodes.WASM_MODULE_INVALID, `cannot prepare the module: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

function instrument(bytes: Uint8Array, maxMemoryPages: number): InstrumentedModule {
  const sections = splitSections(bytes);
  const find = (id: number): RawSection | undefined => sections.find((s) => s.id === id);
  for (const id of SECTION_ORDER) {
    if (sections.filter((s) => s.id === id).length > 1) throw new BinaryError(`duplicate section ${id}`);
  }

  const typeCount = find(SectionId.TYPE) ? readTypes(find(SectionId.TYPE)!.body).length : 0;
  const imports: ImportEntry[] = find(SectionId.IMPORT) ? readImports(find(SectionId.IMPORT)!.body) : [];
  if (imports.some((i) => i.module === HOST_MODULE)) {
    throw new BinaryError(`the import module name "${HOST_MODULE}" is reserved for the host`);
  }
  const memImports = imports.filter((i) => i.kind === "memory");
  const definedMems = find(SectionId.MEMORY) ? readMemories(find(SectionId.MEMORY)!.body) : [];
  if (memImports.length + definedMems.length > 1) throw new BinaryError("modules with several memories are not supported");
  const globalImports = imports.filter((i) => i.kind === "global").length;
  let definedGlobals = 0;
  const globalSection = find(SectionId.GLOBAL);
  if (globalSection) definedGlobals = new Reader(globalSection.body).u32();

  const funcImports = imports.filter((i) => i.kind === "func").length;
  const m: Remap = {
    funcImports,
    budgetFunc: funcImports,
    growFunc: funcImports + 1,
    fuelGlobal: globalImports + definedGlobals,
  };

  // memory: imported or defined, both become mesh_host.memory with a clamped maximum
  const memLimits = memImports[0]?.limits ?? definedMems[0];
  const clamped = memLimits === undefined ? undefined : clampLimits(memLimits, maxMemoryPages);
  const memDesc = new Writer();
  if (clamped) writeLimits(memDesc, clamped);

  const typeW = new Writer();
  {
    const body = find(SectionId.TYPE)?.body;
    const r = new Reader(body ?? new Uint8Array([0]));
    r.u32();
    typeW.u32(typeCount + 2).bytes(r.bytes.subarray(r.pos, r.end));
    typeW.byte(0x60).u32(0).u32(1).byte(0x7f); // () -> i32        budget
    typeW.byte(0x60).u32(1).byte(0x7f).u32(1).byte(0x7f); // (i32) -> i32   grow
  }
  const importW = new Writer();
  {
    const extra = 2 + (clamped && definedMems.length === 1 ? 1 : 0);
    importW.u32(imports.length + extra);
    for (const i of imports) {
      if (i.kind === "memory") writeImport(importW, { module: HOST_MODULE, name: MEMORY_IMPORT }, 2, memDesc.finish());
      else writeImport(importW, i, ["func", "table", "memory", "global", "tag"].indexOf(i.kind), i.desc);
    }
    writeImport(importW, { module: HOST_MODULE, name: BUDGET_IMPORT }, 0, new Writer().u32(typeCount).finish());
    writeImport(importW, { module: HOST_MODULE, name: GROW_IMPORT }, 0, new Writer().u32(typeCount + 1).finish());
    if (clamped && definedMems.length === 1) {
      writeImport(importW, { module: HOST_MODULE, name: MEMORY_IMPORT }, 2, memDesc.finish());
    }
  }

  const rebuilt = new Map<number, Uint8Array | null>();
  rebuilt.set(SectionId.TYPE, typeW.finish());
  rebuilt.set(SectionId.IMPORT, importW.finish());
  rebuilt.set(SectionId.MEMORY, null); // moved into the import section
  rebuilt.set(SectionId.GLOBAL, rewriteGlobals(globalSection?.body, m).finish());
  const exp = find(SectionId.EXPORT);
  if (exp) rebuilt.set(SectionId.EXPORT, rewriteExports(exp.body, m).finish());
  const start = find(SectionId.START);
  if (start) rebuilt.set(SectionId.START, new Writer().u32(shift(m, new Reader(start.body).u32())).finish());
  const elem = find(SectionId.ELEMENT);
  if (elem) rebuilt.set(SectionId.ELEMENT, rewriteElements(elem.body, m).finish());
  const code = find(SectionId.CODE);
  if (code) rebuilt.set(SectionId.CODE, rewriteCode(code.body, m).finish());
  const table = find(SectionId.TABLE);
  if (table) {
    const r = new Reader(table.body);
    const n = r.u32();
    for (let i = 0; i < n; i++) {
      if (r.peek() === 0x40) throw new BinaryError("tables with initializer expressions are not supported");
      valType(r.byte());
      readLimits(r);
    }
  }

  const out = new Writer().bytes(bytes.subarray(0, 8));
  const emit = (id: number, body: Uint8Array): void => {
    out.byte(id).u32(body.length).bytes(body);
  };
  const emitted = new Set<number>();
  const emitKnownUpTo = (orderIndex: number): void => {
    // sections that did not exist but must now (type, import, global) go in canonical order
    for (let k = 0; k <= orderIndex; k++) {
      const id = SECTION_ORDER[k]!;
      if (emitted.has(id)) continue;
      if (find(id) === undefined && rebuilt.get(id)) {
        emit(id, rebuilt.get(id)!);
        emitted.add(id);
      }
    }
  };
  for (const s of sections) {
    if (s.id === SectionId.CUSTOM) {
      const name = new Reader(s.body).name();
      if (name === "name") continue;
      emit(s.id, s.body);
      continue;
    }
    emitKnownUpTo(SECTION_ORDER.indexOf(s.id));
    const replacement = rebuilt.get(s.id);
    if (replacement === null) {
      emitted.add(s.id);
      continue;
    }
    emit(s.id, replacement ?? s.body);
    emitted.add(s.id);
  }
  emitKnownUpTo(SECTION_ORDER.length - 1);
  return {
    bytes: out.finish().slice(),
    memory: clamped === undefined ? undefined : { initialPages: clamped.min, maximumPages: clamped.max },
  };
}
