// The waypoint's Wasm filter chain: the configured plugins (config `plugins` section and WasmPlugin
// documents), each a WasmPlugin VM from wasm/, applied to the requests they target in Istio's
// order. A plugin is reloaded when its module file or its configuration changes; a new VM takes new
// requests once it started, and the old one stops after the requests it holds finish. A module
// that cannot be used (missing, sha256 mismatch, start failure) applies its fail strategy.
import { parse as parseYaml } from "yaml";
import { WatchedFile, loadConfigFile, type ConfigLog } from "../core/config/index.ts";
import { ErrorCodes, MeshError, asMeshError } from "../core/errors/index.ts";
import type { Logger } from "../core/telemetry/index.ts";
import type { BodySource, HeaderPairs, HookRequest, LocalReply, PluginOutcome, RequestCompletion, RequestOrigin, RequestPlugins, WaypointPlugins, WaypointPluginsContext } from "../core/waypoint/index.ts";
import { headerValue } from "../core/waypoint/index.ts";
import { PluginMetricStore, WasmPlugin, renderPrometheus, type PhaseResult, type StreamCompletion, type WasmStream } from "../wasm/index.ts";
import { orderPlugins, parsePluginSection, parseWasmPluginDocuments, readModule, type PluginPhase, type PluginSpec } from "./config.ts";
import { RequestFlow, ResponseFlow } from "./flow.ts";

/** One configured plugin and the VM serving it (absent when the module could not be used). */
export interface LoadedPlugin {
  readonly spec: PluginSpec;
  readonly sha256: string | undefined;
  readonly vm: WasmPlugin | undefined;
  /** why there is no VM */
  readonly unusable?: MeshError;
  inflight: number;
  retired: boolean;
}

function sameSpec(a: PluginSpec, b: PluginSpec): boolean {
  return JSON.stringify({ ...a, source: "" }) === JSON.stringify({ ...b, source: "" });
}

export class PluginChain implements WaypointPlugins {
  private chain: LoadedPlugin[] = [];
  private ctx: WaypointPluginsContext | undefined;
  private readonly watched: { stop(): void }[] = [];
  private readonly moduleWatches = new Map<string, { stop(): void }>();
  private configSpecs: PluginSpec[] = [];
  private readonly documentSpecs = new Map<string, PluginSpec[]>();
  private applying: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Plugins ("auto" isolation) moved to a worker: key → the module's sha256 it applies to. */
  private readonly quarantined = new Map<string, string>();
  /** Each plugin's metrics, shared by its versions: a reload keeps counting where the last left off. */
  private readonly metricStores = new Map<string, PluginMetricStore>();

  /** Reads and watches the plugin configuration and modules; loads the plugins. */
  async start(ctx: WaypointPluginsContext): Promise<void> {
    this.ctx = ctx;
    const log: ConfigLog = (level, msg, fields) => ctx.log[level](msg, fields);
    const initial = await loadConfigFile(ctx.configPath);
    this.configSpecs = parsePluginSection(initial.plugins, ctx.configPath);
    const cfg = new WatchedFile(
      ctx.configPath,
      (text, path) => {
        // Only the plugins section matters here; the rest of the file is the config source's.
        const parsed = parseYaml(text) as { plugins?: unknown } | null;
        return parsePluginSection(Array.isArray(parsed?.plugins) ? parsed.plugins : [], path);
      },
      (specs, first) => {
        if (first) return;
        this.configSpecs = specs;
        this.reapply();
      },
      log,
      { kind: "plugin config" },
    );
    cfg.start();
    this.watched.push(cfg);
    for (const file of ctx.documentFiles) {
      const w = new WatchedFile(
        file,
        (text, path) => parseWasmPluginDocuments(text, path),
        (specs, first) => {
          this.documentSpecs.set(file, specs);
          if (!first) this.reapply();
        },
        log,
        { kind: "WasmPlugin file" },
      );
      w.start();
      this.watched.push(w);
    }
    await this.apply(this.allSpecs());
  }

  private allSpecs(): PluginSpec[] {
    const out = [...this.configSpecs];
    const seen = new Set(out.map((s) => s.key));
    for (const list of this.documentSpecs.values()) {
      for (const s of list) {
        if (seen.has(s.key)) {
          this.ctx?.log.warn("plugin defined twice; the first definition is used", { plugin: s.key, source: s.source });
          continue;
        }
        seen.add(s.key);
        out.push(s);
      }
    }
    return out;
  }

