import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { parseLocalConfig, summarizeState, type LoadedConfig } from "./index.ts";

const fixture = (name: string) => readFileSync(join(import.meta.dir, "testdata", name), "utf8");

function loadError(text: string, file = "t.yaml"): MeshError {
  try {
    parseLocalConfig(text, file);
  } catch (e) {
    if (e instanceof MeshError) return e;
    throw e;
  }
  throw new Error("expected the config to be rejected");
}

describe("parseLocalConfig: files written for istio/ztunnel", () => {
  test("the reference §4.3 example loads with every field", () => {
    const l = parseLocalConfig(fixture("reference-example.yaml"), "reference-example.yaml");
    const st = l.state;
    expect([...st.workloads.keys()]).toEqual([
      "cluster1//v1/Pod/default/client-0",
      "cluster1//v1/Pod/default/echo-0",
      "cluster1//v1/Pod/default/waypoint-0",
    ]);
    const client = st.workloads.get("cluster1//v1/Pod/default/client-0")!;
    expect(client.identity).toBe("spiffe://cluster.local/ns/default/sa/client");
    expect(client.locality).toEqual({ region: "r1", zone: "z1", subzone: "" });
    expect(client.authorizationPolicies).toEqual(["default/allow-client"]);
    expect(client.services.get("default/client.default.svc.cluster.local")?.get(80)).toBe(8080);
    expect(client.protocol).toBe("HBONE");
    expect(client.workloadType).toBe("deployment");

    const echo = st.workloads.get("cluster1//v1/Pod/default/echo-0")!;
    expect(echo.waypoint).toEqual({
      destination: { kind: "hostname", namespace: "default", hostname: "waypoint.default.svc.cluster.local" },
      hboneMtlsPort: 15008,
    });
    const wp = st.workloads.get("cluster1//v1/Pod/default/waypoint-0")!;
    expect(wp.applicationTunnel).toEqual({ protocol: "PROXY", port: 15088 });

    const svc = st.services.get("default/echo.default.svc.cluster.local")!;
    expect(svc.vips).toEqual([{ network: "", ip: "10.96.0.20" }]);
    expect(svc.loadBalancer).toEqual({
      routingPreferences: ["Network", "Region", "Zone"],
      mode: "Failover",
      healthPolicy: "OnlyHealthy",
    });
    expect(svc.ipFamilies).toBe("IPv4");
    expect(svc.canonical).toBe(true);
    expect(svc.visibility).toBe("Public");

    const allow = st.policies.get("default/allow-client")!;
    expect(allow.scope).toBe("WorkloadSelector");
    expect(allow.rules).toHaveLength(1);
    expect(allow.rules[0]).toHaveLength(2);
    expect(allow.rules[0]![0]![0]!.principals).toEqual([{ kind: "Exact", value: "cluster.local/ns/default/sa/client" }]);
    expect(allow.rules[0]![0]![0]!.destinationPorts).toEqual([8080]);
    expect(allow.rules[0]![1]![0]!.namespaces).toEqual([{ kind: "Prefix", value: "team-" }]);
    expect(allow.rules[0]![1]![1]!.sourceIps).toEqual([{ ip: "10.0.0.0", prefixLength: 8 }]);
    const deny = st.policies.get("istio-system/deny-plaintext")!;
    expect(deny.rules[0]![0]![0]!.notPrincipals).toEqual([{ kind: "Presence" }]);

    // client-0 lists a service the file does not define: kept (ztunnel stages it), with a warning.
    expect(st.endpointsOf("default/client.default.svc.cluster.local").map((e) => e.workload.name)).toEqual(["client-0"]);
    expect(l.warnings).toEqual([
      `reference-example.yaml: workloads[0].services["default/client.default.svc.cluster.local"]: service "default/client.default.svc.cluster.local" is not defined; kept as a staged endpoint`,
    ]);
  });

  test("istio/ztunnel examples/localhost.yaml loads unchanged", () => {
    const l = parseLocalConfig(fixture("ztunnel-localhost.yaml"), "localhost.yaml");
    const st = l.state;
    expect(st.workloads.size).toBe(2);
    expect(st.services.size).toBe(2);
    expect(st.policies.size).toBe(1);
    expect(st.workloadByAddress("", "127.0.0.1")?.name).toBe("local");
    expect(st.workloadByAddress("", "127.0.0.2")?.protocol).toBe("TCP");
    expect(st.serviceByVip("", "127.10.0.1")?.name).toBe("local");
    expect(st.serviceByVip("remote", "127.10.0.2")?.name).toBe("remote");
    expect(st.serviceByVip("", "127.10.0.2")).toBeUndefined();
    expect(st.endpointsOf("default/example.com").map((e) => e.workload.name).sort()).toEqual(["local", "local-tcp"]);
    // The policy omits dryRun, as ztunnel's example does.
    expect(st.policies.get("default/deny-9999")?.dryRun).toBe(false);
    expect(st.policies.get("default/deny-9999")?.rules[0]![0]![0]!.notDestinationPorts).toEqual([9999]);
    expect(l.warnings).toEqual([]);
    // raw keeps the document for config_dump
    expect((l.raw as { services: { vips: string[] }[] }).services[1]!.vips).toEqual(["remote/127.10.0.2"]);
  });

  test("an empty file is an empty config", () => {
    const l = parseLocalConfig("# nothing yet\n", "empty.yaml");
    expect(l.state.workloads.size).toBe(0);
    expect(summarizeState(l)).toBe("empty.yaml: 0 workloads, 0 services, 0 policies");
  });
});

