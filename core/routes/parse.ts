// Kubernetes `HTTPRoute` documents (gateway.networking.k8s.io/v1 and v1beta1) -> HttpRoute.
// Validation follows the Gateway API CRD (OpenAPI limits and CEL rules) and is stricter where it is
// open: unknown fields are errors, and every problem is reported with its file, document and
// field path before anything is loaded.

import {
  checkKeys,
  checkString,
  fieldPath,
  isObj,
  KUBERNETES_METADATA_KEYS,
  KUBERNETES_TOP_KEYS,
  readInt,
  readKubernetesDocuments,
  readList,
  readMap,
  readString,
  type DocProblems,
  type Obj,
} from "../config/index.ts";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import {
  HTTP_METHODS,
  type BackendRef,
  type HttpMethod,
  type HttpRoute,
  type ParentRef,
  type PathMatch,
  type RetryPolicy,
  type RouteMatch,
  type RouteRule,
  type RouteTimeouts,
  type ValueMatch,
} from "./model.ts";
import { readFilters } from "./parse-filters.ts";
import { checkPathValue, DNS_SUBDOMAIN, HEADER_NAME, hostnameRule, NAME_RULE, NAMESPACE_RULE, readServiceRef, ROUTE_LIMITS } from "./read.ts";
import { compileRouteRegex } from "./regex.ts";

export { ROUTE_LIMITS } from "./read.ts";

export interface RouteParseOptions {
  /** Namespace of documents whose metadata has none (what `kubectl apply` would use). */
  readonly defaultNamespace?: string;
}

const API_VERSIONS = ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"];
const GATEWAY_GROUP = "gateway.networking.k8s.io";

const SPEC_KEYS = ["parentRefs", "hostnames", "rules"];
const RULE_KEYS = ["name", "matches", "filters", "backendRefs", "timeouts", "retry", "sessionPersistence"];
/** Gateway API Duration (GEP-2257). */
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;

/** Istio's MeshConfig defaultHttpRetryPolicy (reference/waypoint.md §C.4). */
export const ISTIO_DEFAULT_RETRY: RetryPolicy = Object.freeze({
  attempts: 2,
  retryOn: Object.freeze(["connect-failure", "refused-stream", "unavailable", "cancelled"]),
  codes: Object.freeze([]),
  isDefault: true,
});

/** Milliseconds of a Gateway API duration string ("1h30m", "500ms"). */
export function parseGatewayDuration(s: string): number | undefined {
  if (!DURATION.test(s)) return undefined;
  let ms = 0;
  for (const m of s.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    const n = Number(m[1]);
    ms += m[2] === "h" ? n * 3_600_000 : m[2] === "m" ? n * 60_000 : m[2] === "s" ? n * 1000 : n;
  }
  return ms;
}

function readDuration(o: Obj, key: string, path: string, p: DocProblems): number | undefined {
  const s = readString(o, key, path, p);
  if (s === undefined) return undefined;
  const ms = parseGatewayDuration(s);
  if (ms === undefined) p.error(fieldPath(path, key), `expected a duration like "10s", "500ms" or "1h30m" (units h, m, s, ms), got ${p.describe(s)}`);
  return ms;
}

function readPathMatch(v: unknown, path: string, p: DocProblems): PathMatch | undefined {
  if (v === undefined || v === null) return { type: "PathPrefix", value: "/" };
  const o = readMap(v, path, p);
  if (!o) return undefined;
  checkKeys(o, path, ["type", "value"], p);
  const type = readString(o, "type", path, p, { oneOf: ["Exact", "PathPrefix", "RegularExpression"] }) ?? (o["type"] == null ? "PathPrefix" : undefined);
  const value = readString(o, "value", path, p, { max: ROUTE_LIMITS.pathBytes }) ?? (o["value"] == null ? "/" : undefined);
  if (type === undefined || value === undefined) return undefined;
  const at = fieldPath(path, "value");
  if (type === "RegularExpression") {
    const regex = compileRouteRegex(value);
    if (typeof regex === "string") {
      p.error(at, `regular expression ${p.describe(value)} ${regex}`);
      return undefined;
    }
    return { type, value, regex };
  }
  if (!checkPathValue(value, at, p)) return undefined;
  return { type: type as "Exact" | "PathPrefix", value };
}

