// The decision, in Istio's order: a matching enforced DENY denies; no enforced ALLOW applicable
// allows; otherwise a matching ALLOW allows and nothing else does. AUDIT and dry-run policies are
// evaluated and reported, never enforced. Stricter than ztunnel where it fails open: a referenced
// policy that is not loaded denies everything for that workload.
//
// An engine is immutable (a policy change builds a new one). The applicable policies of a workload
// are resolved once into flat per-layer rule lists and cached, so a decision is a walk over the
// few compiled predicates that concern the workload.

import type { Workload } from "../config/index.ts";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { compileRule, EvalContext, type CompiledRule, type Test } from "./compile.ts";
import type {
  ApplicablePolicies,
  AuditRecord,
  CompiledPolicy,
  ConditionValue,
  Decision,
  L4Attributes,
  PolicyLayer,
  PolicyTarget,
  RequestAttributes,
} from "./model.ts";
import { stringMatchText } from "./values.ts";

export interface PolicyEngineOptions {
  /** Istio's root namespace: its selector-less Kubernetes policies are mesh-wide. */
  readonly rootNamespace?: string;
  /** Told once per policy warning at construction, and once per workload that references a missing policy. */
  readonly onWarning?: (message: string) => void;
}

interface RuleRef {
  readonly policy: CompiledPolicy;
  readonly ruleIndex: number;
  readonly test: Test;
  /** Decisions with no audits, built on first use. */
  decision?: Decision;
}

interface Plan {
  readonly deny: readonly RuleRef[];
  readonly allow: readonly RuleRef[];
  readonly report: readonly RuleRef[];
  readonly hasAllow: boolean;
  readonly warnings: readonly string[];
  readonly noAllow: Decision;
  readonly noneMatched: Decision;
  readonly missing: Decision | undefined;
}

interface Entry {
  workload: Workload;
  readonly applicable: ApplicablePolicies;
  readonly refWarnings: readonly string[];
  readonly l4: Plan;
  l7?: Plan;
  l7Targets?: Map<string, Plan>;
}

const EMPTY: readonly never[] = Object.freeze([]);
const MAX_CACHED_WORKLOADS = 65536;
/** Cluster-scoped target kinds: matched by name, policy must sit in the root namespace. */
const CLUSTER_SCOPED = new Set(["GatewayClass"]);

function labelsMatch(selector: ReadonlyMap<string, string>, labels: ReadonlyMap<string, string>): boolean {
  for (const [k, v] of selector) if (labels.get(k) !== v) return false;
  return true;
}

function sameSelection(a: Workload, b: Workload): boolean {
  if (a.namespace !== b.namespace || a.authorizationPolicies.length !== b.authorizationPolicies.length) return false;
  for (let i = 0; i < a.authorizationPolicies.length; i++) {
    if (a.authorizationPolicies[i] !== b.authorizationPolicies[i]) return false;
  }
  if (a.labels.size !== b.labels.size) return false;
  for (const [k, v] of a.labels) if (b.labels.get(k) !== v) return false;
  return true;
}

function decision(
  allowed: boolean,
  reason: string,
  warnings: readonly string[],
  audits: readonly AuditRecord[],
  policy?: string,
  ruleIndex?: number,
): Decision {
  return Object.freeze({
    allowed,
    reason,
    ...(policy !== undefined ? { policy } : {}),
    ...(ruleIndex !== undefined ? { ruleIndex } : {}),
    audits,
    warnings,
  });
}

function valueText(v: ConditionValue): string | number {
  switch (v.kind) {
    case "Cidr":
      return v.cidr;
    case "Port":
      return v.port;
    case "ServiceAccount":
      return `${v.namespace}/${v.serviceAccount}`;
    case "PathTemplate":
      return v.template;
    default:
      return stringMatchText(v);
  }
}

function targetKey(kind: string, namespace: string, name: string): string {
  return CLUSTER_SCOPED.has(kind) ? `${kind}//${name}` : `${kind}/${namespace}/${name}`;
}

