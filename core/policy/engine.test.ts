import { describe, expect, test } from "bun:test";
import type { AuthorizationPolicy, PolicyMatch } from "../config/index.ts";
import { fromLocalConfig, parseAuthorizationPolicies, PolicyEngine, type CompiledPolicy, type RequestAuth } from "./index.ts";
import { conn, k8sDoc, request, spiffe, workload } from "./test-fixtures.ts";

function policies(...docs: string[]): CompiledPolicy[] {
  return parseAuthorizationPolicies(docs.join("---\n"), "test.yaml");
}

function engine(...docs: string[]): PolicyEngine {
  return new PolicyEngine(policies(...docs));
}

const W = workload({ name: "echo", namespace: "default", labels: { app: "echo", version: "v1" } });

describe("decision order", () => {
  test("no policies: allow", () => {
    const d = engine().evaluate(W, conn());
    expect(d.allowed).toBe(true);
    expect(d.reason).toBe("no ALLOW policy applies");
  });

  test("a matching DENY wins over a matching ALLOW", () => {
    const e = engine(
      k8sDoc("allow-all", "default", `rules: [{}]`),
      k8sDoc("deny-client", "default", `
        action: DENY
        rules:
        - from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]`),
    );
    const d = e.evaluate(W, conn());
    expect(d).toMatchObject({ allowed: false, policy: "default/deny-client", ruleIndex: 0 });
    expect(d.reason).toContain("explicitly denied by default/deny-client");
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("default", "other") })).allowed).toBe(true);
  });

  test("only DENY policies and none matches: allow", () => {
    const e = engine(k8sDoc("deny-ns", "default", `
      action: DENY
      rules: [{from: [{source: {namespaces: ["evil"]}}]}]`));
    expect(e.evaluate(W, conn()).allowed).toBe(true);
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("evil", "x") })).allowed).toBe(false);
  });

  test("ALLOW that matches allows; ALLOW that does not match denies", () => {
    const e = engine(k8sDoc("allow-client", "default", `
      rules: [{from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]}]`));
    expect(e.evaluate(W, conn())).toMatchObject({ allowed: true, policy: "default/allow-client", ruleIndex: 0 });
    const d = e.evaluate(W, conn({ sourcePrincipal: spiffe("default", "stranger") }));
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe("ALLOW policies apply, but none allowed");
    expect(d.policy).toBeUndefined();
  });

  test("the first matching rule index is reported", () => {
    const e = engine(k8sDoc("allow", "default", `
      rules:
      - from: [{source: {namespaces: ["other"]}}]
      - to: [{operation: {ports: ["8080"]}}]`));
    expect(e.evaluate(W, conn())).toMatchObject({ allowed: true, ruleIndex: 1 });
  });

  test("rules: [] in ALLOW allows nothing; rules: [{}] allows everything", () => {
    const nothing = engine(k8sDoc("allow-nothing", "default", `rules: []`));
    expect(nothing.evaluate(W, conn()).allowed).toBe(false);
    const bare = engine(k8sDoc("allow-nothing", "default", `{}`));
    expect(bare.evaluate(W, conn()).allowed).toBe(false);
    const everything = engine(k8sDoc("allow-all", "default", `rules: [{}]`));
    expect(everything.evaluate(W, conn({ sourcePrincipal: undefined, sourceIp: "192.168.9.9" })).allowed).toBe(true);
  });

  test("DENY with rules: [{}] denies everything", () => {
    const e = engine(k8sDoc("deny-all", "default", `
      action: DENY
      rules: [{}]`));
    expect(e.evaluate(W, conn()).allowed).toBe(false);
  });

  test("AUDIT never blocks but is reported (once per policy)", () => {
    const e = engine(
      k8sDoc("audit", "default", `
        action: AUDIT
        rules:
        - from: [{source: {namespaces: ["default"]}}]
        - to: [{operation: {ports: ["8080"]}}]`),
      k8sDoc("allow-other", "default", `rules: [{from: [{source: {namespaces: ["other"]}}]}]`),
    );
    const d = e.evaluate(W, conn());
    expect(d.allowed).toBe(false); // the ALLOW decides; AUDIT does not count as ALLOW
    expect(d.audits).toEqual([{ policy: "default/audit", ruleIndex: 0, action: "AUDIT", dryRun: false }]);
    const onlyAudit = engine(k8sDoc("audit", "default", `
      action: AUDIT
      rules: [{}]`));
    const d2 = onlyAudit.evaluate(W, conn());
    expect(d2.allowed).toBe(true);
    expect(d2.audits).toHaveLength(1);
    expect(onlyAudit.evaluate(W, conn({ sourcePrincipal: undefined })).audits).toHaveLength(1);
  });

  test("a non-IP address is denied", () => {
    const d = engine().evaluate(W, conn({ sourceIp: "not-an-ip" }));
    expect(d.allowed).toBe(false);
    expect(d.reason).toContain("not an IP");
  });
});

