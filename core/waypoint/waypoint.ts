// The waypoint role: one replica of an L7 proxy that runs as its own mesh workload. It loads the
// config and the CA, takes the identity and address of its workload (`--workload UID`), serves
// HBONE on `<its IP>:15008`, follows config, route and policy file changes and certificate
// rotation, and drains on request — the same lifecycle as ztunnel, for one workload.
import { FileConfigSource, StateStore, WatchedFile, type MeshState, type RuntimeEnv, type Workload } from "../config/index.ts";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { HboneListener, HbonePool, hboneTuningFrom, type HboneTuning, type PeerVerifier } from "../hbone/index.ts";
import { CertificateManager, loadLocalCa, meshPeerVerifier, svidTlsMaterial, type LocalCa } from "../identity/index.ts";
import { createAdminApp, createMetricsApp, createReadinessApp, startAdminServers, type AdminServers } from "../admin/index.ts";
import { PolicySet, parseAuthorizationPolicies } from "../policy/index.ts";
import { RouteTable, parseHttpRoutes, type HttpRoute } from "../routes/index.ts";
import { MeshMetrics, type Logger } from "../telemetry/index.ts";
import type { TlsIdentity, TunnelDuplex } from "../net/index.ts";
import { waitForDrain } from "../drain/index.ts";
import { HBONE_PORT, WaypointProxy } from "./proxy.ts";

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
  private routeTable = new RouteTable([]);
  private workload!: Workload;
  private readonly openTunnels = new Set<TunnelDuplex>();
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
      this.source = new FileConfigSource(this.opts.configPath, this.store, configLog);
      this.source.start();
      this.workload = this.ownWorkload(this.store.current());
      this.applyState(this.store.current());
      for (const path of this.opts.routeFiles ?? []) {
        const file = new WatchedFile(
          path,
          (text, p) => parseHttpRoutes(text, p),
          (routes, initial) => {
            this.routeFiles.set(path, routes);
            this.routeTable = new RouteTable([...this.routeFiles.values()].flat());
            if (!initial) log.info("routes reloaded", { file: path, routes: routes.length });
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
      const svid = await this.certs.ensure(this.workload.identity);
      const ip = this.selfIp;
      this.listener = await HboneListener.start({
        hostname: ip,
        port: this.opts.hbonePort ?? HBONE_PORT,
        identity: svidTlsMaterial(svid),
        tuning: this.tuning,
        verifier: this.verifier,
        log: configLog,
        onTunnel: (t) => this.proxy.onTunnel(t),
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
        metrics: createMetricsApp({ metrics: this.metrics }),
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

  private proxyInstance: WaypointProxy | undefined;
  private get proxy(): WaypointProxy {
    this.proxyInstance ??= new WaypointProxy({
      state: () => this.store.current(),
      self: () => this.workload,
      selfIp: this.selfIp,
      identity: () => this.tlsIdentity(),
      routes: () => this.routeTable,
      policies: () => this.policies.engine,
      gateways: () => this.gateways(),
      pool: this.pool,
      metrics: this.metrics,
      log: this.opts.log,
      accessLog: this.opts.accessLog,
      clusterDomain: this.opts.clusterDomain ?? "cluster.local",
      openTunnels: this.openTunnels,
    });
    return this.proxyInstance;
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
      config: { configPath: this.opts.configPath, caDir: this.opts.caDir, routeFiles: this.opts.routeFiles ?? [], policyFiles: this.opts.policyFiles ?? [] },
      routes: this.routeTable.routes.map((r) => ({ key: r.key, source: r.source, parentRefs: r.parentRefs })),
      policies: this.policies.engine.policies.map((p) => ({ key: p.key, action: p.action, source: p.source })),
      certificates: this.certs?.snapshot() ?? [],
      pool: this.pool ? { connections: this.pool.connectionCount, streams: this.pool.streamCount } : undefined,
      tunnels: this.openTunnels.size,
    };
  }

  /** Graceful drain: GOAWAY inbound sessions, let open tunnels finish until the deadline, then close. */
  drain(): Promise<number> {
    if (this.drainPromise) return this.drainPromise;
    this.drainPromise = (async () => {
      this.draining = true;
      this.opts.log.info("draining", { tunnels: this.openTunnels.size, deadlineMs: this.opts.env.drainDeadlineMs });
      this.listener?.drain();
      const forced = await waitForDrain({ deadlineMs: this.opts.env.drainDeadlineMs, remaining: () => this.openTunnels.size });
      await this.shutdownNow();
      this.opts.log.info("drained", { forced });
      this.opts.onExit?.(0);
      return 0;
    })();
    return this.drainPromise;
  }

  async shutdownNow(): Promise<void> {
    this.draining = true;
    this.unsubscribe?.();
    for (const t of [...this.openTunnels]) t.destroy();
    this.listener?.destroy();
    this.listener = undefined;
    this.pool?.destroy();
    this.source?.stop();
    for (const f of this.watched) f.stop();
    this.certs?.stop();
    await this.admin?.stop();
    this.admin = undefined;
  }
}