function readValueMatches(v: unknown, path: string, p: DocProblems, header: boolean): ValueMatch[] {
  const list = readList(v, path, p, { max: header ? ROUTE_LIMITS.headerMatches : ROUTE_LIMITS.queryMatches }) ?? [];
  const out: ValueMatch[] = [];
  const seen = new Set<string>();
  list.forEach((item, i) => {
    const at = `${path}[${i}]`;
    const o = readMap(item, at, p);
    if (!o) return;
    checkKeys(o, at, ["type", "name", "value"], p);
    const type = readString(o, "type", at, p, { oneOf: ["Exact", "RegularExpression"] }) ?? (o["type"] == null ? "Exact" : undefined);
    const rawName = readString(o, "name", at, p, {
      required: true,
      min: 1,
      max: ROUTE_LIMITS.headerNameBytes,
      pattern: HEADER_NAME,
      patternText: "a header or parameter name (RFC 7230 token characters)",
    });
    const maxValue = header ? ROUTE_LIMITS.headerValueBytes : ROUTE_LIMITS.queryValueBytes;
    const value = readString(o, "value", at, p, { required: true, min: 1, max: maxValue });
    if (type === undefined || rawName === undefined || value === undefined) return;
    // Header names compare case-insensitively, query parameter names exactly (spec).
    const name = header ? rawName.toLowerCase() : rawName;
    if (seen.has(name)) {
      p.error(fieldPath(at, "name"), `duplicate ${header ? "header" : "query parameter"} name ${JSON.stringify(rawName)} in one match`);
      return;
    }
    seen.add(name);
    if (type === "RegularExpression") {
      const regex = compileRouteRegex(value);
      if (typeof regex === "string") {
        p.error(fieldPath(at, "value"), `regular expression ${p.describe(value)} ${regex}`);
        return;
      }
      out.push({ type, name, value, regex });
    } else {
      out.push({ type: "Exact", name, value });
    }
  });
  return out;
}

function readMatch(v: unknown, path: string, p: DocProblems): RouteMatch | undefined {
  const o = readMap(v, path, p);
  if (!o) return undefined;
  const before = p.count();
  checkKeys(o, path, ["path", "headers", "queryParams", "method"], p);
  const pm = readPathMatch(o["path"], fieldPath(path, "path"), p);
  const headers = readValueMatches(o["headers"], fieldPath(path, "headers"), p, true);
  const queryParams = readValueMatches(o["queryParams"], fieldPath(path, "queryParams"), p, false);
  const method = readString(o, "method", path, p, { oneOf: HTTP_METHODS }) as HttpMethod | undefined;
  if (pm === undefined || p.count() > before) return undefined;
  return Object.freeze({
    path: Object.freeze(pm),
    headers: Object.freeze(headers),
    queryParams: Object.freeze(queryParams),
    ...(method ? { method } : {}),
  });
}

function readBackendRefs(v: unknown, path: string, p: DocProblems, ns: string): BackendRef[] {
  const list = readList(v, path, p, { max: ROUTE_LIMITS.backendRefs }) ?? [];
  const out: BackendRef[] = [];
  list.forEach((item, i) => {
    const at = `${path}[${i}]`;
    const o = readMap(item, at, p);
    if (!o) return;
    const before = p.count();
    const ref = readServiceRef(o, at, p, ns, ["weight", "filters"]);
    const weight = readInt(o, "weight", at, p, 0, ROUTE_LIMITS.weight) ?? 1;
    // A backend's own filters cannot redirect (there is no match to replace a prefix of either).
    const filters = readFilters(o["filters"], fieldPath(at, "filters"), p, ns, undefined);
    filters.forEach((f, j) => {
      if (f.type === "RequestRedirect" || f.type === "URLRewrite") p.error(`${fieldPath(at, "filters")}[${j}]`, `${f.type} is only supported on a rule, not on a backendRef`);
    });
    if (!ref || p.count() > before) return;
    out.push(Object.freeze({ ...ref, weight, filters: Object.freeze(filters) }));
  });
  return out;
}

