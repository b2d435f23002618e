// The ztunnel role: loads config and the CA, issues certificates for the workloads on this node,
// serves their listeners, follows config changes and certificate rotation, and drains on request.
import { FileConfigSource, StateStore, WatchedFile, type MeshState, type RuntimeEnv, type Workload } from "../config/index.ts";
import { ErrorCodes, MeshError, asMeshError } from "../errors/index.ts";
import { HbonePool, hboneTuningFrom, type HboneTuning, type PeerVerifier } from "../hbone/index.ts";
import { CertificateManager, loadLocalCa, meshPeerVerifier, svidTlsMaterial, type LocalCa, type Svid } from "../identity/index.ts";
import { createAdminApp, createMetricsApp, createReadinessApp, startAdminServers, type AdminServers } from "../admin/index.ts";
import { parseAuthorizationPolicies } from "../policy/index.ts";
import { MeshMetrics, type Logger } from "../telemetry/index.ts";
import type { TlsIdentity } from "../net/index.ts";
import type { TrackedConnection, ZtunnelContext } from "./context.ts";
import { drainRole } from "../drain/index.ts";
import { Authorizer } from "./authz.ts";
import { startHeapHygiene } from "./heap.ts";
import { ILLEGAL_PORTS } from "./route.ts";
import { WorkloadProxy, type WorkloadPorts } from "./workload-proxy.ts";
import { InpodManager, type InpodProxy } from "./inpod/index.ts";

export const VERSION = "0.1.0";

export interface ZtunnelOptions {
  readonly node: string;
  readonly configPath: string;
  readonly caDir: string;
  readonly env: RuntimeEnv;
  readonly adminPort: number;
  readonly metricsPort: number;
  readonly readinessPort: number;
  /** metrics and readiness bind here (admin is always loopback) */
  readonly publicHost?: string;
  readonly log: Logger;
  readonly accessLog: Logger;
  /** overrides for tests: per-workload listener ports */
  readonly workloadPorts?: WorkloadPorts;
  readonly clusterDomain?: string;
  /** Kubernetes AuthorizationPolicy YAML files (`--policies`), watched like the config */
  readonly policyFiles?: readonly string[];
  /** called after drain completes (the CLI exits) */
  readonly onExit?: (code: number) => void;
  /** captured mode: serve local workloads in their pods' namespaces, handed over on this unix socket */
  readonly podSocket?: string;
  /** captured mode: where served pods are persisted (default `<podSocket>.pods.json`) */
  readonly podStatePath?: string;
  /** the node's resolver configuration for the DNS proxy (default /etc/resolv.conf) */
  readonly resolvConfPath?: string;
}

export class Ztunnel {
  private readonly store = new StateStore();
  private source!: FileConfigSource;
  private ca!: LocalCa;
  private certs!: CertificateManager;
  private pool!: HbonePool;
  private admin: AdminServers | undefined;
  private readonly proxies = new Map<string, WorkloadProxy | InpodProxy>();
  private inpod: InpodManager | undefined;
  private readonly connections = new Set<TrackedConnection>();
  private readonly metrics = new MeshMetrics({ component: "ztunnel", version: VERSION });
  private authorizer!: Authorizer;
  private readonly tuning: HboneTuning;
  private draining = false;
  private configLoaded = false;
  private reconciling: Promise<void> = Promise.resolve();
  private readonly pendingCerts = new Set<string>();
  private drainPromise: Promise<number> | undefined;
  private unsubscribe: (() => void) | undefined;
  private stopHeapHygiene: (() => void) | undefined;
  private readonly policyFiles: { stop(): void }[] = [];
  private ownPortSet: ReadonlySet<number> = ILLEGAL_PORTS;

  constructor(private readonly opts: ZtunnelOptions) {
    this.tuning = hboneTuningFrom(opts.env);
  }

  get log(): Logger {
    return this.opts.log;
  }

