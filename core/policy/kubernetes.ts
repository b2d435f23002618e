// Kubernetes `AuthorizationPolicy` documents (security.istio.io/v1 and v1beta1) -> CompiledPolicy.
// Validation follows Istio's (pkg/config/validation) plus the CRD schema, is stricter where Istio
// is lenient (unknown fields and keys are errors), and reports every problem with its file,
// document and field path before anything is loaded.

import { LineCounter, parseAllDocuments } from "yaml";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { l4Projection } from "./compile.ts";
import { compileCidr } from "./ip.ts";
import type {
  CompiledPolicy,
  ConditionValue,
  PolicyAction,
  PolicyCondition,
  PolicyMatchSpec,
  PolicyRule,
  PolicyTargetRef,
} from "./model.ts";
import {
  containsPathTemplate,
  istioStringMatch,
  makeCondition,
  parsePortText,
  pathTemplateProblem,
  resolveWhenKey,
  serviceAccountProblem,
} from "./values.ts";

export interface KubernetesParseOptions {
  /** Namespace of documents whose metadata has none (what `kubectl apply` would use). */
  readonly defaultNamespace?: string;
}

const API_VERSIONS = ["security.istio.io/v1", "security.istio.io/v1beta1"];
const TOP_KEYS = ["apiVersion", "kind", "metadata", "spec", "status"];
const METADATA_KEYS = [
  "name",
  "namespace",
  "labels",
  "annotations",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "managedFields",
  "finalizers",
  "ownerReferences",
  "generateName",
  "selfLink",
];
const SPEC_KEYS = ["selector", "targetRef", "targetRefs", "action", "provider", "rules"];
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
const TARGET_REF_KEYS = ["group", "kind", "name", "namespace"];
/** Istio's allowed targetRef kinds, by group ("" is the core group). */
const TARGET_KINDS: Readonly<Record<string, string>> = {
  Gateway: "gateway.networking.k8s.io",
  GatewayClass: "gateway.networking.k8s.io",
  Service: "",
  ServiceEntry: "networking.istio.io",
};
const DRY_RUN_ANNOTATION = "istio.io/dry-run";
/** CRD limits (maxItems) on rules and from; Istio's on serviceAccounts. */
const MAX_RULES = 512;
const MAX_FROM = 512;
const MAX_SERVICE_ACCOUNTS = 16;
const MAX_TARGET_REFS = 16;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return "nothing (null)";
  if (Array.isArray(v)) return "a list";
  if (v instanceof Date) return `a timestamp ${v.toISOString()}`;
  if (typeof v === "object") return "a map";
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  return `the ${typeof v} ${String(v)}`;
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** Problems of one document; each line names the file, the document and the field path. */
class DocProblems {
  constructor(
    private label: string,
    private readonly errors: string[],
    private readonly warnings: string[],
  ) {}
  name(name: string): void {
    this.label = `${this.label} (${name})`;
  }
  get source(): string {
    return this.label;
  }
  error(path: string, message: string): void {
    this.errors.push(path === "" ? `${this.label}: ${message}` : `${this.label}: ${path}: ${message}`);
  }
  count(): number {
    return this.errors.length;
  }
  warn(path: string, message: string): void {
    this.warnings.push(path === "" ? `${this.label}: ${message}` : `${this.label}: ${path}: ${message}`);
  }
}

function checkKeys(o: Obj, path: string, allowed: readonly string[], p: DocProblems): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) p.error(join(path, k), `unknown field (expected one of ${allowed.join(", ")})`);
  }
}

function readMap(v: unknown, path: string, p: DocProblems, what: string): Obj | undefined {
  if (isObj(v)) return v;
  p.error(path, `expected ${what} (a map), got ${describe(v)}`);
  return undefined;
}

/** A list of non-empty strings (numbers allowed only where `numbers` says so, e.g. ports). */
function readStrings(v: unknown, path: string, p: DocProblems, numbers = false): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    p.error(path, `expected a list of strings, got ${describe(v)}`);
    return undefined;
  }
  const out: string[] = [];
  v.forEach((item, i) => {
    if (typeof item === "string") {
      if (item === "") p.error(`${path}[${i}]`, "empty value not allowed");
      else out.push(item);
    } else if (numbers && typeof item === "number" && Number.isInteger(item)) {
      out.push(String(item));
    } else {
      p.error(`${path}[${i}]`, `expected a string, got ${describe(item)}${typeof item === "number" || typeof item === "boolean" ? " (quote it)" : ""}`);
    }
  });
  return out;
}

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

