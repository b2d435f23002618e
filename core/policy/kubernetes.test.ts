import { describe, expect, test } from "bun:test";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { parseAuthorizationPolicies } from "./index.ts";
import { dedent, k8sDoc } from "./test-fixtures.ts";

/** The MeshError a parse throws (fails the test when it does not throw). */
function problems(text: string, fileName = "policies.yaml"): MeshError {
  try {
    parseAuthorizationPolicies(text, fileName);
  } catch (e) {
    if (e instanceof MeshError) return e;
    throw e;
  }
  throw new Error("expected the parse to fail");
}

function details(text: string): readonly string[] {
  const e = problems(text);
  expect(e.code).toBe(ErrorCodes.CONFIG_INVALID);
  return e.details;
}

describe("conversion", () => {
  test("a multi-document file with both API versions, defaults and empty documents", () => {
    const text = dedent(`
      ---
      apiVersion: security.istio.io/v1beta1
      kind: AuthorizationPolicy
      metadata: {name: allow-frontend, namespace: shop}
      spec:
        selector:
          matchLabels: {app: cart}
        rules:
        - from:
          - source: {principals: ["cluster.local/ns/shop/sa/frontend"], notIpBlocks: ["10.9.0.0/16"]}
          - source: {namespaces: ["ops-*"]}
          to:
          - operation: {ports: ["8080", 9090], methods: ["GET"]}
          when:
          - key: source.ip
            values: ["10.0.0.0/8"]
      ---
      ---
      apiVersion: security.istio.io/v1
      kind: AuthorizationPolicy
      metadata: {name: deny-all}
      spec:
        action: DENY
        rules: [{}]
    `);
    const ps = parseAuthorizationPolicies(text, "p.yaml");
    expect(ps.map((p) => p.key)).toEqual(["shop/allow-frontend", "default/deny-all"]);
    const [a, d] = ps as [(typeof ps)[0], (typeof ps)[0]];
    expect(a).toMatchObject({
      origin: "kubernetes",
      scope: "WorkloadSelector",
      action: "ALLOW",
      dryRun: false,
      source: "p.yaml: document 1 (allow-frontend)",
      targetRefs: [],
    });
    expect([...a.matchLabels!]).toEqual([["app", "cart"]]);
    expect(a.rules).toHaveLength(1);
    const rule = a.rules[0]!;
    expect(rule.l7Fields).toEqual(["methods"]);
    // from clause (2 matches), to clause (1 match), one clause per condition.
    expect(rule.clauses.map((c) => c.length)).toEqual([2, 1, 1]);
    expect(rule.clauses[0]![0]).toEqual([
      { attribute: "source.principal", field: "principals", values: [{ kind: "Exact", value: "cluster.local/ns/shop/sa/frontend" }], notValues: [], l7: false },
      { attribute: "source.ip", field: "ipBlocks", values: [], notValues: [{ kind: "Cidr", cidr: "10.9.0.0/16" }], l7: false },
    ]);
    expect(rule.clauses[0]![1]).toEqual([
      { attribute: "source.namespace", field: "namespaces", values: [{ kind: "Prefix", value: "ops-" }], notValues: [], l7: false },
    ]);
    expect(rule.clauses[1]![0]!.map((c) => [c.attribute, c.values, c.l7])).toEqual([
      ["destination.port", [{ kind: "Port", port: 8080 }, { kind: "Port", port: 9090 }], false],
      ["request.method", [{ kind: "Exact", value: "GET" }], true],
    ]);
    expect(rule.clauses[2]![0]![0]).toMatchObject({ attribute: "source.ip", field: "when[source.ip]", values: [{ kind: "Cidr", cidr: "10.0.0.0/8" }] });
    expect(a.warnings).toEqual([
      "p.yaml: document 1 (allow-frontend): spec.rules[0] uses HTTP attributes (methods); ztunnel drops the rule (more restrictive); use a waypoint for HTTP rules",
    ]);
    expect(d).toMatchObject({ namespace: "default", scope: "Namespace", action: "DENY", rules: [{ clauses: [], l7Fields: [] }] });
  });

  test("the default namespace is an option", () => {
    const ps = parseAuthorizationPolicies(
      "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n",
      "p.yaml",
      { defaultNamespace: "team-a" },
    );
    expect(ps[0]!.key).toBe("team-a/p");
    expect(ps[0]!.action).toBe("ALLOW");
    expect(ps[0]!.rules).toEqual([]);
  });

  test("Istio value patterns: exact, prefix, suffix, presence", () => {
    const ps = parseAuthorizationPolicies(
      k8sDoc("p", "default", `rules: [{from: [{source: {namespaces: ["a", "b*", "*c", "*"]}}]}]`),
      "p.yaml",
    );
    expect(ps[0]!.rules[0]!.clauses[0]![0]![0]!.values).toEqual([
      { kind: "Exact", value: "a" },
      { kind: "Prefix", value: "b" },
      { kind: "Suffix", value: "c" },
      { kind: "Presence" },
    ]);
  });

  test("targetRef(s) policies are kept and flagged", () => {
    const ps = parseAuthorizationPolicies(
      k8sDoc("wp", "default", `
        targetRefs:
        - {kind: Service, group: "", name: echo}
        - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint, namespace: default}
        rules: [{to: [{operation: {paths: ["/x"]}}]}]`) +
        "---\n" +
        k8sDoc("wp2", "default", `targetRef: {kind: ServiceEntry, group: networking.istio.io, name: ext}`),
      "p.yaml",
    );
    expect(ps[0]!.targetRefs).toEqual([
      { group: "", kind: "Service", name: "echo", namespace: "default" },
      { group: "gateway.networking.k8s.io", kind: "Gateway", name: "waypoint", namespace: "default" },
    ]);
    expect(ps[0]!.warnings).toEqual(["p.yaml: document 1 (wp): has targetRefs: a waypoint policy, not applied at ztunnel"]);
    expect(ps[1]!.targetRefs).toHaveLength(1);
  });

  test("when keys: L4 keys stay L4, everything else is L7", () => {
    const ps = parseAuthorizationPolicies(
      k8sDoc("p", "default", `
        action: DENY
        rules:
        - when:
          - {key: connection.sni, values: ["a.example"]}
          - {key: destination.port, values: [8080]}
          - {key: "request.headers[X-User]", notValues: ["bob"]}
          - {key: request.auth.presenter, values: ["x"]}
          - {key: source.serviceAccount, values: ["sa1"]}`),
      "p.yaml",
    );
    const conds = ps[0]!.rules[0]!.clauses.map((c) => c[0]![0]!);
    expect(conds.map((c) => [c.attribute, c.l7])).toEqual([
      ["connection.sni", false],
      ["destination.port", false],
      ["request.headers[x-user]", true],
      ["request.auth.presenter", true],
      ["source.serviceAccount", true],
    ]);
    expect(conds[4]!.values).toEqual([{ kind: "ServiceAccount", namespace: "default", serviceAccount: "sa1" }]);
    expect(ps[0]!.rules[0]!.l7Fields).toEqual(["request.auth.presenter", "request.headers[X-User]", "source.serviceAccount"]);
  });
});

