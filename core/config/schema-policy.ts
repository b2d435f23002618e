// A policy entry of the local config: ztunnel's `Authorization` serde struct (src/rbac.rs).
// Unlike ztunnel we also reject unknown keys inside a match: a misspelt `principal` would
// otherwise be dropped and silently widen what the policy matches.

import type { AuthorizationPolicy, CidrMatch, PolicyMatch, ServiceAccountMatch, StringMatch } from "./model.ts";
import { parseCidr } from "./addresses.ts";
import { Fields, Issues, describe, opt, readBool, readEnum, readList, readPort, readString } from "./schema-read.ts";
import { isMatchKind, type YNode } from "./yaml-tree.ts";

export const POLICY_KEYS = ["name", "namespace", "scope", "action", "dryRun", "rules"] as const;

export const MATCH_KEYS = [
  "namespaces",
  "notNamespaces",
  "serviceAccounts",
  "notServiceAccounts",
  "principals",
  "notPrincipals",
  "sourceIps",
  "notSourceIps",
  "destinationIps",
  "notDestinationIps",
  "destinationPorts",
  "notDestinationPorts",
] as const;

const STRING_MATCH_FORMS = "a string match (!Exact v, !Prefix v, !Suffix v, !Presence [] or {Exact: v})";

function readMatchBody(kind: string, body: YNode, path: string, issues: Issues): StringMatch | undefined {
  if (!isMatchKind(kind)) {
    issues.error(path, `expected ${STRING_MATCH_FORMS}, got unknown match kind ${JSON.stringify(kind)}`);
    return undefined;
  }
  if (kind === "Presence") {
    const empty =
      (body.kind === "seq" && body.items.length === 0) ||
      (body.kind === "scalar" && (body.value === null || body.value === ""));
    if (!empty) {
      issues.error(path, `expected !Presence [] (no value), got !Presence ${describe(body)}`);
      return undefined;
    }
    return Object.freeze({ kind });
  }
  if (body.kind !== "scalar" || body.value === null) {
    issues.error(path, `expected !${kind} followed by a string, got !${kind} ${describe(body)}`);
    return undefined;
  }
  const value = typeof body.value === "string" ? body.value : body.source;
  return Object.freeze({ kind, value });
}

export function readStringMatch(n: YNode, path: string, issues: Issues): StringMatch | undefined {
  if (n.kind === "tagged") return readMatchBody(n.tag, n.value, path, issues);
  if (n.kind === "map" && n.entries.length === 1) {
    const e = n.entries[0]!;
    if (e.key !== undefined) return readMatchBody(e.key, e.value, path, issues);
  }
  issues.error(path, `expected ${STRING_MATCH_FORMS}, got ${describe(n)}`);
  return undefined;
}

const SA_KEYS = ["namespace", "serviceAccount"] as const;

function readServiceAccountMatch(n: YNode, path: string, issues: Issues): ServiceAccountMatch | undefined {
  const f = Fields.read(n, path, SA_KEYS, issues, "a service account match {namespace, serviceAccount}");
  if (!f) return undefined;
  const nn = f.required("namespace", issues, "a namespace name");
  const sn = f.required("serviceAccount", issues, "a service account name");
  const namespace = nn ? readString(nn, f.at("namespace"), issues) : undefined;
  const serviceAccount = sn ? readString(sn, f.at("serviceAccount"), issues) : undefined;
  if (namespace === undefined || serviceAccount === undefined) return undefined;
  return Object.freeze({ namespace, serviceAccount });
}

function readCidrMatch(n: YNode, path: string, issues: Issues): CidrMatch | undefined {
  const s = readString(n, path, issues, `a CIDR like "10.0.0.0/8"`);
  if (s === undefined) return undefined;
  const c = parseCidr(s);
  if (!c) {
    issues.error(path, `expected a CIDR like "10.0.0.0/8", got ${JSON.stringify(s)}`);
    return undefined;
  }
  return Object.freeze({ ip: c.ip, prefixLength: c.prefixLength });
}

