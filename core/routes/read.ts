// HTTPRoute reading shared by the rule, match and filter readers: the limits, name and path rules,
// and Service references. The generic Kubernetes reading is core/config's.

import { checkKeys, fieldPath, readInt, readString, type DocProblems, type Obj, type StringRule } from "../config/index.ts";
import type { ServiceRef } from "./model.ts";

// Bounds. Per-route ones are the CRD's; per-file and size ones keep one file from costing much.
export const ROUTE_LIMITS = {
  fileBytes: 4 * 1024 * 1024,
  documents: 1024,
  rulesPerFile: 1024,
  rulesPerRoute: 16,
  matchesPerRule: 64,
  matchesPerRoute: 128,
  parentRefs: 32,
  hostnames: 16,
  headerMatches: 16,
  queryMatches: 16,
  filters: 16,
  backendRefs: 16,
  headerEdits: 16,
  headerNameBytes: 256,
  headerValueBytes: 4096,
  queryValueBytes: 1024,
  pathBytes: 1024,
  hostnameBytes: 253,
  weight: 1_000_000,
} as const;

export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$/;
const FORBIDDEN_IN_PATH = ["//", "/./", "/../", "%2f", "%2F", "#"];

export const NAME_RULE: StringRule = { required: true, min: 1, max: 253, pattern: DNS_SUBDOMAIN, patternText: "a DNS subdomain name (lower-case letters, digits, '-', '.')" };
export const NAMESPACE_RULE: StringRule = { min: 1, max: 63, pattern: DNS_LABEL, patternText: "a namespace name (DNS label)" };

export function hostnameRule(wildcard: boolean): StringRule {
  return {
    min: 1,
    max: ROUTE_LIMITS.hostnameBytes,
    pattern: wildcard ? HOSTNAME : DNS_SUBDOMAIN,
    patternText: wildcard ? "a lower-case DNS name, optionally starting with \"*.\" (no IP addresses)" : "a lower-case DNS name (no wildcard)",
  };
}

export function readHostname(o: Obj, key: string, path: string, p: DocProblems): string | undefined {
  return readString(o, key, path, p, hostnameRule(false));
}

/** Exact and PathPrefix values, and replacement paths: the CRD's path rules. */
export function checkPathValue(v: string, at: string, p: DocProblems): boolean {
  if (!v.startsWith("/")) {
    p.error(at, `must be an absolute path starting with "/", got ${p.describe(v)}`);
    return false;
  }
  if (v.length > ROUTE_LIMITS.pathBytes) {
    p.error(at, `must be at most ${ROUTE_LIMITS.pathBytes} characters, got ${v.length}`);
    return false;
  }
  const bad = FORBIDDEN_IN_PATH.find((s) => v.includes(s));
  if (bad !== undefined) {
    p.error(at, `must not contain ${JSON.stringify(bad)}`);
    return false;
  }
  if (v.endsWith("/..") || v.endsWith("/.")) {
    p.error(at, `must not end with "/.." or "/."`);
    return false;
  }
  if (!PATH_CHARS.test(v)) {
    p.error(at, `contains a character that must be percent-encoded: ${p.describe(v)}`);
    return false;
  }
  return true;
}

/** A Service reference (backendRef, mirror target): core group, kind Service, port required. */
export function readServiceRef(o: Obj, path: string, p: DocProblems, routeNamespace: string, extraKeys: readonly string[]): ServiceRef | undefined {
  checkKeys(o, path, ["group", "kind", "name", "namespace", "port", ...extraKeys], p);
  const before = p.count();
  const group = readString(o, "group", path, p) ?? "";
  const kind = readString(o, "kind", path, p) ?? "Service";
  if ((group !== "" && group !== "core") || kind !== "Service") {
    p.error(path, `only a Service (group "", kind Service) is supported as a backend, got ${group || "core"}/${kind}`);
  }
  const name = readString(o, "name", path, p, { ...NAME_RULE, max: 63, pattern: DNS_LABEL, patternText: "a Service name (DNS label)" });
  const namespace = readString(o, "namespace", path, p, NAMESPACE_RULE) ?? routeNamespace;
  const port = readInt(o, "port", path, p, 1, 65535);
  if (port === undefined && o["port"] == null) p.error(fieldPath(path, "port"), "required for a Service backend");
  if (name === undefined || port === undefined || p.count() > before) return undefined;
  return { name, namespace, port };
}
