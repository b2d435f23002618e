// The rules of a Kubernetes AuthorizationPolicy (from/source, to/operation, when) -> the engine's
// rule model, validated as Istio does (pkg/config/validation, pkg/config/security).

import { checkKeys, fieldPath, readList, readMap, readStrings, type DocProblems, type Obj } from "../config/index.ts";
import { compileCidr } from "./ip.ts";
import type { ConditionValue, PolicyCondition, PolicyMatchSpec, PolicyRule } from "./model.ts";
import {
  containsPathTemplate,
  istioStringMatch,
  makeCondition,
  parsePortText,
  pathTemplateProblem,
  resolveWhenKey,
  serviceAccountProblem,
} from "./values.ts";

const RULE_KEYS = ["from", "to", "when"];
const SOURCE_KEYS = [
  "principals",
  "notPrincipals",
  "requestPrincipals",
  "notRequestPrincipals",
  "namespaces",
  "notNamespaces",
  "serviceAccounts",
  "notServiceAccounts",
  "ipBlocks",
  "notIpBlocks",
  "remoteIpBlocks",
  "notRemoteIpBlocks",
];
const OPERATION_KEYS = ["hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"];
const CONDITION_KEYS = ["key", "values", "notValues"];
/** CRD limit (maxItems) on from; Istio's limit on serviceAccounts. */
const MAX_FROM = 512;
const MAX_SERVICE_ACCOUNTS = 16;

function readCidrs(values: readonly string[] | undefined, path: string, p: DocProblems): ConditionValue[] {
  const out: ConditionValue[] = [];
  values?.forEach((v, i) => {
    const c = compileCidr(v);
    if (!c) p.error(`${path}[${i}]`, `expected an IP or CIDR, got ${JSON.stringify(v)}`);
    else out.push({ kind: "Cidr", cidr: c.text });
  });
  return out;
}

function readPorts(values: readonly string[] | undefined, path: string, p: DocProblems): ConditionValue[] {
  const out: ConditionValue[] = [];
  values?.forEach((v, i) => {
    const port = parsePortText(v);
    if (port === undefined) p.error(`${path}[${i}]`, `expected a port number in 0..65535, got ${JSON.stringify(v)}`);
    else out.push({ kind: "Port", port });
  });
  return out;
}

function readServiceAccounts(
  values: readonly string[] | undefined,
  path: string,
  policyNamespace: string,
  p: DocProblems,
): ConditionValue[] {
  const out: ConditionValue[] = [];
  if (values && values.length > MAX_SERVICE_ACCOUNTS) {
    p.error(path, `at most ${MAX_SERVICE_ACCOUNTS} service accounts are allowed, got ${values.length}`);
  }
  values?.forEach((v, i) => {
    const problem = serviceAccountProblem(v);
    if (problem) {
      p.error(`${path}[${i}]`, problem);
      return;
    }
    const slash = v.indexOf("/");
    out.push(
      slash < 0
        ? { kind: "ServiceAccount", namespace: policyNamespace, serviceAccount: v }
        : { kind: "ServiceAccount", namespace: v.slice(0, slash), serviceAccount: v.slice(slash + 1) },
    );
  });
  return out;
}

function stringMatches(values: readonly string[] | undefined): ConditionValue[] {
  return (values ?? []).map(istioStringMatch);
}

function warnSpiffe(values: readonly string[] | undefined, path: string, p: DocProblems): void {
  values?.forEach((v, i) => {
    if (v.startsWith("spiffe://")) {
      p.warn(`${path}[${i}]`, `principals are written without "spiffe://"; ${JSON.stringify(v)} can never match`);
    }
  });
}

function readPaths(values: readonly string[] | undefined, path: string, p: DocProblems): ConditionValue[] {
  const out: ConditionValue[] = [];
  values?.forEach((v, i) => {
    if (containsPathTemplate(v) || v.includes("{") || v.includes("}")) {
      const problem = pathTemplateProblem(v);
      if (problem) p.error(`${path}[${i}]`, problem);
      else out.push({ kind: "PathTemplate", template: v });
    } else {
      out.push(istioStringMatch(v));
    }
  });
  return out;
}