describe("fields", () => {
  const allow = (source: string) => engine(k8sDoc("p", "default", `rules: [{from: [{source: ${source}}]}]`));

  test("principals: exact, prefix, suffix, presence; compared without spiffe://", () => {
    const id = conn({ sourcePrincipal: spiffe("prod", "api") });
    expect(allow(`{principals: ["cluster.local/ns/prod/sa/api"]}`).evaluate(W, id).allowed).toBe(true);
    expect(allow(`{principals: ["cluster.local/ns/prod/*"]}`).evaluate(W, id).allowed).toBe(true);
    expect(allow(`{principals: ["*/sa/api"]}`).evaluate(W, id).allowed).toBe(true);
    expect(allow(`{principals: ["*"]}`).evaluate(W, id).allowed).toBe(true);
    expect(allow(`{principals: ["cluster.local/ns/prod/sa/ap"]}`).evaluate(W, id).allowed).toBe(false);
    expect(allow(`{principals: ["other.domain/*"]}`).evaluate(W, id).allowed).toBe(false);
  });

  test("a spiffe:// principal never matches and is flagged", () => {
    const ps = policies(k8sDoc("p", "default", `rules: [{from: [{source: {principals: ["spiffe://cluster.local/ns/prod/sa/api"]}}]}]`));
    expect(ps[0]!.warnings.join("\n")).toContain(`principals are written without "spiffe://"`);
    expect(new PolicyEngine(ps).evaluate(W, conn({ sourcePrincipal: spiffe("prod", "api") })).allowed).toBe(false);
  });

  test("notPrincipals", () => {
    const e = allow(`{notPrincipals: ["cluster.local/ns/default/sa/client"]}`);
    expect(e.evaluate(W, conn()).allowed).toBe(false);
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("default", "other") })).allowed).toBe(true);
  });

  test("namespaces vs principals: a namespace is read from the SPIFFE path", () => {
    const e = allow(`{namespaces: ["prod"]}`);
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("prod", "anything", "other-td.example") })).allowed).toBe(true);
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("prod2", "x") })).allowed).toBe(false);
    // A principal whose text contains "/ns/prod/" elsewhere is not in namespace prod.
    expect(e.evaluate(W, conn({ sourcePrincipal: "spiffe://td/ns/x/sa/y/ns/prod/sa/z" })).allowed).toBe(false);
    expect(allow(`{namespaces: ["pro*"]}`).evaluate(W, conn({ sourcePrincipal: spiffe("prod", "a") })).allowed).toBe(true);
    expect(allow(`{namespaces: ["*od"]}`).evaluate(W, conn({ sourcePrincipal: spiffe("prod", "a") })).allowed).toBe(true);
  });

  test("namespace patterns see only the namespace, not the SPIFFE id around it", () => {
    const id = conn({ sourcePrincipal: spiffe("ult", "x") });
    expect(allow(`{namespaces: ["*ult"]}`).evaluate(W, id).allowed).toBe(true);
    expect(allow(`{namespaces: ["*s/ult"]}`).evaluate(W, id).allowed).toBe(false);
    expect(allow(`{namespaces: ["ult/*"]}`).evaluate(W, id).allowed).toBe(false);
    expect(allow(`{principals: ["*//td"]}`).evaluate(W, conn({ sourcePrincipal: "spiffe://td" })).allowed).toBe(false);
  });

  test("notNamespaces", () => {
    const e = allow(`{notNamespaces: ["prod"]}`);
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("prod", "a") })).allowed).toBe(false);
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("dev", "a") })).allowed).toBe(true);
  });

  test("serviceAccounts and notServiceAccounts (bare name = policy namespace)", () => {
    const e = allow(`{serviceAccounts: ["client", "prod/api"]}`);
    expect(e.evaluate(W, conn()).allowed).toBe(true); // default/client
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("prod", "api") })).allowed).toBe(true);
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("prod", "client") })).allowed).toBe(false);
    expect(e.evaluate(W, conn({ sourcePrincipal: undefined })).allowed).toBe(false);
    const n = allow(`{notServiceAccounts: ["client"]}`);
    expect(n.evaluate(W, conn()).allowed).toBe(false);
    expect(n.evaluate(W, conn({ sourcePrincipal: spiffe("prod", "client") })).allowed).toBe(true);
  });

  test("ipBlocks and notIpBlocks, IPv4 and IPv6, single addresses and CIDRs", () => {
    const e = allow(`{ipBlocks: ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "fd00::1"], notIpBlocks: ["10.9.0.0/16", "2001:db8:dead::/48"]}`);
    const at = (ip: string) => e.evaluate(W, conn({ sourceIp: ip })).allowed;
    expect(at("10.1.2.3")).toBe(true);
    expect(at("10.9.2.3")).toBe(false);
    expect(at("11.0.0.1")).toBe(false);
    expect(at("192.168.1.7")).toBe(true);
    expect(at("192.168.1.8")).toBe(false);
    expect(at("2001:db8:1::5")).toBe(true);
    expect(at("2001:DB8:0:0:0:0:0:1")).toBe(true);
    expect(at("2001:db8:dead::1")).toBe(false);
    expect(at("2001:db9::1")).toBe(false);
    expect(at("fd00::1")).toBe(true);
    expect(at("fd00::2")).toBe(false);
    // An IPv4-mapped IPv6 source (dual-stack socket) is the IPv4 address.
    expect(at("::ffff:10.1.2.3")).toBe(true);
    // Families never cross.
    expect(allow(`{ipBlocks: ["::/0"]}`).evaluate(W, conn({ sourceIp: "10.0.0.1" })).allowed).toBe(false);
    expect(allow(`{ipBlocks: ["0.0.0.0/0"]}`).evaluate(W, conn({ sourceIp: "10.0.0.1" })).allowed).toBe(true);
  });

  test("host bits in a CIDR are ignored, as Istio does", () => {
    expect(allow(`{ipBlocks: ["10.1.2.3/8"]}`).evaluate(W, conn({ sourceIp: "10.200.0.1" })).allowed).toBe(true);
  });

  test("ports and notPorts (the target port)", () => {
    const e = engine(k8sDoc("p", "default", `rules: [{to: [{operation: {ports: ["8080", "9090"]}}]}]`));
    expect(e.evaluate(W, conn({ destinationPort: 8080 })).allowed).toBe(true);
    expect(e.evaluate(W, conn({ destinationPort: 80 })).allowed).toBe(false);
    const n = engine(k8sDoc("p", "default", `rules: [{to: [{operation: {notPorts: ["15000"]}}]}]`));
    expect(n.evaluate(W, conn({ destinationPort: 8080 })).allowed).toBe(true);
    expect(n.evaluate(W, conn({ destinationPort: 15000 })).allowed).toBe(false);
  });

  test("fields in a source AND; sources OR; from AND to AND when", () => {
    const e = engine(k8sDoc("p", "default", `
      rules:
      - from:
        - source: {namespaces: ["prod"], ipBlocks: ["10.0.0.0/8"]}
        - source: {principals: ["cluster.local/ns/ops/sa/admin"]}
        to: [{operation: {ports: ["8080"]}}]
        when: [{key: destination.ip, values: ["10.0.1.0/24"]}]`));
    const prod = spiffe("prod", "a");
    expect(e.evaluate(W, conn({ sourcePrincipal: prod })).allowed).toBe(true);
    expect(e.evaluate(W, conn({ sourcePrincipal: prod, sourceIp: "11.0.0.1" })).allowed).toBe(false);
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("ops", "admin"), sourceIp: "11.0.0.1" })).allowed).toBe(true);
    expect(e.evaluate(W, conn({ sourcePrincipal: prod, destinationPort: 9 })).allowed).toBe(false);
    expect(e.evaluate(W, conn({ sourcePrincipal: prod, destinationIp: "10.0.2.1" })).allowed).toBe(false);
  });

  test("when: L4 keys with values and notValues", () => {
    const one = (cond: string) => engine(k8sDoc("p", "default", `rules: [{when: [${cond}]}]`));
    expect(one(`{key: source.ip, values: ["10.0.0.0/24"]}`).evaluate(W, conn()).allowed).toBe(true);
    expect(one(`{key: source.ip, notValues: ["10.0.0.0/24"]}`).evaluate(W, conn()).allowed).toBe(false);
    expect(one(`{key: source.namespace, values: ["default"]}`).evaluate(W, conn()).allowed).toBe(true);
    expect(one(`{key: source.principal, values: ["*/sa/client"]}`).evaluate(W, conn()).allowed).toBe(true);
    expect(one(`{key: destination.port, values: ["8080"]}`).evaluate(W, conn()).allowed).toBe(true);
    expect(one(`{key: destination.port, notValues: ["8080"]}`).evaluate(W, conn()).allowed).toBe(false);
    expect(one(`{key: destination.ip, notValues: ["10.0.1.7"]}`).evaluate(W, conn()).allowed).toBe(false);
    const sni = one(`{key: connection.sni, values: ["*.example.com"]}`);
    expect(sni.evaluate(W, conn({ sni: "api.example.com" })).allowed).toBe(true);
    expect(sni.evaluate(W, conn({ sni: "api.example.org" })).allowed).toBe(false);
    expect(sni.evaluate(W, conn()).allowed).toBe(false);
  });
});