  /** Start everything; throws a MeshError (bad config, CA, port in use) with nothing left running. */
  async start(): Promise<void> {
    try {
      this.ca = await loadLocalCa(this.opts.caDir);
      this.certs = new CertificateManager(this.ca, {
        lifetimeMs: this.opts.env.certLifetimeMs,
        log: (level, msg, fields) => this.opts.log[level](msg, fields),
      });
      this.verifier = meshPeerVerifier(this.certs, () => this.ca.trustDomain);
      this.certs.onRotate((identity, svid) => this.onCertRotated(identity, svid));
      this.authorizer = new Authorizer(this.opts.log);
      this.pool = new HbonePool({ tuning: this.tuning, verifier: this.verifier, log: (l, m, f) => this.opts.log[l](m, f) });
      this.source = new FileConfigSource(this.opts.configPath, this.store, (level, msg, fields) => this.opts.log[level](msg, fields));
      await this.source.start();
      this.authorizer.update(this.store.current());
      for (const path of this.opts.policyFiles ?? []) {
        const file = new WatchedFile(
          path,
          (text, p) => parseAuthorizationPolicies(text, p),
          (policies, initial) => {
            this.authorizer.setFile(path, policies);
            if (!initial) {
              this.opts.log.info("authorization policies reloaded", { file: path, policies: policies.length });
              this.recheckConnections(this.store.current());
            }
          },
          (level, msg, fields) => this.opts.log[level](msg, fields),
          { kind: "policy file" },
        );
        file.start();
        this.policyFiles.push(file);
      }
      this.configLoaded = true;
      const publicHost = this.opts.publicHost ?? "0.0.0.0";
      this.admin = await startAdminServers({
        adminAddress: { hostname: "127.0.0.1", port: this.opts.adminPort },
        metricsAddress: { hostname: publicHost, port: this.opts.metricsPort },
        readinessAddress: { hostname: publicHost, port: this.opts.readinessPort },
        admin: createAdminApp({
          configDump: () => this.configDump(),
          quit: () => void this.drain(),
        }),
        metrics: createMetricsApp({ metrics: this.metrics }),
        readiness: createReadinessApp({ readiness: () => this.readiness() }),
      });
      this.refreshOwnPorts();
      this.stopHeapHygiene = startHeapHygiene();
      if (this.opts.podSocket) this.inpod = await InpodManager.start(this.inpodOptions(this.opts.podSocket));
      await this.reconcile(this.store.current());
      this.unsubscribe = this.store.subscribe((next) => {
        this.reconciling = this.reconciling.then(() => this.reconcile(next)).catch((e) => this.opts.log.error("applying config change failed", { error: asMeshError(e).message }));
      });
    } catch (e) {
      await this.shutdownNow();
      throw e;
    }
  }

  get ports(): { admin: number; metrics: number; readiness: number } {
    return {
      admin: this.admin?.admin.port ?? 0,
      metrics: this.admin?.metrics.port ?? 0,
      readiness: this.admin?.readiness.port ?? 0,
    };
  }

  /** Pooled HBONE connections, for tests and config_dump. */
  get poolStats(): { connections: number; streams: number; handshakes: number } {
    return { connections: this.pool.connectionCount, streams: this.pool.streamCount, handshakes: this.pool.handshakes };
  }

  private verifier!: PeerVerifier;

  private context(): ZtunnelContext {
    return {
      node: this.opts.node,
      clusterDomain: this.opts.clusterDomain ?? "cluster.local",
      state: () => this.store.current(),
      tlsIdentityOf: (w) => this.tlsIdentityOf(w),
      pool: this.pool,
      verifier: this.verifier,
      tuning: this.tuning,
      metrics: this.metrics,
      log: this.opts.log,
      accessLog: this.opts.accessLog,
      connections: this.connections,
      authorizer: this.authorizer,
      upstreamConnectTimeoutMs: 10_000,
      ownPorts: () => this.ownPortSet,
      draining: () => this.draining,
    };
  }

  private tlsIdentityOf(w: Workload): TlsIdentity {
    const svid = this.certs.get(w.identity);
    if (!svid) throw new MeshError(ErrorCodes.CERT_UNAVAILABLE, `no certificate issued yet for ${w.identity}`);
    return svidTlsMaterial(svid);
  }

  private localWorkloads(state: MeshState): Workload[] {
    // Captured mode serves only the local workloads whose pods were handed over.
    const served = (w: Workload) => !this.opts.podSocket || (this.inpod?.has(w.uid) ?? false);
    return [...state.workloads.values()].filter((w) => w.node === this.opts.node && served(w));
  }

