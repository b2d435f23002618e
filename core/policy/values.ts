// Istio's value syntax: `*` presence, `*x` suffix, `x*` prefix, else exact; ports; service
// accounts; path templates; and the `when` condition keys (which are L4, which need HTTP).

import type { StringMatch } from "../config/index.ts";
import type { ConditionValue, PolicyAttribute, PolicyCondition } from "./model.ts";

/** istiod's stringToMatch (ambient/authorization.go): the first applicable form wins. */
export function istioStringMatch(v: string): StringMatch {
  if (v === "*") return { kind: "Presence" };
  if (v.startsWith("*")) return { kind: "Suffix", value: v.slice(1) };
  if (v.endsWith("*")) return { kind: "Prefix", value: v.slice(0, -1) };
  return { kind: "Exact", value: v };
}

/** The Istio text form of a match (for describe output). */
export function stringMatchText(m: StringMatch): string {
  switch (m.kind) {
    case "Presence":
      return "*";
    case "Prefix":
      return `${m.value}*`;
    case "Suffix":
      return `*${m.value}`;
    case "Exact":
      return m.value;
  }
}

const PORT = /^[0-9]{1,5}$/;

/** Istio's ValidatePorts: a decimal in 0..65535. */
export function parsePortText(v: string): number | undefined {
  if (!PORT.test(v)) return undefined;
  const n = Number(v);
  return n <= 65535 ? n : undefined;
}

/** Istio's CheckServiceAccount for one value: `sa` or `ns/sa`, no wildcard, <= 320 chars. */
export function serviceAccountProblem(v: string): string | undefined {
  if (v === "") return "expected a service account (`sa` or `namespace/sa`), got an empty string";
  if (v.includes("*")) return `wildcards are not allowed in service accounts, got ${JSON.stringify(v)}`;
  if (v.length > 320) return `a service account is at most 320 characters, got ${v.length}`;
  const parts = v.split("/");
  if (parts.length > 2 || parts.some((p) => p === "")) {
    return `expected a service account (\`sa\` or \`namespace/sa\`), got ${JSON.stringify(v)}`;
  }
  return undefined;
}

export const MATCH_ONE_TEMPLATE = "{*}";
export const MATCH_ANY_TEMPLATE = "{**}";
const VALID_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

export function containsPathTemplate(v: string): boolean {
  return v.includes(MATCH_ONE_TEMPLATE) || v.includes(MATCH_ANY_TEMPLATE);
}

/** Istio's CheckValidPathTemplate for one path; undefined when valid. */
export function pathTemplateProblem(path: string): string | undefined {
  const hasTemplate = containsPathTemplate(path);
  let sawAny = false;
  for (const glob of path.replace(/^\/+|\/+$/g, "").split("/")) {
    if ((glob === MATCH_ONE_TEMPLATE || glob === MATCH_ANY_TEMPLATE) && sawAny) {
      return `invalid path template ${JSON.stringify(path)}: {**} must be the last operator`;
    }
    if (glob === MATCH_ONE_TEMPLATE) continue;
    if (glob === MATCH_ANY_TEMPLATE) {
      sawAny = true;
      continue;
    }
    if (glob.includes("{") || glob.includes("}")) {
      return `invalid path template ${JSON.stringify(path)}: '{' or '}' outside a {*} or {**} operator`;
    }
    if (hasTemplate && !VALID_LITERAL.test(glob)) {
      return `invalid path template ${JSON.stringify(path)}: segment ${JSON.stringify(glob)} is not a valid literal`;
    }
  }
  return undefined;
}

/** Compiles a validated template: `{*}` is one non-empty segment, `{**}` anything after. */
export function pathTemplateRegExp(template: string): RegExp {
  let re = "^";
  for (let i = 0; i < template.length; ) {
    if (template.startsWith(MATCH_ANY_TEMPLATE, i)) {
      re += ".*";
      i += MATCH_ANY_TEMPLATE.length;
    } else if (template.startsWith(MATCH_ONE_TEMPLATE, i)) {
      re += "[^/]+";
      i += MATCH_ONE_TEMPLATE.length;
    } else {
      re += template[i]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      i++;
    }
  }
  return new RegExp(`${re}$`);
}

// ---- `when` keys ---------------------------------------------------------------------------

