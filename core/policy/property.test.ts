// Property test: random Kubernetes AuthorizationPolicies and random connections/requests; the
// engine must agree with a slow reference evaluator written here from Istio's documented rules
// (authorization-policy reference: "Rule", "Source", "Operation", "Condition", and the ALLOW/DENY
// evaluation order) plus the ztunnel rules for HTTP attributes and missing policies.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { cidrContains, parseCidr, type Workload } from "../config/index.ts";
import { parseAuthorizationPolicies, PolicyEngine, type RequestAttributes } from "./index.ts";
import { workload } from "./test-fixtures.ts";

// ---- the raw Kubernetes shape we generate -------------------------------------------------

interface Source {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
}
interface Operation {
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
  hosts?: string[];
  notHosts?: string[];
}
interface Condition {
  key: string;
  values?: string[];
  notValues?: string[];
}
interface Rule {
  from?: { source: Source }[];
  to?: { operation: Operation }[];
  when?: Condition[];
}
interface RawPolicy {
  name: string;
  namespace: string;
  dryRun: boolean;
  action: "ALLOW" | "DENY" | "AUDIT";
  selector?: Record<string, string>;
  rules: Rule[];
}

const ROOT = "istio-system";
const NAMESPACES = ["default", "prod", ROOT];
const SAS = ["a", "b"];
const TDS = ["cluster.local", "td2"];
const IPS = ["10.0.0.1", "10.0.1.2", "10.1.0.9", "192.168.1.1", "2001:db8::1", "2001:db8:1::5", "fd00::1"];
const CIDRS = ["10.0.0.0/8", "10.0.1.0/24", "10.0.0.1", "192.168.0.0/16", "2001:db8::/32", "2001:db8::/48", "fd00::1/128", "0.0.0.0/0"];
const PORTS = [80, 8080, 9090];
const PRINCIPAL_PATTERNS = [
  "cluster.local/ns/prod/sa/a",
  "td2/ns/default/sa/b",
  "cluster.local/ns/prod/*",
  "*/sa/a",
  "td2/*",
  "*",
];
const NS_PATTERNS = ["default", "prod", "pro*", "*ult", "*"];
const SA_VALUES = ["a", "prod/b", "default/a"];
const METHODS = ["GET", "POST"];
const PATHS = ["/a", "/a/b", "/b", "/a/c?x=1"];
const PATH_PATTERNS = ["/a", "/a/*", "*/b", "/a/{*}", "*"];
const HOSTS = ["echo.local", "Echo.Local:8080", "x.example.com"];
const HOST_PATTERNS = ["echo.local", "*.example.com", "echo*", "*"];
const HEADER_VALUES = ["bob", "alice", ""];
const HEADER_PATTERNS = ["bob", "al*", "*"];
const SNIS = ["api.example.com", "other.org"];
const SNI_PATTERNS = ["*.example.com", "other.org", "*"];
const APPS = ["echo", "other"];

const sub = <T>(xs: readonly T[]) => fc.subarray([...xs], { minLength: 1, maxLength: 2 });
/** Present with probability 1/(1+absentWeight): sparse fields keep random rules matchable. */
const opt = <T>(a: fc.Arbitrary<T>, absentWeight = 1) =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: absentWeight }, { arbitrary: a, weight: 1 });
const sparse = <T>(a: fc.Arbitrary<T>) => opt(a, 4);

const sourceArb: fc.Arbitrary<Source> = fc
  .record({
    principals: sparse(sub(PRINCIPAL_PATTERNS)),
    notPrincipals: sparse(sub(PRINCIPAL_PATTERNS)),
    namespaces: sparse(sub(NS_PATTERNS)),
    notNamespaces: sparse(sub(NS_PATTERNS)),
    serviceAccounts: sparse(sub(SA_VALUES)),
    notServiceAccounts: sparse(sub(SA_VALUES)),
    ipBlocks: sparse(sub(CIDRS)),
    notIpBlocks: sparse(sub(CIDRS)),
    remoteIpBlocks: sparse(sub(CIDRS)),
    notRemoteIpBlocks: sparse(sub(CIDRS)),
  })
  .map((s) => {
    // Istio forbids serviceAccounts together with principals/namespaces: keep one side.
    if ((s.serviceAccounts || s.notServiceAccounts) && (s.principals || s.notPrincipals || s.namespaces || s.notNamespaces)) {
      return { ...s, serviceAccounts: undefined, notServiceAccounts: undefined };
    }
    return s;
  })
  .map(clean)
  .filter((s) => Object.keys(s).length > 0);