export class PolicyEngine {
  readonly rootNamespace: string;
  private readonly all: readonly CompiledPolicy[];
  private readonly byKey = new Map<string, CompiledPolicy>();
  private readonly global: CompiledPolicy[] = [];
  private readonly byNamespace = new Map<string, CompiledPolicy[]>();
  private readonly rootSelectors: CompiledPolicy[] = [];
  private readonly selectorsByNamespace = new Map<string, CompiledPolicy[]>();
  private readonly byTarget = new Map<string, CompiledPolicy[]>();
  private readonly compiled = new Map<CompiledPolicy, readonly CompiledRule[]>();
  private readonly entries = new Map<string, Entry>();
  private readonly ctx = new EvalContext();
  private readonly onWarning: ((message: string) => void) | undefined;

  constructor(policies: readonly CompiledPolicy[], options: PolicyEngineOptions = {}) {
    this.rootNamespace = options.rootNamespace ?? "istio-system";
    this.onWarning = options.onWarning;
    this.all = Object.freeze([...policies]);
    const duplicates: string[] = [];
    for (const p of policies) {
      const prev = this.byKey.get(p.key);
      if (prev) {
        duplicates.push(`policy ${p.key} is defined twice: ${prev.source} and ${p.source}`);
        continue;
      }
      this.byKey.set(p.key, p);
      this.compiled.set(
        p,
        p.rules.map((r) => compileRule(r, p.action)),
      );
      for (const w of p.warnings) this.onWarning?.(w);
      if (p.targetRefs.length > 0) {
        for (const t of p.targetRefs) {
          if (CLUSTER_SCOPED.has(t.kind) && p.namespace !== this.rootNamespace) continue;
          push(this.byTarget, targetKey(t.kind, t.namespace, t.name), p);
        }
        continue;
      }
      const root = p.origin === "kubernetes" && p.namespace === this.rootNamespace;
      if (p.scope === "Global" || (root && p.scope === "Namespace")) this.global.push(p);
      else if (p.scope === "Namespace") push(this.byNamespace, p.namespace, p);
      else if (p.matchLabels) {
        if (root) this.rootSelectors.push(p);
        else push(this.selectorsByNamespace, p.namespace, p);
      }
      // WorkloadSelector without labels (ztunnel shape): applies only where a workload names it.
    }
    if (duplicates.length > 0) {
      throw new MeshError(ErrorCodes.CONFIG_INVALID, "duplicate authorization policies", { details: duplicates });
    }
  }

  /** Every loaded policy, in load order. */
  get policies(): readonly CompiledPolicy[] {
    return this.all;
  }

  /** The policies ztunnel applies to a workload, and the referenced keys that are not loaded. */
  applicable(workload: Workload): ApplicablePolicies {
    return this.entry(workload).applicable;
  }

  /**
   * Decides one connection (layer "l4", what ztunnel enforces: HTTP attributes dropped or ignored
   * as Istio does) or one request (layer "l7", every attribute; `targets` adds the waypoint
   * policies attached to those Gateways/Services).
   */
  evaluate(workload: Workload, attrs: L4Attributes, layer?: "l4", targets?: readonly PolicyTarget[]): Decision;
  evaluate(workload: Workload, attrs: RequestAttributes, layer: "l7", targets?: readonly PolicyTarget[]): Decision;
  evaluate(workload: Workload, attrs: L4Attributes | RequestAttributes, layer?: PolicyLayer, targets?: readonly PolicyTarget[]): Decision;
  evaluate(
    workload: Workload,
    attrs: L4Attributes | RequestAttributes,
    layer: PolicyLayer = "l4",
    targets?: readonly PolicyTarget[],
  ): Decision {
    const entry = this.entry(workload);
    const plan = layer === "l4" && (!targets || targets.length === 0) ? entry.l4 : this.targetPlan(entry, targets, layer);
    const ctx = this.ctx;
    if (!ctx.setL4(attrs)) {
      return decision(false, `source ${attrs.sourceIp} or destination ${attrs.destinationIp} is not an IP address`, plan.warnings, EMPTY);
    }
    if (layer === "l7") {
      if (typeof (attrs as Partial<RequestAttributes>).method !== "string") {
        return decision(false, "layer l7 needs request attributes (method, path, host, headers)", plan.warnings, EMPTY);
      }
      ctx.setRequest(attrs as RequestAttributes);
    }
    let audits: AuditRecord[] | undefined;
    const report = plan.report;
    let last: CompiledPolicy | undefined;
    for (let i = 0; i < report.length; i++) {
      const r = report[i]!;
      if (r.policy === last || !r.test(ctx)) continue;
      last = r.policy;
      (audits ??= []).push(
        Object.freeze({ policy: r.policy.key, ruleIndex: r.ruleIndex, action: r.policy.action, dryRun: r.policy.dryRun }),
      );
    }
    if (plan.missing) return audits ? Object.freeze({ ...plan.missing, audits }) : plan.missing;
    const deny = plan.deny;
    for (let i = 0; i < deny.length; i++) {
      const r = deny[i]!;
      if (r.test(ctx)) return this.ruleDecision(r, false, plan, audits);
    }
    if (!plan.hasAllow) return audits ? Object.freeze({ ...plan.noAllow, audits }) : plan.noAllow;
    const allow = plan.allow;
    for (let i = 0; i < allow.length; i++) {
      const r = allow[i]!;
      if (r.test(ctx)) return this.ruleDecision(r, true, plan, audits);
    }
    return audits ? Object.freeze({ ...plan.noneMatched, audits }) : plan.noneMatched;
  }

