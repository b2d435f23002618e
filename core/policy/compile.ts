// Rule model -> predicates over one reusable evaluation context. L4 attributes are read from the
// context without allocating: the SPIFFE id is kept whole and principal, namespace and service
// account are compared as index ranges inside it; addresses are parsed into numeric slots.

import { AddressSlot, cidrHas, compileCidr, parseAddressInto, type CompiledCidr } from "./ip.ts";
import type {
  ConditionValue,
  L4Attributes,
  PolicyCondition,
  PolicyMatchSpec,
  PolicyRule,
  RequestAttributes,
  RequestAuth,
} from "./model.ts";
import { claimPath, pathTemplateRegExp } from "./values.ts";

export type Test = (c: EvalContext) => boolean;

const SPIFFE = "spiffe://";

/** Resolves `.`/`..` segments (RFC 3986 §5.2.4) after the forms Envoy canonicalizes (`\`, %2e). */
export function normalizeRequestPath(raw: string): string {
  let end = raw.length;
  const q = raw.indexOf("?");
  if (q >= 0) end = q;
  const h = raw.indexOf("#");
  if (h >= 0 && h < end) end = h;
  let p = end === raw.length ? raw : raw.slice(0, end);
  if (p.includes("\\")) p = p.replaceAll("\\", "/");
  if (p.includes("%2e") || p.includes("%2E")) p = p.replace(/%2e/gi, ".");
  // Only origin-form paths have segments to resolve (not `*` or an absolute URI).
  if (!p.startsWith("/") || !p.includes("/.")) return p;
  const out: string[] = [];
  const segs = p.split("/");
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === ".") {
      if (i === segs.length - 1) out.push("");
    } else if (s === "..") {
      out.pop();
      if (i === segs.length - 1) out.push("");
    } else {
      out.push(s);
    }
  }
  return `/${out.join("/")}`;
}

export class EvalContext {
  readonly src = new AddressSlot();
  readonly dst = new AddressSlot();
  readonly remote = new AddressSlot();
  /** 0: not parsed yet, 1: parsed, 2: not an address. */
  remoteState = 0;
  port = 0;
  /** Full SPIFFE id ("" when the peer has none). */
  id = "";
  hasId = false;
  /** Namespace and service account ranges inside `id` (valid when hasNsSa). */
  hasNsSa = false;
  nsStart = 0;
  nsEnd = 0;
  saStart = 0;
  saEnd = 0;
  sni: string | undefined = undefined;
  req: RequestAttributes | undefined = undefined;
  /** Lower-case host without port, lower-case full authority, normalized path (l7 only). */
  host = "";
  authority = "";
  path = "";

  /** Loads the L4 attributes; false when an address is not an IP (the caller denies). */
  setL4(a: L4Attributes): boolean {
    this.req = undefined;
    this.remoteState = 0;
    this.port = a.destinationPort;
    this.sni = a.sni;
    this.setIdentity(a.sourcePrincipal);
    return parseAddressInto(a.sourceIp, this.src) && parseAddressInto(a.destinationIp, this.dst);
  }

  setRequest(r: RequestAttributes): void {
    this.req = r;
    const authority = r.host.toLowerCase();
    this.authority = authority;
    this.host = stripPort(authority);
    this.path = normalizeRequestPath(r.path);
  }

  private setIdentity(id: string | undefined): void {
    this.hasNsSa = false;
    if (id === undefined || id.length <= SPIFFE.length || !id.startsWith(SPIFFE)) {
      this.id = "";
      this.hasId = false;
      return;
    }
    this.id = id;
    this.hasId = true;
    // spiffe://<td>/ns/<ns>/sa/<sa>, exactly (as ztunnel's Identity parses it).
    const tdEnd = id.indexOf("/", SPIFFE.length);
    if (tdEnd <= SPIFFE.length || !id.startsWith("/ns/", tdEnd)) return;
    const nsStart = tdEnd + 4;
    const nsEnd = id.indexOf("/", nsStart);
    if (nsEnd <= nsStart || !id.startsWith("/sa/", nsEnd)) return;
    const saStart = nsEnd + 4;
    if (saStart >= id.length || id.indexOf("/", saStart) >= 0) return;
    this.nsStart = nsStart;
    this.nsEnd = nsEnd;
    this.saStart = saStart;
    this.saEnd = id.length;
    this.hasNsSa = true;
  }

