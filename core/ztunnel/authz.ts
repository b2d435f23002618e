// Authorization at ztunnel: the policy engine over the current state, applied to inbound
// connections, and re-applied to open connections whenever policies change (closing those that
// are no longer allowed, as ztunnel's PolicyWatcher does).
import type { MeshState, Workload } from "../config/index.ts";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { PolicyEngine, fromLocalConfig, type CompiledPolicy, type Decision, type L4Attributes } from "../policy/index.ts";
import type { Logger } from "../telemetry/index.ts";

export class Authorizer {
  private engine: PolicyEngine;
  private localKeys = "";
  private local: CompiledPolicy[] = [];
  /** Kubernetes AuthorizationPolicy documents by file (`--policies`) */
  private readonly files = new Map<string, readonly CompiledPolicy[]>();

  constructor(
    private readonly log: Logger,
    private readonly rootNamespace = "istio-system",
  ) {
    this.engine = new PolicyEngine([], { rootNamespace });
  }

  /** Rebuilds the engine when the state's policies changed; returns true if they did. */
  update(state: MeshState): boolean {
    const keys = [...state.policies.values()].map((p) => `${p.key}:${JSON.stringify(p)}`).join("\n");
    if (keys === this.localKeys) return false;
    const compiled: CompiledPolicy[] = [];
    for (const p of state.policies.values()) {
      const c = fromLocalConfig(p);
      for (const w of c.warnings) this.log.warn("authorization policy warning", { policy: c.key, warning: w });
      compiled.push(c);
    }
    if (!this.rebuild(compiled, this.files)) return false;
    this.local = compiled;
    this.localKeys = keys;
    return true;
  }

  /**
   * Replaces the policies loaded from one Kubernetes YAML file. Throws CONFIG_INVALID (and keeps
   * the previous set) when they cannot be combined with the rest, e.g. a duplicate policy key.
   */
  setFile(path: string, policies: readonly CompiledPolicy[]): void {
    for (const p of policies) for (const w of p.warnings) this.log.warn("authorization policy warning", { policy: p.key, source: p.source, warning: w });
    const files = new Map(this.files);
    files.set(path, policies);
    const err = this.tryBuild(this.local, files);
    if (err) throw new MeshError(ErrorCodes.CONFIG_INVALID, `${path}: ${err}`);
    this.files.set(path, policies);
  }

  /** The engine over every source, or an error message; the engine in force is unchanged on error. */
  private tryBuild(local: readonly CompiledPolicy[], files: ReadonlyMap<string, readonly CompiledPolicy[]>): string | undefined {
    try {
      const all = [...local];
      for (const list of files.values()) all.push(...list);
      this.engine = new PolicyEngine(all, {
        rootNamespace: this.rootNamespace,
        onWarning: (msg) => this.log.warn("authorization policy warning", { warning: msg }),
      });
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }

  private rebuild(local: readonly CompiledPolicy[], files: ReadonlyMap<string, readonly CompiledPolicy[]>): boolean {
    const err = this.tryBuild(local, files);
    if (err) {
      // Fail closed would deny everything; instead the last good policy set stays in force.
      this.log.error("authorization policies rejected; keeping the last good set", { error: err });
      return false;
    }
    return true;
  }

  evaluate(workload: Workload, attrs: L4Attributes): Decision {
    const d = this.engine.evaluate(workload, attrs, "l4");
    for (const a of d.audits) this.log.info("authorization audit", { policy: a.policy, rule: a.ruleIndex, workload: workload.name, "src.ip": attrs.sourceIp, "src.identity": attrs.sourcePrincipal });
    for (const w of d.warnings) this.log.debug("authorization warning", { warning: w });
    return d;
  }

  /** Throws AUTHZ_DENIED naming the deciding policy when the connection is not allowed. */
  authorize(workload: Workload, attrs: L4Attributes): Decision {
    const d = this.evaluate(workload, attrs);
    if (!d.allowed) {
      throw new MeshError(ErrorCodes.AUTHZ_DENIED, `connection denied: ${d.reason}`, {
        details: [d.policy ? `policy=${d.policy}` : "policy=-", `rule=${d.ruleIndex ?? "-"}`],
      });
    }
    this.log.debug("authorization allowed", { workload: workload.name, reason: d.reason, policy: d.policy });
    return d;
  }

  describeFor(workload: Workload): unknown {
    return this.engine.describeFor(workload);
  }
}
