// Build helper for Proxy-Wasm plugins: compiles AssemblyScript filters with the pinned compiler
// (assemblyscript 0.14.13 + @solo-io/proxy-runtime 0.1.8) and WAT test modules with wabt.
//
// Development and test tooling only: it runs `node_modules/assemblyscript` in a child process, so
// it needs the repository checkout and a Bun executable; the waypoint itself loads `.wasm` files
// and must not import this module.

import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import wabtFactory from "wabt";
import { ErrorCodes, MeshError } from "../../core/errors/index.ts";

/** Repository root: asc resolves `@solo-io/proxy-runtime/...` from `node_modules` here. */
export const REPO_ROOT = resolve(import.meta.dir, "../..");
const ASC_BIN = join(REPO_ROOT, "node_modules/assemblyscript/bin/asc");
const ASC_PACKAGE = join(REPO_ROOT, "node_modules/assemblyscript/package.json");
const SDK_DIR = join(REPO_ROOT, "node_modules/@solo-io/proxy-runtime/assembly");
const SDK_PACKAGE = "@solo-io/proxy-runtime";

/** Default content-addressed cache of compiled modules (one `<key>.wasm` per input set). */
export const DEFAULT_CACHE_DIR = join(import.meta.dir, ".cache");

/**
 * Flags every plugin is compiled with: route AssemblyScript's `abort` to the SDK's
 * `abort_proc_exit` (logs via proxy_log, then wasi_unstable.proc_exit) instead of importing
 * `env.abort`, and optimise for speed.
 */
export const ASC_FLAGS: readonly string[] = ["--use", "abort=abort_proc_exit", "-O3", "--noColors"];

const DEFAULT_TIMEOUT_MS = 180_000;
const MAX_ERROR_DETAILS = 40;
const CACHE_FORMAT = "mesh-plugin-build/1";

export interface CompileOptions {
  /** Cache directory; `null` disables the cache. Default `plugins/build/.cache`. */
  cacheDir?: string | null;
  /** Kill the compiler after this long. Default 180 s. */
  timeoutMs?: number;
  /** Bun executable that runs asc. Default `process.execPath` (the running Bun). */
  bunExecutable?: string;
}