  remoteAddress(): AddressSlot | undefined {
    const text = this.req?.remoteIp;
    if (text === undefined) return this.src;
    if (this.remoteState === 0) this.remoteState = parseAddressInto(text, this.remote) ? 1 : 2;
    return this.remoteState === 1 ? this.remote : undefined;
  }
}

function stripPort(authority: string): string {
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    return close > 0 ? authority.slice(0, close + 1) : authority;
  }
  const colon = authority.lastIndexOf(":");
  return colon >= 0 && authority.indexOf(":") === colon ? authority.slice(0, colon) : authority;
}

// ---- string matching over a range, without slicing -------------------------------------------

const EXACT = 0;
const PREFIX = 1;
const SUFFIX = 2;
const PRESENCE = 3;

interface SM {
  readonly k: number;
  readonly v: string;
}

function toSM(v: ConditionValue): SM {
  switch (v.kind) {
    case "Exact":
      return { k: EXACT, v: v.value };
    case "Prefix":
      return { k: PREFIX, v: v.value };
    case "Suffix":
      return { k: SUFFIX, v: v.value };
    case "Presence":
      return { k: PRESENCE, v: "" };
    default:
      throw new Error(`internal: ${v.kind} is not a string match`);
  }
}

function rangeMatch(s: string, start: number, end: number, m: SM): boolean {
  const len = end - start;
  switch (m.k) {
    case EXACT:
      return len === m.v.length && s.startsWith(m.v, start);
    case PREFIX:
      return m.v.length <= len && s.startsWith(m.v, start);
    case SUFFIX:
      return m.v.length <= len && s.endsWith(m.v, end);
    default:
      return len > 0;
  }
}

function anyRange(list: readonly SM[], s: string, start: number, end: number): boolean {
  for (let i = 0; i < list.length; i++) if (rangeMatch(s, start, end, list[i]!)) return true;
  return false;
}

/** Positive list OR'd (empty: no constraint) AND none of the negative list. */
function both(pos: number, anyPos: boolean, anyNeg: boolean): boolean {
  return (pos === 0 || anyPos) && !anyNeg;
}

const TRUE: Test = () => true;

// ---- conditions -----------------------------------------------------------------------------

function cidrsOf(list: readonly ConditionValue[]): CompiledCidr[] {
  return list.map((v) => {
    if (v.kind !== "Cidr") throw new Error(`internal: ${v.kind} is not a CIDR`);
    const c = compileCidr(v.cidr);
    if (!c) throw new Error(`internal: invalid CIDR ${v.cidr}`);
    return c;
  });
}

function anyCidr(list: readonly CompiledCidr[], a: AddressSlot): boolean {
  for (let i = 0; i < list.length; i++) if (cidrHas(list[i]!, a)) return true;
  return false;
}

function addressTest(cond: PolicyCondition, pick: (c: EvalContext) => AddressSlot | undefined): Test {
  const pos = cidrsOf(cond.values);
  const neg = cidrsOf(cond.notValues);
  return (c) => {
    const a = pick(c);
    if (a === undefined) return pos.length === 0;
    return both(pos.length, anyCidr(pos, a), anyCidr(neg, a));
  };
}

/** A string attribute read per request (L7): undefined means absent (no value matches). */
function valueTest(cond: PolicyCondition, get: (c: EvalContext) => string | undefined, presence = false): Test {
  const pos = cond.values.map(toSM);
  const neg = cond.notValues.map(toSM);
  // Header presence (`*`) matches a present header even when empty, as Envoy's present_match does.
  const m = (list: readonly SM[], s: string) => {
    for (const x of list) if (presence && x.k === PRESENCE ? true : rangeMatch(s, 0, s.length, x)) return true;
    return false;
  };
  return (c) => {
    const s = get(c);
    if (s === undefined) return pos.length === 0;
    return both(pos.length, m(pos, s), m(neg, s));
  };
}

