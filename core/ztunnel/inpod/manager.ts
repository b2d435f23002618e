// Captured mode's pod hand-off (reference/ztunnel.md §8, our stand-in for istio-cni's ZDS): the
// unix socket `mesh pod add|remove` talks to, the registry of served pods (persisted, re-adopted
// at start when their namespace still exists), and the factory the ztunnel's reconcile uses to
// open a pod's in-namespace proxy. Requests are handled one at a time, each answered only once
// the ztunnel's listeners are in line with it.
import { existsSync } from "node:fs";
import type { MeshState, Workload } from "../../config/index.ts";
import { DnsProxy, readResolvConf } from "../../dns/index.ts";
import { ErrorCodes, MeshError, asMeshError } from "../../errors/index.ts";
import { isLinuxCaptureSupported, serveUnixLines, withNetns, type UnixLineServer } from "../../net/index.ts";
import type { Logger } from "../../telemetry/index.ts";
import type { ZtunnelContext } from "../context.ts";
import { errorResponse, parsePodRequest, type PodRequest, type PodResponse } from "./protocol.ts";
import { InpodProxy } from "./proxy.ts";
import { PodRegistry } from "./registry.ts";

export interface InpodManagerOptions {
  readonly socketPath: string;
  /** where served pods are persisted; default `<socketPath>.pods.json` */
  readonly statePath?: string;
  readonly node: string;
  readonly log: Logger;
  /** the node's resolver configuration, for names the DNS proxy forwards; default /etc/resolv.conf */
  readonly resolvConfPath?: string;
  state(): MeshState;
  /** bring the ztunnel's listeners in line with the registry; resolves when done */
  reconcile(): Promise<void>;
  /** whether the ztunnel currently serves `uid` */
  served(uid: string): boolean;
}

