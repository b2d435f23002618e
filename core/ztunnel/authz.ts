// Authorization at ztunnel: the policy engine over the current state, applied to inbound
// connections, and re-applied to open connections whenever policies change (closing those that
// are no longer allowed, as ztunnel's PolicyWatcher does).
import type { MeshState, Workload } from "../config/index.ts";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { PolicySet, type CompiledPolicy, type Decision, type L4Attributes } from "../policy/index.ts";
import type { Logger } from "../telemetry/index.ts";

export class Authorizer {
  private readonly set: PolicySet;

  constructor(
    private readonly log: Logger,
    rootNamespace = "istio-system",
  ) {
    this.set = new PolicySet(log, rootNamespace);
  }

  /** Rebuilds the engine when the state's policies changed; returns true if they did. */
  update(state: MeshState): boolean {
    return this.set.setLocal(state.policies.values());
  }

  /** Replaces one `--policies` file's documents; throws CONFIG_INVALID and keeps the last good set. */
  setFile(path: string, policies: readonly CompiledPolicy[]): void {
    this.set.setFile(path, policies);
  }

  evaluate(workload: Workload, attrs: L4Attributes): Decision {
    const d = this.set.engine.evaluate(workload, attrs, "l4");
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
    return this.set.engine.describeFor(workload);
  }
}
