// Static facts about a plugin module, read from its bytes without instantiating it: ABI version,
// imports, exports, memory. Feeds `mesh plugin check` and the checks `start()` makes first.

import { ErrorCodes, MeshError } from "../core/errors/index.ts";
import { ABI_MARKERS, type AbiVersion, WASM_PAGE_BYTES } from "./abi.ts";
import {
  BinaryError,
  type ExportEntry,
  type FuncType,
  type ImportEntry,
  type Limits,
  readExports,
  readFunctionTypeIndices,
  readImports,
  readMemories,
  readTypes,
  SectionId,
  signature,
  splitSections,
} from "./binary.ts";
import { providedImport } from "./imports.ts";

export interface ModuleImport {
  readonly module: string;
  readonly name: string;
  readonly kind: ImportEntry["kind"];
  /** `(i32,i32)->(i32)` for functions. */
  readonly signature?: string;
}

export interface ModuleReport {
  /** Detected from the marker export; undefined when the module has none. */
  readonly abiVersion: AbiVersion | undefined;
  readonly imports: readonly ModuleImport[];
  readonly exports: readonly { readonly name: string; readonly kind: ExportEntry["kind"]; readonly signature?: string }[];
  /** Names of exported `proxy_on_*` callbacks (what the host will call). */
  readonly callbacks: readonly string[];
  /** The module's memory: declared (or imported) limits in 64 KiB pages. */
  readonly memory: { readonly minPages: number; readonly maxPages: number | undefined; readonly imported: boolean } | undefined;
  /** `malloc` or `proxy_on_memory_allocate`, whichever the host will use. */
  readonly allocator: "malloc" | "proxy_on_memory_allocate" | undefined;
  readonly sizeBytes: number;
}

export interface ImportProblem {
  readonly module: string;
  readonly name: string;
  readonly problem: "missing" | "signature";
  readonly expected?: string;
  readonly actual?: string;
}

interface Parsed {
  types: FuncType[];
  imports: ImportEntry[];
  funcTypes: number[];
  exports: ExportEntry[];
  memories: Limits[];
}

function parse(bytes: Uint8Array): Parsed {
  const p: Parsed = { types: [], imports: [], funcTypes: [], exports: [], memories: [] };
  try {
    for (const s of splitSections(bytes)) {
      if (s.id === SectionId.TYPE) p.types = readTypes(s.body);
      else if (s.id === SectionId.IMPORT) p.imports = readImports(s.body);
      else if (s.id === SectionId.FUNCTION) p.funcTypes = readFunctionTypeIndices(s.body);
      else if (s.id === SectionId.EXPORT) p.exports = readExports(s.body);
      else if (s.id === SectionId.MEMORY) p.memories = readMemories(s.body);
    }
  } catch (e) {
    if (e instanceof BinaryError) {
      throw new MeshError(ErrorCodes.WASM_MODULE_INVALID, `not a valid WebAssembly module: ${e.message}`, { cause: e });
    }
    throw e;
  }
  return p;
}

function funcSignature(p: Parsed, funcIndex: number): string | undefined {
  const imported = p.imports.filter((i) => i.kind === "func");
  const typeIndex =
    funcIndex < imported.length ? imported[funcIndex]!.typeIndex : p.funcTypes[funcIndex - imported.length];
  const t = typeIndex === undefined ? undefined : p.types[typeIndex];
  return t === undefined ? undefined : signature(t);
}

export function toBytes(bytes: Uint8Array | ArrayBuffer): Uint8Array {
  return bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
}

