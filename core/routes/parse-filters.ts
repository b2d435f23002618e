// The filters of an HTTPRoute rule or backendRef (header edits, rewrites, redirects, mirrors),
// read and checked against the CRD's rules; applying them is filters.ts.

import { checkKeys, fieldPath, readInt, readList, readMap, readString, type DocProblems } from "../config/index.ts";
import type { HeaderModifier, HeaderValue, PathModifier, RouteFilter, RouteFilterType, RouteMatch, ServiceRef } from "./model.ts";
import { checkPathValue, HEADER_NAME, readHostname, readServiceRef, ROUTE_LIMITS } from "./read.ts";

const FILTER_FIELDS: Readonly<Record<string, string>> = {
  RequestHeaderModifier: "requestHeaderModifier",
  ResponseHeaderModifier: "responseHeaderModifier",
  URLRewrite: "urlRewrite",
  RequestRedirect: "requestRedirect",
  RequestMirror: "requestMirror",
  ExtensionRef: "extensionRef",
  CORS: "cors",
};
const SUPPORTED_FILTERS = ["RequestHeaderModifier", "ResponseHeaderModifier", "URLRewrite", "RequestRedirect", "RequestMirror"];

function readHeaderModifier(v: unknown, path: string, p: DocProblems, request: boolean): HeaderModifier | undefined {
  const o = readMap(v, path, p);
  if (!o) return undefined;
  const before = p.count();
  checkKeys(o, path, ["set", "add", "remove"], p);
  const names = new Set<string>();
  const edits = (key: "set" | "add"): HeaderValue[] => {
    const list = readList(o[key], fieldPath(path, key), p, { max: ROUTE_LIMITS.headerEdits }) ?? [];
    const out: HeaderValue[] = [];
    const seen = new Set<string>();
    list.forEach((item, i) => {
      const at = `${fieldPath(path, key)}[${i}]`;
      const e = readMap(item, at, p);
      if (!e) return;
      checkKeys(e, at, ["name", "value"], p);
      const name = readString(e, "name", at, p, {
        required: true,
        min: 1,
        max: ROUTE_LIMITS.headerNameBytes,
        pattern: HEADER_NAME,
        patternText: "a header name (RFC 7230 token characters)",
      });
      // An empty value is valid (the CRD has no minLength here).
      const value = readString(e, "value", at, p, { required: true, max: ROUTE_LIMITS.headerValueBytes });
      if (name === undefined || value === undefined) return;
      const lower = name.toLowerCase();
      if (seen.has(lower)) {
        p.error(fieldPath(at, "name"), `duplicate header name ${JSON.stringify(name)} in ${key}`);
        return;
      }
      seen.add(lower);
      names.add(lower);
      out.push(Object.freeze({ name: lower, value }));
    });
    return out;
  };
  const set = edits("set");
  const add = edits("add");
  const removeList = readList(o["remove"], fieldPath(path, "remove"), p, { max: ROUTE_LIMITS.headerEdits }) ?? [];
  const remove: string[] = [];
  removeList.forEach((item, i) => {
    const at = `${fieldPath(path, "remove")}[${i}]`;
    if (typeof item !== "string" || item === "" || item.length > ROUTE_LIMITS.headerNameBytes || !HEADER_NAME.test(item)) {
      p.error(at, `expected a header name (RFC 7230 token characters), got ${p.describe(item)}`);
      return;
    }
    const lower = item.toLowerCase();
    if (remove.includes(lower)) {
      p.error(at, `duplicate header name ${JSON.stringify(item)} in remove`);
      return;
    }
    if (request && lower === "host") {
      p.error(at, "the Host header cannot be removed (it names the destination)");
      return;
    }
    remove.push(lower);
  });
  if (p.count() > before) return undefined;
  return Object.freeze({ set: Object.freeze(set), add: Object.freeze(add), remove: Object.freeze(remove) });
}