describe("parseLocalConfig: defaults and normalisation", () => {
  const minimal = `
workloads:
- name: w
  namespace: ns
  workloadIps: ["::FFFF:10.0.0.9", "2001:DB8:0:0:0:0:0:1"]
`;
  test("Istio's defaults apply to omitted fields", () => {
    const w = [...parseLocalConfig(minimal, "m.yaml").state.workloads.values()][0]!;
    expect(w.trustDomain).toBe("cluster.local");
    expect(w.serviceAccount).toBe("default");
    expect(w.clusterId).toBe("Kubernetes");
    expect(w.protocol).toBe("TCP"); // ztunnel's serde default
    expect(w.status).toBe("Healthy");
    expect(w.capacity).toBe(1);
    expect(w.network).toBe("");
    expect(w.identity).toBe("spiffe://cluster.local/ns/ns/sa/default");
    expect(w.uid).toBe("Kubernetes//Pod/ns/w");
    expect(w.workloadIps).toEqual(["10.0.0.9", "2001:db8::1"]);
    expect(w.labels.size).toBe(0);
  });

  test("empty strings for trust domain, service account and cluster id mean the default", () => {
    const w = [
      ...parseLocalConfig(
        `workloads: [{uid: u, namespace: ns, workloadIps: [], trustDomain: "", serviceAccount: "", clusterId: ""}]`,
        "e.yaml",
      ).state.workloads.values(),
    ][0]!;
    expect(w.identity).toBe("spiffe://cluster.local/ns/ns/sa/default");
    expect(w.clusterId).toBe("Kubernetes");
  });

  test("labels, string matches in both forms, numbers as strings", () => {
    const l = parseLocalConfig(
      `
workloads:
- uid: u1
  name: 123
  namespace: ns
  workloadIps: []
  hostname: db.example.com
  labels: {app: echo, version: v1}
policies:
- name: p
  namespace: ns
  scope: Namespace
  action: Deny
  dryRun: true
  rules:
  - - - principals: [{Exact: a}, {Suffix: /sa/b}, {Presence: []}, !Presence [], !Presence, !Exact 42]
        notNamespaces: [!Suffix -test]
        serviceAccounts: [{namespace: ns, serviceAccount: sa}]
        destinationIps: ["10.1.2.3", "10.1.2.3/16", "2001:db8::1/32"]
`,
      "x.yaml",
    );
    const w = l.state.workloads.get("u1")!;
    expect(w.name).toBe("123");
    expect([...w.labels]).toEqual([
      ["app", "echo"],
      ["version", "v1"],
    ]);
    const m = l.state.policies.get("ns/p")!.rules[0]![0]![0]!;
    expect(m.principals).toEqual([
      { kind: "Exact", value: "a" },
      { kind: "Suffix", value: "/sa/b" },
      { kind: "Presence" },
      { kind: "Presence" },
      { kind: "Presence" },
      { kind: "Exact", value: "42" },
    ]);
    expect(m.notNamespaces).toEqual([{ kind: "Suffix", value: "-test" }]);
    expect(m.serviceAccounts).toEqual([{ namespace: "ns", serviceAccount: "sa" }]);
    expect(m.destinationIps).toEqual([
      { ip: "10.1.2.3", prefixLength: 32 },
      { ip: "10.1.0.0", prefixLength: 16 },
      { ip: "2001:db8::", prefixLength: 32 },
    ]);
    expect(l.state.policies.get("ns/p")!.dryRun).toBe(true);
    // the tagged matches serialise as ztunnel's config_dump shows them
    const raw = JSON.parse(JSON.stringify(l.raw)) as { policies: { rules: unknown[][][] }[] };
    expect(raw.policies[0]!.rules[0]![0]![0]).toMatchObject({ notNamespaces: [{ Suffix: "-test" }] });
  });

  test("endpoints written inside a service join their workload", () => {
    const l = parseLocalConfig(
      `
workloads:
- {uid: w1, namespace: ns, workloadIps: ["10.0.0.1"]}
services:
- name: s
  namespace: ns
  hostname: s.ns.svc
  vips: []
  ports: {80: 0}
  endpoints:
    w1: {workloadUid: w1, port: {80: 8080}, status: Healthy}
    gone: {workloadUid: nope, port: {}, status: Healthy}
`,
      "e.yaml",
    );
    expect(l.state.endpointsOf("ns/s.ns.svc").map((e) => [e.workload.uid, e.ports.get(80)])).toEqual([["w1", 8080]]);
    expect(l.warnings).toEqual([
      `e.yaml: services[0].endpoints.gone.workloadUid: workload "nope" is not defined; endpoint ignored`,
    ]);
  });

  test("warns about principals written with spiffe:// and unknown policy references", () => {
    const l = parseLocalConfig(
      `
workloads:
- {uid: w1, namespace: ns, workloadIps: [], authorizationPolicies: [ns/missing]}
policies:
- {name: p, namespace: ns, scope: Namespace, action: Deny, rules: [[[{principals: [!Exact spiffe://td/ns/a/sa/b]}]]]}
`,
      "w.yaml",
    );
    expect(l.warnings).toEqual([
      `w.yaml: policies[0].rules[0][0][0].principals[0]: principals are compared without the "spiffe://" prefix; "spiffe://td/ns/a/sa/b" can never match`,
      `w.yaml: workloads[0].authorizationPolicies[0]: policy "ns/missing" is not defined; it will be skipped`,
    ]);
  });

  test("the result is immutable", () => {
    const st = parseLocalConfig(fixture("ztunnel-localhost.yaml"), "l.yaml").state;
    const w = st.workloads.get("cluster1//v1/Pod/default/local")!;
    expect(() => (st.workloads as Map<string, unknown>).set("x", w)).toThrow(TypeError);
    expect(() => (w.services as Map<string, unknown>).delete("default/example.com")).toThrow(TypeError);
    expect(() => ((w as { name: string }).name = "x")).toThrow(TypeError);
    expect(() => (w.workloadIps as string[]).push("1.1.1.1")).toThrow(TypeError);
  });
});