describe("validation errors name the file, the document and the field", () => {
  test("the example from the issue", () => {
    const text =
      k8sDoc("ok", "default", `rules: [{}]`) +
      "---\n" +
      k8sDoc("deny-foo", "default", `
        action: DENY
        rules:
        - from:
          - source:
              ipBlocks: ["10.0.0.1", "10.0.0.300/8"]`);
    expect(details(text)).toEqual([
      `policies.yaml: document 2 (deny-foo): spec.rules[0].from[0].source.ipBlocks[1]: expected an IP or CIDR, got "10.0.0.300/8"`,
    ]);
  });

  test("all errors of all documents are collected", () => {
    const text =
      k8sDoc("a", "default", `
        action: DENY
        rules:
        - from:
          - source: {principal: ["x"]}
          to:
          - operation: {ports: ["80", "http", "70000"]}
          when:
          - {key: source.ip, values: ["1.2.3.4/33"]}
          - {key: "destination.labels[app]", values: ["x"]}
          - {key: request.nope, values: ["x"]}
          - {key: source.ip}`) +
      "---\n" +
      k8sDoc("b", "default", `
        action: CUSTOM
        provider: {name: ext}
        rules: [{}]`) +
      "---\n" +
      k8sDoc("c", "default", `
        selector: {matchLabels: {app: "*"}}
        targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: w}
        rules:
        - from: []
          to: [{operation: {}}]
        - from: [{source: {serviceAccounts: ["x/y/z"], principals: ["p"]}}]
        - to: [{operation: {paths: ["/a/{**}/{*}", "/a/{x}"]}}]
        - whatever: 1`);
    expect(details(text)).toEqual([
      "policies.yaml: document 1 (a): spec.rules[0].from[0].source.principal: unknown field (expected one of principals, notPrincipals, requestPrincipals, notRequestPrincipals, namespaces, notNamespaces, serviceAccounts, notServiceAccounts, ipBlocks, notIpBlocks, remoteIpBlocks, notRemoteIpBlocks)",
      "policies.yaml: document 1 (a): spec.rules[0].from[0].source: a source must set at least one field",
      `policies.yaml: document 1 (a): spec.rules[0].to[0].operation.ports[1]: expected a port number in 0..65535, got "http"`,
      `policies.yaml: document 1 (a): spec.rules[0].to[0].operation.ports[2]: expected a port number in 0..65535, got "70000"`,
      `policies.yaml: document 1 (a): spec.rules[0].when[0].values[0]: expected an IP or CIDR, got "1.2.3.4/33"`,
      "policies.yaml: document 1 (a): spec.rules[0].when[1].key: attribute destination.labels[app] is replaced by the workload selector",
      `policies.yaml: document 1 (a): spec.rules[0].when[2].key: unknown attribute "request.nope"`,
      "policies.yaml: document 1 (a): spec.rules[0].when[3]: at least one of values or notValues must be set for key source.ip",
      "policies.yaml: document 2 (b): spec.action: action CUSTOM (external authorization) is not supported by this mesh; use ALLOW, DENY or AUDIT",
      "policies.yaml: document 3 (c): spec: only one of selector, targetRef or targetRefs can be set",
      "policies.yaml: document 3 (c): spec.selector.matchLabels.app: wildcard is not supported in a selector: app=*",
      "policies.yaml: document 3 (c): spec.rules[0].from: must not be empty (omit it to allow any source)",
      "policies.yaml: document 3 (c): spec.rules[0].to[0].operation: an operation must set at least one field",
      "policies.yaml: document 3 (c): spec.rules[1].from[0].source: serviceAccounts/notServiceAccounts cannot be set together with principals or namespaces",
      "policies.yaml: document 3 (c): spec.rules[1].from[0].source.serviceAccounts[0]: expected a service account (`sa` or `namespace/sa`), got \"x/y/z\"",
      `policies.yaml: document 3 (c): spec.rules[2].to[0].operation.paths[0]: invalid path template "/a/{**}/{*}": {**} must be the last operator`,
      `policies.yaml: document 3 (c): spec.rules[2].to[0].operation.paths[1]: invalid path template "/a/{x}": '{' or '}' outside a {*} or {**} operator`,
      "policies.yaml: document 3 (c): spec.rules[3].whatever: unknown field (expected one of from, to, when)",
    ]);
  });

  test("metadata, top-level and spec problems", () => {
    const text = dedent(`
      apiVersion: security.istio.io/v1
      kind: AuthorizationPolicy
      metadata:
        name: Bad_Name
        namespace: default
        annotations: {"istio.io/dry-run": "yes"}
      spec:
        action: REJECT
        rules: {}
        extra: true
      surprise: 1
    `);
    expect(details(text)).toEqual([
      "policies.yaml: document 1 (Bad_Name): surprise: unknown field (expected one of apiVersion, kind, metadata, spec, status)",
      `policies.yaml: document 1 (Bad_Name): metadata.name: expected a DNS subdomain name (lower-case letters, digits, '-', '.'), got "Bad_Name"`,
      `policies.yaml: document 1 (Bad_Name): metadata.annotations.istio.io/dry-run: expected "true" or "false", got the string "yes"`,
      "policies.yaml: document 1 (Bad_Name): spec.extra: unknown field (expected one of selector, targetRef, targetRefs, action, provider, rules)",
      `policies.yaml: document 1 (Bad_Name): spec.action: expected one of ALLOW, DENY, AUDIT, got the string "REJECT"`,
      "policies.yaml: document 1 (Bad_Name): spec.rules: expected a list of rules, got a map",
    ]);
  });

  test("a DENY without rules is rejected (it could never match)", () => {
    expect(details(k8sDoc("d", "default", `action: DENY`))).toEqual([
      "policies.yaml: document 1 (d): spec.rules: a DENY policy without rules never matches; add an empty rule `{}` to deny everything",
    ]);
  });

  test("another kind of object is reported once, without noise about its fields", () => {
    const text = "apiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec: {ports: [{port: 80}]}\n";
    expect(details(text)).toEqual([
      `policies.yaml: document 1 (echo): apiVersion: expected one of security.istio.io/v1, security.istio.io/v1beta1, got the string "v1"`,
      `policies.yaml: document 1 (echo): kind: expected AuthorizationPolicy, got the string "Service"`,
    ]);
  });

  test("wrong value types suggest quoting", () => {
    const text = k8sDoc("p", "default", `
      selector: {matchLabels: {version: 2}}
      rules: [{from: [{source: {namespaces: [true]}}]}]`);
    expect(details(text)).toEqual([
      "policies.yaml: document 1 (p): spec.selector.matchLabels.version: expected a label value string, got the number 2 (quote it)",
      "policies.yaml: document 1 (p): spec.rules[0].from[0].source.namespaces[0]: expected a string, got the boolean true (quote it)",
      "policies.yaml: document 1 (p): spec.rules[0].from[0].source: a source must set at least one field",
    ]);
  });

  test("bad targetRefs", () => {
    const text = k8sDoc("p", "default", `
      targetRefs:
      - {kind: Deployment, group: apps, name: x}
      - {kind: Gateway, group: gateway.networking.k8s.io, name: w, namespace: other}
      - {kind: Service}`);
    expect(details(text)).toEqual([
      "policies.yaml: document 1 (p): spec.targetRefs[0]: targetRef must be a Gateway or GatewayClass (gateway.networking.k8s.io), a Service (core) or a ServiceEntry (networking.istio.io), got apps/Deployment",
      "policies.yaml: document 1 (p): spec.targetRefs[1].namespace: cross-namespace targetRef is not supported (policy is in default, got other)",
      "policies.yaml: document 1 (p): spec.targetRefs[2].name: required",
    ]);
  });

  test("duplicate policies in one file", () => {
    const doc = k8sDoc("p", "default", `rules: [{}]`);
    expect(details(`${doc}---\n${doc}`)).toEqual([
      "policies.yaml: document 2 (p): duplicate policy default/p (also defined by policies.yaml: document 1 (p))",
    ]);
  });

  test("YAML syntax errors are CONFIG_PARSE with a line and column, other documents still validated", () => {
    const text = `${k8sDoc("bad", "default", `rules: [{when: [{key: request.headers[x], values: ["1"]}]}]`)}---\n${k8sDoc("p", "default", `action: NOPE`)}`;
    const e = problems(text);
    expect(e.code).toBe(ErrorCodes.CONFIG_PARSE);
    expect(e.details[0]).toMatch(/^policies\.yaml: document 1: line 7, column \d+: /);
    expect(e.details.at(-1)).toBe(`policies.yaml: document 2 (p): spec.action: expected one of ALLOW, DENY, AUDIT, got the string "NOPE"`);
  });

  test("duplicate keys in a map are a YAML error", () => {
    const e = problems("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nkind: AuthorizationPolicy\nmetadata: {name: p}\n");
    expect(e.code).toBe(ErrorCodes.CONFIG_PARSE);
    expect(e.details[0]).toContain("line 3");
  });

  test("the root must be a map", () => {
    expect(details("- a\n- b\n")).toEqual(["policies.yaml: document 1: expected a Kubernetes object (a map), got a list"]);
  });
});

describe("warnings", () => {
  test("a DENY rule with only HTTP attributes denies everything at ztunnel, and says so", () => {
    const ps = parseAuthorizationPolicies(
      k8sDoc("d", "default", `
        action: DENY
        rules:
        - to: [{operation: {methods: ["DELETE"]}}]
        - from: [{source: {namespaces: ["x"]}}]
          to: [{operation: {paths: ["/admin"]}}]`),
      "p.yaml",
    );
    expect(ps[0]!.warnings).toEqual([
      "p.yaml: document 1 (d): spec.rules[0] uses HTTP attributes (methods); ztunnel enforces the rule without them, so it denies every connection in scope; use a waypoint for HTTP rules",
      "p.yaml: document 1 (d): spec.rules[1] uses HTTP attributes (paths); ztunnel enforces the rule without them (more restrictive); use a waypoint for HTTP rules",
    ]);
  });
});
