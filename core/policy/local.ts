// ztunnel's `Authorization` (the config model's AuthorizationPolicy, from the local config file
// or, later, xDS) -> CompiledPolicy. Pure L4, already validated by core/config.

import type { AuthorizationPolicy, CidrMatch, PolicyMatch } from "../config/index.ts";
import type { CompiledPolicy, ConditionValue, PolicyCondition, PolicyMatchSpec, PolicyRule } from "./model.ts";
import { makeCondition } from "./values.ts";

function cidrs(list: readonly CidrMatch[]): ConditionValue[] {
  return list.map((c) => ({ kind: "Cidr", cidr: `${c.ip}/${c.prefixLength}` }));
}

function convertMatch(m: PolicyMatch): PolicyMatchSpec {
  const conds: PolicyCondition[] = [];
  const add = (
    attr: PolicyCondition["attribute"],
    field: string,
    values: readonly ConditionValue[],
    notValues: readonly ConditionValue[],
  ) => {
    if (values.length > 0 || notValues.length > 0) conds.push(makeCondition(attr, field, values, notValues, false));
  };
  add("source.namespace", "namespaces", m.namespaces, m.notNamespaces);
  add("source.principal", "principals", m.principals, m.notPrincipals);
  const sa = (l: PolicyMatch["serviceAccounts"]): ConditionValue[] =>
    l.map((s) => ({ kind: "ServiceAccount", namespace: s.namespace, serviceAccount: s.serviceAccount }));
  add("source.serviceAccount", "serviceAccounts", sa(m.serviceAccounts), sa(m.notServiceAccounts));
  add("source.ip", "sourceIps", cidrs(m.sourceIps), cidrs(m.notSourceIps));
  add("destination.ip", "destinationIps", cidrs(m.destinationIps), cidrs(m.notDestinationIps));
  const ports = (l: readonly number[]): ConditionValue[] => l.map((port) => ({ kind: "Port", port }));
  add("destination.port", "destinationPorts", ports(m.destinationPorts), ports(m.notDestinationPorts));
  return Object.freeze(conds);
}

/**
 * Converts with ztunnel's exact semantics (src/rbac.rs): an all-empty match inside a clause is
 * skipped, so a clause made only of empty matches never matches and neither does its rule.
 */
export function fromLocalConfig(p: AuthorizationPolicy, source = "local config"): CompiledPolicy {
  const label = `${source}: policy ${p.key}`;
  const warnings: string[] = [];
  const rules: PolicyRule[] = p.rules.map((rule, ri) => {
    let never: string | undefined;
    const clauses = rule.map((clause, ci) => {
      const matches = clause.map(convertMatch).filter((m) => m.length > 0);
      if (clause.length > 0 && matches.length === 0 && never === undefined) {
        never = `clause ${ci} has only empty matches, which ztunnel skips: the rule never matches`;
        warnings.push(`${label}: rules[${ri}]: ${never}`);
      }
      return Object.freeze(matches);
    });
    return Object.freeze({ clauses: Object.freeze(clauses), l7Fields: Object.freeze([]), ...(never ? { never } : {}) });
  });
  return Object.freeze({
    name: p.name,
    namespace: p.namespace,
    key: p.key,
    origin: "ztunnel",
    scope: p.scope,
    action: p.action === "Allow" ? "ALLOW" : "DENY",
    dryRun: p.dryRun,
    targetRefs: Object.freeze([]),
    rules: Object.freeze(rules),
    source: label,
    warnings: Object.freeze(warnings),
  } satisfies CompiledPolicy);
}