const operationArb: fc.Arbitrary<Operation> = fc
  .record({
    ports: sparse(sub(PORTS.map(String))),
    notPorts: sparse(sub(PORTS.map(String))),
    methods: sparse(sub(METHODS)),
    notMethods: sparse(sub(METHODS)),
    paths: sparse(sub(PATH_PATTERNS)),
    notPaths: sparse(sub(PATH_PATTERNS)),
    hosts: sparse(sub(HOST_PATTERNS)),
    notHosts: sparse(sub(HOST_PATTERNS)),
  })
  .map(clean)
  .filter((o) => Object.keys(o).length > 0);

const WHEN_VALUES: Record<string, readonly string[]> = {
  "source.ip": CIDRS,
  "destination.ip": CIDRS,
  "remote.ip": CIDRS,
  "destination.port": PORTS.map(String),
  "source.namespace": NS_PATTERNS,
  "source.principal": PRINCIPAL_PATTERNS,
  "connection.sni": SNI_PATTERNS,
  "request.headers[x-user]": HEADER_PATTERNS,
};

const conditionArb: fc.Arbitrary<Condition> = fc
  .constantFrom(...Object.keys(WHEN_VALUES))
  .chain((key) =>
    fc
      .record({ key: fc.constant(key), values: opt(sub(WHEN_VALUES[key]!)), notValues: opt(sub(WHEN_VALUES[key]!)) })
      .filter((c) => c.values !== undefined || c.notValues !== undefined),
  )
  .map(clean);

const ruleArb: fc.Arbitrary<Rule> = fc
  .record({
    from: opt(fc.array(sourceArb.map((source) => ({ source })), { minLength: 1, maxLength: 2 })),
    to: opt(fc.array(operationArb.map((operation) => ({ operation })), { minLength: 1, maxLength: 2 })),
    when: opt(fc.array(conditionArb, { minLength: 1, maxLength: 2 })),
  })
  .map(clean);

const policyArb = (i: number): fc.Arbitrary<RawPolicy> =>
  fc
    .record({
      namespace: fc.constantFrom(...NAMESPACES),
      dryRun: fc.boolean(),
      action: fc.constantFrom("ALLOW" as const, "DENY" as const, "AUDIT" as const),
      selector: opt(fc.record({ app: fc.constantFrom(...APPS) })),
      rules: fc.array(ruleArb, { minLength: 0, maxLength: 3 }),
    })
    .map((p) => ({ ...p, name: `p${i}`, rules: p.action === "DENY" && p.rules.length === 0 ? [{}] : p.rules }));

const policiesArb = fc
  .integer({ min: 0, max: 6 })
  .chain((n) => (n === 0 ? fc.constant([] as RawPolicy[]) : fc.tuple(...Array.from({ length: n }, (_, i) => policyArb(i)))));

function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function toYaml(ps: readonly RawPolicy[]): string {
  return ps
    .map((p) =>
      stringify({
        apiVersion: "security.istio.io/v1",
        kind: "AuthorizationPolicy",
        metadata: { name: p.name, namespace: p.namespace, ...(p.dryRun ? { annotations: { "istio.io/dry-run": "true" } } : {}) },
        spec: { action: p.action, ...(p.selector ? { selector: { matchLabels: p.selector } } : {}), rules: p.rules },
      }),
    )
    .join("---\n");
}

// ---- connections -------------------------------------------------------------------------