/** ABI version, imports, exports and memory of a module (throws WASM_MODULE_INVALID if unparseable). */
export function describeModule(input: Uint8Array | ArrayBuffer): ModuleReport {
  const bytes = toBytes(input);
  const p = parse(bytes);
  const exportNames = new Set(p.exports.map((e) => e.name));
  let abiVersion: AbiVersion | undefined;
  for (const [version, marker] of ABI_MARKERS) {
    if (exportNames.has(marker)) {
      abiVersion = version;
      break;
    }
  }
  const memImport = p.imports.find((i) => i.kind === "memory");
  const memDefined = p.memories[0];
  const limits = memImport?.limits ?? memDefined;
  return {
    abiVersion,
    imports: p.imports.map((i) => {
      const t = i.kind === "func" && i.typeIndex !== undefined ? p.types[i.typeIndex] : undefined;
      return t === undefined
        ? { module: i.module, name: i.name, kind: i.kind }
        : { module: i.module, name: i.name, kind: i.kind, signature: signature(t) };
    }),
    exports: p.exports.map((e) => {
      const s = e.kind === "func" ? funcSignature(p, e.index) : undefined;
      return s === undefined ? { name: e.name, kind: e.kind } : { name: e.name, kind: e.kind, signature: s };
    }),
    callbacks: p.exports.filter((e) => e.kind === "func" && e.name.startsWith("proxy_on_")).map((e) => e.name),
    memory:
      limits === undefined ? undefined : { minPages: limits.min, maxPages: limits.max, imported: memImport !== undefined },
    allocator: exportNames.has("malloc")
      ? "malloc"
      : exportNames.has("proxy_on_memory_allocate")
        ? "proxy_on_memory_allocate"
        : undefined,
    sizeBytes: bytes.length,
  };
}

/**
 * Imports the module needs that this host does not provide, and function imports whose signature
 * differs from the host's (JS host functions are not type-checked at link time, so a wrong
 * signature would silently pass garbage).
 */
export function missingImports(input: Uint8Array | ArrayBuffer | ModuleReport): ImportProblem[] {
  const report = "imports" in input && "abiVersion" in input ? input : describeModule(input);
  const out: ImportProblem[] = [];
  for (const imp of report.imports) {
    if (imp.kind === "memory" || imp.kind === "table") continue; // the host supplies the memory; tables are refused at start
    const provided = imp.kind === "func" ? providedImport(imp.module, imp.name) : undefined;
    if (provided === undefined) {
      out.push({ module: imp.module, name: imp.name, problem: "missing" });
      continue;
    }
    const expected = signature(provided);
    if (imp.signature !== undefined && imp.signature !== expected) {
      out.push({ module: imp.module, name: imp.name, problem: "signature", expected, actual: imp.signature });
    }
  }
  return out;
}

/** The checks `start()` makes before instantiating, as MeshErrors with stable codes. */
export function checkModule(report: ModuleReport, maxMemoryPages: number): void {
  if (report.abiVersion === undefined) {
    throw new MeshError(
      ErrorCodes.WASM_ABI_UNSUPPORTED,
      "module exports no Proxy-Wasm ABI marker; expected one of proxy_abi_version_0_2_1, proxy_abi_version_0_2_0, proxy_abi_version_0_1_0",
    );
  }
  if (report.allocator === undefined) {
    throw new MeshError(
      ErrorCodes.WASM_MODULE_INVALID,
      "module exports neither malloc nor proxy_on_memory_allocate; the host cannot hand it data",
    );
  }
  const problems = missingImports(report);
  if (problems.length > 0) {
    throw new MeshError(ErrorCodes.WASM_MODULE_INVALID, "module imports functions this host does not provide", {
      details: problems.map((p) =>
        p.problem === "missing"
          ? `missing import ${p.module}.${p.name}`
          : `import ${p.module}.${p.name} has signature ${p.actual}, host provides ${p.expected}`,
      ),
    });
  }
  const tableImport = report.imports.find((i) => i.kind === "table" || i.kind === "global" || i.kind === "tag");
  if (tableImport !== undefined) {
    throw new MeshError(
      ErrorCodes.WASM_MODULE_INVALID,
      `module imports ${tableImport.kind} ${tableImport.module}.${tableImport.name}; the host provides only functions and memory`,
    );
  }
  if (report.memory !== undefined && report.memory.minPages > maxMemoryPages) {
    throw new MeshError(
      ErrorCodes.WASM_MEMORY_LIMIT,
      `module needs at least ${report.memory.minPages} memory pages (${(report.memory.minPages * WASM_PAGE_BYTES) / 1048576} MiB); the plugin's limit is ${maxMemoryPages} pages`,
    );
  }
}