const WL = (extra: string) => `
workloads:
- uid: w0
  namespace: default
  workloadIps: ["10.0.0.1"]
${extra}`;

const SVC = (extra: string) => `
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  vips: ["/10.96.0.1"]
  ports: {80: 8080}
${extra}`;

const POL = (match: string) => `
policies:
- name: p
  namespace: default
  scope: Namespace
  action: Allow
  rules:
  - - - ${match}
`;

interface BadCase {
  name: string;
  yaml: string;
  code?: string;
  /** Every one of these lines must appear in the error details, exactly. */
  lines: string[];
}

const BAD: BadCase[] = [
  {
    name: "unknown top-level key",
    yaml: "workloads: []\nroutes: []\n",
    lines: ["t.yaml: routes: unknown field; expected one of: workloads, services, policies, routeFiles, plugins"],
  },
  {
    name: "unknown nested key with a suggestion",
    yaml: `workloads:\n- {uid: w, namespace: ns, workloadIP: ["10.0.0.1"]}\n`,
    lines: [
      `t.yaml: workloads[0].workloadIP: unknown field; did you mean "workloadIps"?`,
      "t.yaml: workloads[0].workloadIps: required field is missing (expected a list of IP addresses (may be empty))",
    ],
  },
  {
    name: "unknown key inside a policy match",
    yaml: POL("{principal: [!Exact a]}"),
    lines: [`t.yaml: policies[0].rules[0][0][0].principal: unknown field; did you mean "principals"?`],
  },
  {
    name: "bad IP",
    yaml: `workloads:\n- {uid: a, namespace: ns, workloadIps: ["10.0.0.1"]}\n- {uid: b, namespace: ns, workloadIps: ["10.0.0.2"]}\n- {uid: c, namespace: ns, workloadIps: ["10.0.0.300"]}\n`,
    lines: [`t.yaml: workloads[2].workloadIps[0]: expected an IPv4 or IPv6 address, got "10.0.0.300"`],
  },
  {
    name: "IPv4 with a leading zero (Rust rejects it)",
    yaml: WL("").replace(`"10.0.0.1"`, `"10.0.0.01"`),
    lines: [`t.yaml: workloads[0].workloadIps[0]: expected an IPv4 or IPv6 address, got "10.0.0.01"`],
  },
  {
    name: "bad service port key",
    yaml: SVC("").replace("{80: 8080}", "{0: 8080}"),
    lines: [`t.yaml: services[0].ports["0"]: expected a service port number 1..65535 as the key, got "0"`],
  },
  {
    name: "bad target port",
    yaml: SVC("").replace("{80: 8080}", "{80: 70000}"),
    lines: [`t.yaml: services[0].ports["80"]: expected a port number 0..65535, got 70000`],
  },
  {
    name: "bad port in a workload's services map and waypoint",
    yaml: WL(`  services: {"default/echo.default.svc.cluster.local": {80: -1}}\n  waypoint: {destination: "/10.0.0.9", hboneMtlsPort: 0}`),
    lines: [
      `t.yaml: workloads[0].services["default/echo.default.svc.cluster.local"]["80"]: expected a port number 0..65535, got -1`,
      "t.yaml: workloads[0].waypoint.hboneMtlsPort: expected a port number 1..65535, got 0",
    ],
  },
  {
    name: "bad policy port",
    yaml: POL("{destinationPorts: [65536]}"),
    lines: ["t.yaml: policies[0].rules[0][0][0].destinationPorts[0]: expected a port number 1..65535, got 65536"],
  },
  {
    name: "bad enums",
    yaml: WL("  protocol: hbone\n  status: Ready\n  networkMode: host"),
    lines: [
      `t.yaml: workloads[0].protocol: expected one of HBONE, TCP, got "hbone"`,
      `t.yaml: workloads[0].status: expected one of Healthy, Unhealthy, got "Ready"`,
      `t.yaml: workloads[0].networkMode: expected one of Standard, HostNetwork, got "host"`,
    ],
  },
  {
    name: "bad policy enums",
    yaml: POL("{}").replace("scope: Namespace", "scope: namespace").replace("action: Allow", "action: AUDIT"),
    lines: [
      `t.yaml: policies[0].scope: expected one of Global, Namespace, WorkloadSelector, got "namespace"`,
      `t.yaml: policies[0].action: expected one of Allow, Deny, got "AUDIT"`,
    ],
  },
  {
    name: "missing required fields",
    yaml: "services:\n- {name: s, namespace: ns, vips: []}\nworkloads:\n- {uid: w, workloadIps: []}\npolicies:\n- {name: p, namespace: ns, action: Allow, rules: []}\n",
    lines: [
      "t.yaml: services[0].hostname: required field is missing (expected a hostname)",
      "t.yaml: services[0].ports: required field is missing (expected a map of servicePort: targetPort)",
      "t.yaml: workloads[0].namespace: required field is missing (expected a namespace name)",
      "t.yaml: policies[0].scope: required field is missing (expected one of Global, Namespace, WorkloadSelector)",
    ],
  },
  {
    name: "workload with neither uid nor name",
    yaml: "workloads:\n- {namespace: ns, workloadIps: []}\n",
    lines: ["t.yaml: workloads[0].uid: required field is missing (expected a uid, or a name to derive one from)"],
  },
  {
    name: "duplicate uid",
    yaml: "workloads:\n- {uid: w, namespace: a, workloadIps: []}\n- {uid: w, namespace: b, workloadIps: []}\n",
    lines: [`t.yaml: workloads[1].uid: duplicate uid "w" (also workloads[0])`],
  },
  {
    name: "two workloads on one address",
    yaml: "workloads:\n- {uid: a, namespace: ns, workloadIps: [10.0.0.1]}\n- {uid: b, namespace: ns, workloadIps: [10.0.0.2, '::ffff:10.0.0.1']}\n",
    lines: [`t.yaml: workloads[1].workloadIps[1]: address "/10.0.0.1" is already used by workloads[0] ("a")`],
  },
  {
    name: "duplicate service key and VIP",
    yaml: SVC("- {name: echo2, namespace: default, hostname: echo.default.svc.cluster.local, vips: [], ports: {}}\n- {name: other, namespace: default, hostname: other, vips: [/10.96.0.1], ports: {}}"),
    lines: [
      `t.yaml: services[1].hostname: duplicate service "default/echo.default.svc.cluster.local" (also services[0])`,
      `t.yaml: services[2].vips[0]: VIP "/10.96.0.1" is already used by services[0] ("default/echo.default.svc.cluster.local")`,
    ],
  },
  {
    name: "duplicate policy key",
    yaml: POL("{}") + "- {name: p, namespace: default, scope: Global, action: Deny, rules: []}\n",
    lines: [`t.yaml: policies[1].name: duplicate policy "default/p" (also policies[0])`],
  },
  {
    name: "bad network/ip",
    yaml: SVC("").replace(`"/10.96.0.1"`, `"10.96.0.1"`),
    lines: [`t.yaml: services[0].vips[0]: expected a network address "network/ip" (e.g. "/10.96.0.1"), got "10.96.0.1"`],
  },
  {
    name: "bad gateway destination",
    yaml: WL(`  waypoint: {destination: "waypoint", hboneMtlsPort: 15008}`),
    lines: [`t.yaml: workloads[0].waypoint.destination: expected "network/ip" or "namespace/hostname", got "waypoint"`],
  },
  {
    name: "bad CIDRs",
    yaml: SVC(`  cidrVips: [{network: "", cidr: "10.97.0.0/33"}]`) + POL(`{sourceIps: ["10.0.0.0/8/1"]}`),
    lines: [
      `t.yaml: services[0].cidrVips[0].cidr: expected a CIDR like "10.96.0.0/16", got "10.97.0.0/33"`,
      `t.yaml: policies[0].rules[0][0][0].sourceIps[0]: expected a CIDR like "10.0.0.0/8", got "10.0.0.0/8/1"`,
    ],
  },
  {
    name: "bad StringMatch tags and forms",
    yaml: POL(`{principals: [!Regex "a.*", "plain", {Exact: [a]}, !Presence x, {Exact: a, Prefix: b}], namespaces: [!Exact [x]]}`),
    lines: [
      `t.yaml: policies[0].rules[0][0][0].principals[0]: expected a string match (!Exact v, !Prefix v, !Suffix v, !Presence [] or {Exact: v}), got unknown match kind "Regex"`,
      `t.yaml: policies[0].rules[0][0][0].principals[1]: expected a string match (!Exact v, !Prefix v, !Suffix v, !Presence [] or {Exact: v}), got "plain"`,
      `t.yaml: policies[0].rules[0][0][0].principals[2]: expected !Exact followed by a string, got !Exact a list`,
      `t.yaml: policies[0].rules[0][0][0].principals[3]: expected !Presence [] (no value), got !Presence "x"`,
      `t.yaml: policies[0].rules[0][0][0].principals[4]: expected a string match (!Exact v, !Prefix v, !Suffix v, !Presence [] or {Exact: v}), got a map`,
      `t.yaml: policies[0].rules[0][0][0].namespaces[0]: expected !Exact followed by a string, got !Exact a list`,
    ],
  },
  {
    name: "tag outside a string match",
    yaml: WL("  node: !Exact a"),
    lines: [`t.yaml: workloads[0].node: expected a string, got !Exact "a" (tags are only valid in policy string matches)`],
  },
  {
    name: "wrong types",
    yaml: WL(`  capacity: "2"\n  nativeTunnel: "yes"\n  locality: zone-a\n  labels: [a]`).replace(`workloadIps: ["10.0.0.1"]`, `workloadIps: "10.0.0.1"`),
    lines: [
      `t.yaml: workloads[0].workloadIps: expected a list of IP addresses, got "10.0.0.1"`,
      `t.yaml: workloads[0].capacity: expected an integer 0..4294967295, got "2"`,
      `t.yaml: workloads[0].nativeTunnel: expected true or false, got "yes"`,
      `t.yaml: workloads[0].locality: expected a locality {region, zone, subzone}, got "zone-a"`,
      `t.yaml: workloads[0].labels: expected a map of label: value, got a list`,
    ],
  },
  {
    name: "top level that is not a map, and sections that are not lists",
    yaml: "- a\n- b\n",
    lines: [`t.yaml: expected a map with keys workloads, services, policies, routeFiles, plugins, got a list`],
  },
  {
    name: "section that is not a list",
    yaml: "workloads: {uid: w}\n",
    lines: [`t.yaml: workloads: expected a list of workloads, got a map`],
  },
  {
    name: "bad workload service key and policy reference form",
    yaml: WL(`  services: {"echo": {80: 8080}}\n  authorizationPolicies: ["allow-all"]`),
    lines: [
      `t.yaml: workloads[0].services.echo: expected a service key "namespace/hostname", got "echo"`,
      `t.yaml: workloads[0].authorizationPolicies[0]: expected a policy key "namespace/name", got "allow-all"`,
    ],
  },
  {
    name: "bad identity segments",
    yaml: WL(`  trustDomain: Cluster.Local\n  serviceAccount: "a/b"`),
    lines: [
      `t.yaml: workloads[0].trustDomain: expected a trust domain (lowercase letters, digits, ".", "-", "_"), got "Cluster.Local"`,
      `t.yaml: workloads[0].serviceAccount: expected a service account name (letters, digits, ".", "-", "_"), got "a/b"`,
    ],
  },
  {
    name: "YAML syntax error names the line",
    code: ErrorCodes.CONFIG_PARSE,
    yaml: "workloads:\n- uid: a\n  namespace: [unclosed\n",
    lines: [],
  },
  {
    name: "duplicate YAML keys are a parse error",
    code: ErrorCodes.CONFIG_PARSE,
    yaml: "workloads: []\nworkloads: []\n",
    lines: [],
  },
];