const requestArb: fc.Arbitrary<RequestAttributes> = fc
  .record({
    sourceIp: fc.constantFrom(...IPS),
    identity: opt(fc.tuple(fc.constantFrom(...TDS), fc.constantFrom(...NAMESPACES, "ops"), fc.constantFrom(...SAS))),
    destinationIp: fc.constantFrom(...IPS),
    destinationPort: fc.constantFrom(...PORTS),
    sni: opt(fc.constantFrom(...SNIS)),
    method: fc.constantFrom(...METHODS),
    path: fc.constantFrom(...PATHS),
    host: fc.constantFrom(...HOSTS),
    user: opt(fc.constantFrom(...HEADER_VALUES)),
    remoteIp: opt(fc.constantFrom(...IPS)),
  })
  .map((r) => ({
    sourceIp: r.sourceIp,
    sourcePrincipal: r.identity ? `spiffe://${r.identity[0]}/ns/${r.identity[1]}/sa/${r.identity[2]}` : undefined,
    destinationIp: r.destinationIp,
    destinationPort: r.destinationPort,
    sni: r.sni,
    method: r.method,
    path: r.path,
    host: r.host,
    headers: new Headers(r.user === undefined ? {} : { "X-User": r.user }),
    remoteIp: r.remoteIp,
  }));

const workloadArb = fc
  .record({
    namespace: fc.constantFrom(...NAMESPACES),
    app: fc.constantFrom(...APPS),
    refs: fc.subarray(["default/p0", "prod/p1", "ghost/missing"], { maxLength: 1 }),
  })
  .map((w) => workload({ namespace: w.namespace, labels: { app: w.app }, authorizationPolicies: w.refs }));

// ---- the reference evaluator ---------------------------------------------------------------

/** Istio: "*" presence (non-empty), "*x" suffix, "x*" prefix, else exact. */
function refString(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (pattern === "*") return value !== "";
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  return value === pattern;
}

function refIp(block: string, ip: string): boolean {
  return cidrContains(parseCidr(block)!, ip);
}

/** Path patterns compare the path without its query; `{*}` is exactly one non-empty segment. */
function refPath(pattern: string, path: string): boolean {
  const p = path.split("?")[0]!;
  if (pattern.includes("{*}")) {
    const ps = pattern.split("/");
    const xs = p.split("/");
    return ps.length === xs.length && ps.every((seg, i) => (seg === "{*}" ? xs[i] !== "" : seg === xs[i]));
  }
  return refString(pattern, p);
}

/** Hosts are case-insensitive; a pattern without a port ignores the request's port. */
function refHost(pattern: string, host: string): boolean {
  const h = host.toLowerCase().split(":")[0]!;
  return refString(pattern.toLowerCase(), h);
}

interface Peer {
  principal?: string; // without spiffe://
  namespace?: string;
  sa?: string;
}

function peerOf(r: RequestAttributes): Peer {
  if (!r.sourcePrincipal) return {};
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(r.sourcePrincipal)!;
  return { principal: r.sourcePrincipal.slice("spiffe://".length), namespace: m[2], sa: m[3] };
}

/** values OR'd (absent: no constraint) and none of notValues. */
function field(values: readonly string[] | undefined, notValues: readonly string[] | undefined, pred: (v: string) => boolean) {
  return (values === undefined || values.some(pred)) && !(notValues ?? []).some(pred);
}

type Layer = "l4" | "l7";
/** What the rule-level check says about an L7 field: its real value (l7) or the ztunnel rule. */
type L7Verdict = "evaluate" | "ignore" | "fail";

function l7Verdict(layer: Layer, action: RawPolicy["action"]): L7Verdict {
  if (layer === "l7") return "evaluate";
  // ztunnel: ALLOW (and AUDIT) drop a rule with HTTP attributes; DENY ignores them.
  return action === "DENY" ? "ignore" : "fail";
}