  private reapply(): void {
    this.applying = this.applying.then(() => this.apply(this.allSpecs())).catch((e) => this.ctx?.log.error("plugin reload failed", { error: asMeshError(e).message }));
  }

  /** Brings the chain to `specs`: unchanged plugins keep their VM, changed or new ones load. */
  async apply(specs: readonly PluginSpec[]): Promise<void> {
    const next: LoadedPlugin[] = [];
    for (const spec of specs) {
      const current = this.chain.find((p) => p.spec.key === spec.key);
      if (current && sameSpec(current.spec, spec) && current.vm && this.moduleUnchanged(current) && !this.movesToWorker(current)) {
        next.push(current);
        continue;
      }
      next.push(await this.load(spec, current));
    }
    const previous = this.chain;
    this.chain = orderPlugins(next);
    for (const p of previous) if (!this.chain.includes(p)) this.retire(p);
    for (const key of this.metricStores.keys()) if (!specs.some((s) => s.key === key)) this.metricStores.delete(key);
    this.watchModules();
  }

  /** A quarantined plugin whose VM still runs on the waypoint's thread: replaced by one in a worker. */
  private movesToWorker(p: LoadedPlugin): boolean {
    return p.vm !== undefined && p.vm.isolation === "inline" && this.quarantined.get(p.spec.key) === p.sha256;
  }

  /** An "auto" plugin was moved to a worker: later VMs of this module start there; the running one is replaced. */
  private onQuarantine(spec: PluginSpec, sha256: string, reason: string): void {
    this.quarantined.set(spec.key, sha256);
    this.ctx?.log.warn("plugin moved to its own worker", { plugin: spec.key, sha256, reason });
    this.reapply();
  }

  private moduleUnchanged(p: LoadedPlugin): boolean {
    try {
      return readModule(p.spec.modulePath).sha256 === p.sha256;
    } catch {
      return false;
    }
  }

  /** Loads a plugin's VM; on failure keeps the previous one (last good) when there is one. */
  private async load(spec: PluginSpec, previous: LoadedPlugin | undefined): Promise<LoadedPlugin> {
    const ctx = this.ctx!;
    let sha: string | undefined;
    try {
      const mod = readModule(spec.modulePath);
      sha = mod.sha256;
      if (spec.sha256 && spec.sha256 !== mod.sha256) {
        throw new MeshError(ErrorCodes.CONFIG_INVALID, `plugin ${spec.key}: module ${spec.modulePath} has sha256 ${mod.sha256}, the configuration requires ${spec.sha256}`);
      }
      const vm = new WasmPlugin({
        name: `${spec.namespace}.${spec.name}`,
        rootId: spec.rootId,
        bytes: mod.bytes,
        // SDK 0.1.8 traps on an empty configuration; Istio sends none when pluginConfig is absent.
        configuration: spec.configuration || "{}",
        env: spec.env,
        maxMemoryPages: spec.maxMemoryPages,
        callbackBudgetMs: spec.callbackBudgetMs,
        // a module quarantined once starts in a worker from then on (a new module gets a new chance)
        isolation: this.quarantined.get(spec.key) === mod.sha256 ? "worker" : spec.isolation,
        onQuarantine: (reason) => this.onQuarantine(spec, mod.sha256, reason),
        metricStore: this.metricStoreOf(spec.key),
        failStrategy: spec.failStrategy,
        httpCall: ctx.httpCall,
        streamCall: ctx.streamCall,
        logLevel: ctx.logLevel,
        node: { id: ctx.nodeId, metadata: { NAMESPACE: ctx.namespace } },
        log: (e) => ctx.log[e.level === "critical" || e.level === "error" ? "error" : e.level === "warn" ? "warn" : e.level === "info" ? "info" : "debug"]("plugin log", { plugin: e.plugin, source: e.source, message: e.message }),
        ...(ctx.workerUrl ? { workerUrl: ctx.workerUrl } : {}),
      });
      await vm.start();
      ctx.log.info(previous ? "plugin reloaded" : "plugin loaded", { plugin: spec.key, module: spec.modulePath, sha256: mod.sha256, phase: spec.phase });
      return { spec, sha256: sha, vm, inflight: 0, retired: false };
    } catch (e) {
      const err = asMeshError(e, ErrorCodes.WASM_MODULE_INVALID);
      if (previous?.vm && !previous.retired) {
        ctx.log.error("plugin not reloaded; the previous version stays", { plugin: spec.key, code: err.code, error: err.message });
        return previous;
      }
      ctx.log.error("plugin refused", { plugin: spec.key, code: err.code, error: err.message, failStrategy: spec.failStrategy });
      return { spec, sha256: sha, vm: undefined, unusable: err, inflight: 0, retired: false };
    }
  }