function readPolicyMatch(n: YNode, path: string, issues: Issues): PolicyMatch | undefined {
  const f = Fields.read(n, path, MATCH_KEYS, issues, "a match (a map of match fields)");
  if (!f) return undefined;
  const before = issues.errors.length;
  const strings = (k: string) =>
    Object.freeze(
      opt<StringMatch[]>(f, k, [], (v, p) =>
        readList(v, p, issues, "string matches", (item, ip) => readStringMatch(item, ip, issues)),
      ),
    );
  const sas = (k: string) =>
    Object.freeze(
      opt<ServiceAccountMatch[]>(f, k, [], (v, p) =>
        readList(v, p, issues, "service account matches", (item, ip) => readServiceAccountMatch(item, ip, issues)),
      ),
    );
  const cidrs = (k: string) =>
    Object.freeze(
      opt<CidrMatch[]>(f, k, [], (v, p) => readList(v, p, issues, "CIDRs", (item, ip) => readCidrMatch(item, ip, issues))),
    );
  const ports = (k: string) =>
    Object.freeze(
      opt<number[]>(f, k, [], (v, p) => readList(v, p, issues, "port numbers", (item, ip) => readPort(item, ip, issues))),
    );
  const m: PolicyMatch = Object.freeze({
    namespaces: strings("namespaces"),
    notNamespaces: strings("notNamespaces"),
    principals: strings("principals"),
    notPrincipals: strings("notPrincipals"),
    serviceAccounts: sas("serviceAccounts"),
    notServiceAccounts: sas("notServiceAccounts"),
    sourceIps: cidrs("sourceIps"),
    notSourceIps: cidrs("notSourceIps"),
    destinationIps: cidrs("destinationIps"),
    notDestinationIps: cidrs("notDestinationIps"),
    destinationPorts: ports("destinationPorts"),
    notDestinationPorts: ports("notDestinationPorts"),
  });
  for (const key of ["principals", "notPrincipals"] as const) {
    m[key].forEach((sm, i) => {
      if (sm.kind !== "Presence" && sm.value.startsWith("spiffe://")) {
        issues.warn(
          `${f.at(key)}[${i}]`,
          `principals are compared without the "spiffe://" prefix; ${JSON.stringify(sm.value)} can never match`,
        );
      }
    });
  }
  return issues.errors.length > before ? undefined : m;
}

export function readPolicy(n: YNode, path: string, issues: Issues): AuthorizationPolicy | undefined {
  const f = Fields.read(n, path, POLICY_KEYS, issues, "a policy (a map)");
  if (!f) return undefined;
  const before = issues.errors.length;
  const nameNode = f.required("name", issues, "a policy name");
  const name = nameNode ? readString(nameNode, f.at("name"), issues, "a policy name") : undefined;
  if (name !== undefined && (name === "" || name.includes("/"))) {
    issues.error(f.at("name"), `expected a policy name (non-empty, no "/"), got ${JSON.stringify(name)}`);
  }
  // Global policies may sit in the "" namespace (that is where istiod's xDS puts them).
  const nsNode = f.required("namespace", issues, "a namespace name");
  const namespace = nsNode ? readString(nsNode, f.at("namespace"), issues, "a namespace name") : undefined;
  if (namespace !== undefined && namespace.includes("/")) {
    issues.error(f.at("namespace"), `expected a namespace name (no "/"), got ${JSON.stringify(namespace)}`);
  }
  const scopeNode = f.required("scope", issues, "one of Global, Namespace, WorkloadSelector");
  const scope = scopeNode
    ? readEnum(scopeNode, f.at("scope"), issues, ["Global", "Namespace", "WorkloadSelector"] as const)
    : undefined;
  const actionNode = f.required("action", issues, "one of Allow, Deny");
  const action = actionNode ? readEnum(actionNode, f.at("action"), issues, ["Allow", "Deny"] as const) : undefined;
  // ztunnel's own examples omit dryRun, so it defaults to false here.
  const dryRun = opt(f, "dryRun", false, (v, p) => readBool(v, p, issues));
  const rulesNode = f.required("rules", issues, "a list of rules (each a list of clauses, each a list of matches)");
  const rules = rulesNode
    ? readList(rulesNode, f.at("rules"), issues, "rules (each a list of clauses)", (rule, rp) => {
        const clauses = readList(rule, rp, issues, "clauses (each a list of matches)", (clause, cp) => {
          const matches = readList(clause, cp, issues, "matches", (m, mp) => readPolicyMatch(m, mp, issues));
          return matches ? Object.freeze(matches) : undefined;
        });
        return clauses ? Object.freeze(clauses) : undefined;
      })
    : undefined;
  if (
    issues.errors.length > before ||
    name === undefined ||
    namespace === undefined ||
    scope === undefined ||
    action === undefined ||
    rules === undefined
  ) {
    return undefined;
  }
  return Object.freeze({ name, namespace, key: `${namespace}/${name}`, scope, action, dryRun, rules: Object.freeze(rules) });
}