function refSource(s: Source, r: RequestAttributes, peer: Peer, ns: string, v: L7Verdict): boolean {
  const sa = (x: string) => {
    const [n, a] = x.includes("/") ? x.split("/") : [ns, x];
    return peer.namespace === n && peer.sa === a;
  };
  const l4 =
    field(s.principals, s.notPrincipals, (p) => refString(p, peer.principal)) &&
    field(s.namespaces, s.notNamespaces, (p) => refString(p, peer.namespace)) &&
    field(s.serviceAccounts, s.notServiceAccounts, sa) &&
    field(s.ipBlocks, s.notIpBlocks, (b) => refIp(b, r.sourceIp));
  const hasL7 = s.remoteIpBlocks !== undefined || s.notRemoteIpBlocks !== undefined;
  if (!hasL7 || v === "ignore") return l4;
  if (v === "fail") return false;
  return l4 && field(s.remoteIpBlocks, s.notRemoteIpBlocks, (b) => refIp(b, r.remoteIp ?? r.sourceIp));
}

function refOperation(o: Operation, r: RequestAttributes, v: L7Verdict): boolean {
  const l4 = field(o.ports, o.notPorts, (p) => Number(p) === r.destinationPort);
  const hasL7 = [o.methods, o.notMethods, o.paths, o.notPaths, o.hosts, o.notHosts].some((x) => x !== undefined);
  if (!hasL7 || v === "ignore") return l4;
  if (v === "fail") return false;
  return (
    l4 &&
    field(o.methods, o.notMethods, (m) => refString(m, r.method)) &&
    field(o.paths, o.notPaths, (p) => refPath(p, r.path)) &&
    field(o.hosts, o.notHosts, (h) => refHost(h, r.host))
  );
}

function refCondition(c: Condition, r: RequestAttributes, peer: Peer, v: L7Verdict): boolean {
  const test = (pred: (x: string) => boolean) => field(c.values, c.notValues, pred);
  switch (c.key) {
    case "source.ip":
      return test((b) => refIp(b, r.sourceIp));
    case "destination.ip":
      return test((b) => refIp(b, r.destinationIp));
    case "destination.port":
      return test((p) => Number(p) === r.destinationPort);
    case "source.namespace":
      return test((p) => refString(p, peer.namespace));
    case "source.principal":
      return test((p) => refString(p, peer.principal));
    case "connection.sni":
      return test((p) => refString(p, r.sni));
  }
  // HTTP attributes.
  if (v === "ignore") return true;
  if (v === "fail") return false;
  if (c.key === "remote.ip") return test((b) => refIp(b, r.remoteIp ?? r.sourceIp));
  if (c.key === "request.headers[x-user]") {
    const h = r.headers.get("x-user") ?? undefined;
    // A header "*" only needs the header to be present (Envoy present_match).
    return test((p) => (p === "*" ? h !== undefined : refString(p, h)));
  }
  throw new Error(`reference: unhandled key ${c.key}`);
}

const L4_KEYS = ["source.ip", "destination.ip", "destination.port", "source.namespace", "source.principal", "connection.sni"];

function ruleHasL7(rule: Rule): boolean {
  return (
    (rule.from ?? []).some((f) => f.source.remoteIpBlocks !== undefined || f.source.notRemoteIpBlocks !== undefined) ||
    (rule.to ?? []).some((t) => ["methods", "notMethods", "paths", "notPaths", "hosts", "notHosts"].some((k) => k in t.operation)) ||
    (rule.when ?? []).some((c) => !L4_KEYS.includes(c.key))
  );
}

function refRule(rule: Rule, p: RawPolicy, r: RequestAttributes, layer: Layer): boolean {
  const peer = peerOf(r);
  const v = l7Verdict(layer, p.action);
  // Istio drops an ALLOW rule with any HTTP attribute entirely at ztunnel.
  if (v === "fail" && ruleHasL7(rule)) return false;
  // from: any source; to: any operation; when: every condition. An empty rule matches.
  return (
    (rule.from === undefined || rule.from.some((f) => refSource(f.source, r, peer, p.namespace, v))) &&
    (rule.to === undefined || rule.to.some((t) => refOperation(t.operation, r, v))) &&
    (rule.when ?? []).every((c) => refCondition(c, r, peer, v))
  );
}