describe("plaintext (no mTLS identity)", () => {
  const plain = conn({ sourcePrincipal: undefined });

  test("principal and namespace conditions never match; ipBlocks still do", () => {
    for (const src of [`{principals: ["*"]}`, `{namespaces: ["*"]}`, `{principals: ["*client"]}`, `{serviceAccounts: ["client"]}`]) {
      expect(engine(k8sDoc("p", "default", `rules: [{from: [{source: ${src}}]}]`)).evaluate(W, plain).allowed).toBe(false);
    }
    expect(engine(k8sDoc("p", "default", `rules: [{from: [{source: {ipBlocks: ["10.0.0.0/8"]}}]}]`)).evaluate(W, plain).allowed).toBe(true);
  });

  test("notPrincipals: ['*'] in a DENY is STRICT mTLS: it denies plaintext only", () => {
    const strict = engine(k8sDoc("strict", "istio-system", `
      action: DENY
      rules: [{from: [{source: {notPrincipals: ["*"]}}]}]`));
    expect(strict.evaluate(W, plain).allowed).toBe(false);
    expect(strict.evaluate(W, conn()).allowed).toBe(true);
  });

  test("the not* forms of identity fields match a connection without identity", () => {
    const e = engine(k8sDoc("p", "default", `rules: [{from: [{source: {notNamespaces: ["prod"]}}]}]`));
    expect(e.evaluate(W, plain).allowed).toBe(true);
  });

  test("a principal that is not a spiffe:// URI counts as no identity", () => {
    const e = engine(k8sDoc("p", "default", `rules: [{from: [{source: {principals: ["*"]}}]}]`));
    expect(e.evaluate(W, conn({ sourcePrincipal: "cluster.local/ns/default/sa/client" })).allowed).toBe(false);
  });
});