/** The keys ztunnel can evaluate (istiod's l4WhenAttributes plus connection.sni). */
export const L4_WHEN_KEYS: ReadonlySet<string> = new Set([
  "source.ip",
  "source.namespace",
  "source.principal",
  "destination.ip",
  "destination.port",
  "connection.sni",
]);

export type WhenValueKind = "string" | "cidr" | "port" | "serviceAccount";

export interface WhenKey {
  readonly attribute: PolicyAttribute;
  readonly valueKind: WhenValueKind;
  readonly l7: boolean;
}

/** `a[b]` (and `a[b][c]` for claims): the bracketed name, or undefined when malformed. */
function bracketed(key: string, prefix: string): string | undefined {
  const rest = key.slice(prefix.length);
  if (!rest.startsWith("[") || !rest.endsWith("]") || rest.length < 3) return undefined;
  return rest.slice(1, -1);
}

/**
 * Resolves a condition key as Istio's ValidateAttribute does; a string is the problem. Keys Istio
 * accepts that this engine cannot evaluate (experimental.envoy.filters.*) are rejected here so an
 * operator learns it at load time rather than from a silent mismatch.
 */
export function resolveWhenKey(key: string): WhenKey | string {
  const l7 = !L4_WHEN_KEYS.has(key);
  switch (key) {
    case "source.ip":
      return { attribute: "source.ip", valueKind: "cidr", l7 };
    case "remote.ip":
      return { attribute: "remote.ip", valueKind: "cidr", l7 };
    case "source.namespace":
      return { attribute: "source.namespace", valueKind: "string", l7 };
    case "source.principal":
      return { attribute: "source.principal", valueKind: "string", l7 };
    case "source.serviceAccount":
      return { attribute: "source.serviceAccount", valueKind: "serviceAccount", l7 };
    case "request.auth.principal":
      return { attribute: "request.auth.principal", valueKind: "string", l7 };
    case "request.auth.audiences":
      return { attribute: "request.auth.audiences", valueKind: "string", l7 };
    case "request.auth.presenter":
      return { attribute: "request.auth.presenter", valueKind: "string", l7 };
    case "destination.ip":
      return { attribute: "destination.ip", valueKind: "cidr", l7 };
    case "destination.port":
      return { attribute: "destination.port", valueKind: "port", l7 };
    case "connection.sni":
      return { attribute: "connection.sni", valueKind: "string", l7 };
    case "destination.namespace":
      return `attribute ${key} is replaced by metadata.namespace`;
    case "destination.name":
    case "destination.user":
      return `deprecated attribute ${key}: only supported in v1alpha1`;
  }
  for (const prefix of ["request.headers", "request.experimental.inline.headers"]) {
    if (key.startsWith(prefix) && key[prefix.length] === "[") {
      const name = bracketed(key, prefix);
      if (name === undefined || name.includes("[") || name.includes("]")) {
        return `bad key ${JSON.stringify(key)}: expected ${prefix}[<header name>]`;
      }
      return { attribute: `request.headers[${name.toLowerCase()}]`, valueKind: "string", l7: true };
    }
  }
  if (key.startsWith("request.auth.claims")) {
    const name = bracketed(key, "request.auth.claims");
    if (name === undefined) return `bad key ${JSON.stringify(key)}: expected request.auth.claims[<claim>]`;
    return { attribute: `request.auth.claims[${name}]`, valueKind: "string", l7: true };
  }
  if (key.startsWith("destination.labels")) return `attribute ${key} is replaced by the workload selector`;
  if (key.startsWith("experimental.envoy.filters.")) {
    return `attribute ${key} (Envoy filter metadata) is not supported by this mesh`;
  }
  return `unknown attribute ${JSON.stringify(key)}`;
}

/** `request.auth.claims[a][b]` -> ["a", "b"] (Istio's nested claim syntax). */
export function claimPath(attribute: string): readonly string[] {
  const inner = attribute.slice("request.auth.claims[".length, -1);
  return inner.split("][");
}

export function makeCondition(
  attribute: PolicyAttribute,
  field: string,
  values: readonly ConditionValue[],
  notValues: readonly ConditionValue[],
  l7: boolean,
): PolicyCondition {
  return Object.freeze({ attribute, field, values: Object.freeze([...values]), notValues: Object.freeze([...notValues]), l7 });
}