function readTimeouts(v: unknown, path: string, p: DocProblems): RouteTimeouts {
  if (v == null) return Object.freeze({});
  const o = readMap(v, path, p);
  if (!o) return Object.freeze({});
  checkKeys(o, path, ["request", "backendRequest"], p);
  const requestMs = readDuration(o, "request", path, p);
  const backendRequestMs = readDuration(o, "backendRequest", path, p);
  if (requestMs !== undefined && backendRequestMs !== undefined && requestMs !== 0 && (backendRequestMs === 0 || backendRequestMs > requestMs)) {
    p.error(fieldPath(path, "backendRequest"), `must not be longer than the request timeout (${o["request"] as string})`);
  }
  return Object.freeze({
    ...(requestMs !== undefined ? { requestMs } : {}),
    ...(backendRequestMs !== undefined ? { backendRequestMs } : {}),
  });
}

function readRetry(v: unknown, path: string, p: DocProblems): RetryPolicy {
  if (v == null) return ISTIO_DEFAULT_RETRY;
  const o = readMap(v, path, p);
  if (!o) return ISTIO_DEFAULT_RETRY;
  checkKeys(o, path, ["codes", "attempts", "backoff"], p);
  const attempts = readInt(o, "attempts", path, p, 0, 1000) ?? ISTIO_DEFAULT_RETRY.attempts;
  const codes: number[] = [];
  (readList(o["codes"], fieldPath(path, "codes"), p, { max: 64 }) ?? []).forEach((c, i) => {
    if (typeof c !== "number" || !Number.isInteger(c) || c < 400 || c > 599) p.error(`${fieldPath(path, "codes")}[${i}]`, `expected an HTTP status from 400 to 599, got ${p.describe(c)}`);
    else codes.push(c);
  });
  const backoffMs = readDuration(o, "backoff", path, p);
  const retryOn = codes.length > 0 ? [...ISTIO_DEFAULT_RETRY.retryOn, "retriable-status-codes"] : [...ISTIO_DEFAULT_RETRY.retryOn];
  return Object.freeze({
    attempts,
    retryOn: Object.freeze(retryOn),
    codes: Object.freeze(codes),
    ...(backoffMs !== undefined ? { backoffMs } : {}),
    isDefault: false,
  });
}

const DEFAULT_MATCH: RouteMatch = Object.freeze({
  path: Object.freeze({ type: "PathPrefix", value: "/" }),
  headers: Object.freeze([]),
  queryParams: Object.freeze([]),
});

function readRule(v: unknown, path: string, p: DocProblems, ns: string, totals: { matches: number }): RouteRule | undefined {
  const o = readMap(v, path, p);
  if (!o) return undefined;
  const before = p.count();
  checkKeys(o, path, RULE_KEYS, p);
  if (o["sessionPersistence"] != null) p.error(fieldPath(path, "sessionPersistence"), "session persistence is not supported by this mesh");
  const name = readString(o, "name", path, p, { min: 1, max: 253, pattern: DNS_SUBDOMAIN, patternText: "a rule name (DNS subdomain)" });
  const rawMatches = readList(o["matches"], fieldPath(path, "matches"), p, { max: ROUTE_LIMITS.matchesPerRule });
  const matches: RouteMatch[] = [];
  rawMatches?.forEach((m, i) => {
    const rm = readMatch(m, `${fieldPath(path, "matches")}[${i}]`, p);
    if (rm) matches.push(rm);
  });
  if (rawMatches === undefined || rawMatches.length === 0) matches.push(DEFAULT_MATCH);
  totals.matches += matches.length;
  const filters = readFilters(o["filters"], fieldPath(path, "filters"), p, ns, matches);
  const backendRefs = readBackendRefs(o["backendRefs"], fieldPath(path, "backendRefs"), p, ns);
  if (backendRefs.length > 0 && filters.some((f) => f.type === "RequestRedirect")) {
    p.error(path, "a RequestRedirect filter cannot be used together with backendRefs");
  }
  const timeouts = readTimeouts(o["timeouts"], fieldPath(path, "timeouts"), p);
  const retry = readRetry(o["retry"], fieldPath(path, "retry"), p);
  if (p.count() > before) return undefined;
  return Object.freeze({
    ...(name !== undefined ? { name } : {}),
    matches: Object.freeze(matches),
    filters: Object.freeze(filters),
    backendRefs: Object.freeze(backendRefs),
    timeouts,
    retry,
  });
}