interface Pair {
  readonly values: readonly ConditionValue[];
  readonly notValues: readonly ConditionValue[];
}

function present(pair: Pair): boolean {
  return pair.values.length > 0 || pair.notValues.length > 0;
}

function readSource(src: Obj, path: string, policyNamespace: string, p: DocProblems, l7: Set<string>): PolicyMatchSpec {
  checkKeys(src, path, SOURCE_KEYS, p);
  const s = (k: string) => readStrings(src[k], join(path, k), p);
  const raw = Object.fromEntries(SOURCE_KEYS.map((k) => [k, s(k)])) as Record<string, string[] | undefined>;
  const nonEmpty = (k: string) => (raw[k]?.length ?? 0) > 0;
  if (!SOURCE_KEYS.some(nonEmpty)) p.error(path, "a source must set at least one field");
  if (
    (nonEmpty("serviceAccounts") || nonEmpty("notServiceAccounts")) &&
    ["principals", "notPrincipals", "namespaces", "notNamespaces"].some(nonEmpty)
  ) {
    p.error(path, "serviceAccounts/notServiceAccounts cannot be set together with principals or namespaces");
  }
  warnSpiffe(raw["principals"], join(path, "principals"), p);
  warnSpiffe(raw["notPrincipals"], join(path, "notPrincipals"), p);
  const conds: PolicyCondition[] = [];
  const add = (attr: PolicyCondition["attribute"], field: string, pair: Pair, isL7: boolean) => {
    if (!present(pair)) return;
    if (isL7) {
      for (const f of [field, `not${field[0]!.toUpperCase()}${field.slice(1)}`]) if (nonEmpty(f)) l7.add(f);
    }
    conds.push(makeCondition(attr, field, pair.values, pair.notValues, isL7));
  };
  add("source.principal", "principals", { values: stringMatches(raw["principals"]), notValues: stringMatches(raw["notPrincipals"]) }, false);
  add("source.namespace", "namespaces", { values: stringMatches(raw["namespaces"]), notValues: stringMatches(raw["notNamespaces"]) }, false);
  add(
    "source.serviceAccount",
    "serviceAccounts",
    {
      values: readServiceAccounts(raw["serviceAccounts"], join(path, "serviceAccounts"), policyNamespace, p),
      notValues: readServiceAccounts(raw["notServiceAccounts"], join(path, "notServiceAccounts"), policyNamespace, p),
    },
    false,
  );
  add(
    "source.ip",
    "ipBlocks",
    { values: readCidrs(raw["ipBlocks"], join(path, "ipBlocks"), p), notValues: readCidrs(raw["notIpBlocks"], join(path, "notIpBlocks"), p) },
    false,
  );
  add(
    "remote.ip",
    "remoteIpBlocks",
    {
      values: readCidrs(raw["remoteIpBlocks"], join(path, "remoteIpBlocks"), p),
      notValues: readCidrs(raw["notRemoteIpBlocks"], join(path, "notRemoteIpBlocks"), p),
    },
    true,
  );
  add(
    "request.auth.principal",
    "requestPrincipals",
    { values: stringMatches(raw["requestPrincipals"]), notValues: stringMatches(raw["notRequestPrincipals"]) },
    true,
  );
  return Object.freeze(conds);
}