describe("scopes", () => {
  const docs = [
    k8sDoc("mesh-deny-evil", "istio-system", `
      action: DENY
      rules: [{from: [{source: {namespaces: ["evil"]}}]}]`),
    k8sDoc("ns-allow-prod", "default", `rules: [{from: [{source: {namespaces: ["prod"]}}]}]`),
    k8sDoc("sel-allow-ops", "default", `
      selector: {matchLabels: {app: echo}}
      rules: [{from: [{source: {namespaces: ["ops"]}}]}]`),
    k8sDoc("sel-other", "default", `
      selector: {matchLabels: {app: other}}
      rules: [{from: [{source: {namespaces: ["other"]}}]}]`),
    k8sDoc("root-sel-allow-mon", "istio-system", `
      selector: {matchLabels: {version: v1}}
      rules: [{from: [{source: {namespaces: ["monitoring"]}}]}]`),
    k8sDoc("elsewhere", "team-b", `rules: [{from: [{source: {namespaces: ["b"]}}]}]`),
  ];

  test("mesh-wide + namespace-wide + selector (incl. root-namespace selector) layer", () => {
    const e = engine(...docs);
    const keys = e.applicable(W).policies.map((p) => p.key);
    expect(keys.sort()).toEqual(
      ["istio-system/mesh-deny-evil", "default/ns-allow-prod", "default/sel-allow-ops", "istio-system/root-sel-allow-mon"].sort(),
    );
    const from = (ns: string) => e.evaluate(W, conn({ sourcePrincipal: spiffe(ns, "x") })).allowed;
    expect(from("prod")).toBe(true);
    expect(from("ops")).toBe(true);
    expect(from("monitoring")).toBe(true);
    expect(from("other")).toBe(false);
    expect(from("evil")).toBe(false);
    // A workload in another namespace without matching labels: only the mesh-wide DENY applies.
    const other = workload({ namespace: "team-c", labels: { app: "x" } });
    expect(e.applicable(other).policies.map((p) => p.key)).toEqual(["istio-system/mesh-deny-evil"]);
    expect(e.evaluate(other, conn({ sourcePrincipal: spiffe("other", "x") })).allowed).toBe(true);
    expect(e.evaluate(other, conn({ sourcePrincipal: spiffe("evil", "x") })).allowed).toBe(false);
  });

  test("the root namespace is configurable", () => {
    const e = new PolicyEngine(policies(...docs), { rootNamespace: "mesh-root" });
    const keys = e.applicable(W).policies.map((p) => p.key);
    expect(keys).not.toContain("istio-system/mesh-deny-evil");
    expect(keys).not.toContain("istio-system/root-sel-allow-mon");
    const sys = workload({ namespace: "istio-system", labels: { version: "v1" } });
    expect(e.applicable(sys).policies.map((p) => p.key).sort()).toEqual(["istio-system/mesh-deny-evil", "istio-system/root-sel-allow-mon"]);
  });

  test("a workload's authorizationPolicies add selector policies by key", () => {
    const e = engine(...docs);
    const w = workload({ namespace: "team-c", authorizationPolicies: ["default/sel-other"] });
    expect(e.applicable(w).policies.map((p) => p.key)).toContain("default/sel-other");
    expect(e.evaluate(w, conn({ sourcePrincipal: spiffe("other", "x") })).allowed).toBe(true);
    expect(e.evaluate(w, conn({ sourcePrincipal: spiffe("prod", "x") })).allowed).toBe(false);
  });

  test("a referenced policy that is not loaded denies everything (fail closed)", () => {
    const msgs: string[] = [];
    const e = new PolicyEngine(policies(...docs), { onWarning: (m) => msgs.push(m) });
    const w = workload({ namespace: "team-c", authorizationPolicies: ["default/ghost"] });
    expect(e.applicable(w).missing).toEqual(["default/ghost"]);
    const d = e.evaluate(w, conn());
    expect(d.allowed).toBe(false);
    expect(d.reason).toContain("default/ghost");
    expect(d.warnings.join("\n")).toContain("not loaded");
    expect(msgs.some((m) => m.includes("default/ghost"))).toBe(true);
    expect(e.describeFor(w)).toContainEqual(expect.objectContaining({ key: "default/ghost", status: "missing" }));
  });

  test("an empty selector applies to the whole namespace (with a warning)", () => {
    const ps = policies(k8sDoc("p", "default", `
      selector: {}
      rules: [{from: [{source: {namespaces: ["prod"]}}]}]`));
    expect(ps[0]!.scope).toBe("Namespace");
    expect(ps[0]!.warnings.join()).toContain("without labels");
    expect(new PolicyEngine(ps).applicable(workload({ namespace: "default" })).policies).toHaveLength(1);
  });

  test("a workload object rebuilt with other labels is re-resolved; same selection is reused", () => {
    const e = engine(...docs);
    const a = workload({ uid: "u1", namespace: "default", labels: { app: "echo" } });
    expect(e.applicable(a).policies.map((p) => p.key)).toContain("default/sel-allow-ops");
    const b = workload({ uid: "u1", namespace: "default", labels: { app: "other" } });
    expect(e.applicable(b).policies.map((p) => p.key)).toContain("default/sel-other");
    expect(e.applicable(b).policies.map((p) => p.key)).not.toContain("default/sel-allow-ops");
    const c = workload({ uid: "u1", namespace: "default", labels: { app: "other" } });
    expect(e.applicable(c)).toBe(e.applicable(b));
  });

  test("duplicate policy keys are rejected", () => {
    const a = policies(k8sDoc("p", "default", `rules: [{}]`));
    expect(() => new PolicyEngine([...a, ...a])).toThrow("duplicate");
  });
});