  private inpodOptions(socketPath: string): Parameters<typeof InpodManager.start>[0] {
    return {
      socketPath,
      ...(this.opts.podStatePath ? { statePath: this.opts.podStatePath } : {}),
      ...(this.opts.resolvConfPath ? { resolvConfPath: this.opts.resolvConfPath } : {}),
      node: this.opts.node,
      log: this.opts.log,
      state: () => this.store.current(),
      served: (uid) => this.proxies.has(uid),
      // After any reconcile in progress; never rejects (failures are logged and show as not served).
      reconcile: () => {
        this.reconciling = this.reconciling.then(() => this.reconcile(this.store.current())).catch((e) => this.opts.log.error("applying a pod change failed", { error: asMeshError(e).message }));
        return this.reconciling;
      },
    };
  }

  /** Bring listeners in line with the state: start new workloads, stop removed ones. */
  private async reconcile(state: MeshState): Promise<void> {
    if (this.draining) return;
    this.authorizer.update(state);
    this.recheckConnections(state);
    const ctx = this.context();
    const wanted = new Map(this.localWorkloads(state).map((w) => [w.uid, w]));
    for (const uid of this.pendingCerts) if (!wanted.has(uid)) this.pendingCerts.delete(uid);
    for (const [uid, proxy] of this.proxies) {
      const next = wanted.get(uid);
      if (next && proxy.compatibleWith(next)) {
        proxy.workload = next;
        continue;
      }
      this.proxies.delete(uid);
      this.retire(proxy);
    }
    for (const w of wanted.values()) {
      if (this.proxies.has(w.uid)) continue;
      this.pendingCerts.add(w.uid);
      try {
        await this.certs.ensure(w.identity);
        this.pendingCerts.delete(w.uid);
        const proxy = this.inpod ? await this.inpod.startProxy(ctx, w) : await WorkloadProxy.start(ctx, w, this.opts.workloadPorts);
        this.proxies.set(w.uid, proxy);
        this.opts.log.info("serving workload", { workload: w.name, namespace: w.namespace, identity: w.identity, addresses: w.workloadIps });
      } catch (e) {
        const err = asMeshError(e);
        this.opts.log.error("cannot serve workload", { workload: w.name, code: err.code, error: err.message });
        if (err.code === ErrorCodes.ADDRESS_IN_USE && !this.configLoaded) throw err;
        if (err.code === ErrorCodes.ADDRESS_IN_USE && this.proxies.size === 0 && wanted.size === 1) throw err;
        // Listeners that failed for another reason leave readiness pending.
        this.pendingCerts.add(w.uid);
        if (this.isInitial) throw err;
      }
    }
    this.isInitial = false;
    this.refreshOwnPorts();
    // certificates of workloads no longer here
    const identities = new Set([...wanted.values()].map((w) => w.identity));
    for (const snap of this.certs.snapshot()) if (!identities.has(snap.identity)) this.certs.forget(snap.identity);
  }

  private isInitial = true;

  /** After a config change: close inbound connections the policies in force no longer allow. */
  private recheckConnections(state: MeshState): void {
    for (const c of this.connections) {
      if (!c.authz) continue;
      const w = state.workloads.get(c.authz.workloadUid);
      if (!w) continue; // a removed workload drains on its own deadline
      const d = this.authorizer.evaluate(w, c.authz.attrs);
      if (d.allowed) continue;
      this.opts.log.info("connection closed because it is no longer allowed after a policy update", {
        workload: w.name,
        "src.addr": c.authz.attrs.sourceIp,
        "src.identity": c.authz.attrs.sourcePrincipal,
        policy: d.policy,
        reason: d.reason,
      });
      c.abort(`no longer allowed: ${d.reason}`, "DENY");
    }
  }

  private refreshOwnPorts(): void {
    const ports = new Set<number>(ILLEGAL_PORTS);
    if (this.opts.workloadPorts) {
      ports.add(this.opts.workloadPorts.hbone);
      ports.add(this.opts.workloadPorts.socks5);
    }
    for (const p of [this.admin?.admin.port, this.admin?.metrics.port, this.admin?.readiness.port]) if (p) ports.add(p);
    for (const proxy of this.proxies.values()) {
      const l = proxy.listeners;
      for (const x of [...l.hbone, ...l.socks5]) ports.add(x.port);
    }
    ports.delete(0);
    this.ownPortSet = ports;
  }