function readOperation(op: Obj, path: string, p: DocProblems, l7: Set<string>): PolicyMatchSpec {
  checkKeys(op, path, OPERATION_KEYS, p);
  const raw = Object.fromEntries(
    OPERATION_KEYS.map((k) => [k, readStrings(op[k], join(path, k), p, k === "ports" || k === "notPorts")]),
  ) as Record<string, string[] | undefined>;
  const nonEmpty = (k: string) => (raw[k]?.length ?? 0) > 0;
  if (!OPERATION_KEYS.some(nonEmpty)) p.error(path, "an operation must set at least one field");
  const conds: PolicyCondition[] = [];
  const add = (attr: PolicyCondition["attribute"], field: string, pair: Pair, isL7: boolean) => {
    if (!present(pair)) return;
    if (isL7) {
      for (const f of [field, `not${field[0]!.toUpperCase()}${field.slice(1)}`]) if (nonEmpty(f)) l7.add(f);
    }
    conds.push(makeCondition(attr, field, pair.values, pair.notValues, isL7));
  };
  add(
    "destination.port",
    "ports",
    { values: readPorts(raw["ports"], join(path, "ports"), p), notValues: readPorts(raw["notPorts"], join(path, "notPorts"), p) },
    false,
  );
  // Hosts compare case-insensitively: keep the patterns lower-case.
  const lowerHosts = (k: string) => stringMatches(raw[k]?.map((h) => h.toLowerCase()));
  add("request.host", "hosts", { values: lowerHosts("hosts"), notValues: lowerHosts("notHosts") }, true);
  add("request.method", "methods", { values: stringMatches(raw["methods"]), notValues: stringMatches(raw["notMethods"]) }, true);
  add(
    "request.path",
    "paths",
    { values: readPaths(raw["paths"], join(path, "paths"), p), notValues: readPaths(raw["notPaths"], join(path, "notPaths"), p) },
    true,
  );
  return Object.freeze(conds);
}

function readCondition(c: Obj, path: string, policyNamespace: string, p: DocProblems, l7: Set<string>): PolicyCondition | undefined {
  checkKeys(c, path, CONDITION_KEYS, p);
  const key = c["key"];
  if (typeof key !== "string" || key === "") {
    p.error(join(path, "key"), `expected a condition key (e.g. source.ip, request.headers[x-user]), got ${describe(key)}`);
    return undefined;
  }
  const values = readStrings(c["values"], join(path, "values"), p, true) ?? [];
  const notValues = readStrings(c["notValues"], join(path, "notValues"), p, true) ?? [];
  if (values.length === 0 && notValues.length === 0) {
    p.error(path, `at least one of values or notValues must be set for key ${key}`);
    return undefined;
  }
  const resolved = resolveWhenKey(key);
  if (typeof resolved === "string") {
    p.error(join(path, "key"), resolved);
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
  const vs = convert(values, join(path, "values"));
  const nvs = convert(notValues, join(path, "notValues"));
  if (resolved.l7) l7.add(key);
  return makeCondition(resolved.attribute, `when[${key}]`, vs, nvs, resolved.l7);
}

function readList(v: unknown, path: string, p: DocProblems, what: string, max?: number): unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    p.error(path, `expected a list of ${what}, got ${describe(v)}`);
    return undefined;
  }
  if (max !== undefined && v.length > max) p.error(path, `at most ${max} ${what} are allowed, got ${v.length}`);
  return v;
}

function readRule(r: unknown, path: string, policyNamespace: string, p: DocProblems): PolicyRule | undefined {
  const rule = readMap(r, path, p, "a rule");
  if (!rule) return undefined;
  checkKeys(rule, path, RULE_KEYS, p);
  const l7 = new Set<string>();
  const clauses: PolicyMatchSpec[][] = [];
  const from = readList(rule["from"], join(path, "from"), p, "sources (- source: {...})", MAX_FROM);
  if (from) {
    if (from.length === 0 && rule["from"] !== undefined) p.error(join(path, "from"), "must not be empty (omit it to allow any source)");
    const matches: PolicyMatchSpec[] = [];
    from.forEach((f, i) => {
      const fp = `${join(path, "from")}[${i}]`;
      const fm = readMap(f, fp, p, "a from entry ({source: {...}})");
      if (!fm) return;
      checkKeys(fm, fp, ["source"], p);
      const src = readMap(fm["source"], join(fp, "source"), p, "a source");
      if (src) matches.push(readSource(src, join(fp, "source"), policyNamespace, p, l7));
    });
    if (matches.length > 0) clauses.push(matches);
  }
  const to = readList(rule["to"], join(path, "to"), p, "operations (- operation: {...})");
  if (to) {
    if (to.length === 0) p.error(join(path, "to"), "must not be empty (omit it to allow any operation)");
    const matches: PolicyMatchSpec[] = [];
    to.forEach((t, i) => {
      const tp = `${join(path, "to")}[${i}]`;
      const tm = readMap(t, tp, p, "a to entry ({operation: {...}})");
      if (!tm) return;
      checkKeys(tm, tp, ["operation"], p);
      const op = readMap(tm["operation"], join(tp, "operation"), p, "an operation");
      if (op) matches.push(readOperation(op, join(tp, "operation"), p, l7));
    });
    if (matches.length > 0) clauses.push(matches);
  }
  const when = readList(rule["when"], join(path, "when"), p, "conditions ({key, values, notValues})");
  when?.forEach((w, i) => {
    const wp = `${join(path, "when")}[${i}]`;
    const wm = readMap(w, wp, p, "a condition ({key, values, notValues})");
    if (!wm) return;
    const c = readCondition(wm, wp, policyNamespace, p, l7);
    if (c) clauses.push([Object.freeze([c])]);
  });
  return Object.freeze({ clauses: Object.freeze(clauses.map((c) => Object.freeze(c))), l7Fields: Object.freeze([...l7].sort()) });
}