describe("HTTP attributes at ztunnel (l4) and at the waypoint (l7)", () => {
  test("ALLOW: a rule with L7 fields is dropped at ztunnel, with a warning; the waypoint enforces it", () => {
    const ps = policies(k8sDoc("allow-get", "default", `
      rules:
      - to: [{operation: {methods: ["GET"], ports: ["8080"]}}]
      - from: [{source: {namespaces: ["ops"]}}]`));
    expect(ps[0]!.warnings.join("\n")).toContain("spec.rules[0] uses HTTP attributes (methods); ztunnel drops the rule");
    const e = new PolicyEngine(ps);
    const d = e.evaluate(W, conn());
    expect(d.allowed).toBe(false);
    expect(d.warnings.join("\n")).toContain("default/allow-get rule 0 uses HTTP attributes (methods) and is dropped at ztunnel");
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("ops", "x") })).allowed).toBe(true);
    expect(e.evaluate(W, request({ method: "GET" }), "l7")).toMatchObject({ allowed: true, ruleIndex: 0, warnings: [] });
    expect(e.evaluate(W, request({ method: "POST" }), "l7").allowed).toBe(false);
  });

  test("ALLOW whose every rule uses L7 fields allows nothing at ztunnel", () => {
    const e = engine(k8sDoc("allow-get", "default", `rules: [{to: [{operation: {methods: ["GET"]}}]}]`));
    expect(e.evaluate(W, conn()).allowed).toBe(false);
  });

  test("DENY: the L4 part is enforced at ztunnel (more restrictive), with a warning", () => {
    const e = engine(k8sDoc("deny-admin", "default", `
      action: DENY
      rules:
      - from: [{source: {namespaces: ["dev"]}}]
        to: [{operation: {paths: ["/admin*"]}}]
        when: [{key: "request.headers[x-debug]", values: ["1"]}]`));
    const dev = conn({ sourcePrincipal: spiffe("dev", "x") });
    const d = e.evaluate(W, dev);
    expect(d.allowed).toBe(false);
    expect(d.warnings.join("\n")).toContain("enforced without its HTTP attributes (paths, request.headers[x-debug])");
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("prod", "x") })).allowed).toBe(true);
    // At the waypoint the whole rule applies.
    const req = (path: string, debug?: string) =>
      e.evaluate(W, request({ sourcePrincipal: spiffe("dev", "x"), path, headerMap: debug ? { "X-Debug": debug } : {} }), "l7").allowed;
    expect(req("/admin/x", "1")).toBe(false);
    expect(req("/admin/x")).toBe(true);
    expect(req("/public", "1")).toBe(true);
  });

  test("DENY with an L7-only operation keeps its other clauses at ztunnel", () => {
    const e = engine(k8sDoc("deny", "default", `
      action: DENY
      rules: [{from: [{source: {ipBlocks: ["10.0.0.0/24"]}}], to: [{operation: {methods: ["DELETE"]}}]}]`));
    expect(e.evaluate(W, conn({ sourceIp: "10.0.0.9" })).allowed).toBe(false);
    expect(e.evaluate(W, conn({ sourceIp: "10.0.9.9" })).allowed).toBe(true);
  });

  test("methods, paths (query ignored, dot segments resolved, templates), hosts (case, port)", () => {
    const e = engine(k8sDoc("p", "default", `
      rules:
      - to:
        - operation:
            methods: ["GET", "HEAD"]
            paths: ["/api/*", "/items/{*}/detail", "/files/{**}"]
            notPaths: ["/api/private*"]
            hosts: ["Echo.Default.svc.cluster.local", "*.example.com"]`));
    const ok = (over: Parameters<typeof request>[0]) => e.evaluate(W, request(over), "l7").allowed;
    expect(ok({ path: "/api/x?y=1" })).toBe(true);
    expect(ok({ path: "/api/private/x" })).toBe(false);
    expect(ok({ path: "/api/../api/private/x" })).toBe(false);
    expect(ok({ path: "/api/%2e%2e/api/private" })).toBe(false);
    expect(ok({ path: "/items/42/detail" })).toBe(true);
    expect(ok({ path: "/items/4/2/detail" })).toBe(false);
    expect(ok({ path: "/files/a/b/c" })).toBe(true);
    expect(ok({ path: "/other" })).toBe(false);
    expect(ok({ method: "POST", path: "/api/x" })).toBe(false);
    expect(ok({ method: "HEAD", path: "/api/x", host: "ECHO.default.svc.cluster.local:8080" })).toBe(true);
    expect(ok({ path: "/api/x", host: "a.example.com" })).toBe(true);
    expect(ok({ path: "/api/x", host: "example.org" })).toBe(false);
  });

  test("request headers and request.auth attributes", () => {
    const e = engine(k8sDoc("p", "default", `
      rules:
      - when:
        - {key: "request.headers[X-Tenant]", values: ["acme-*"]}
        - {key: "request.auth.claims[groups]", values: ["admins"]}
        - {key: request.auth.principal, notValues: ["*/banned"]}`));
    const ok = (headerMap: Record<string, string>, requestAuth?: RequestAuth) =>
      e.evaluate(W, request({ headerMap, requestAuth }), "l7").allowed;
    const auth = { principal: "issuer/alice", claims: { groups: ["dev", "admins"] } };
    expect(ok({ "x-tenant": "acme-1" }, auth)).toBe(true);
    expect(ok({ "x-tenant": "other" }, auth)).toBe(false);
    expect(ok({}, auth)).toBe(false);
    expect(ok({ "x-tenant": "acme-1" })).toBe(false);
    expect(ok({ "x-tenant": "acme-1" }, { ...auth, principal: "issuer/banned" })).toBe(false);
  });

  test("remoteIpBlocks use the client address, defaulting to the peer", () => {
    const e = engine(k8sDoc("p", "default", `rules: [{from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]}]`));
    expect(e.evaluate(W, request({ remoteIp: "203.0.113.9" }), "l7").allowed).toBe(true);
    expect(e.evaluate(W, request({ sourceIp: "203.0.113.9" }), "l7").allowed).toBe(true);
    expect(e.evaluate(W, request({ remoteIp: "198.51.100.1" }), "l7").allowed).toBe(false);
  });

  test("targetRef policies are never applied at ztunnel, only for their targets at the waypoint", () => {
    const ps = policies(k8sDoc("wp", "default", `
      targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
      action: DENY
      rules: [{to: [{operation: {methods: ["DELETE"]}}]}]`));
    expect(ps[0]!.targetRefs).toEqual([{ group: "gateway.networking.k8s.io", kind: "Gateway", name: "waypoint", namespace: "default" }]);
    const e = new PolicyEngine(ps);
    expect(e.applicable(W).policies).toHaveLength(0);
    expect(e.evaluate(W, conn()).allowed).toBe(true);
    const del = request({ method: "DELETE" });
    expect(e.evaluate(W, del, "l7").allowed).toBe(true);
    expect(e.evaluate(W, del, "l7", [{ kind: "Gateway", namespace: "default", name: "waypoint" }]).allowed).toBe(false);
    expect(e.evaluate(W, del, "l7", [{ kind: "Gateway", namespace: "other", name: "waypoint" }]).allowed).toBe(true);
  });

  test("l7 without request attributes is denied", () => {
    const e = engine();
    expect(e.evaluate(W, conn(), "l7").allowed).toBe(false);
  });
});