export interface CompiledPlugin {
  wasm: Uint8Array;
  /** Lower-case hex SHA-256 of `wasm` (the form Istio's `WasmPlugin.spec.sha256` uses). */
  sha256: string;
  /** True when the module came from the cache without running the compiler. */
  fromCache: boolean;
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

// ---- AssemblyScript ---------------------------------------------------------------------------

// One compiler at a time: the machine is small and asc is CPU-bound; concurrent requests for the
// same inputs share one compilation.
let compilerQueue: Promise<unknown> = Promise.resolve();
const inFlight = new Map<string, Promise<Uint8Array>>();

/**
 * Compiles an AssemblyScript Proxy-Wasm plugin with the pinned asc under Bun, from the repository
 * root. Writes the module to `outFile` (directories are created) unless it is null. Results are
 * cached by a hash of every input (the entry file and the sources it imports by relative path, the
 * SDK sources, the compiler version and flags), so unchanged plugins compile once.
 *
 * Throws MeshError CONFIG_FILE_MISSING (no entry file) or CONFIG_INVALID (compiler error or
 * timeout; message names the file and the compiler's first error, `details` holds the rest).
 */
export async function compileAssemblyScript(
  entryFile: string,
  outFile: string | null,
  opts: CompileOptions = {},
): Promise<CompiledPlugin> {
  const entry = isAbsolute(entryFile) ? entryFile : resolve(REPO_ROOT, entryFile);
  if (!existsSync(entry)) {
    throw new MeshError(ErrorCodes.CONFIG_FILE_MISSING, `AssemblyScript entry file not found: ${entry}`);
  }
  const cacheDir = opts.cacheDir === undefined ? DEFAULT_CACHE_DIR : opts.cacheDir;
  const key = await sourceCacheKey(entry);

  let wasm: Uint8Array | undefined;
  let fromCache = false;
  if (cacheDir !== null) {
    wasm = await readCached(join(cacheDir, `${key}.wasm`));
    fromCache = wasm !== undefined;
  }
  if (wasm === undefined) {
    let pending = inFlight.get(key);
    if (pending === undefined) {
      pending = enqueue(() => runAsc(entry, key, cacheDir, opts));
      inFlight.set(key, pending);
      pending.then(
        () => inFlight.delete(key),
        () => inFlight.delete(key),
      );
    }
    wasm = await pending;
  }
  if (outFile !== null) {
    await mkdir(dirname(resolve(outFile)), { recursive: true });
    await writeFile(outFile, wasm);
  }
  return { wasm, sha256: sha256Hex(wasm), fromCache };
}

function enqueue<T>(task: () => Promise<T>): Promise<T> {
  const run = compilerQueue.then(task, task);
  compilerQueue = run.catch(() => undefined);
  return run;
}

async function readCached(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch {
    return undefined;
  }
}

async function runAsc(entry: string, key: string, cacheDir: string | null, opts: CompileOptions): Promise<Uint8Array> {
  if (!existsSync(ASC_BIN)) {
    throw new MeshError(ErrorCodes.INTERNAL, `AssemblyScript compiler not installed at ${ASC_BIN} (run npm ci)`);
  }
  const workDir = cacheDir ?? join(REPO_ROOT, "node_modules/.cache/mesh-plugin-build");
  await mkdir(workDir, { recursive: true });
  const tmpOut = join(workDir, `tmp-${randomUUID()}.wasm`);
  const shown = displayPath(entry);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  try {
    const child = Bun.spawn([opts.bunExecutable ?? process.execPath, ASC_BIN, entry, "-b", tmpOut, ...ASC_FLAGS], {
      cwd: REPO_ROOT,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill();
    }, timeoutMs);
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]).finally(() => clearTimeout(timer));
    if (timedOut) {
      throw new MeshError(ErrorCodes.CONFIG_INVALID, `AssemblyScript compilation of ${shown} timed out after ${timeoutMs} ms`);
    }
    if (exitCode !== 0 || !existsSync(tmpOut)) {
      const errors = compilerErrors(`${stderr}\n${stdout}`);
      const first = errors[0] ?? (`${stderr}${stdout}`.trim().split("\n")[0] || `asc exited with status ${exitCode}`);
      throw new MeshError(ErrorCodes.CONFIG_INVALID, `AssemblyScript compilation of ${shown} failed: ${first}`, {
        details: errors.slice(1, MAX_ERROR_DETAILS),
      });
    }
    const wasm = new Uint8Array(await readFile(tmpOut));
    if (cacheDir !== null) {
      // rename is atomic: a concurrent reader sees either no entry or the whole module.
      await rename(tmpOut, join(cacheDir, `${key}.wasm`));
    }
    return wasm;
  } finally {
    await rm(tmpOut, { force: true });
  }
}

/**
 * asc 0.14 prints each diagnostic as `ERROR TSxxxx: message`, a code excerpt, then
 * ` in file(line,col)`; this folds each error into one line `ERROR …: message (file(line,col))`.
 * Crashes of the compiler itself (Bun `error: …`) are reported by their first line.
 */
function compilerErrors(output: string): string[] {
  if (output.includes("no such global element: abort_proc_exit")) {
    // `--use abort=abort_proc_exit` needs the SDK's runtime in the program.
    return ["the entry file does not import @solo-io/proxy-runtime (abort_proc_exit is missing)"];
  }
  const lines = output.split("\n");
  const errors: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]?.trim() ?? "";
    if (!/^(ERROR|FATAL)\b/.test(line)) continue;
    let where = "";
    for (let j = i + 1; j < Math.min(lines.length, i + 8); j++) {
      const next = lines[j]?.trim() ?? "";
      if (next.startsWith("in ")) {
        where = ` (${next.slice(3)})`;
        break;
      }
      if (/^(ERROR|WARNING|INFO)\b/.test(next)) break;
    }
    errors.push(`${line}${where}`);
  }
  if (errors.length === 0) {
    const crash = lines.map((l) => l.trim()).find((l) => /^(error|warn):/i.test(l));
    if (crash !== undefined) errors.push(crash);
  }
  return errors;
}