function readParentRef(v: unknown, path: string, p: DocProblems, ns: string): ParentRef | undefined {
  const o = readMap(v, path, p);
  if (!o) return undefined;
  const before = p.count();
  checkKeys(o, path, ["group", "kind", "namespace", "name", "sectionName", "port"], p);
  // The CRD defaults are the Gateway form; the mesh form must say group "" and kind Service.
  const rawGroup = readString(o, "group", path, p) ?? GATEWAY_GROUP;
  const group = rawGroup === "core" ? "" : rawGroup;
  const kind = readString(o, "kind", path, p) ?? "Gateway";
  const name = readString(o, "name", path, p, NAME_RULE);
  const namespace = readString(o, "namespace", path, p, NAMESPACE_RULE) ?? ns;
  const sectionName = readString(o, "sectionName", path, p, { min: 1, max: 253, pattern: DNS_SUBDOMAIN, patternText: "a section (port or listener) name" });
  const port = readInt(o, "port", path, p, 1, 65535);
  const mesh = group === "" && kind === "Service";
  if (!mesh && !(group === GATEWAY_GROUP && kind === "Gateway")) {
    p.error(path, `parentRef must be a Service (group "", kind Service) or a Gateway (group ${GATEWAY_GROUP}), got ${group || "core"}/${kind}`);
  }
  if (name === undefined || p.count() > before) return undefined;
  return Object.freeze({
    group,
    kind,
    name,
    namespace,
    ...(port !== undefined ? { port } : {}),
    ...(sectionName !== undefined ? { sectionName } : {}),
    mesh,
  });
}

function readTimestamp(v: unknown, at: string, p: DocProblems): number | undefined {
  if (v == null) return undefined;
  const ms = v instanceof Date ? v.getTime() : typeof v === "string" ? Date.parse(v) : Number.NaN;
  if (Number.isNaN(ms)) {
    p.error(at, `expected an RFC 3339 timestamp, got ${p.describe(v)}`);
    return undefined;
  }
  return ms;
}

