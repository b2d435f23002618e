// Plugin configuration, shaped after Istio's WasmPlugin (extensions.istio.io/v1alpha1): from the
// mesh config's `plugins` section (each entry a WasmPlugin spec plus name and namespace) and from
// WasmPlugin YAML documents. Validated once into immutable PluginSpecs; every problem names its
// field. Module URLs are local files (`file://` or a path); oci:// and http(s):// are refused here.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { DocProblems, KUBERNETES_METADATA_KEYS, KUBERNETES_TOP_KEYS, checkKeys, isObj, readInt, readKubernetesDocuments, readList, readMap, readString, type Obj } from "../core/config/index.ts";
import { ErrorCodes, MeshError } from "../core/errors/index.ts";

export type PluginPhase = "AUTHN" | "AUTHZ" | "STATS" | "UNSPECIFIED_PHASE";
export type PluginFailStrategy = "FAIL_CLOSE" | "FAIL_OPEN" | "FAIL_RELOAD";

export interface PluginTarget {
  readonly kind: "Gateway" | "Service" | "HTTPRoute";
  readonly name: string;
  readonly namespace: string;
}

export interface PluginSpec {
  /** `namespace/name` */
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  /** absolute path of the module */
  readonly modulePath: string;
  /** lower-case hex; when set, the module must match it */
  readonly sha256?: string;
  /** `pluginConfig` as JSON text (what the module reads as PLUGIN_CONFIGURATION); "" when none */
  readonly configuration: string;
  /** `pluginName`: the root id */
  readonly rootId: string;
  readonly phase: PluginPhase;
  readonly priority: number;
  readonly failStrategy: PluginFailStrategy;
  /** empty: every request through this waypoint */
  readonly targets: readonly PluginTarget[];
  /** `match[].ports`: empty = any port */
  readonly ports: readonly number[];
  /** `vmConfig.env` (INLINE values) */
  readonly env: Readonly<Record<string, string>>;
  /** mesh extensions: memory limit in 64 KiB pages, time budget per callback */
  readonly maxMemoryPages: number;
  readonly callbackBudgetMs: number;
  /**
   * auto (default): on the waypoint's thread (a few µs per callback) while the plugin behaves; moved
   * to its own worker for good the first time a callback runs past its budget (that once, the
   * waypoint's thread was held for the budget) or its callbacks keep holding the thread.
   * worker: its own thread from the start — a plugin that loops never holds other traffic, at tens
   * of µs per callback. inline: always on the waypoint's thread, never moved (trusted plugins).
   */
  readonly isolation: "auto" | "worker" | "inline";
  /** where it was defined, for messages */
  readonly source: string;
}

export const PLUGIN_DEFAULTS = { maxMemoryPages: 256, callbackBudgetMs: 5 } as const;
const PHASES: readonly PluginPhase[] = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"];
const STRATEGIES: readonly PluginFailStrategy[] = ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"];
const SPEC_KEYS = ["targetRefs", "selector", "url", "sha256", "imagePullPolicy", "imagePullSecret", "pluginConfig", "pluginName", "phase", "priority", "failStrategy", "vmConfig", "match", "type", "limits"];
const SECTION_KEYS = ["name", "namespace", ...SPEC_KEYS];
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const MAX_PLUGINS = 64;