function readTargetRef(v: unknown, path: string, policyNamespace: string, p: DocProblems): PolicyTargetRef | undefined {
  const o = readMap(v, path, p, "a target reference ({group, kind, name})");
  if (!o) return undefined;
  checkKeys(o, path, TARGET_REF_KEYS, p);
  const str = (k: string, required: boolean): string | undefined => {
    const x = o[k];
    if (x === undefined || x === null) {
      if (required) p.error(join(path, k), "required");
      return undefined;
    }
    if (typeof x !== "string") {
      p.error(join(path, k), `expected a string, got ${describe(x)}`);
      return undefined;
    }
    return x;
  };
  const group = str("group", false) ?? "";
  const kind = str("kind", true);
  const name = str("name", true);
  const namespace = str("namespace", false);
  if (kind === undefined || name === undefined) return undefined;
  const wantGroup = TARGET_KINDS[kind];
  const canonical = group === "core" ? "" : group;
  if (wantGroup === undefined || wantGroup !== canonical) {
    p.error(
      path,
      `targetRef must be a Gateway or GatewayClass (gateway.networking.k8s.io), a Service (core) or a ServiceEntry (networking.istio.io), got ${group || "core"}/${kind}`,
    );
    return undefined;
  }
  if (name === "") p.error(join(path, "name"), "must not be empty");
  if (namespace !== undefined && namespace !== "" && namespace !== policyNamespace) {
    p.error(join(path, "namespace"), `cross-namespace targetRef is not supported (policy is in ${policyNamespace}, got ${namespace})`);
    return undefined;
  }
  return Object.freeze({ group: canonical, kind, name, namespace: policyNamespace });
}

function readSelector(v: unknown, path: string, p: DocProblems): ReadonlyMap<string, string> | undefined {
  const o = readMap(v, path, p, "a workload selector ({matchLabels: {...}})");
  if (!o) return undefined;
  checkKeys(o, path, ["matchLabels"], p);
  const labels = new Map<string, string>();
  const ml = o["matchLabels"];
  if (ml !== undefined && ml !== null) {
    const m = readMap(ml, join(path, "matchLabels"), p, "labels");
    if (m) {
      for (const [k, val] of Object.entries(m)) {
        const lp = join(join(path, "matchLabels"), k);
        if (typeof val !== "string") {
          p.error(lp, `expected a label value string, got ${describe(val)}${val !== null && typeof val !== "object" ? " (quote it)" : ""}`);
          continue;
        }
        if (k === "") p.error(lp, "empty label key is not supported in a selector");
        if (k.includes("*") || val.includes("*")) p.error(lp, `wildcard is not supported in a selector: ${k}=${val}`);
        labels.set(k, val);
      }
    }
  }
  return labels;
}

function readAction(v: unknown, path: string, p: DocProblems): PolicyAction | undefined {
  if (v === undefined || v === null) return "ALLOW";
  if (v === "ALLOW" || v === "DENY" || v === "AUDIT") return v;
  if (v === "CUSTOM") {
    p.error(path, "action CUSTOM (external authorization) is not supported by this mesh; use ALLOW, DENY or AUDIT");
    return undefined;
  }
  p.error(path, `expected one of ALLOW, DENY, AUDIT, got ${describe(v)}`);
  return undefined;
}