function readPathModifier(v: unknown, path: string, p: DocProblems): PathModifier | undefined {
  const o = readMap(v, path, p);
  if (!o) return undefined;
  checkKeys(o, path, ["type", "replaceFullPath", "replacePrefixMatch"], p);
  const type = readString(o, "type", path, p, { required: true, oneOf: ["ReplaceFullPath", "ReplacePrefixMatch"] });
  if (type === undefined) return undefined;
  const other = type === "ReplaceFullPath" ? "replacePrefixMatch" : "replaceFullPath";
  if (o[other] != null) p.error(fieldPath(path, other), `must not be set when type is ${type}`);
  if (type === "ReplaceFullPath") {
    const v2 = readString(o, "replaceFullPath", path, p, { required: true, max: ROUTE_LIMITS.pathBytes });
    if (v2 === undefined || !checkPathValue(v2, fieldPath(path, "replaceFullPath"), p)) return undefined;
    return Object.freeze({ type, replaceFullPath: v2 });
  }
  const v2 = readString(o, "replacePrefixMatch", path, p, { required: true, max: ROUTE_LIMITS.pathBytes });
  if (v2 === undefined) return undefined;
  // The empty string is valid: it strips the matched prefix.
  if (v2 !== "" && !checkPathValue(v2, fieldPath(path, "replacePrefixMatch"), p)) return undefined;
  return Object.freeze({ type: "ReplacePrefixMatch", replacePrefixMatch: v2 });
}

function readMirror(v: unknown, path: string, p: DocProblems, ns: string): { backendRef: ServiceRef; percent: number } | undefined {
  const o = readMap(v, path, p);
  if (!o) return undefined;
  checkKeys(o, path, ["backendRef", "percent", "fraction"], p);
  const refRaw = o["backendRef"];
  if (refRaw == null) p.error(fieldPath(path, "backendRef"), "required");
  const refObj = refRaw == null ? undefined : readMap(refRaw, fieldPath(path, "backendRef"), p);
  const ref = refObj ? readServiceRef(refObj, fieldPath(path, "backendRef"), p, ns, []) : undefined;
  let percent = 100;
  if (o["percent"] != null && o["fraction"] != null) p.error(path, "only one of percent or fraction may be set");
  const pc = readInt(o, "percent", path, p, 0, 100);
  if (pc !== undefined) percent = pc;
  if (o["fraction"] != null) {
    const fp = fieldPath(path, "fraction");
    const f = readMap(o["fraction"], fp, p);
    if (f) {
      checkKeys(f, fp, ["numerator", "denominator"], p);
      const num = readInt(f, "numerator", fp, p, 0, 2 ** 31 - 1, true);
      const den = readInt(f, "denominator", fp, p, 1, 2 ** 31 - 1) ?? 100;
      if (num !== undefined) {
        if (num > den) p.error(fp, `numerator (${num}) must not be greater than denominator (${den})`);
        else percent = (num / den) * 100;
      }
    }
  }
  if (!ref) return undefined;
  return Object.freeze({ backendRef: Object.freeze(ref), percent });
}