describe("parseLocalConfig: every kind of bad config gets a precise error", () => {
  for (const c of BAD) {
    test(c.name, () => {
      const e = loadError(c.yaml);
      expect(e.code).toBe((c.code ?? ErrorCodes.CONFIG_INVALID) as typeof e.code);
      for (const l of c.lines) expect(e.details).toContain(l);
      if (e.code === ErrorCodes.CONFIG_INVALID) {
        const n = e.details.length;
        expect(e.message).toBe(`t.yaml: ${n} error${n === 1 ? "" : "s"}`);
        for (const d of e.details) expect(d.startsWith("t.yaml: ")).toBe(true);
      }
    });
  }

  test("YAML syntax errors carry line and column", () => {
    const e = loadError("workloads:\n- uid: a\n  namespace: [unclosed\n");
    expect(e.message).toMatch(/^t\.yaml:\d+:\d+: /);
    const dup = loadError("workloads: []\nservices: []\nworkloads: []\n");
    expect(dup.message).toMatch(/^t\.yaml:3:1: .*unique/i);
  });

  test("all errors are collected, not just the first", () => {
    const e = loadError(
      `workloads:\n- {uid: a, namespace: ns, workloadIps: [bad1], protocol: x}\n- {uid: b, namespace: ns, workloadIps: [bad2]}\nextra: 1\n`,
    );
    expect(e.details).toEqual([
      `t.yaml: extra: unknown field; expected one of: workloads, services, policies, routeFiles, plugins`,
      `t.yaml: workloads[0].workloadIps[0]: expected an IPv4 or IPv6 address, got "bad1"`,
      `t.yaml: workloads[0].protocol: expected one of HBONE, TCP, got "x"`,
      `t.yaml: workloads[1].workloadIps[0]: expected an IPv4 or IPv6 address, got "bad2"`,
    ]);
    expect(e.message).toBe("t.yaml: 4 errors");
  });

  test("a recursive alias is refused, not followed forever", () => {
    const e = loadError("workloads: &a\n- *a\n");
    expect(e.code === ErrorCodes.CONFIG_PARSE || e.code === ErrorCodes.CONFIG_INVALID).toBe(true);
  });
});