  /** JSON-able description of the policies in force for a workload (admin /config_dump). */
  describeFor(workload: Workload): Record<string, unknown>[] {
    const entry = this.entry(workload);
    const out: Record<string, unknown>[] = entry.applicable.missing.map((key) => ({
      key,
      status: "missing",
      effect: "every connection to this workload is denied",
    }));
    for (const p of entry.applicable.policies) {
      out.push({
        key: p.key,
        status: "loaded",
        source: p.source,
        origin: p.origin,
        scope: this.effectiveScope(p),
        action: p.action,
        dryRun: p.dryRun,
        enforced: !p.dryRun && p.action !== "AUDIT",
        ...(p.matchLabels ? { matchLabels: Object.fromEntries(p.matchLabels) } : {}),
        rules: p.rules.map((r) => ({
          ...(r.never ? { never: r.never } : {}),
          atZtunnel:
            r.never !== undefined
              ? "never matches"
              : r.l7Fields.length === 0
                ? "enforced"
                : p.action === "DENY"
                  ? `enforced without HTTP attributes (${r.l7Fields.join(", ")})`
                  : `dropped: uses HTTP attributes (${r.l7Fields.join(", ")})`,
          clauses: r.clauses.map((ms) =>
            ms.map((m) =>
              m.map((c) => ({
                attribute: c.attribute,
                field: c.field,
                ...(c.values.length ? { values: c.values.map(valueText) } : {}),
                ...(c.notValues.length ? { notValues: c.notValues.map(valueText) } : {}),
              })),
            ),
          ),
        })),
        warnings: p.warnings,
      });
    }
    return out;
  }

  // ---- internals ----------------------------------------------------------------------------

  private effectiveScope(p: CompiledPolicy): string {
    if (p.origin === "kubernetes" && p.namespace === this.rootNamespace) {
      return p.scope === "Namespace" ? "Global" : "WorkloadSelector (mesh-wide)";
    }
    return p.scope;
  }

  private ruleDecision(r: RuleRef, allowed: boolean, plan: Plan, audits: AuditRecord[] | undefined): Decision {
    const reason = allowed
      ? `allowed by ${r.policy.key} rule ${r.ruleIndex}`
      : `explicitly denied by ${r.policy.key} rule ${r.ruleIndex}`;
    if (audits) return decision(allowed, reason, plan.warnings, Object.freeze(audits), r.policy.key, r.ruleIndex);
    return (r.decision ??= decision(allowed, reason, plan.warnings, EMPTY, r.policy.key, r.ruleIndex));
  }

  private entry(workload: Workload): Entry {
    const cached = this.entries.get(workload.uid);
    if (cached) {
      if (cached.workload === workload) return cached;
      if (sameSelection(cached.workload, workload)) {
        cached.workload = workload;
        return cached;
      }
    }
    if (this.entries.size >= MAX_CACHED_WORKLOADS) this.entries.clear();
    const e = this.buildEntry(workload);
    this.entries.set(workload.uid, e);
    return e;
  }