function refApplies(p: RawPolicy, w: Workload): boolean {
  const key = `${p.namespace}/${p.name}`;
  if (w.authorizationPolicies.includes(key)) return true;
  if (p.namespace !== ROOT && p.namespace !== w.namespace) return false;
  if (!p.selector) return true;
  return Object.entries(p.selector).every(([k, v]) => w.labels.get(k) === v);
}

function reference(ps: readonly RawPolicy[], w: Workload, r: RequestAttributes, layer: Layer) {
  const applicable = ps.filter((p) => refApplies(p, w));
  const matches = (p: RawPolicy) => p.rules.some((rule) => refRule(rule, p, r, layer));
  const audits = applicable
    .filter((p) => (p.dryRun || p.action === "AUDIT") && matches(p))
    .map((p) => `${p.namespace}/${p.name}`)
    .sort();
  const keys = new Set(ps.map((p) => `${p.namespace}/${p.name}`));
  if (w.authorizationPolicies.some((k) => !keys.has(k))) return { allowed: false, audits };
  const enforced = applicable.filter((p) => !p.dryRun && p.action !== "AUDIT");
  if (enforced.some((p) => p.action === "DENY" && matches(p))) return { allowed: false, audits };
  const allows = enforced.filter((p) => p.action === "ALLOW");
  if (allows.length === 0) return { allowed: true, audits };
  return { allowed: allows.some(matches), audits };
}

// ---- the property --------------------------------------------------------------------------

describe("engine agrees with the reference evaluator", () => {
  for (const layer of ["l4", "l7"] as const) {
    test(`random policies and ${layer === "l4" ? "connections (ztunnel)" : "requests (waypoint)"}`, () => {
      fc.assert(
        fc.property(policiesArb, fc.array(workloadArb, { minLength: 1, maxLength: 3 }), fc.array(requestArb, { minLength: 1, maxLength: 8 }), (raw, workloads, reqs) => {
          const engine = new PolicyEngine(parseAuthorizationPolicies(toYaml(raw), "random.yaml"));
          for (const w of workloads) {
            for (const r of reqs) {
              const d = layer === "l4" ? engine.evaluate(w, r) : engine.evaluate(w, r, "l7");
              const want = reference(raw, w, r, layer);
              const got = { allowed: d.allowed, audits: d.audits.map((a) => a.policy).sort() };
              if (got.allowed !== want.allowed || JSON.stringify(got.audits) !== JSON.stringify(want.audits)) {
                throw new Error(
                  `mismatch: engine ${JSON.stringify(got)} (${d.reason}) vs reference ${JSON.stringify(want)}\n` +
                    `workload ${w.namespace} ${JSON.stringify([...w.labels])} refs ${JSON.stringify(w.authorizationPolicies)}\n` +
                    `request ${JSON.stringify({ ...r, headers: Object.fromEntries((r.headers as Headers).entries()) })}\n${toYaml(raw)}`,
                );
              }
            }
          }
        }),
        { numRuns: 300 },
      );
    });
  }

  test("the generators reach every outcome", () => {
    // Guards against a vacuous property: each kind of decision occurs in a sample.
    const seen = new Set<string>();
    fc.assert(
      fc.property(policiesArb, workloadArb, requestArb, (raw, w, r) => {
        const d = new PolicyEngine(parseAuthorizationPolicies(toYaml(raw), "random.yaml")).evaluate(w, r, "l7");
        seen.add(d.allowed ? (d.policy ? "allowed-by-rule" : "allowed-no-allow") : d.policy ? "denied-by-rule" : "denied-no-match");
        if (d.audits.length > 0) seen.add("audited");
      }),
      { numRuns: 400, seed: 42 },
    );
    expect([...seen].sort()).toEqual(["allowed-by-rule", "allowed-no-allow", "audited", "denied-by-rule", "denied-no-match"]);
  });
});