function listTest(cond: PolicyCondition, get: (c: EvalContext) => readonly string[] | undefined): Test {
  const pos = cond.values.map(toSM);
  const neg = cond.notValues.map(toSM);
  const m = (list: readonly SM[], values: readonly string[]) =>
    values.some((s) => list.some((x) => rangeMatch(s, 0, s.length, x)));
  return (c) => {
    const vs = get(c);
    if (vs === undefined || vs.length === 0) return pos.length === 0;
    return both(pos.length, m(pos, vs), m(neg, vs));
  };
}

function claimValues(auth: RequestAuth | undefined, path: readonly string[]): readonly string[] | undefined {
  let v: unknown = auth?.claims;
  for (const k of path) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  if (typeof v === "string") return [v];
  if (typeof v === "number" || typeof v === "boolean") return [String(v)];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  return undefined;
}

function pathTest(cond: PolicyCondition): Test {
  type PM = { sm?: SM; re?: RegExp };
  const compile = (v: ConditionValue): PM => (v.kind === "PathTemplate" ? { re: pathTemplateRegExp(v.template) } : { sm: toSM(v) });
  const pos = cond.values.map(compile);
  const neg = cond.notValues.map(compile);
  const m = (list: readonly PM[], s: string) => list.some((x) => (x.re ? x.re.test(s) : rangeMatch(s, 0, s.length, x.sm!)));
  return (c) => (c.req === undefined ? pos.length === 0 : both(pos.length, m(pos, c.path), m(neg, c.path)));
}

function hostTest(cond: PolicyCondition): Test {
  // A pattern with a port compares against the whole authority, others against the host alone.
  const compile = (v: ConditionValue) => {
    const sm = toSM(v);
    return { sm, withPort: sm.v.includes(":") && !sm.v.endsWith("]") };
  };
  const pos = cond.values.map(compile);
  const neg = cond.notValues.map(compile);
  const m = (list: typeof pos, c: EvalContext) =>
    list.some((x) => {
      const s = x.withPort ? c.authority : c.host;
      return rangeMatch(s, 0, s.length, x.sm);
    });
  return (c) => (c.req === undefined ? pos.length === 0 : both(pos.length, m(pos, c), m(neg, c)));
}

export function compileCondition(cond: PolicyCondition): Test {
  const a = cond.attribute;
  switch (a) {
    case "source.ip":
      return addressTest(cond, (c) => c.src);
    case "destination.ip":
      return addressTest(cond, (c) => c.dst);
    case "remote.ip":
      return addressTest(cond, (c) => c.remoteAddress());
    case "destination.port": {
      const pos = cond.values.map((v) => (v.kind === "Port" ? v.port : -1));
      const neg = cond.notValues.map((v) => (v.kind === "Port" ? v.port : -1));
      return (c) => both(pos.length, pos.includes(c.port), neg.includes(c.port));
    }
    case "source.principal": {
      const pos = cond.values.map(toSM);
      const neg = cond.notValues.map(toSM);
      // Without an identity nothing matches: positives fail, negatives pass (notPrincipals: ["*"]
      // is how STRICT mTLS is expressed).
      return (c) =>
        c.hasId
          ? both(pos.length, anyRange(pos, c.id, SPIFFE.length, c.id.length), anyRange(neg, c.id, SPIFFE.length, c.id.length))
          : pos.length === 0;
    }
    case "source.namespace": {
      const pos = cond.values.map(toSM);
      const neg = cond.notValues.map(toSM);
      return (c) =>
        c.hasNsSa ? both(pos.length, anyRange(pos, c.id, c.nsStart, c.nsEnd), anyRange(neg, c.id, c.nsStart, c.nsEnd)) : pos.length === 0;
    }
    case "source.serviceAccount": {
      const sa = (list: readonly ConditionValue[]) =>
        list.map((v) => {
          if (v.kind !== "ServiceAccount") throw new Error(`internal: ${v.kind} is not a service account`);
          return v;
        });
      const pos = sa(cond.values);
      const neg = sa(cond.notValues);
      const m = (list: typeof pos, c: EvalContext) => {
        for (const v of list) {
          if (
            c.nsEnd - c.nsStart === v.namespace.length &&
            c.id.startsWith(v.namespace, c.nsStart) &&
            c.saEnd - c.saStart === v.serviceAccount.length &&
            c.id.startsWith(v.serviceAccount, c.saStart)
          ) {
            return true;
          }
        }
        return false;
      };
      return (c) => (c.hasNsSa ? both(pos.length, m(pos, c), m(neg, c)) : pos.length === 0);
    }
    case "connection.sni":
      return valueTest(cond, (c) => c.sni);
    case "request.host":
      return hostTest(cond);
    case "request.method":
      return valueTest(cond, (c) => c.req?.method);
    case "request.path":
      return pathTest(cond);
    case "request.auth.principal":
      return valueTest(cond, (c) => c.req?.requestAuth?.principal);
    case "request.auth.presenter":
      return valueTest(cond, (c) => c.req?.requestAuth?.presenter);
    case "request.auth.audiences":
      return listTest(cond, (c) => c.req?.requestAuth?.audiences);
  }
  if (a.startsWith("request.headers[")) {
    const name = a.slice("request.headers[".length, -1);
    return valueTest(cond, (c) => c.req?.headers.get(name) ?? undefined, true);
  }
  if (a.startsWith("request.auth.claims[")) {
    const path = claimPath(a);
    return listTest(cond, (c) => claimValues(c.req?.requestAuth, path));
  }
  throw new Error(`internal: unknown attribute ${a}`);
}