function readFilter(v: unknown, path: string, p: DocProblems, ns: string): RouteFilter | undefined {
  const o = readMap(v, path, p);
  if (!o) return undefined;
  checkKeys(o, path, ["type", ...Object.values(FILTER_FIELDS)], p);
  const type = readString(o, "type", path, p, { required: true, oneOf: Object.keys(FILTER_FIELDS) });
  if (type === undefined) return undefined;
  const field = FILTER_FIELDS[type]!;
  for (const [t, f] of Object.entries(FILTER_FIELDS)) {
    if (t !== type && o[f] != null) p.error(fieldPath(path, f), `must not be set when type is ${type}`);
  }
  if (!SUPPORTED_FILTERS.includes(type)) {
    p.error(fieldPath(path, "type"), `${type} filters are not supported by this mesh (supported: ${SUPPORTED_FILTERS.join(", ")})`);
    return undefined;
  }
  const at = fieldPath(path, field);
  if (o[field] == null) {
    p.error(at, `required when type is ${type}`);
    return undefined;
  }
  switch (type) {
    case "RequestHeaderModifier": {
      const m = readHeaderModifier(o[field], at, p, true);
      return m && { type, requestHeaderModifier: m };
    }
    case "ResponseHeaderModifier": {
      const m = readHeaderModifier(o[field], at, p, false);
      return m && { type, responseHeaderModifier: m };
    }
    case "URLRewrite": {
      const u = readMap(o[field], at, p);
      if (!u) return undefined;
      checkKeys(u, at, ["hostname", "path"], p);
      const before = p.count();
      const hostname = readHostname(u, "hostname", at, p);
      const pm = u["path"] == null ? undefined : readPathModifier(u["path"], fieldPath(at, "path"), p);
      if (p.count() > before) return undefined;
      return { type, urlRewrite: Object.freeze({ ...(hostname ? { hostname } : {}), ...(pm ? { path: pm } : {}) }) };
    }
    case "RequestRedirect": {
      const r = readMap(o[field], at, p);
      if (!r) return undefined;
      checkKeys(r, at, ["scheme", "hostname", "path", "port", "statusCode"], p);
      const before = p.count();
      const scheme = readString(r, "scheme", at, p, { oneOf: ["http", "https"] }) as "http" | "https" | undefined;
      const hostname = readHostname(r, "hostname", at, p);
      const pm = r["path"] == null ? undefined : readPathModifier(r["path"], fieldPath(at, "path"), p);
      const port = readInt(r, "port", at, p, 1, 65535);
      let statusCode: 301 | 302 = 302;
      if (r["statusCode"] != null) {
        if (r["statusCode"] === 301 || r["statusCode"] === 302) statusCode = r["statusCode"];
        else p.error(fieldPath(at, "statusCode"), `expected one of 301, 302, got ${p.describe(r["statusCode"])}`);
      }
      if (p.count() > before) return undefined;
      return {
        type,
        requestRedirect: Object.freeze({
          ...(scheme ? { scheme } : {}),
          ...(hostname ? { hostname } : {}),
          ...(pm ? { path: pm } : {}),
          ...(port ? { port } : {}),
          statusCode,
        }),
      };
    }
    case "RequestMirror": {
      const m = readMirror(o[field], at, p, ns);
      return m && { type, requestMirror: m };
    }
  }
  return undefined;
}

/** Filters of a rule or a backendRef, with the CRD's cross-filter rules. */
export function readFilters(v: unknown, path: string, p: DocProblems, ns: string, matches: readonly RouteMatch[] | undefined): RouteFilter[] {
  const list = readList(v, path, p, { max: ROUTE_LIMITS.filters }) ?? [];
  const out: RouteFilter[] = [];
  const seen = new Map<RouteFilterType, number>();
  list.forEach((item, i) => {
    const f = readFilter(item, `${path}[${i}]`, p, ns);
    if (!f) return;
    const first = seen.get(f.type);
    if (first !== undefined && f.type !== "RequestMirror") {
      p.error(`${path}[${i}]`, `${f.type} may appear at most once (also at ${path}[${first}])`);
      return;
    }
    if (first === undefined) seen.set(f.type, i);
    out.push(Object.freeze(f));
  });
  if (seen.has("RequestRedirect") && seen.has("URLRewrite")) {
    p.error(path, "RequestRedirect and URLRewrite cannot be used together");
  }
  for (const f of out) {
    const pm = f.type === "URLRewrite" ? f.urlRewrite.path : f.type === "RequestRedirect" ? f.requestRedirect.path : undefined;
    if (pm?.type !== "ReplacePrefixMatch") continue;
    const onePrefix = matches !== undefined && matches.length === 1 && matches[0]!.path.type === "PathPrefix";
    if (!onePrefix) {
      p.error(path, `${f.type} with path.replacePrefixMatch needs exactly one match, with a PathPrefix path`);
    }
  }
  return out;
}
