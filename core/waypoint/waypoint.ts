// The waypoint role: one replica of an L7 proxy that runs as its own mesh workload. It loads the
// config and the CA, takes the identity and address of its workload (`--workload UID`), serves
// HBONE on `<its IP>:15008`, follows config, route and policy file changes and certificate
// rotation, and drains on request — the same lifecycle as ztunnel, for one workload.
import { FileConfigSource, StateStore, WatchedFile, loadConfigFile, type MeshState, type RuntimeEnv, type Service, type Workload } from "../config/index.ts";
import { ErrorCodes, MeshError, asMeshError } from "../errors/index.ts";
import { HboneListener, HbonePool, hboneTuningFrom, type HboneTuning, type PeerVerifier } from "../hbone/index.ts";
import { CertificateManager, loadLocalCa, meshPeerVerifier, svidTlsMaterial, type LocalCa } from "../identity/index.ts";
import { createAdminApp, createMetricsApp, createReadinessApp, startAdminServers, type AdminServers } from "../admin/index.ts";
import { PolicySet, parseAuthorizationPolicies } from "../policy/index.ts";
import { RouteTable, parseDestinationRules, parseHttpRoutes, type DestinationRule, type HttpRoute } from "../routes/index.ts";
import { MeshMetrics, type Logger } from "../telemetry/index.ts";
import type { TlsIdentity } from "../net/index.ts";
import { drainRole } from "../drain/index.ts";
import { EndpointBalancer } from "./endpoints.ts";
import { codecLimits, serveH1 } from "./front-h1.ts";
import { RequestPipeline } from "./handler.ts";
import type { MeshHttpCall, MeshStreamCall, WaypointPlugins } from "./plugin-api.ts";
import { BufferedBody, StreamedBody } from "./exchange.ts";
import { serviceEndpoints, type Endpoint } from "./endpoints.ts";
import { DEFAULT_H2_GUARD } from "./h2-guard.ts";
import { DEFAULT_L7_LIMITS, type L7Limits } from "./limits.ts";
import { acceptWaypointTunnel, type TunnelContext } from "./tunnel.ts";
import { HBONE_PORT, MeshDialer, type UpstreamHead } from "./upstream.ts";
import { H1UpstreamPool } from "./upstream-h1.ts";
import { H2UpstreamPool } from "./upstream-h2.ts";

/** Something serving a tunnel: closed gracefully on drain, destroyed at the deadline. */
interface OpenTunnel {
  destroy(): void;
  close?(): void;
}

export const WAYPOINT_VERSION = "0.1.0";

export interface WaypointOptions {
  readonly workloadUid: string;
  readonly configPath: string;
  readonly caDir: string;
  readonly env: RuntimeEnv;
  readonly adminPort: number;
  readonly metricsPort: number;
  readonly readinessPort: number;
  /** default 15008 */
  readonly hbonePort?: number;
  /** metrics and readiness bind here (admin is always loopback) */
  readonly publicHost?: string;
  /** Gateway API HTTPRoute YAML files (`--routes`), watched */
  readonly routeFiles?: readonly string[];
  /** Kubernetes AuthorizationPolicy YAML files (`--policies`), watched */
  readonly policyFiles?: readonly string[];
  readonly clusterDomain?: string;
  /** the Wasm plugin chain (plugins/); none when absent */
  readonly plugins?: WaypointPlugins;
  /** HTTP limits and timeouts (defaults: Envoy's) */
  readonly limits?: Partial<L7Limits>;
  readonly log: Logger;
  readonly accessLog: Logger;
  readonly onExit?: (code: number) => void;
}