// ---- matches, clauses, rules ----------------------------------------------------------------

function allOf(tests: readonly Test[]): Test {
  if (tests.length === 0) return TRUE;
  if (tests.length === 1) return tests[0]!;
  if (tests.length === 2) {
    const [a, b] = tests as [Test, Test];
    return (c) => a(c) && b(c);
  }
  return (c) => {
    for (let i = 0; i < tests.length; i++) if (!tests[i]!(c)) return false;
    return true;
  };
}

function anyOf(tests: readonly Test[]): Test {
  if (tests.length === 0) return TRUE; // an empty clause constrains nothing
  if (tests.length === 1) return tests[0]!;
  return (c) => {
    for (let i = 0; i < tests.length; i++) if (tests[i]!(c)) return true;
    return false;
  };
}

function compileMatch(m: PolicyMatchSpec): Test {
  return allOf(m.map(compileCondition));
}

function compileClauses(clauses: readonly (readonly PolicyMatchSpec[])[]): Test {
  return allOf(clauses.map((ms) => anyOf(ms.map(compileMatch))));
}

/** The rule with its HTTP conditions removed: what ztunnel enforces of a DENY rule. */
export function l4Projection(rule: PolicyRule): readonly (readonly PolicyMatchSpec[])[] {
  const out: PolicyMatchSpec[][] = [];
  for (const clause of rule.clauses) {
    const matches = clause.map((m) => m.filter((c) => !c.l7));
    // A match left without conditions matches everything, and so does its clause.
    if (clause.length > 0 && matches.some((m) => m.length === 0)) continue;
    out.push(matches);
  }
  return out;
}

export interface CompiledRule {
  /** All attributes (waypoint). */
  readonly full: Test;
  /** What ztunnel evaluates; undefined when the rule is dropped at L4. */
  readonly l4: Test | undefined;
}

const NEVER: Test = () => false;

export function compileRule(rule: PolicyRule, action: "ALLOW" | "DENY" | "AUDIT"): CompiledRule {
  if (rule.never !== undefined) return { full: NEVER, l4: undefined };
  const full = compileClauses(rule.clauses);
  if (!rule.clauses.some((cl) => cl.some((m) => m.some((c) => c.l7)))) return { full, l4: full };
  // ALLOW (and AUDIT, which only reports what surely matched) drop the rule; DENY keeps its L4 part.
  return { full, l4: action === "DENY" ? compileClauses(l4Projection(rule)) : undefined };
}
