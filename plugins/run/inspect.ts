// `mesh plugin check`: what a module is and whether this host can load it, read from its bytes
// without running it. Every reason `WasmPlugin.start()` would refuse the module before running it
// is listed (not only the first), with the error code start() would use.
import { createHash } from "node:crypto";
import { type ErrorCode, ErrorCodes, MeshError, asMeshError } from "../../core/errors/index.ts";
import { HOST_CALLBACKS, UNSUPPORTED_HOST_FUNCTIONS, checkModule, describeModule, missingImports, type ModuleReport } from "../../wasm/index.ts";

const HTTP_CALLBACKS = ["proxy_on_request_headers", "proxy_on_request_body", "proxy_on_request_trailers", "proxy_on_response_headers", "proxy_on_response_body", "proxy_on_response_trailers"];
const ABI_MARKER: Record<string, string> = { "0.2.1": "proxy_abi_version_0_2_1", "0.2.0": "proxy_abi_version_0_2_0", "0.1.0": "proxy_abi_version_0_1_0" };
const PAGE_BYTES = 65536;

export interface ImportStatus {
  readonly module: string;
  readonly name: string;
  readonly kind: string;
  readonly signature?: string;
  /**
   * ok: provided; partial: works, but not for everything the ABI allows (see `note`); missing: not
   * provided; signature: provided with another signature; memory: the host supplies it;
   * refused: a table/global/tag import, which the host does not supply.
   */
  readonly status: "ok" | "partial" | "missing" | "signature" | "memory" | "refused";
  readonly note?: string;
}

export interface Problem {
  readonly code: ErrorCode;
  readonly message: string;
}

export interface ModuleInspection {
  /** false: not a WebAssembly module at all (the only problem says why) */
  readonly wasm: boolean;
  readonly sizeBytes: number;
  readonly sha256: string;
  /** undefined: not a Wasm module, or no ABI marker */
  readonly abiVersion: string | undefined;
  readonly abiMarker: string | undefined;
  readonly allocator: string | undefined;
  readonly memory: { readonly minPages: number; readonly maxPages: number | undefined; readonly imported: boolean } | undefined;
  readonly maxMemoryPages: number;
  /** exported proxy_on_* the host calls */
  readonly callbacks: readonly string[];
  /** exported proxy_on_* this host never calls */
  readonly callbacksNotCalled: readonly string[];
  readonly exports: readonly { readonly name: string; readonly kind: string; readonly signature?: string }[];
  readonly imports: readonly ImportStatus[];
  /** reasons the host refuses the module; empty when it can load it */
  readonly problems: readonly Problem[];
  readonly warnings: readonly string[];
  /** imports that work for HTTP plugins with limits (see wasm/README.md) */
  readonly notes: readonly string[];
  readonly loadable: boolean;
}