describe("ztunnel local-config policies (fromLocalConfig)", () => {
  const empty: PolicyMatch = {
    namespaces: [],
    notNamespaces: [],
    principals: [],
    notPrincipals: [],
    serviceAccounts: [],
    notServiceAccounts: [],
    sourceIps: [],
    notSourceIps: [],
    destinationIps: [],
    notDestinationIps: [],
    destinationPorts: [],
    notDestinationPorts: [],
  };
  const m = (over: Partial<PolicyMatch>): PolicyMatch => ({ ...empty, ...over });
  const local = (over: Partial<AuthorizationPolicy>): AuthorizationPolicy => {
    const name = over.name ?? "p";
    const namespace = over.namespace ?? "default";
    return { name, namespace, key: `${namespace}/${name}`, scope: "Namespace", action: "Allow", dryRun: false, rules: [], ...over };
  };

  test("rules OR, clauses AND, matches OR", () => {
    const p = fromLocalConfig(
      local({
        rules: [
          [
            [m({ principals: [{ kind: "Exact", value: "cluster.local/ns/default/sa/client" }], destinationPorts: [8080] })],
            [m({ namespaces: [{ kind: "Prefix", value: "team-" }] }), m({ sourceIps: [{ ip: "10.0.0.0", prefixLength: 8 }] })],
          ],
        ],
      }),
    );
    const e = new PolicyEngine([p]);
    expect(e.evaluate(W, conn()).allowed).toBe(true);
    expect(e.evaluate(W, conn({ sourceIp: "192.168.0.1" })).allowed).toBe(false);
    expect(e.evaluate(W, conn({ destinationPort: 80 })).allowed).toBe(false);
  });

  test("scope Global applies everywhere; WorkloadSelector only by reference; Namespace by namespace", () => {
    const g = fromLocalConfig(local({ name: "g", namespace: "", scope: "Global", action: "Deny", rules: [[[m({ notPrincipals: [{ kind: "Presence" }] })]]] }));
    const s = fromLocalConfig(local({ name: "s", scope: "WorkloadSelector", rules: [[]] }));
    const n = fromLocalConfig(local({ name: "n", namespace: "other", rules: [[]] }));
    const e = new PolicyEngine([g, s, n]);
    const plainWl = workload({ namespace: "x" });
    expect(e.applicable(plainWl).policies.map((p) => p.key)).toEqual(["/g"]);
    expect(e.evaluate(plainWl, conn({ sourcePrincipal: undefined })).allowed).toBe(false);
    expect(e.evaluate(plainWl, conn()).allowed).toBe(true);
    const ref = workload({ namespace: "x", authorizationPolicies: ["default/s"] });
    expect(e.applicable(ref).policies.map((p) => p.key)).toEqual(["/g", "default/s"]);
    expect(e.applicable(workload({ namespace: "other" })).policies.map((p) => p.key)).toEqual(["/g", "other/n"]);
    // A local Namespace policy in istio-system stays namespace-scoped (ztunnel semantics).
    const rootNs = fromLocalConfig(local({ name: "r", namespace: "istio-system", rules: [[]] }));
    expect(new PolicyEngine([rootNs]).applicable(workload({ namespace: "x" })).policies).toHaveLength(0);
  });

  test("an all-empty match inside a clause is skipped, as ztunnel does (the rule never matches)", () => {
    const p = fromLocalConfig(local({ rules: [[[m({})]]] }));
    expect(p.rules[0]!.never).toBeDefined();
    expect(p.warnings.join()).toContain("only empty matches");
    expect(new PolicyEngine([p]).evaluate(W, conn()).allowed).toBe(false);
    // A rule without clauses matches everything.
    expect(new PolicyEngine([fromLocalConfig(local({ rules: [[]] }))]).evaluate(W, conn()).allowed).toBe(true);
  });

  test("dryRun policies behave like AUDIT: reported, never enforced", () => {
    const deny = fromLocalConfig(local({ name: "dry-deny", action: "Deny", dryRun: true, rules: [[]] }));
    const allow = fromLocalConfig(local({ name: "dry-allow", action: "Allow", dryRun: true, rules: [[[m({ namespaces: [{ kind: "Exact", value: "nope" }] })]]] }));
    const e = new PolicyEngine([deny, allow]);
    const d = e.evaluate(W, conn());
    // The dry-run DENY does not deny; the dry-run ALLOW does not count as an ALLOW policy.
    expect(d.allowed).toBe(true);
    expect(d.reason).toBe("no ALLOW policy applies");
    expect(d.audits).toEqual([{ policy: "default/dry-deny", ruleIndex: 0, action: "DENY", dryRun: true }]);
  });

  test("dry-run annotation on a Kubernetes policy", () => {
    const e = engine(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry
  namespace: default
  annotations: {"istio.io/dry-run": "true"}
spec:
  action: DENY
  rules: [{}]
`);
    const d = e.evaluate(W, conn());
    expect(d.allowed).toBe(true);
    expect(d.audits).toEqual([{ policy: "default/dry", ruleIndex: 0, action: "DENY", dryRun: true }]);
  });

  test("serviceAccounts match any trust domain; no identity never matches", () => {
    const p = fromLocalConfig(local({ rules: [[[m({ serviceAccounts: [{ namespace: "default", serviceAccount: "client" }] })]]] }));
    const e = new PolicyEngine([p]);
    expect(e.evaluate(W, conn({ sourcePrincipal: spiffe("default", "client", "td2") })).allowed).toBe(true);
    expect(e.evaluate(W, conn({ sourcePrincipal: undefined })).allowed).toBe(false);
  });
});

describe("describeFor", () => {
  test("lists the policies in force with their rules, JSON-able", () => {
    const e = engine(
      k8sDoc("allow", "default", `
        rules:
        - from: [{source: {principals: ["cluster.local/ns/a/*"], notIpBlocks: ["10.0.0.0/8"]}}]
          to: [{operation: {ports: ["80"], methods: ["GET"]}}]`),
      k8sDoc("deny", "istio-system", `
        action: DENY
        rules: [{when: [{key: "request.headers[x]", values: ["*"]}, {key: source.ip, values: ["1.2.3.4"]}]}]`),
    );
    const out = e.describeFor(W);
    const json = JSON.parse(JSON.stringify(out)) as Record<string, unknown>[];
    expect(json.map((p) => p["key"])).toEqual(["istio-system/deny", "default/allow"]);
    expect(json[0]).toMatchObject({ scope: "Global", action: "DENY", enforced: true });
    expect(json[1]).toMatchObject({
      rules: [
        {
          atZtunnel: "dropped: uses HTTP attributes (methods)",
          clauses: [
            [[{ attribute: "source.principal", values: ["cluster.local/ns/a/*"] }, { attribute: "source.ip", notValues: ["10.0.0.0/8"] }]],
            [[{ attribute: "destination.port", values: [80] }, { attribute: "request.method", values: ["GET"] }]],
          ],
        },
      ],
    });
  });
});

describe("normalizeRequestPath", () => {
  test("drops query and fragment, resolves dot segments and their encoded forms", async () => {
    const { normalizeRequestPath } = await import("./index.ts");
    expect(normalizeRequestPath("/a/b?x=/../y#f")).toBe("/a/b");
    expect(normalizeRequestPath("/a/./b/../c")).toBe("/a/c");
    expect(normalizeRequestPath("/a/b/..")).toBe("/a/");
    expect(normalizeRequestPath("/../../etc")).toBe("/etc");
    expect(normalizeRequestPath("/a/%2E%2e/b")).toBe("/b");
    expect(normalizeRequestPath("/a\\..\\b")).toBe("/b");
    expect(normalizeRequestPath("*")).toBe("*");
    expect(normalizeRequestPath("/plain")).toBe("/plain");
  });
});