function readDocument(doc: unknown, p: DocProblems, defaultNamespace: string, budget: { rules: number }): HttpRoute | undefined {
  const root = readMap(doc, "", p);
  if (!root) return undefined;
  // Another kind of object shares the file (a Service, a Deployment): not ours to judge.
  if (typeof root["kind"] === "string" && root["kind"] !== "HTTPRoute") return undefined;
  const before = p.count();
  const meta = root["metadata"];
  const rawName = isObj(meta) ? meta["name"] : undefined;
  if (typeof rawName === "string" && rawName !== "") p.name(rawName);
  if (root["kind"] == null) p.error("kind", "required (a Kubernetes object with kind HTTPRoute)");
  else if (typeof root["kind"] !== "string") p.error("kind", `expected a string, got ${p.describe(root["kind"])}`);
  checkKeys(root, "", KUBERNETES_TOP_KEYS, p);
  if (root["apiVersion"] == null) p.error("apiVersion", `required (one of ${API_VERSIONS.join(", ")})`);
  else if (typeof root["apiVersion"] !== "string" || !API_VERSIONS.includes(root["apiVersion"])) {
    p.error("apiVersion", `expected one of ${API_VERSIONS.join(", ")}, got ${p.describe(root["apiVersion"])}`);
  }
  let name: string | undefined;
  let namespace = defaultNamespace;
  let creationTimestamp: number | undefined;
  if (meta == null) p.error("metadata", "required (a map with name and namespace)");
  const metadata = meta == null ? undefined : readMap(meta, "metadata", p);
  if (metadata) {
    checkKeys(metadata, "metadata", KUBERNETES_METADATA_KEYS, p);
    name = readString(metadata, "name", "metadata", p, NAME_RULE);
    namespace = readString(metadata, "namespace", "metadata", p, NAMESPACE_RULE) ?? defaultNamespace;
    creationTimestamp = readTimestamp(metadata["creationTimestamp"], "metadata.creationTimestamp", p);
    for (const k of ["labels", "annotations"]) {
      if (metadata[k] == null) continue;
      const m = readMap(metadata[k], `metadata.${k}`, p);
      for (const [ak, av] of Object.entries(m ?? {})) {
        if (typeof av !== "string") p.error(`metadata.${k}.${ak}`, `expected a string, got ${p.describe(av)} (quote it)`);
      }
    }
  }
  if (root["spec"] == null) p.error("spec", "required (parentRefs and rules)");
  const spec = root["spec"] == null ? undefined : readMap(root["spec"], "spec", p);
  if (!spec) return undefined;
  checkKeys(spec, "spec", SPEC_KEYS, p);

  const parentRefs: ParentRef[] = [];
  const rawParents = readList(spec["parentRefs"], "spec.parentRefs", p, { max: ROUTE_LIMITS.parentRefs });
  rawParents?.forEach((r, i) => {
    const ref = readParentRef(r, `spec.parentRefs[${i}]`, p, namespace);
    if (ref) parentRefs.push(ref);
  });
  if (!rawParents || rawParents.length === 0) {
    p.error("spec.parentRefs", "required: the Service (group \"\", kind Service) this route attaches to");
  }
  const hostnames: string[] = [];
  readList(spec["hostnames"], "spec.hostnames", p, { max: ROUTE_LIMITS.hostnames })?.forEach((h, i) => {
    const hn = checkString(h, `spec.hostnames[${i}]`, p, hostnameRule(true));
    if (hn !== undefined) hostnames.push(hn);
  });

  const rawRules = readList(spec["rules"], "spec.rules", p, { max: ROUTE_LIMITS.rulesPerRoute });
  const totals = { matches: 0 };
  const rules: RouteRule[] = [];
  const ruleCount = rawRules === undefined || rawRules.length === 0 ? 1 : rawRules.length;
  budget.rules += ruleCount;
  if (budget.rules > ROUTE_LIMITS.rulesPerFile) {
    p.error("spec.rules", `the file has more than ${ROUTE_LIMITS.rulesPerFile} rules in total; split it`);
    return undefined;
  }
  rawRules?.forEach((r, i) => {
    const rule = readRule(r, `spec.rules[${i}]`, p, namespace, totals);
    if (rule) rules.push(rule);
  });
  // The CRD default: one rule matching every path (with no backends, so it answers 500).
  if (rawRules === undefined || rawRules.length === 0) {
    rules.push(Object.freeze({ matches: Object.freeze([DEFAULT_MATCH]), filters: Object.freeze([]), backendRefs: Object.freeze([]), timeouts: Object.freeze({}), retry: ISTIO_DEFAULT_RETRY }));
    totals.matches += 1;
  }
  if (totals.matches > ROUTE_LIMITS.matchesPerRoute) {
    p.error("spec.rules", `at most ${ROUTE_LIMITS.matchesPerRoute} matches in total across the rules of a route, got ${totals.matches}`);
  }
  const ruleNames = new Set<string>();
  rules.forEach((r) => {
    if (r.name === undefined) return;
    if (ruleNames.has(r.name)) p.error("spec.rules", `rule name ${JSON.stringify(r.name)} is used more than once`);
    ruleNames.add(r.name);
  });
  if (p.count() > before || name === undefined) return undefined;
  return Object.freeze({
    name,
    namespace,
    key: `${namespace}/${name}`,
    ...(creationTimestamp !== undefined ? { creationTimestamp } : {}),
    hostnames: Object.freeze(hostnames),
    parentRefs: Object.freeze(parentRefs),
    rules: Object.freeze(rules),
    source: p.source,
  });
}

/**
 * Parses a YAML stream of Kubernetes documents and returns its HTTPRoutes. Documents of other
 * kinds are skipped. Throws one MeshError listing every problem: CONFIG_PARSE for YAML syntax
 * (with line and column), CONFIG_INVALID otherwise.
 */
export function parseHttpRoutes(text: string, fileName: string, options: RouteParseOptions = {}): HttpRoute[] {
  const defaultNamespace = options.defaultNamespace ?? "default";
  if (text.length > ROUTE_LIMITS.fileBytes) {
    throw new MeshError(ErrorCodes.CONFIG_INVALID, `${fileName}: route file is larger than ${ROUTE_LIMITS.fileBytes} bytes`);
  }
  const budget = { rules: 0 };
  return readKubernetesDocuments(text, fileName, { kind: "HTTPRoute", maxDocuments: ROUTE_LIMITS.documents }, (value, p) =>
    readDocument(value, p, defaultNamespace, budget),
  );
}