  /** A workload that left: stop accepting now, let its open connections finish within the deadline. */
  private retire(proxy: WorkloadProxy | InpodProxy): void {
    proxy.drain();
    const uid = proxy.workload.uid;
    const timer = setTimeout(() => {
      for (const c of this.connections) if (c.workloadUid === uid) c.abort("workload removed");
      proxy.close();
    }, this.opts.env.drainDeadlineMs);
    timer.unref?.();
    this.opts.log.info("workload removed; its listeners are closed", { workload: proxy.workload.name });
  }

  private onCertRotated(identity: string, svid: Svid): void {
    for (const p of this.proxies.values()) {
      if (p.workload.identity === identity) p.setIdentity(svidTlsMaterial(svid));
    }
    this.opts.log.info("certificate rotated", { identity, serial: svid.serial, notAfter: svid.notAfter.toISOString() });
  }

  readiness(): { ready: boolean; pending: string[] } {
    const pending: string[] = [];
    if (!this.configLoaded) pending.push("state manager");
    if (this.draining) pending.push("draining");
    for (const uid of this.pendingCerts) pending.push(`workload ${uid}`);
    if (this.configLoaded) {
      for (const w of this.localWorkloads(this.store.current())) {
        if (!this.proxies.has(w.uid) && !this.pendingCerts.has(w.uid)) pending.push(`workload ${w.uid}`);
      }
    }
    return { ready: pending.length === 0, pending };
  }

  configDump(): unknown {
    const state = this.store.current();
    return {
      version: VERSION,
      node: this.opts.node,
      config: {
        configPath: this.opts.configPath,
        caDir: this.opts.caDir,
        trustDomain: this.ca?.trustDomain,
        drainDeadlineMs: this.opts.env.drainDeadlineMs,
        hbone: this.tuning,
      },
      workloads: [...state.workloads.values()].map(serializable),
      services: [...state.services.values()].map(serializable),
      policies: [...state.policies.values()].map(serializable),
      localWorkloads: [...this.proxies.values()].map((p) => ({
        uid: p.workload.uid,
        identity: p.workload.identity,
        listeners: p.listeners,
        policies: this.authorizer.describeFor(p.workload),
      })),
      certificates: this.certs?.snapshot() ?? [],
      pool: this.pool ? this.poolStats : undefined,
      connections: this.connections.size,
      ...(this.inpod ? { pods: this.inpod.describe() } : {}),
    };
  }

  /**
   * Graceful drain: stop accepting, GOAWAY every HBONE session, let connections finish until the
   * deadline, then close the rest. Resolves with the exit code (0).
   */
  drain(): Promise<number> {
    if (this.drainPromise) return this.drainPromise;
    this.draining = true;
    this.unsubscribe?.();
    this.drainPromise = drainRole({
      deadlineMs: this.opts.env.drainDeadlineMs,
      log: this.opts.log,
      fields: { connections: this.connections.size },
      stopAccepting: () => {
        for (const p of this.proxies.values()) p.drain();
        this.pool?.drain();
      },
      remaining: () => this.connections.size,
      onDeadline: (forced) => {
        this.opts.log.warn("drain deadline passed; closing remaining connections", { connections: forced });
        for (const c of [...this.connections]) c.abort("drain deadline");
      },
      shutdown: () => this.shutdownNow(),
      ...(this.opts.onExit ? { onExit: this.opts.onExit } : {}),
    });
    return this.drainPromise;
  }

  /** Close everything immediately (second SIGTERM, failed start). */
  async shutdownNow(): Promise<void> {
    this.draining = true;
    this.unsubscribe?.();
    this.stopHeapHygiene?.();
    this.inpod?.stop();
    for (const c of [...this.connections]) c.abort("shutdown");
    for (const p of this.proxies.values()) p.close();
    this.proxies.clear();
    this.pool?.destroy();
    this.source?.stop();
    for (const f of this.policyFiles) f.stop();
    this.certs?.stop();
    await this.admin?.stop();
    this.admin = undefined;
  }
}

/** Maps and other non-JSON values of the state model rendered for config_dump. */
function serializable(v: unknown): unknown {
  if (v instanceof Map) return Object.fromEntries([...v.entries()].map(([k, x]) => [String(k), serializable(x)]));
  if (Array.isArray(v)) return v.map(serializable);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, serializable(x)]));
  return v;
}
