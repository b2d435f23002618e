// Kubernetes `AuthorizationPolicy` documents (security.istio.io/v1 and v1beta1) -> CompiledPolicy.
// Validation follows Istio's (pkg/config/validation) plus the CRD schema, is stricter where Istio
// is lenient (unknown fields and keys are errors), and reports every problem with its file,
// document and field path before anything is loaded.

import {
  checkKeys,
  fieldPath,
  isObj,
  KUBERNETES_METADATA_KEYS,
  KUBERNETES_TOP_KEYS,
  readKubernetesDocuments,
  readList,
  readMap,
  type DocProblems,
} from "../config/index.ts";
import { l4Projection } from "./compile.ts";
import { readRule } from "./k8s-rules.ts";
import type { CompiledPolicy, PolicyAction, PolicyRule, PolicyTargetRef } from "./model.ts";

export interface KubernetesParseOptions {
  /** Namespace of documents whose metadata has none (what `kubectl apply` would use). */
  readonly defaultNamespace?: string;
}

const API_VERSIONS = ["security.istio.io/v1", "security.istio.io/v1beta1"];
const SPEC_KEYS = ["selector", "targetRef", "targetRefs", "action", "provider", "rules"];
const TARGET_REF_KEYS = ["group", "kind", "name", "namespace"];
/** Istio's allowed targetRef kinds, by group ("" is the core group). */
const TARGET_KINDS: Readonly<Record<string, string>> = {
  Gateway: "gateway.networking.k8s.io",
  GatewayClass: "gateway.networking.k8s.io",
  Service: "",
  ServiceEntry: "networking.istio.io",
};
const DRY_RUN_ANNOTATION = "istio.io/dry-run";
/** CRD limit (maxItems) on rules. */
const MAX_RULES = 512;
const MAX_TARGET_REFS = 16;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function readTargetRef(v: unknown, path: string, policyNamespace: string, p: DocProblems): PolicyTargetRef | undefined {
  const o = readMap(v, path, p, "a target reference ({group, kind, name})");
  if (!o) return undefined;
  checkKeys(o, path, TARGET_REF_KEYS, p);
  const str = (k: string, required: boolean): string | undefined => {
    const x = o[k];
    if (x === undefined || x === null) {
      if (required) p.error(fieldPath(path, k), "required");
      return undefined;
    }
    if (typeof x !== "string") {
      p.error(fieldPath(path, k), `expected a string, got ${p.describe(x)}`);
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
  if (name === "") p.error(fieldPath(path, "name"), "must not be empty");
  if (namespace !== undefined && namespace !== "" && namespace !== policyNamespace) {
    p.error(fieldPath(path, "namespace"), `cross-namespace targetRef is not supported (policy is in ${policyNamespace}, got ${namespace})`);
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
    const m = readMap(ml, fieldPath(path, "matchLabels"), p, "labels");
    if (m) {
      for (const [k, val] of Object.entries(m)) {
        const lp = fieldPath(fieldPath(path, "matchLabels"), k);
        if (typeof val !== "string") {
          p.error(lp, `expected a label value string, got ${p.describe(val)}${val !== null && typeof val !== "object" ? " (quote it)" : ""}`);
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
  p.error(path, `expected one of ALLOW, DENY, AUDIT, got ${p.describe(v)}`);
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
  checkKeys(root, "", KUBERNETES_TOP_KEYS, p);
  const beforeKind = p.count();
  if (root["apiVersion"] === undefined) p.error("apiVersion", `required (one of ${API_VERSIONS.join(", ")})`);
  else if (typeof root["apiVersion"] !== "string" || !API_VERSIONS.includes(root["apiVersion"])) {
    p.error("apiVersion", `expected one of ${API_VERSIONS.join(", ")}, got ${p.describe(root["apiVersion"])}`);
  }
  if (root["kind"] !== "AuthorizationPolicy") p.error("kind", `expected AuthorizationPolicy, got ${p.describe(root["kind"])}`);
  // Another kind of object: its fields would only add noise.
  if (p.count() > beforeKind) return undefined;
  const metadata =
    root["metadata"] === undefined ? (p.error("metadata", "required (a map with name and namespace)"), undefined) : readMap(root["metadata"], "metadata", p, "metadata");

  let name: string | undefined;
  let namespace = defaultNamespace;
  let dryRun = false;
  if (metadata) {
    checkKeys(metadata, "metadata", KUBERNETES_METADATA_KEYS, p);
    if (typeof rawName !== "string" || rawName === "") {
      p.error("metadata.name", `required: a policy name, got ${p.describe(rawName)}`);
    } else if (rawName.length > 253 || !DNS_SUBDOMAIN.test(rawName)) {
      p.error("metadata.name", `expected a DNS subdomain name (lower-case letters, digits, '-', '.'), got ${JSON.stringify(rawName)}`);
    } else {
      name = rawName;
    }
    const ns = metadata["namespace"];
    if (ns !== undefined && ns !== null) {
      if (typeof ns !== "string" || ns.length > 63 || !DNS_LABEL.test(ns)) {
        p.error("metadata.namespace", `expected a namespace name (DNS label), got ${p.describe(ns)}`);
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
        if (typeof av !== "string") p.error(`metadata.${k}.${ak}`, `expected a string, got ${p.describe(av)} (quote it)`);
      }
    }
    const annotations = isObj(metadata["annotations"]) ? metadata["annotations"] : {};
    const dr = annotations[DRY_RUN_ANNOTATION];
    if (dr !== undefined) {
      if (dr === "true") dryRun = true;
      else if (dr !== "false") p.error(`metadata.annotations.${DRY_RUN_ANNOTATION}`, `expected "true" or "false", got ${p.describe(dr)}`);
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
  const trs = readList(spec["targetRefs"], "spec.targetRefs", p, { what: "target references", max: MAX_TARGET_REFS, overMax: "read" });
  trs?.forEach((t, i) => {
    const r = readTargetRef(t, `spec.targetRefs[${i}]`, namespace, p);
    if (r) targetRefs.push(r);
  });

  const rulesRaw = readList(spec["rules"], "spec.rules", p, { what: "rules", max: MAX_RULES, overMax: "read" }) ?? [];
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
    // The collector's warnings (selector, principals) first, then the policy's own.
    warnings: Object.freeze([...p.warnings, ...warnings]),
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
  return readKubernetesDocuments(
    text,
    fileName,
    { kind: "AuthorizationPolicy", duplicateName: "policy", strings: "labelled" },
    (value, p) => readDocument(value, p, defaultNamespace),
  );
}