/** The module's bytes and their sha256 (hex). */
export function readModule(path: string, maxBytes = 64 * 1024 * 1024): { bytes: Uint8Array; sha256: string } {
  if (!existsSync(path)) throw new MeshError(ErrorCodes.CONFIG_FILE_MISSING, `plugin module ${path} does not exist`);
  const size = statSync(path).size;
  if (size > maxBytes) throw new MeshError(ErrorCodes.CONFIG_INVALID, `plugin module ${path} is ${size} bytes, more than ${maxBytes}`);
  const bytes = new Uint8Array(readFileSync(path));
  return { bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
}

function readSpec(spec: Obj, path: string, p: DocProblems, name: string | undefined, namespace: string, baseDir: string): PluginSpec | undefined {
  const before = p.count();
  checkKeys(spec, path, path === "spec" ? SPEC_KEYS : SECTION_KEYS, p);
  const at = (k: string) => (path === "" ? k : `${path}.${k}`);
  if (spec["selector"] != null) p.error(at("selector"), "waypoints attach plugins with targetRefs (Istio ignores selectors there)");
  if (spec["type"] != null && spec["type"] !== "HTTP" && spec["type"] !== "UNSPECIFIED_PLUGIN_TYPE") p.error(at("type"), "only HTTP plugins are supported");
  if (spec["imagePullSecret"] != null) p.error(at("imagePullSecret"), "not supported: modules are local files");
  const url = readString(spec, "url", path, p, { required: true, min: 1, max: 4096 });
  let modulePath: string | undefined;
  if (url !== undefined) {
    if (/^(oci|https?):\/\//.test(url)) p.error(at("url"), `only local modules (file:// or a path) are supported here, got ${JSON.stringify(url)}`);
    else {
      const file = url.startsWith("file://") ? url.slice("file://".length) : url;
      modulePath = isAbsolute(file) ? file : resolve(baseDir, file);
    }
  }
  const sha = readString(spec, "sha256", path, p, { pattern: /^[0-9a-fA-F]{64}$/, patternText: "64 hex digits" });
  let configuration = "";
  if (spec["pluginConfig"] != null) {
    if (!isObj(spec["pluginConfig"])) p.error(at("pluginConfig"), `expected a map (delivered to the module as JSON), got ${p.describe(spec["pluginConfig"])}`);
    else configuration = JSON.stringify(spec["pluginConfig"]);
  }
  const rootId = readString(spec, "pluginName", path, p, { max: 253 }) ?? "";
  const phase = (readString(spec, "phase", path, p, { oneOf: PHASES }) ?? "UNSPECIFIED_PHASE") as PluginPhase;
  const priority = readInt(spec, "priority", path, p, -(2 ** 31), 2 ** 31 - 1) ?? 0;
  const failStrategy = (readString(spec, "failStrategy", path, p, { oneOf: STRATEGIES }) ?? "FAIL_CLOSE") as PluginFailStrategy;
  if (failStrategy === "FAIL_OPEN" && (phase === "AUTHN" || phase === "AUTHZ")) {
    // reliability.md §7 H 43: an authentication or authorization plugin never fails open.
    p.error(at("failStrategy"), `FAIL_OPEN is not allowed for a plugin in phase ${phase}: a failed check must not let requests through`);
  }
  const targets: PluginTarget[] = [];
  readList(spec["targetRefs"], at("targetRefs"), p, { max: 16, what: "target references" })?.forEach((raw, i) => {
    const tp = `${at("targetRefs")}[${i}]`;
    const t = readMap(raw, tp, p);
    if (!t) return;
    checkKeys(t, tp, ["group", "kind", "name", "namespace"], p);
    const kind = readString(t, "kind", tp, p, { required: true, oneOf: ["Gateway", "Service", "HTTPRoute"] });
    const group = readString(t, "group", tp, p) ?? "";
    const expectedGroup = kind === "Service" ? "" : "gateway.networking.k8s.io";
    if (kind && group !== expectedGroup && !(kind === "Service" && group === "core")) p.error(`${tp}.group`, `kind ${kind} is in group ${JSON.stringify(expectedGroup)}, got ${JSON.stringify(group)}`);
    const tname = readString(t, "name", tp, p, { required: true, min: 1, max: 253 });
    const tns = readString(t, "namespace", tp, p, { max: 63 }) ?? namespace;
    if (kind && tname) targets.push(Object.freeze({ kind: kind as PluginTarget["kind"], name: tname, namespace: tns }));
  });
  const ports: number[] = [];
  readList(spec["match"], at("match"), p, { max: 16 })?.forEach((raw, i) => {
    const mp = `${at("match")}[${i}]`;
    const m = readMap(raw, mp, p);
    if (!m) return;
    checkKeys(m, mp, ["mode", "ports"], p);
    readString(m, "mode", mp, p, { oneOf: ["CLIENT", "SERVER", "CLIENT_AND_SERVER", "UNDEFINED"] });
    readList(m["ports"], `${mp}.ports`, p, { max: 64 })?.forEach((pr, j) => {
      const pm = readMap(pr, `${mp}.ports[${j}]`, p);
      const n = pm ? readInt(pm, "number", `${mp}.ports[${j}]`, p, 1, 65535, true) : undefined;
      if (n !== undefined) ports.push(n);
    });
  });
  const env: Record<string, string> = {};
  if (spec["vmConfig"] != null) {
    const vm = readMap(spec["vmConfig"], at("vmConfig"), p);
    if (vm) {
      checkKeys(vm, at("vmConfig"), ["env"], p);
      readList(vm["env"], `${at("vmConfig")}.env`, p, { max: 64 })?.forEach((raw, i) => {
        const ep = `${at("vmConfig")}.env[${i}]`;
        const e = readMap(raw, ep, p);
        if (!e) return;
        checkKeys(e, ep, ["name", "value", "valueFrom"], p);
        const n = readString(e, "name", ep, p, { required: true, min: 1, max: 256, pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, patternText: "an environment variable name" });
        const from = readString(e, "valueFrom", ep, p, { oneOf: ["INLINE", "HOST"] }) ?? "INLINE";
        if (from === "HOST") p.error(`${ep}.valueFrom`, "HOST is not supported: a plugin never sees the proxy's environment");
        const v = readString(e, "value", ep, p, { max: 4096 }) ?? "";
        if (n) env[n] = v;
      });
    }
  }
  let maxMemoryPages: number = PLUGIN_DEFAULTS.maxMemoryPages;
  let callbackBudgetMs: number = PLUGIN_DEFAULTS.callbackBudgetMs;
  let isolation: PluginSpec["isolation"] = "auto";
  if (spec["limits"] != null) {
    const l = readMap(spec["limits"], at("limits"), p);
    if (l) {
      checkKeys(l, at("limits"), ["maxMemoryPages", "callbackBudgetMs", "isolation"], p);
      maxMemoryPages = readInt(l, "maxMemoryPages", at("limits"), p, 1, 65536) ?? maxMemoryPages;
      callbackBudgetMs = readInt(l, "callbackBudgetMs", at("limits"), p, 1, 10_000) ?? callbackBudgetMs;
      isolation = (readString(l, "isolation", at("limits"), p, { oneOf: ["auto", "worker", "inline"] }) ?? isolation) as PluginSpec["isolation"];
    }
  }
  if (p.count() > before || !name || !modulePath) return undefined;
  return Object.freeze({
    key: `${namespace}/${name}`,
    name,
    namespace,
    modulePath,
    ...(sha ? { sha256: sha.toLowerCase() } : {}),
    configuration,
    rootId,
    phase,
    priority,
    failStrategy,
    targets: Object.freeze(targets),
    ports: Object.freeze(ports),
    env: Object.freeze(env),
    maxMemoryPages,
    callbackBudgetMs,
    isolation,
    source: p.source,
  });
}

/**
 * The mesh config's `plugins` section (raw YAML values). Throws CONFIG_INVALID listing every
 * problem, each as `file: plugins[i] (name): field: message`.
 */
export function parsePluginSection(raw: readonly unknown[], fileName: string): PluginSpec[] {
  const errors: string[] = [];
  const out: PluginSpec[] = [];
  if (raw.length > MAX_PLUGINS) throw new MeshError(ErrorCodes.CONFIG_INVALID, `${fileName}: plugins: at most ${MAX_PLUGINS} plugins, got ${raw.length}`);
  raw.forEach((entry, i) => {
    const p = new DocProblems(`${fileName}: plugins[${i}]`, errors);
    const o = readMap(entry, "", p, "a plugin");
    if (!o) return;
    const name = readString(o, "name", "", p, { required: true, min: 1, max: 253, pattern: NAME, patternText: "a DNS subdomain name" });
    if (name) p.name(name);
    const namespace = readString(o, "namespace", "", p, { max: 63, pattern: NAME, patternText: "a namespace name" }) ?? "default";
    const spec = readSpec(o, "", p, name, namespace, dirname(fileName));
    if (spec) out.push(spec);
  });
  checkUnique(out, errors, fileName);
  if (errors.length > 0) throw new MeshError(ErrorCodes.CONFIG_INVALID, `${fileName}: ${errors.length} plugin error${errors.length === 1 ? "" : "s"}`, { details: errors });
  return out;
}

/** WasmPlugin documents in a YAML stream (other kinds skipped). */
export function parseWasmPluginDocuments(text: string, fileName: string): PluginSpec[] {
  const specs = readKubernetesDocuments(text, fileName, { kind: "WasmPlugin", maxDocuments: 1024 }, (doc, p) => {
    const root = readMap(doc, "", p);
    if (!root || root["kind"] !== "WasmPlugin") return undefined;
    checkKeys(root, "", KUBERNETES_TOP_KEYS, p);
    if (root["apiVersion"] !== "extensions.istio.io/v1alpha1") p.error("apiVersion", `expected extensions.istio.io/v1alpha1, got ${p.describe(root["apiVersion"])}`);
    const meta = readMap(root["metadata"] ?? {}, "metadata", p) ?? {};
    checkKeys(meta, "metadata", KUBERNETES_METADATA_KEYS, p);
    const name = readString(meta, "name", "metadata", p, { required: true, min: 1, max: 253, pattern: NAME, patternText: "a DNS subdomain name" });
    if (name) p.name(name);
    const namespace = readString(meta, "namespace", "metadata", p, { max: 63 }) ?? "default";
    const spec = readMap(root["spec"], "spec", p);
    return spec ? readSpec(spec, "spec", p, name, namespace, dirname(fileName)) : undefined;
  });
  const errors: string[] = [];
  checkUnique(specs, errors, fileName);
  if (errors.length > 0) throw new MeshError(ErrorCodes.CONFIG_INVALID, `${fileName}: duplicate plugins`, { details: errors });
  return specs;
}

function checkUnique(specs: readonly PluginSpec[], errors: string[], fileName: string): void {
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.key)) errors.push(`${fileName}: plugin ${s.key} is defined more than once`);
    seen.add(s.key);
  }
}

/**
 * Chain order as Envoy builds it for Istio: by phase (AUTHN, AUTHZ, STATS, then unspecified, each
 * around the built-in filter of that name), within a phase higher priority first, ties by name.
 */
export function orderPlugins<T extends { readonly spec: PluginSpec }>(plugins: readonly T[]): T[] {
  const rank = (p: PluginPhase) => PHASES.indexOf(p);
  return [...plugins].sort((a, b) => rank(a.spec.phase) - rank(b.spec.phase) || b.spec.priority - a.spec.priority || a.spec.key.localeCompare(b.spec.key));
}