/** Reads one list of a source or operation field, reporting problems under `path`. */
type ReadValues = (values: readonly string[] | undefined, path: string) => ConditionValue[];

/** The conditions of one source or operation, from its field -> strings map (`raw`). */
class MatchConditions {
  private readonly conds: PolicyCondition[] = [];
  constructor(
    private readonly raw: Record<string, string[] | undefined>,
    private readonly path: string,
    private readonly l7: Set<string>,
  ) {}

  readonly nonEmpty = (k: string): boolean => (this.raw[k]?.length ?? 0) > 0;

  /** `field` and its `notField` as one condition on `attr`; a set L7 field is recorded in `l7`. */
  add(attr: PolicyCondition["attribute"], field: string, read: ReadValues, isL7: boolean): void {
    const notField = `not${field[0]!.toUpperCase()}${field.slice(1)}`;
    const values = read(this.raw[field], fieldPath(this.path, field));
    const notValues = read(this.raw[notField], fieldPath(this.path, notField));
    if (values.length === 0 && notValues.length === 0) return;
    if (isL7) {
      for (const f of [field, notField]) if (this.nonEmpty(f)) this.l7.add(f);
    }
    this.conds.push(makeCondition(attr, field, values, notValues, isL7));
  }

  spec(): PolicyMatchSpec {
    return Object.freeze(this.conds);
  }
}

function readSource(src: Obj, path: string, policyNamespace: string, p: DocProblems, l7: Set<string>): PolicyMatchSpec {
  checkKeys(src, path, SOURCE_KEYS, p);
  const s = (k: string) => readStrings(src[k], fieldPath(path, k), p);
  const raw = Object.fromEntries(SOURCE_KEYS.map((k) => [k, s(k)])) as Record<string, string[] | undefined>;
  const m = new MatchConditions(raw, path, l7);
  if (!SOURCE_KEYS.some(m.nonEmpty)) p.error(path, "a source must set at least one field");
  if (
    (m.nonEmpty("serviceAccounts") || m.nonEmpty("notServiceAccounts")) &&
    ["principals", "notPrincipals", "namespaces", "notNamespaces"].some(m.nonEmpty)
  ) {
    p.error(path, "serviceAccounts/notServiceAccounts cannot be set together with principals or namespaces");
  }
  warnSpiffe(raw["principals"], fieldPath(path, "principals"), p);
  warnSpiffe(raw["notPrincipals"], fieldPath(path, "notPrincipals"), p);
  const cidrs: ReadValues = (v, at) => readCidrs(v, at, p);
  m.add("source.principal", "principals", stringMatches, false);
  m.add("source.namespace", "namespaces", stringMatches, false);
  m.add("source.serviceAccount", "serviceAccounts", (v, at) => readServiceAccounts(v, at, policyNamespace, p), false);
  m.add("source.ip", "ipBlocks", cidrs, false);
  m.add("remote.ip", "remoteIpBlocks", cidrs, true);
  m.add("request.auth.principal", "requestPrincipals", stringMatches, true);
  return m.spec();
}

function readOperation(op: Obj, path: string, p: DocProblems, l7: Set<string>): PolicyMatchSpec {
  checkKeys(op, path, OPERATION_KEYS, p);
  const raw = Object.fromEntries(
    OPERATION_KEYS.map((k) => [k, readStrings(op[k], fieldPath(path, k), p, k === "ports" || k === "notPorts")]),
  ) as Record<string, string[] | undefined>;
  const m = new MatchConditions(raw, path, l7);
  if (!OPERATION_KEYS.some(m.nonEmpty)) p.error(path, "an operation must set at least one field");
  m.add("destination.port", "ports", (v, at) => readPorts(v, at, p), false);
  // Hosts compare case-insensitively: keep the patterns lower-case.
  m.add("request.host", "hosts", (v) => stringMatches(v?.map((h) => h.toLowerCase())), true);
  m.add("request.method", "methods", stringMatches, true);
  m.add("request.path", "paths", (v, at) => readPaths(v, at, p), true);
  return m.spec();
}