function displayPath(file: string): string {
  const rel = relative(REPO_ROOT, file);
  return rel.startsWith("..") || isAbsolute(rel) ? file : rel;
}

// ---- cache key --------------------------------------------------------------------------------

const IMPORT_RE = /(?:^|[;\s])(?:import|export)\s+(?:[^;'"]*?\s+from\s+)?["']([^"']+)["']/g;

/**
 * The cache key of an AssemblyScript entry: a hash of everything that determines the output module
 * (sources reached by relative imports, SDK sources, compiler version and flags).
 */
export async function sourceCacheKey(entryFile: string): Promise<string> {
  const entry = isAbsolute(entryFile) ? entryFile : resolve(REPO_ROOT, entryFile);
  const hash = createHash("sha256");
  hash.update(`${CACHE_FORMAT}\n${await ascVersion()}\n${ASC_FLAGS.join(" ")}\n`);
  hash.update(`sdk\n${await sdkDigest()}\n`);
  const { files, packages } = await sourceClosure(entry);
  for (const [path, text] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    hash.update(`file ${displayPath(path)}\n${text.length}\n`);
    hash.update(text);
  }
  // Packages other than the SDK cannot be hashed from here; their specifiers at least key the entry.
  for (const spec of [...packages].sort()) hash.update(`package ${spec}\n`);
  return hash.digest("hex");
}

let ascVersionMemo: Promise<string> | undefined;
function ascVersion(): Promise<string> {
  ascVersionMemo ??= readFile(ASC_PACKAGE, "utf8").then(
    (text) => `assemblyscript ${(JSON.parse(text) as { version?: string }).version ?? "?"}`,
    () => "assemblyscript missing",
  );
  return ascVersionMemo;
}

let sdkDigestMemo: Promise<string> | undefined;
function sdkDigest(): Promise<string> {
  sdkDigestMemo ??= (async () => {
    const hash = createHash("sha256");
    try {
      const names = (await readdir(SDK_DIR)).filter((n) => n.endsWith(".ts")).sort();
      for (const name of names) hash.update(`${name}\n`).update(await readFile(join(SDK_DIR, name)));
    } catch {
      hash.update("sdk missing");
    }
    return hash.digest("hex");
  })();
  return sdkDigestMemo;
}

/** The entry and every source it reaches through relative imports (AssemblyScript resolution). */
async function sourceClosure(entry: string): Promise<{ files: Map<string, string>; packages: Set<string> }> {
  const files = new Map<string, string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (files.has(file)) continue;
    const text = await readFile(file, "utf8");
    files.set(file, text);
    for (const match of text.matchAll(IMPORT_RE)) {
      const spec = match[1] as string;
      if (spec.startsWith(".")) {
        const target = resolveRelative(dirname(file), spec);
        if (target !== undefined) queue.push(target);
      } else if (spec !== SDK_PACKAGE && !spec.startsWith(`${SDK_PACKAGE}/`)) {
        packages.add(spec);
      }
    }
  }
  return { files, packages };
}

function resolveRelative(fromDir: string, spec: string): string | undefined {
  const base = resolve(fromDir, spec);
  for (const candidate of [base, `${base}.ts`, join(base, "index.ts")]) {
    if (candidate.endsWith(".ts") && existsSync(candidate)) return candidate;
  }
  return undefined;
}

// ---- WAT --------------------------------------------------------------------------------------

// wabt is an Emscripten module with asynchronous start-up; initialising it when this module loads
// keeps compileWat synchronous.
const wabt = await wabtFactory();

/**
 * Assembles WebAssembly text into a validated binary module. Throws MeshError CONFIG_INVALID
 * naming `filename` and wabt's message when the text does not parse or validate.
 */
export function compileWat(text: string, filename = "module.wat"): Uint8Array {
  let module: ReturnType<typeof wabt.parseWat> | undefined;
  try {
    module = wabt.parseWat(filename, text);
    module.resolveNames();
    module.validate();
    return new Uint8Array(module.toBinary({}).buffer);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // wabt reports `parseWat failed:` / `validate failed:` followed by `file:line:col: error: …`.
    const errors = [...message.matchAll(/[^\s"]+:\d+:\d+: error: [^"\n]+/g)].map((m) => m[0].trim());
    const [first = message.trim().split("\n")[0] ?? "invalid module", ...rest] = errors;
    throw new MeshError(ErrorCodes.CONFIG_INVALID, `WAT compilation of ${filename} failed: ${first}`, {
      details: rest.slice(0, MAX_ERROR_DETAILS),
      cause: e,
    });
  } finally {
    module?.destroy();
  }
}

// ---- examples and test plugins ----------------------------------------------------------------

export interface ExampleFilter {
  name: "add-header" | "deny-by-header" | "http-callout";
  /** Entry file, relative to the repository root. */
  entry: string;
  /** Root id the filter registers besides "" (Istio `WasmPlugin.spec.pluginName`). */
  rootId: string;
  /** A typical pluginConfig (JSON text). */
  sampleConfig: string;
  /** Whether the filter runs with an empty configuration. */
  configRequired: boolean;
}

export const EXAMPLES: readonly ExampleFilter[] = [
  {
    name: "add-header",
    entry: "plugins/examples/add-header/assembly/index.ts",
    rootId: "add-header",
    sampleConfig: JSON.stringify({ header: "x-hello", value: "world" }),
    configRequired: false,
  },
  {
    name: "deny-by-header",
    entry: "plugins/examples/deny-by-header/assembly/index.ts",
    rootId: "deny-by-header",
    sampleConfig: JSON.stringify({ header: "x-deny", status: 403, body: "denied\n" }),
    configRequired: false,
  },
  {
    name: "http-callout",
    entry: "plugins/examples/http-callout/assembly/index.ts",
    rootId: "http-callout",
    sampleConfig: JSON.stringify({ upstream: "authz.default.svc.cluster.local:8080", path: "/check" }),
    configRequired: true,
  },
];

export interface BuiltExample extends CompiledPlugin {
  example: ExampleFilter;
  outFile: string;
}

/** Compiles the three example filters into `<outDir>/<name>.wasm`. */
export async function buildExamples(outDir: string, opts: CompileOptions = {}): Promise<BuiltExample[]> {
  const built: BuiltExample[] = [];
  for (const example of EXAMPLES) {
    const outFile = join(outDir, `${example.name}.wasm`);
    const compiled = await compileAssemblyScript(example.entry, outFile, opts);
    built.push({ ...compiled, example, outFile });
  }
  return built;
}

/** Misbehaving / conformance plugins in `plugins/testdata` (see each file's header comment). */
export const TESTDATA_PLUGINS = {
  trap: "plugins/testdata/trap.wat",
  loop: "plugins/testdata/loop.wat",
  "memory-hog": "plugins/testdata/memory-hog.wat",
  "no-abi": "plugins/testdata/no-abi.wat",
  "lifecycle-recorder": "plugins/testdata/lifecycle-recorder/assembly/index.ts",
  "body-buffer": "plugins/testdata/body-buffer/assembly/index.ts",
} as const;

export type TestdataPluginName = keyof typeof TESTDATA_PLUGINS;

/** Builds one test plugin (WAT with wabt, AssemblyScript with the cached asc) in memory. */
export async function loadTestdataPlugin(name: TestdataPluginName, opts: CompileOptions = {}): Promise<CompiledPlugin> {
  const source = join(REPO_ROOT, TESTDATA_PLUGINS[name]);
  if (source.endsWith(".wat")) {
    const wasm = compileWat(await readFile(source, "utf8"), displayPath(source));
    return { wasm, sha256: sha256Hex(wasm), fromCache: false };
  }
  return compileAssemblyScript(source, null, opts);
}