  private metricStoreOf(key: string): PluginMetricStore {
    let store = this.metricStores.get(key);
    if (store === undefined) {
      store = new PluginMetricStore();
      this.metricStores.set(key, store);
    }
    return store;
  }

  /** A VM no longer in the chain stops once the requests it holds are done. */
  private retire(p: LoadedPlugin): void {
    p.retired = true;
    if (p.inflight === 0) void p.vm?.stop();
  }

  private watchModules(): void {
    const wanted = new Set(this.chain.map((p) => p.spec.modulePath));
    for (const [path, w] of this.moduleWatches) {
      if (!wanted.has(path)) {
        w.stop();
        this.moduleWatches.delete(path);
      }
    }
    const ctx = this.ctx!;
    for (const path of wanted) {
      if (this.moduleWatches.has(path)) continue;
      try {
        const w = WatchedFile.binary(
          path,
          (bytes) => bytes.byteLength,
          (_n, first) => {
            if (!first) this.reapply();
          },
          (level, msg, fields) => ctx.log[level](msg, fields),
          { kind: "plugin module", maxBytes: 64 * 1024 * 1024 },
        );
        w.start();
        this.moduleWatches.set(path, w);
      } catch {
        // missing now: the plugin is already marked unusable; a config change brings it back
      }
    }
  }

  /** The plugins that apply to a request, in chain order. */
  private select(origin: RequestOrigin, routeKey: string | undefined): LoadedPlugin[] {
    const ctx = this.ctx;
    if (!ctx || this.chain.length === 0) return [];
    const out: LoadedPlugin[] = [];
    for (const p of this.chain) {
      const s = p.spec;
      if (s.ports.length > 0 && !s.ports.includes(origin.targetPort)) continue;
      if (s.targets.length > 0 && !this.matchesAnyTarget(s.targets, origin, routeKey)) continue;
      out.push(p);
    }
    return out;
  }

  private matchesAnyTarget(targets: PluginSpec["targets"], origin: RequestOrigin, routeKey: string | undefined): boolean {
    for (let i = 0; i < targets.length; i++) if (this.matchesTarget(targets[i]!, origin, routeKey)) return true;
    return false;
  }

  private matchesTarget(t: PluginSpec["targets"][number], origin: RequestOrigin, routeKey: string | undefined): boolean {
    const ctx = this.ctx!;
    switch (t.kind) {
      case "Gateway":
        return t.namespace === ctx.namespace && ctx.gateways().includes(t.name);
      case "HTTPRoute":
        return routeKey === `${t.namespace}/${t.name}`;
      case "Service": {
        if (origin.service) return origin.service.name === t.name && origin.service.namespace === t.namespace;
        return origin.workload ? [...origin.workload.services.keys()].some((k) => k === `${t.namespace}/${t.name}` || k.startsWith(`${t.namespace}/${t.name}.`)) : false;
      }
    }
  }

  forRequest(origin: RequestOrigin, routeKey: string | undefined): RequestPlugins | undefined {
    if (this.stopped) return undefined;
    const selected = this.select(origin, routeKey);
    if (selected.length === 0) return undefined;
    return new PluginRun(selected, origin);
  }

  /** Plugin metrics in Prometheus text, for the waypoint's /metrics. */
  metricsText(): string {
    const withVm = this.chain.filter((p) => p.vm);
    if (withVm.length === 0) return "";
    return renderPrometheus(withVm.map((p) => ({ plugin: p.vm!.name, metrics: p.vm!.metrics() })));
  }