export class Waypoint {
  private readonly store = new StateStore();
  private source!: FileConfigSource;
  private ca!: LocalCa;
  private certs!: CertificateManager;
  private pool!: HbonePool;
  private listener: HboneListener | undefined;
  private admin: AdminServers | undefined;
  private readonly metrics = new MeshMetrics({ component: "waypoint", version: WAYPOINT_VERSION });
  private readonly tuning: HboneTuning;
  private readonly watched: { stop(): void }[] = [];
  private readonly routeFiles = new Map<string, readonly HttpRoute[]>();
  private readonly ruleFiles = new Map<string, readonly DestinationRule[]>();
  private destinationRules = new Map<string, DestinationRule>();
  private routeTable = new RouteTable([]);
  private workload!: Workload;
  private readonly openTunnels = new Set<OpenTunnel>();
  private readonly balancer = new EndpointBalancer();
  private h1Pool: H1UpstreamPool | undefined;
  private h2Pool: H2UpstreamPool | undefined;
  private pipeline: RequestPipeline | undefined;
  private tunnels: TunnelContext | undefined;
  private readonly policies: PolicySet;
  private draining = false;
  private drainPromise: Promise<number> | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly opts: WaypointOptions) {
    this.policies = new PolicySet(opts.log);
    this.tuning = hboneTuningFrom(opts.env);
  }

  /** Start everything; throws a MeshError (bad config, unknown workload, port in use) with nothing left running. */
  async start(): Promise<void> {
    const log = this.opts.log;
    const configLog = (level: "debug" | "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => log[level](msg, fields);
    try {
      this.ca = await loadLocalCa(this.opts.caDir);
      this.certs = new CertificateManager(this.ca, { lifetimeMs: this.opts.env.certLifetimeMs, log: configLog });
      this.verifier = meshPeerVerifier(this.certs, () => this.ca.trustDomain);
      this.pool = new HbonePool({ tuning: this.tuning, verifier: this.verifier, log: configLog });
      // Route files named in the config join those given by flag (the list is read at start).
      const initial = await loadConfigFile(this.opts.configPath);
      const routeFiles = [...new Set([...initial.routeFiles, ...(this.opts.routeFiles ?? [])])];
      this.routeFileList = routeFiles;
      this.source = new FileConfigSource(this.opts.configPath, this.store, configLog);
      this.source.start();
      this.workload = this.ownWorkload(this.store.current());
      this.applyState(this.store.current());
      for (const path of routeFiles) {
        const file = new WatchedFile(
          path,
          // HTTPRoutes and DestinationRules (egress TLS) may share a file; both must parse.
          (text, p) => ({ routes: parseHttpRoutes(text, p), rules: parseDestinationRules(text, p) }),
          ({ routes, rules }, initial) => {
            this.routeFiles.set(path, routes);
            this.routeTable = new RouteTable([...this.routeFiles.values()].flat());
            this.ruleFiles.set(path, rules);
            const byHost = new Map<string, DestinationRule>();
            for (const list of this.ruleFiles.values()) for (const r of list) if (!byHost.has(r.host)) byHost.set(r.host, r);
            this.destinationRules = byHost;
            if (!initial) log.info("routes reloaded", { file: path, routes: routes.length, destinationRules: rules.length });
          },
          configLog,
          { kind: "route file" },
        );
        file.start();
        this.watched.push(file);
      }
      for (const path of this.opts.policyFiles ?? []) {
        const file = new WatchedFile(
          path,
          (text, p) => parseAuthorizationPolicies(text, p),
          (policies, initial) => {
            // A policy set that cannot be combined (duplicate keys) is refused; the last good one stays.
            this.policies.setFile(path, policies);
            if (!initial) log.info("authorization policies reloaded", { file: path, policies: policies.length });
          },
          configLog,
          { kind: "policy file" },
        );
        file.start();
        this.watched.push(file);
      }
      // Built now so a limit combination the HTTP codec cannot use fails start-up, not a request.
      codecLimits(this.tunnelContext().limits);
      // Plugins load before the listener opens: no request is served without its plugin chain.
      await this.opts.plugins?.start({
        configPath: this.opts.configPath,
        documentFiles: routeFiles,
        httpCall: this.httpCall,
        streamCall: this.streamCall,
        gateways: () => this.gateways(),
        namespace: this.workload.namespace,
        nodeId: `waypoint~${this.selfIp}~${this.workload.name}.${this.workload.namespace}`,
        log,
        logLevel: this.opts.env.logLevel,
      });
      const svid = await this.certs.ensure(this.workload.identity);
      const ip = this.selfIp;
      this.listener = await HboneListener.start({
        hostname: ip,
        port: this.opts.hbonePort ?? HBONE_PORT,
        identity: svidTlsMaterial(svid),
        tuning: this.tuning,
        verifier: this.verifier,
        log: configLog,
        onTunnel: (t) => acceptWaypointTunnel(this.tunnelContext(), t),
        onRejectedPeer: (err, addr) => log.warn("HBONE peer rejected", { code: err.code, error: err.message, "src.addr": addr }),
      });
      this.certs.onRotate((identity, next) => {
        if (identity === this.workload.identity) this.listener?.setIdentity({ certChainPem: next.chainPem, keyPem: next.keyPem, rootPem: next.rootPem });
      });
      const publicHost = this.opts.publicHost ?? "0.0.0.0";
      this.admin = await startAdminServers({
        adminAddress: { hostname: "127.0.0.1", port: this.opts.adminPort },
        metricsAddress: { hostname: publicHost, port: this.opts.metricsPort },
        readinessAddress: { hostname: publicHost, port: this.opts.readinessPort },
        admin: createAdminApp({ configDump: () => this.configDump(), quit: () => void this.drain() }),
        metrics: createMetricsApp({ metrics: { render: (accept) => this.renderMetrics(accept) } }),
        readiness: createReadinessApp({ readiness: () => this.readiness() }),
      });
      this.unsubscribe = this.store.subscribe((next) => this.applyState(next));
      log.info("serving waypoint", { workload: this.workload.name, namespace: this.workload.namespace, identity: this.workload.identity, hbone: `${ip}:${this.listener.port}` });
    } catch (e) {
      await this.shutdownNow();
      throw e;
    }
  }

  get ports(): { admin: number; metrics: number; readiness: number; hbone: number } {
    return {
      admin: this.admin?.admin.port ?? 0,
      metrics: this.admin?.metrics.port ?? 0,
      readiness: this.admin?.readiness.port ?? 0,
      hbone: this.listener?.port ?? 0,
    };
  }

  private get selfIp(): string {
    const ip = this.workload.workloadIps.find((a) => !a.includes(":")) ?? this.workload.workloadIps[0];
    if (!ip) throw new MeshError(ErrorCodes.CONFIG_INVALID, `waypoint workload ${this.opts.workloadUid} has no address`);
    return ip;
  }

  private ownWorkload(state: MeshState): Workload {
    const w = state.workloads.get(this.opts.workloadUid);
    if (!w) throw new MeshError(ErrorCodes.CONFIG_INVALID, `workload ${JSON.stringify(this.opts.workloadUid)} is not in the config`);
    return w;
  }

  /** Config change: follow our workload (address and identity are fixed for the process), rebuild local policies. */
  private applyState(state: MeshState): void {
    const w = state.workloads.get(this.opts.workloadUid);
    if (w && w.identity === this.workload.identity) this.workload = w;
    else if (!w) this.opts.log.warn("the waypoint's workload left the config; serving with its last known definition", { workload: this.opts.workloadUid });
    this.policies.setLocal(state.policies.values());
  }

  /** The waypoint's own services name it as a Gateway for policies with targetRefs. */
  private gateways(): string[] {
    const names: string[] = [];
    for (const key of this.workload.services.keys()) {
      const svc = this.store.current().services.get(key);
      if (svc) names.push(svc.name);
    }
    return names;
  }

  private verifier!: PeerVerifier;

  private tlsIdentity(): TlsIdentity {
    const svid = this.certs.get(this.workload.identity);
    if (!svid) throw new MeshError(ErrorCodes.CERT_UNAVAILABLE, `no certificate issued yet for ${this.workload.identity}`);
    return svidTlsMaterial(svid);
  }

  private routeFileList: readonly string[] = [];

  /** Istio metrics, then the plugins' own (before OpenMetrics' closing `# EOF`). */
  private async renderMetrics(accept?: string): Promise<{ body: string; contentType: string }> {
    const r = await this.metrics.render(accept);
    const extra = this.opts.plugins?.metricsText() ?? "";
    if (!extra) return r;
    const eof = r.body.lastIndexOf("# EOF");
    const body = eof >= 0 ? `${r.body.slice(0, eof)}${extra}${r.body.slice(eof)}` : `${r.body}${extra}`;
    return { body, contentType: r.contentType };
  }

  /**
   * A plugin's `proxy_http_call` or `proxy_grpc_call`: `upstream` names a mesh service as
   * `host:port` (a hostname, relative to the waypoint's namespace, or a VIP). Sent as the waypoint's
   * identity to an endpoint chosen like any request's — HTTP/1.1, or HTTP/2 for gRPC —; the response
   * is bounded (1 MiB) and timed out.
   */
  private readonly httpCall: MeshHttpCall = async (upstream, headers, body, trailers, timeoutMs, kind) => {
    void trailers;
    const target = this.calloutTarget(upstream, kind === "grpc" ? this.h2Pool : this.h1Pool);
    if ("failure" in target) return target;
    const { svc, ep, pool } = target;
    const call = pool.request(ep, calloutHead(headers, svc), new BufferedBody(body.byteLength ? [body] : []));
    const timer = timeoutMs > 0 ? setTimeout(() => call.cancel(new MeshError(ErrorCodes.UPSTREAM_TIMEOUT, `${kind === "grpc" ? "grpc_call" : "http_call"} timed out`)), timeoutMs) : undefined;
    try {
      const r = await call.response;
      const chunks: Uint8Array[] = [];
      let size = 0;
      const respTrailers = await new Promise<[string, string][] | undefined>((resolve, reject) => {
        if (r.body.empty) return resolve(undefined);
        r.body.start({
          data: (c) => {
            size += c.byteLength;
            if (size > 1024 * 1024) {
              call.cancel(new MeshError(ErrorCodes.UPSTREAM_RESET, "callout response over 1 MiB"));
              return;
            }
            chunks.push(c);
          },
          end: (t) => resolve(t),
          error: reject,
        });
      });
      return { headers: [[":status", String(r.status)], ...r.headers], body: Buffer.concat(chunks), ...(respTrailers ? { trailers: respTrailers } : {}) };
    } catch (e) {
      return { failure: asMeshError(e).message };
    } finally {
      if (timer) clearTimeout(timer);
    }
  };

  /** The endpoint a plugin's callout to `host:port` goes to, and the pool it goes through. */
  private calloutTarget<P>(upstream: string, pool: P | undefined): { svc: Service; ep: Endpoint; pool: P } | { failure: string } {
    const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(upstream);
    if (!m) return { failure: `upstream ${JSON.stringify(upstream)} is not host:port` };
    const host = m[1]!.replace(/^\[|\]$/g, "");
    const port = Number(m[2]);
    const state = this.store.current();
    const ns = this.workload.namespace;
    const svc =
      state.serviceByVip(this.workload.network, host) ??
      [host, `${host}.${ns}.svc.cluster.local`, `${host}.svc.cluster.local`, `${host}.cluster.local`].map((h) => state.servicesByHostname(h)[0]).find((s) => s !== undefined);
    if (!svc) return { failure: `no mesh service ${host}` };
    const ep = this.balancer.pick(serviceEndpoints(state, svc, port));
    if (!ep || !pool) return { failure: `no healthy endpoint for ${svc.hostname}:${port}` };
    return { svc, ep, pool };
  }

  /**
   * A plugin's gRPC stream (proxy_grpc_stream): an HTTP/2 request to a mesh service, by HBONE as
   * the waypoint's identity, whose body is written as the plugin sends and whose answer is
   * reported as it arrives. At most 1 MiB waits to be sent.
   */
  private readonly streamCall: MeshStreamCall = (upstream, headers, events) => {
    const target = this.calloutTarget(upstream, this.h2Pool);
    if ("failure" in target) {
      queueMicrotask(() => events.error(target.failure));
      return { write() {}, end() {}, cancel() {} };
    }
    const { svc, ep, pool } = target;
    const body = new StreamedBody(1024 * 1024);
    const call = pool.request(ep, calloutHead(headers, svc), body);
    call.response.then(
      (r) => {
        events.headers([[":status", String(r.status)], ...r.headers]);
        r.body.start({ data: (c) => events.data(c), end: (t) => events.end(t), error: (e) => events.error(asMeshError(e).message) });
      },
      (e: unknown) => events.error(asMeshError(e).message),
    );
    return {
      write: (chunk, end) => {
        if (!body.write(chunk)) return;
        if (end) body.end();
      },
      end: () => body.end(),
      cancel: () => call.cancel(new MeshError(ErrorCodes.DOWNSTREAM_CLOSED, "the plugin cancelled its gRPC stream")),
    };
  };

  private tunnelContext(): TunnelContext {
    if (this.tunnels) return this.tunnels;
    const env = this.opts.env;
    const limits: L7Limits = {
      ...DEFAULT_L7_LIMITS,
      headerTimeoutMs: env.httpHeaderTimeoutMs,
      idleTimeoutMs: env.httpIdleTimeoutMs,
      maxHeaderBytes: env.httpMaxHeaderBytes,
      maxHeaderCount: env.httpMaxHeaders,
      ...(this.opts.limits ?? {}),
    };
    const dialer = new MeshDialer({
      pool: this.pool,
      self: () => this.workload,
      selfIp: this.selfIp,
      identity: () => this.tlsIdentity(),
      connectTimeoutMs: 10_000,
      destinationRule: (host) => this.destinationRules.get(host),
    });
    const h1 = (this.h1Pool = new H1UpstreamPool(dialer));
    const h2 = (this.h2Pool = new H2UpstreamPool(dialer));
    const pipeline = (this.pipeline = new RequestPipeline({
      state: () => this.store.current(),
      self: () => this.workload,
      routes: () => this.routeTable,
      policies: () => this.policies.engine,
      gateways: () => this.gateways(),
      balancer: this.balancer,
      upstream: { request: (protocol, ep, head, body) => (protocol === "h2" ? h2.request(ep, head, body) : h1.request(ep, head, body)) },
      metrics: this.metrics,
      log: this.opts.log,
      accessLog: this.opts.accessLog,
      hooks: () => this.opts.plugins,
    }));
    const open = this.openTunnels;
    this.tunnels = {
      state: () => this.store.current(),
      self: () => this.workload,
      policies: () => this.policies.engine,
      gateways: () => this.gateways(),
      balancer: this.balancer,
      dialer,
      limits,
      guard: DEFAULT_H2_GUARD,
      metrics: this.metrics,
      log: this.opts.log,
      accessLog: this.opts.accessLog,
      open,
      onRequest: (origin, req, res) => void pipeline.handle(origin, req, res),
      serveH1: (stream, prefix, origin) => {
        const conn = serveH1(stream, prefix, { limits, log: this.opts.log, onRequest: (req, res) => void pipeline.handle(origin, req, res) });
        void conn.closed.then(() => open.delete(conn));
        return conn;
      },
    };
    return this.tunnels;
  }

  readiness(): { ready: boolean; pending: string[] } {
    const pending: string[] = [];
    if (!this.listener) pending.push("hbone listener");
    if (this.draining) pending.push("draining");
    return { ready: pending.length === 0, pending };
  }

  configDump(): unknown {
    return {
      version: WAYPOINT_VERSION,
      role: "waypoint",
      workload: { uid: this.opts.workloadUid, identity: this.workload?.identity, address: this.workload ? this.selfIp : undefined },
      config: { configPath: this.opts.configPath, caDir: this.opts.caDir, routeFiles: this.routeFileList, policyFiles: this.opts.policyFiles ?? [] },
      routes: this.routeTable.routes.map((r) => ({ key: r.key, source: r.source, parentRefs: r.parentRefs })),
      destinationRules: [...this.destinationRules.values()].map((r) => ({ key: r.key, host: r.host, tls: r.tls ? { sni: r.tls.sni, customCa: r.tls.caPem !== undefined } : undefined, source: r.source })),
      policies: this.policies.engine.policies.map((p) => ({ key: p.key, action: p.action, source: p.source })),
      certificates: this.certs?.snapshot() ?? [],
      pool: this.pool ? { connections: this.pool.connectionCount, streams: this.pool.streamCount } : undefined,
      upstream: { http1IdleConnections: this.h1Pool?.idleCount ?? 0, http2Sessions: this.h2Pool?.sessionCount ?? 0, ejectedEndpoints: this.balancer.ejectedCount },
      tunnels: this.openTunnels.size,
      plugins: this.opts.plugins?.describe() ?? [],
    };
  }

  /** Graceful drain: GOAWAY inbound sessions, let open tunnels finish until the deadline, then close. */
  drain(): Promise<number> {
    if (this.drainPromise) return this.drainPromise;
    this.draining = true;
    this.drainPromise = drainRole({
      deadlineMs: this.opts.env.drainDeadlineMs,
      log: this.opts.log,
      fields: { tunnels: this.openTunnels.size },
      stopAccepting: () => {
        this.listener?.drain();
        // Keep-alive connections finish the request in flight and close; HTTP/2 sessions GOAWAY.
        for (const t of this.openTunnels) t.close?.();
      },
      remaining: () => this.openTunnels.size,
      shutdown: () => this.shutdownNow(),
      ...(this.opts.onExit ? { onExit: this.opts.onExit } : {}),
    });
    return this.drainPromise;
  }

  async shutdownNow(): Promise<void> {
    this.draining = true;
    this.unsubscribe?.();
    for (const t of [...this.openTunnels]) t.destroy();
    this.listener?.destroy();
    this.listener = undefined;
    await this.opts.plugins?.stop();
    this.h1Pool?.destroy();
    this.h2Pool?.destroy();
    this.pool?.destroy();
    this.source?.stop();
    for (const f of this.watched) f.stop();
    this.certs?.stop();
    await this.admin?.stop();
    this.admin = undefined;
  }
}

/** The upstream head of a plugin's callout: its pseudo-headers as the request line, the rest as headers. */
function calloutHead(headers: readonly (readonly [string, string])[], svc: Service): UpstreamHead {
  const get = (n: string) => headers.find(([k]) => k === n)?.[1];
  const rest = headers.filter(([k]) => !k.startsWith(":")).map(([k, v]) => [k, v] as [string, string]);
  return { method: get(":method") ?? "GET", path: get(":path") ?? "/", authority: get(":authority") ?? svc.hostname, scheme: "http", headers: rest };
}
