// One compiled module per distinct module: plugins that load the same .wasm (five instances of one
// filter with different configurations, say) share its checks, its instrumentation and its compiled
// code. JavaScriptCore compiles per WebAssembly.Module and instances of one module share that code,
// each with its own memory, globals and tables, so nothing of one plugin's state reaches another.
// Envoy shares a VM's code between plugins of the same vm_config in the same way.
//
// Entries are weak: once no plugin holds a compiled module, the collector may take it, and its key
// is dropped.
import { ErrorCodes, MeshError } from "../core/errors/index.ts";
import { instrumentModule, type InstrumentedModule } from "./instrument.ts";
import { checkModule, describeModule, type ModuleReport } from "./module-info.ts";

export interface CompiledModule {
  readonly report: ModuleReport;
  readonly memory: InstrumentedModule["memory"];
  readonly module: WebAssembly.Module;
}

const compiled = new Map<string, WeakRef<CompiledModule>>();
const forget = new FinalizationRegistry<string>((key) => {
  if (compiled.get(key)?.deref() === undefined) compiled.delete(key);
});

/**
 * The checked, instrumented and compiled form of `bytes` under a memory limit of `maxPages`, made
 * once per distinct pair. Throws a MeshError: WASM_MODULE_INVALID, WASM_ABI_UNSUPPORTED,
 * WASM_MEMORY_LIMIT (from checkModule), or WASM_MODULE_INVALID when the module does not compile.
 */
export function compiledModule(bytes: Uint8Array, maxPages: number): CompiledModule {
  const key = `${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}/${maxPages}`;
  const known = compiled.get(key)?.deref();
  if (known !== undefined) return known;
  const report = describeModule(bytes);
  checkModule(report, maxPages);
  const inst = instrumentModule(bytes, maxPages);
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(inst.bytes);
  } catch (e) {
    throw new MeshError(ErrorCodes.WASM_MODULE_INVALID, `module does not compile: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const entry: CompiledModule = { report, memory: inst.memory, module };
  compiled.set(key, new WeakRef(entry));
  forget.register(entry, key);
  return entry;
}

/** How many distinct compiled modules are alive (for tests and the admin dump). */
export function compiledModuleCount(): number {
  let n = 0;
  for (const ref of compiled.values()) if (ref.deref() !== undefined) n++;
  return n;
}