describe("summarizeState", () => {
  test("counts workloads by node, services with VIPs and endpoints, policies", () => {
    const l: LoadedConfig = parseLocalConfig(fixture("ztunnel-localhost.yaml"), "localhost.yaml");
    expect(summarizeState(l)).toBe(
      [
        "localhost.yaml: 2 workloads, 2 services, 1 policy",
        "workloads by node:",
        "  local: 2 (local, local-tcp)",
        "services:",
        "  default/example.com  vips /127.10.0.1  ports 80->8080  endpoints 2",
        "  default/example2.com  vips remote/127.10.0.2  ports 80->8080  endpoints 2",
        "policies:",
        "  default/deny-9999  Namespace Allow  1 rule",
      ].join("\n"),
    );
  });
});

describe("routeFiles", () => {
  test("HTTPRoute files named by the config resolve against its directory; bad entries are errors", () => {
    const loaded = parseLocalConfig("routeFiles: [routes.yaml, /etc/mesh/more.yaml]\n", "/srv/mesh/config.yaml");
    expect(loaded.routeFiles).toEqual(["/srv/mesh/routes.yaml", "/etc/mesh/more.yaml"]);
    let err: MeshError | undefined;
    try {
      parseLocalConfig('routeFiles: [""]\n', "c.yaml");
    } catch (e) {
      err = e as MeshError;
    }
    expect(err?.details.join("\n")).toContain("routeFiles[0]: expected a file path");
    expect(() => parseLocalConfig("routeFiles: routes.yaml\n", "c.yaml")).toThrow(MeshError);
  });
});