  private buildEntry(workload: Workload): Entry {
    const seen = new Set<CompiledPolicy>();
    const policies: CompiledPolicy[] = [];
    const add = (p: CompiledPolicy) => {
      if (!seen.has(p)) {
        seen.add(p);
        policies.push(p);
      }
    };
    this.global.forEach(add);
    this.byNamespace.get(workload.namespace)?.forEach(add);
    for (const p of this.rootSelectors) if (labelsMatch(p.matchLabels!, workload.labels)) add(p);
    for (const p of this.selectorsByNamespace.get(workload.namespace) ?? []) {
      if (labelsMatch(p.matchLabels!, workload.labels)) add(p);
    }
    const missing: string[] = [];
    const refWarnings: string[] = [];
    for (const key of workload.authorizationPolicies) {
      const p = this.byKey.get(key);
      if (!p) {
        if (!missing.includes(key)) missing.push(key);
      } else if (p.targetRefs.length > 0) {
        refWarnings.push(`workload ${workload.uid} references ${key}, a waypoint policy (targetRefs): not applied at ztunnel`);
      } else {
        add(p);
      }
    }
    for (const key of missing) {
      const msg = `workload ${workload.uid} references authorization policy ${key}, which is not loaded: denying all traffic to it`;
      refWarnings.push(msg);
      this.onWarning?.(msg);
    }
    const applicable = Object.freeze({ policies: Object.freeze(policies), missing: Object.freeze(missing) });
    return {
      workload,
      applicable,
      refWarnings: Object.freeze(refWarnings),
      l4: this.buildPlan(policies, missing, refWarnings, "l4"),
    };
  }

  /**
   * The plan for a workload plus the waypoint policies attached to `targets`. Layer "l4" there is
   * TCP through a waypoint: HTTP attributes are dropped or fail closed exactly as at ztunnel.
   */
  private targetPlan(entry: Entry, targets: readonly PolicyTarget[] | undefined, layer: PolicyLayer): Plan {
    if (!targets || targets.length === 0) {
      return (entry.l7 ??= this.buildPlan(entry.applicable.policies, entry.applicable.missing, entry.refWarnings, "l7"));
    }
    const key = `${layer}|${targets.map((t) => targetKey(t.kind, t.namespace, t.name)).join("|")}`;
    const plans = (entry.l7Targets ??= new Map());
    let plan = plans.get(key);
    if (!plan) {
      const policies = [...entry.applicable.policies];
      for (const t of targets) {
        for (const p of this.byTarget.get(targetKey(t.kind, t.namespace, t.name)) ?? []) {
          if (!policies.includes(p)) policies.push(p);
        }
      }
      plan = this.buildPlan(policies, entry.applicable.missing, entry.refWarnings, layer);
      plans.set(key, plan);
    }
    return plan;
  }

  private buildPlan(
    policies: readonly CompiledPolicy[],
    missing: readonly string[],
    refWarnings: readonly string[],
    layer: PolicyLayer,
  ): Plan {
    const deny: RuleRef[] = [];
    const allow: RuleRef[] = [];
    const report: RuleRef[] = [];
    const warnings: string[] = [...refWarnings];
    let hasAllow = false;
    for (const p of policies) {
      const enforced = !p.dryRun && p.action !== "AUDIT";
      if (enforced && p.action === "ALLOW") hasAllow = true;
      const rules = this.compiled.get(p)!;
      rules.forEach((r, ruleIndex) => {
        const test = layer === "l4" ? r.l4 : r.full;
        const spec = p.rules[ruleIndex]!;
        if (layer === "l4" && spec.l7Fields.length > 0 && spec.never === undefined) {
          warnings.push(
            test
              ? `${p.key} rule ${ruleIndex} is enforced without its HTTP attributes (${spec.l7Fields.join(", ")}); use a waypoint`
              : `${p.key} rule ${ruleIndex} uses HTTP attributes (${spec.l7Fields.join(", ")}) and is dropped at ztunnel; use a waypoint`,
          );
        }
        if (!test) return;
        const ref: RuleRef = { policy: p, ruleIndex, test };
        if (!enforced) report.push(ref);
        else if (p.action === "DENY") deny.push(ref);
        else allow.push(ref);
      });
    }
    const w = Object.freeze(warnings);
    return {
      deny,
      allow,
      report,
      hasAllow,
      warnings: w,
      noAllow: decision(true, "no ALLOW policy applies", w, EMPTY),
      noneMatched: decision(false, "ALLOW policies apply, but none allowed", w, EMPTY),
      missing:
        missing.length > 0
          ? decision(false, `referenced authorization polic${missing.length === 1 ? "y" : "ies"} not loaded: ${missing.join(", ")}`, w, EMPTY, missing[0])
          : undefined,
    };
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}