function readDocument(
  doc: unknown,
  p: DocProblems,
  defaultNamespace: string,
): CompiledPolicy | undefined {
  const root = readMap(doc, "", p, "a Kubernetes object");
  if (!root) return undefined;
  const before = p.count();
  // Name the document first so every message carries it.
  const rawName = isObj(root["metadata"]) ? root["metadata"]["name"] : undefined;
  if (typeof rawName === "string" && rawName !== "") p.name(rawName);
  checkKeys(root, "", TOP_KEYS, p);
  const beforeKind = p.count();
  if (root["apiVersion"] === undefined) p.error("apiVersion", `required (one of ${API_VERSIONS.join(", ")})`);
  else if (typeof root["apiVersion"] !== "string" || !API_VERSIONS.includes(root["apiVersion"])) {
    p.error("apiVersion", `expected one of ${API_VERSIONS.join(", ")}, got ${describe(root["apiVersion"])}`);
  }
  if (root["kind"] !== "AuthorizationPolicy") p.error("kind", `expected AuthorizationPolicy, got ${describe(root["kind"])}`);
  // Another kind of object: its fields would only add noise.
  if (p.count() > beforeKind) return undefined;
  const metadata =
    root["metadata"] === undefined ? (p.error("metadata", "required (a map with name and namespace)"), undefined) : readMap(root["metadata"], "metadata", p, "metadata");

  let name: string | undefined;
  let namespace = defaultNamespace;
  let dryRun = false;
  if (metadata) {
    checkKeys(metadata, "metadata", METADATA_KEYS, p);
    if (typeof rawName !== "string" || rawName === "") {
      p.error("metadata.name", `required: a policy name, got ${describe(rawName)}`);
    } else if (rawName.length > 253 || !DNS_SUBDOMAIN.test(rawName)) {
      p.error("metadata.name", `expected a DNS subdomain name (lower-case letters, digits, '-', '.'), got ${JSON.stringify(rawName)}`);
    } else {
      name = rawName;
    }
    const ns = metadata["namespace"];
    if (ns !== undefined && ns !== null) {
      if (typeof ns !== "string" || ns.length > 63 || !DNS_LABEL.test(ns)) {
        p.error("metadata.namespace", `expected a namespace name (DNS label), got ${describe(ns)}`);
      } else {
        namespace = ns;
      }
    }
    for (const k of ["labels", "annotations"]) {
      const m = metadata[k];
      if (m === undefined || m === null) continue;
      const mm = readMap(m, `metadata.${k}`, p, k);
      if (!mm) continue;
      for (const [ak, av] of Object.entries(mm)) {
        if (typeof av !== "string") p.error(`metadata.${k}.${ak}`, `expected a string, got ${describe(av)} (quote it)`);
      }
    }
    const annotations = isObj(metadata["annotations"]) ? metadata["annotations"] : {};
    const dr = annotations[DRY_RUN_ANNOTATION];
    if (dr !== undefined) {
      if (dr === "true") dryRun = true;
      else if (dr !== "false") p.error(`metadata.annotations.${DRY_RUN_ANNOTATION}`, `expected "true" or "false", got ${describe(dr)}`);
    }
  }

  const specRaw = root["spec"] ?? {};
  const spec = readMap(specRaw, "spec", p, "a policy spec");
  if (!spec) return undefined;
  checkKeys(spec, "spec", SPEC_KEYS, p);
  const action = readAction(spec["action"], "spec.action", p);
  if (spec["provider"] !== undefined && action !== undefined) {
    p.error("spec.provider", `provider is only valid with action CUSTOM, found ${action}`);
  }
  const hasSelector = spec["selector"] !== undefined && spec["selector"] !== null;
  const hasTargetRef = spec["targetRef"] !== undefined && spec["targetRef"] !== null;
  const hasTargetRefs = Array.isArray(spec["targetRefs"]) ? spec["targetRefs"].length > 0 : spec["targetRefs"] != null;
  if (Number(hasSelector) + Number(hasTargetRef) + Number(hasTargetRefs) > 1) {
    p.error("spec", "only one of selector, targetRef or targetRefs can be set");
  }
  let matchLabels: ReadonlyMap<string, string> | undefined;
  if (hasSelector) {
    matchLabels = readSelector(spec["selector"], "spec.selector", p);
    if (matchLabels && matchLabels.size === 0) {
      p.warn("spec.selector", "workload selector specified without labels: the policy applies to the whole namespace");
      matchLabels = undefined;
    }
  }
  const targetRefs: PolicyTargetRef[] = [];
  if (hasTargetRef) {
    const t = readTargetRef(spec["targetRef"], "spec.targetRef", namespace, p);
    if (t) targetRefs.push(t);
  }
  const trs = readList(spec["targetRefs"], "spec.targetRefs", p, "target references", MAX_TARGET_REFS);
  trs?.forEach((t, i) => {
    const r = readTargetRef(t, `spec.targetRefs[${i}]`, namespace, p);
    if (r) targetRefs.push(r);
  });

  const rulesRaw = readList(spec["rules"], "spec.rules", p, "rules", MAX_RULES) ?? [];
  const rules: PolicyRule[] = [];
  rulesRaw.forEach((r, i) => {
    const rule = readRule(r, `spec.rules[${i}]`, namespace, p);
    if (rule) rules.push(rule);
  });
  if (action === "DENY" && rulesRaw.length === 0) {
    p.error("spec.rules", "a DENY policy without rules never matches; add an empty rule `{}` to deny everything");
  }

  if (p.count() > before || name === undefined || action === undefined) return undefined;

  const warnings: string[] = [];
  const l7Rules = rules.map((r, i) => [i, r.l7Fields] as const).filter(([, f]) => f.length > 0);
  if (targetRefs.length === 0) {
    for (const [i, fields] of l7Rules) {
      const what = `${p.source}: spec.rules[${i}] uses HTTP attributes (${fields.join(", ")});`;
      if (action !== "DENY") {
        warnings.push(`${what} ztunnel drops the rule (more restrictive); use a waypoint for HTTP rules`);
      } else if (l4Projection(rules[i]!).length === 0) {
        warnings.push(`${what} ztunnel enforces the rule without them, so it denies every connection in scope; use a waypoint for HTTP rules`);
      } else {
        warnings.push(`${what} ztunnel enforces the rule without them (more restrictive); use a waypoint for HTTP rules`);
      }
    }
  } else {
    warnings.push(`${p.source}: has targetRefs: a waypoint policy, not applied at ztunnel`);
  }
  const scope = matchLabels ? "WorkloadSelector" : "Namespace";
  return Object.freeze({
    name,
    namespace,
    key: `${namespace}/${name}`,
    origin: "kubernetes",
    scope,
    action,
    dryRun,
    ...(matchLabels ? { matchLabels } : {}),
    targetRefs: Object.freeze(targetRefs),
    rules: Object.freeze(rules),
    source: p.source,
    warnings: Object.freeze(warnings),
  } satisfies CompiledPolicy);
}