function readCondition(c: Obj, path: string, policyNamespace: string, p: DocProblems, l7: Set<string>): PolicyCondition | undefined {
  checkKeys(c, path, CONDITION_KEYS, p);
  const key = c["key"];
  if (typeof key !== "string" || key === "") {
    p.error(fieldPath(path, "key"), `expected a condition key (e.g. source.ip, request.headers[x-user]), got ${p.describe(key)}`);
    return undefined;
  }
  const values = readStrings(c["values"], fieldPath(path, "values"), p, true) ?? [];
  const notValues = readStrings(c["notValues"], fieldPath(path, "notValues"), p, true) ?? [];
  if (values.length === 0 && notValues.length === 0) {
    p.error(path, `at least one of values or notValues must be set for key ${key}`);
    return undefined;
  }
  const resolved = resolveWhenKey(key);
  if (typeof resolved === "string") {
    p.error(fieldPath(path, "key"), resolved);
    return undefined;
  }
  const convert = (list: readonly string[], listPath: string): ConditionValue[] => {
    switch (resolved.valueKind) {
      case "cidr":
        return readCidrs(list, listPath, p);
      case "port":
        return readPorts(list, listPath, p);
      case "serviceAccount":
        // A bare `sa` in a condition means the policy's namespace, as in a source.
        return readServiceAccounts(list, listPath, policyNamespace, p);
      case "string":
        return stringMatches(list);
    }
  };
  const vs = convert(values, fieldPath(path, "values"));
  const nvs = convert(notValues, fieldPath(path, "notValues"));
  if (resolved.l7) l7.add(key);
  return makeCondition(resolved.attribute, `when[${key}]`, vs, nvs, resolved.l7);
}


export function readRule(r: unknown, path: string, policyNamespace: string, p: DocProblems): PolicyRule | undefined {
  const rule = readMap(r, path, p, "a rule");
  if (!rule) return undefined;
  checkKeys(rule, path, RULE_KEYS, p);
  const l7 = new Set<string>();
  const clauses: PolicyMatchSpec[][] = [];
  const from = readList(rule["from"], fieldPath(path, "from"), p, { what: "sources (- source: {...})", max: MAX_FROM, overMax: "read" });
  if (from) {
    if (from.length === 0 && rule["from"] !== undefined) p.error(fieldPath(path, "from"), "must not be empty (omit it to allow any source)");
    const matches: PolicyMatchSpec[] = [];
    from.forEach((f, i) => {
      const fp = `${fieldPath(path, "from")}[${i}]`;
      const fm = readMap(f, fp, p, "a from entry ({source: {...}})");
      if (!fm) return;
      checkKeys(fm, fp, ["source"], p);
      const src = readMap(fm["source"], fieldPath(fp, "source"), p, "a source");
      if (src) matches.push(readSource(src, fieldPath(fp, "source"), policyNamespace, p, l7));
    });
    if (matches.length > 0) clauses.push(matches);
  }
  const to = readList(rule["to"], fieldPath(path, "to"), p, { what: "operations (- operation: {...})" });
  if (to) {
    if (to.length === 0) p.error(fieldPath(path, "to"), "must not be empty (omit it to allow any operation)");
    const matches: PolicyMatchSpec[] = [];
    to.forEach((t, i) => {
      const tp = `${fieldPath(path, "to")}[${i}]`;
      const tm = readMap(t, tp, p, "a to entry ({operation: {...}})");
      if (!tm) return;
      checkKeys(tm, tp, ["operation"], p);
      const op = readMap(tm["operation"], fieldPath(tp, "operation"), p, "an operation");
      if (op) matches.push(readOperation(op, fieldPath(tp, "operation"), p, l7));
    });
    if (matches.length > 0) clauses.push(matches);
  }
  const when = readList(rule["when"], fieldPath(path, "when"), p, { what: "conditions ({key, values, notValues})" });
  when?.forEach((w, i) => {
    const wp = `${fieldPath(path, "when")}[${i}]`;
    const wm = readMap(w, wp, p, "a condition ({key, values, notValues})");
    if (!wm) return;
    const c = readCondition(wm, wp, policyNamespace, p, l7);
    if (c) clauses.push([Object.freeze([c])]);
  });
  return Object.freeze({ clauses: Object.freeze(clauses.map((c) => Object.freeze(c))), l7Fields: Object.freeze([...l7].sort()) });
}