  describe(): unknown {
    // "plugin", not "key": the admin dump hides every field named like key material.
    return this.chain.map((p) => ({
      plugin: p.spec.key,
      module: p.spec.modulePath,
      sha256: p.sha256,
      phase: p.spec.phase,
      priority: p.spec.priority,
      isolation: p.spec.isolation,
      ...(p.vm ? { runsIn: p.vm.isolation } : {}),
      failStrategy: p.spec.failStrategy,
      targets: p.spec.targets,
      loaded: p.vm !== undefined,
      ...(p.unusable ? { error: p.unusable.message } : {}),
      source: p.spec.source,
    }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.watched) w.stop();
    for (const w of this.moduleWatches.values()) w.stop();
    await Promise.all(this.chain.map((p) => p.vm?.stop()));
  }
}

/** The plugins of one request: a stream per plugin VM, in chain order. */
class PluginRun implements RequestPlugins {
  /** By plugin index, made on the first event that reaches the plugin. */
  private readonly streams: (WasmStream | undefined)[] = [];
  private finished = false;

  constructor(
    private readonly plugins: readonly LoadedPlugin[],
    private readonly origin: RequestOrigin,
  ) {
    for (const p of plugins) p.inflight++;
  }

  private streamOf(i: number, req: HookRequest): WasmStream | undefined {
    const p = this.plugins[i]!;
    if (!p.vm) return undefined;
    let s = this.streams[i];
    if (!s) {
      s = p.vm.stream({
        requestId: headerValue(req.headers, "x-request-id"),
        protocol: req.protocol,
        startTimeMs: Date.now(),
        source: { address: this.origin.sourceIp, port: this.origin.sourcePort, principal: this.origin.principal },
        destination: { address: this.origin.targetIp, port: this.origin.targetPort },
        connection: { mtls: true, uriSanPeerCertificate: this.origin.principal },
      });
      this.streams[i] = s;
    }
    return s;
  }

  /** A plugin whose module could not be used: its fail strategy decides. */
  private unusableResult(i: number): PhaseResult {
    const p = this.plugins[i]!;
    if (p.spec.failStrategy === "FAIL_OPEN") return { action: "continue" };
    return { action: "local", response: { status: 503, body: new TextEncoder().encode("plugin unavailable"), headers: [], grpcStatus: 14, details: "wasm_fail_stream" } };
  }

  request(req: HookRequest, body: BodySource, authorize: () => LocalReply | undefined): PluginOutcome | Promise<PluginOutcome> {
    const phaseOf = (i: number): PluginPhase => this.plugins[i]!.spec.phase;
    const flow = new RequestFlow(
      this.plugins.length,
      (i) => phaseOf(i),
      (i) => this.streamOf(i, req),
      (i) => this.unusableResult(i),
    );
    return flow.run(req, body, authorize);
  }

  response(status: number, headers: HeaderPairs, body: BodySource): PluginOutcome | Promise<PluginOutcome> {
    const flow = new ResponseFlow(
      this.plugins.length,
      (i) => this.streams[i],
      (i) => (this.plugins[i]!.vm ? undefined : this.unusableResult(i)),
    );
    return flow.run(status, headers, body);
  }

  done(completion: RequestCompletion): void {
    if (this.finished) return;
    this.finished = true;
    const u = completion.upstream;
    const extra: Record<string, string> = {};
    if (completion.routeName !== undefined) extra["xds.route_name"] = completion.routeName;
    if (completion.clusterName !== undefined) extra["xds.cluster_name"] = completion.clusterName;
    // (no object spreads: this runs once per request)
    const end: StreamCompletion =
      u === undefined
        ? { responseCodeDetails: completion.details, responseFlags: completion.flags, extra }
        : {
            responseCodeDetails: completion.details,
            responseFlags: completion.flags,
            // an upstream with a verified identity was reached by HBONE, which is TLS 1.3 only
            upstream: u.principal ? { address: u.address, port: u.port, principal: u.principal, tlsVersion: "TLSv1.3" } : { address: u.address, port: u.port },
            extra,
          };
    for (let i = 0; i < this.plugins.length; i++) {
      this.streams[i]?.done(end);
      const p = this.plugins[i]!;
      p.inflight--;
      if (p.retired && p.inflight === 0) void p.vm?.stop();
    }
  }
}