export function inspectModule(bytes: Uint8Array, maxMemoryPages: number): ModuleInspection {
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  let report: ModuleReport;
  try {
    report = describeModule(bytes);
  } catch (e) {
    const err = asMeshError(e, ErrorCodes.WASM_MODULE_INVALID);
    return {
      wasm: false,
      sizeBytes: bytes.length,
      sha256,
      abiVersion: undefined,
      abiMarker: undefined,
      allocator: undefined,
      memory: undefined,
      maxMemoryPages,
      callbacks: [],
      callbacksNotCalled: [],
      exports: [],
      imports: [],
      problems: [{ code: err.code, message: err.message }],
      warnings: [],
      notes: [],
      loadable: false,
    };
  }
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const notes: string[] = [];
  if (report.abiVersion === undefined) {
    problems.push({
      code: ErrorCodes.WASM_ABI_UNSUPPORTED,
      message: "module exports no Proxy-Wasm ABI marker; expected one of proxy_abi_version_0_2_1, proxy_abi_version_0_2_0, proxy_abi_version_0_1_0; every Proxy-Wasm SDK exports one, so this is not a Proxy-Wasm plugin or was built without an SDK",
    });
  }
  if (report.allocator === undefined) {
    problems.push({ code: ErrorCodes.WASM_MODULE_INVALID, message: "module exports neither malloc nor proxy_on_memory_allocate; the host cannot hand it data" });
  }
  const bad = new Map(missingImports(report).map((p) => [`${p.module}.${p.name}`, p]));
  const imports: ImportStatus[] = report.imports.map((i) => {
    const key = `${i.module}.${i.name}`;
    const base = { module: i.module, name: i.name, kind: i.kind, ...(i.signature ? { signature: i.signature } : {}) };
    if (i.kind === "memory") return { ...base, status: "memory", note: "the host creates the memory (capped at the memory limit)" };
    if (i.kind !== "func") {
      problems.push({ code: ErrorCodes.WASM_MODULE_INVALID, message: `module imports ${i.kind} ${key}; the host provides only functions and memory` });
      return { ...base, status: "refused", note: `the host provides no ${i.kind} imports` };
    }
    const p = bad.get(key);
    if (p?.problem === "missing") {
      problems.push({ code: ErrorCodes.WASM_MODULE_INVALID, message: `module imports ${key}, which this host does not provide` });
      return { ...base, status: "missing", note: "not provided by this host" };
    }
    if (p?.problem === "signature") {
      problems.push({ code: ErrorCodes.WASM_MODULE_INVALID, message: `module imports ${key} with signature ${p.actual}; this host provides ${p.expected}` });
      return { ...base, status: "signature", note: `host signature ${p.expected}` };
    }
    // every host function works here, some only in part (UNSUPPORTED_HOST_FUNCTIONS says which part)
    const why = i.module === "env" ? UNSUPPORTED_HOST_FUNCTIONS[i.name] : undefined;
    if (why !== undefined) {
      notes.push(`${key}: ${why}`);
      return { ...base, status: "partial", note: why };
    }
    return { ...base, status: "ok" };
  });
  if (report.memory !== undefined && report.memory.minPages > maxMemoryPages) {
    problems.push({
      code: ErrorCodes.WASM_MEMORY_LIMIT,
      message: `module needs at least ${report.memory.minPages} memory pages (${mib(report.memory.minPages)}); the limit is ${maxMemoryPages} pages (${mib(maxMemoryPages)}); raise limits.maxMemoryPages / --max-memory-pages`,
    });
  }
  if (problems.length === 0) {
    // what start() checks and this list may not cover, then whether the engine accepts the code
    try {
      checkModule(report, maxMemoryPages);
      new WebAssembly.Module(bytes);
    } catch (e) {
      const err = e instanceof MeshError ? e : new MeshError(ErrorCodes.WASM_MODULE_INVALID, `module does not compile: ${e instanceof Error ? e.message : String(e)}`);
      problems.push({ code: err.code, message: [err.message, ...err.details].join("; ") });
    }
  }
  const callbacks = report.callbacks.filter((c) => HOST_CALLBACKS.includes(c));
  const notCalled = report.callbacks.filter((c) => !HOST_CALLBACKS.includes(c));
  // every SDK exports the metadata callbacks and Envoy never calls them either: not worth a warning
  const missed = notCalled.filter((c) => !/^proxy_on_(request|response)_metadata$/.test(c));
  if (missed.length > 0) warnings.push(`exports callbacks this host never calls (it runs no TCP filters and calls no foreign-function callbacks): ${missed.join(", ")}`);
  if (report.abiVersion !== undefined && !report.callbacks.some((c) => HTTP_CALLBACKS.includes(c))) {
    warnings.push("exports no HTTP callbacks (proxy_on_request_headers, ...): the plugin will not see requests");
  }
  if (report.imports.some((i) => i.module === "env" && i.name === "abort")) {
    warnings.push("imports env.abort (AssemblyScript built without --use abort=abort_proc_exit): it works here, but other hosts (Envoy) may not provide it");
  }
  return {
    wasm: true,
    sizeBytes: report.sizeBytes,
    sha256,
    abiVersion: report.abiVersion,
    abiMarker: report.abiVersion === undefined ? undefined : ABI_MARKER[report.abiVersion],
    allocator: report.allocator,
    memory: report.memory,
    maxMemoryPages,
    callbacks,
    callbacksNotCalled: notCalled,
    exports: report.exports.filter((e) => !report.callbacks.includes(e.name)),
    imports,
    problems,
    warnings,
    notes,
    loadable: problems.length === 0,
  };
}

function mib(pages: number): string {
  const m = (pages * PAGE_BYTES) / 1048576;
  return m >= 1 ? `${Number.isInteger(m) ? m : m.toFixed(2)} MiB` : `${(pages * PAGE_BYTES) / 1024} KiB`;
}

export function pagesText(pages: number): string {
  return `${pages} page${pages === 1 ? "" : "s"} (${mib(pages)})`;
}