export class InpodManager {
  private readonly registry: PodRegistry;
  private server: UnixLineServer | undefined;
  private readonly dns: DnsProxy;
  /** why the last attempt to serve a pod failed */
  private readonly failures = new Map<string, MeshError>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly opts: InpodManagerOptions) {
    this.registry = new PodRegistry(opts.statePath ?? `${opts.socketPath}.pods.json`);
    const resolv = readResolvConf(opts.resolvConfPath);
    if (resolv.error) opts.log.warn("DNS proxy has no upstream resolvers", { error: resolv.error });
    this.dns = new DnsProxy({
      upstreams: resolv.nameservers,
      log: (level, msg, fields) => opts.log[level](msg, fields),
    });
  }

  /** Loads and re-adopts persisted pods, then listens on the pod socket. Call before the first reconcile. */
  static async start(opts: InpodManagerOptions): Promise<InpodManager> {
    const can = isLinuxCaptureSupported();
    if (!can.ok) throw new MeshError(ErrorCodes.NOT_IMPLEMENTED, `captured mode (--pod-socket) is not available here: ${can.why}`);
    const m = new InpodManager(opts);
    m.adopt();
    m.server = await serveUnixLines(opts.socketPath, (line) => m.onLine(line));
    opts.log.info("pod socket listening", { socket: opts.socketPath, state: m.registry.statePath, pods: m.registry.list().length, dnsUpstreams: m.dns.upstreams });
    return m;
  }

  /** Whether `uid` is registered (the ztunnel serves it in its namespace). */
  has(uid: string): boolean {
    return this.registry.has(uid);
  }

  /** Opens the proxy of a registered pod; records why it failed. */
  async startProxy(ctx: ZtunnelContext, workload: Workload): Promise<InpodProxy> {
    const rec = this.registry.get(workload.uid);
    if (!rec) throw new MeshError(ErrorCodes.POD_UNKNOWN_WORKLOAD, `pod ${workload.uid} is not registered`);
    try {
      const p = await InpodProxy.start(ctx, workload, rec.netns, this.dns);
      this.failures.delete(workload.uid);
      return p;
    } catch (e) {
      this.failures.set(workload.uid, asMeshError(e));
      throw e;
    }
  }

  describe(): { socket: string; state: string; pods: { uid: string; netns: string; addedAt: string; served: boolean }[] } {
    return {
      socket: this.opts.socketPath,
      state: this.registry.statePath,
      pods: this.registry.list().map((p) => ({ ...p, served: this.opts.served(p.uid) })),
    };
  }

  /** Stops listening; the state file stays, so the next start re-adopts the pods. */
  stop(): void {
    this.server?.close();
    this.server = undefined;
  }

  private adopt(): void {
    const { loaded, error } = this.registry.load();
    if (error) this.opts.log.warn("ignoring unreadable pod state", { error });
    const state = this.opts.state();
    let dropped = 0;
    for (const p of loaded) {
      const why = this.netnsProblem(p.netns) ?? this.workloadProblem(state, p.uid);
      if (why) {
        this.opts.log.info("dropping a pod served before restart", { uid: p.uid, netns: p.netns, reason: why.message });
        this.registry.delete(p.uid);
        dropped++;
      } else {
        this.opts.log.info("re-adopting a pod served before restart", { uid: p.uid, netns: p.netns });
      }
    }
    if (dropped > 0 || error) this.registry.save();
  }

  private netnsProblem(path: string): MeshError | undefined {
    if (!existsSync(path)) return new MeshError(ErrorCodes.NETNS_FAILED, `network namespace ${path} does not exist`);
    try {
      // Entering it proves it is a network namespace (setns refuses anything else).
      withNetns(path, () => undefined);
    } catch (e) {
      return asMeshError(e, ErrorCodes.NETNS_FAILED);
    }
    return undefined;
  }

  private workloadProblem(state: MeshState, uid: string): MeshError | undefined {
    const w = state.workloads.get(uid);
    if (!w) return new MeshError(ErrorCodes.POD_UNKNOWN_WORKLOAD, `no workload with uid ${JSON.stringify(uid)} in the mesh config`);
    if (w.node !== this.opts.node) {
      return new MeshError(ErrorCodes.POD_UNKNOWN_WORKLOAD, `workload ${uid} runs on node ${JSON.stringify(w.node)}, not on this ztunnel's node ${JSON.stringify(this.opts.node)}`);
    }
    return undefined;
  }

  private onLine(line: string): Promise<string> {
    const run = async (): Promise<PodResponse> => {
      try {
        return await this.handle(parsePodRequest(line));
      } catch (e) {
        return errorResponse(e);
      }
    };
    const next = this.queue.then(run);
    this.queue = next.catch(() => {});
    return next.then((r) => JSON.stringify(r));
  }

  private async handle(req: PodRequest): Promise<PodResponse> {
    switch (req.op) {
      case "list":
        return { ok: true, pods: this.registry.list().map((p) => ({ uid: p.uid, netns: p.netns, served: this.opts.served(p.uid) })) };
      case "check": {
        const why = this.workloadProblem(this.opts.state(), req.uid);
        if (why) throw why;
        return { ok: true };
      }
      case "add":
        return this.add(req.uid, req.netns);
      case "remove":
        return this.remove(req.uid);
    }
  }

  private async add(uid: string, netns: string): Promise<PodResponse> {
    const bad = this.workloadProblem(this.opts.state(), uid) ?? this.netnsProblem(netns);
    if (bad) throw bad;
    const existing = this.registry.get(uid);
    if (existing && existing.netns === netns && this.opts.served(uid)) return { ok: true, message: `pod ${uid} is already served in ${netns}` };
    if (existing && existing.netns !== netns) {
      // The pod was re-created in a new namespace: retire the old proxy first.
      this.registry.delete(uid);
      await this.opts.reconcile();
    }
    this.failures.delete(uid);
    this.registry.set(uid, netns);
    await this.opts.reconcile();
    if (this.opts.served(uid)) {
      this.opts.log.info("pod added", { uid, netns });
      return { ok: true, message: `serving ${uid} in ${netns}` };
    }
    const failure = this.failures.get(uid);
    this.registry.delete(uid);
    await this.opts.reconcile();
    throw new MeshError(failure?.code ?? ErrorCodes.INTERNAL, `cannot serve pod ${uid} in ${netns}: ${failure?.message ?? "its listeners did not start (see the ztunnel log)"}`);
  }

  private async remove(uid: string): Promise<PodResponse> {
    if (!this.registry.has(uid)) throw new MeshError(ErrorCodes.POD_UNKNOWN_WORKLOAD, `pod ${uid} is not served by this ztunnel`);
    this.registry.delete(uid);
    await this.opts.reconcile();
    this.opts.log.info("pod removed", { uid });
    return { ok: true, message: `no longer serving ${uid}` };
  }
}