/**
 * Parses a YAML stream of AuthorizationPolicy documents. Throws one MeshError listing every
 * problem (CONFIG_PARSE for YAML syntax, CONFIG_INVALID otherwise); policy warnings (L7 fields
 * at ztunnel, `spiffe://` principals) are in each policy's `warnings`.
 */
export function parseAuthorizationPolicies(
  text: string,
  fileName: string,
  options: KubernetesParseOptions = {},
): CompiledPolicy[] {
  const defaultNamespace = options.defaultNamespace ?? "default";
  const errors: string[] = [];
  let syntaxErrors = 0;
  const out: CompiledPolicy[] = [];
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false, lineCounter: lines });
  const list = Array.isArray(docs) ? docs : [];
  const keys = new Map<string, string>();
  list.forEach((doc, i) => {
    const label = `${fileName}: document ${i + 1}`;
    if (doc.errors.length > 0) {
      syntaxErrors += doc.errors.length;
      for (const e of doc.errors) {
        const pos = lines.linePos(e.pos[0]);
        errors.push(`${label}: line ${pos.line}, column ${pos.col}: ${e.message.split("\n")[0]}`);
      }
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      syntaxErrors++;
      errors.push(`${label}: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (value === null || value === undefined) return; // an empty document (e.g. a trailing ---)
    const warnings: string[] = [];
    const p = new DocProblems(label, errors, warnings);
    const policy = readDocument(value, p, defaultNamespace);
    if (!policy) return;
    const seen = keys.get(policy.key);
    if (seen !== undefined) {
      errors.push(`${policy.source}: duplicate policy ${policy.key} (also defined by ${seen})`);
      return;
    }
    keys.set(policy.key, policy.source);
    out.push(warnings.length ? Object.freeze({ ...policy, warnings: Object.freeze([...warnings, ...policy.warnings]) }) : policy);
  });
  if (errors.length > 0) {
    throw new MeshError(
      syntaxErrors > 0 ? ErrorCodes.CONFIG_PARSE : ErrorCodes.CONFIG_INVALID,
      `${fileName}: ${errors.length} problem${errors.length === 1 ? "" : "s"} in AuthorizationPolicy documents`,
      { details: errors },
    );
  }
  return out;
}
