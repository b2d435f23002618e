// The ztunnel local-config `policies` shape, read by core/config's loader, through fromLocalConfig.

import { expect, test } from "bun:test";
import { parseLocalConfig } from "../config/index.ts";
import { fromLocalConfig, PolicyEngine } from "./index.ts";
import { conn, dedent, spiffe } from "./test-fixtures.ts";

const CONFIG = dedent(`
  workloads:
  - uid: cluster1//v1/Pod/default/echo-0
    name: echo-0
    namespace: default
    serviceAccount: echo
    trustDomain: cluster.local
    workloadIps: ["10.0.1.7"]
    protocol: HBONE
    node: node-b
    authorizationPolicies: ["default/allow-client"]
  - uid: cluster1//v1/Pod/default/ghosted-0
    name: ghosted-0
    namespace: default
    serviceAccount: ghosted
    trustDomain: cluster.local
    workloadIps: ["10.0.1.8"]
    protocol: HBONE
    node: node-b
    authorizationPolicies: ["default/not-there"]
  policies:
  - name: allow-client
    namespace: default
    scope: WorkloadSelector
    action: Allow
    dryRun: false
    rules:
    - - - principals: [!Exact cluster.local/ns/default/sa/client]
          destinationPorts: [8080]
      - - namespaces: [!Prefix team-]
        - sourceIps: ["10.0.0.0/8"]
  - name: deny-plaintext
    namespace: istio-system
    scope: Global
    action: Deny
    dryRun: false
    rules:
    - - - notPrincipals: [!Presence []]
`);

test("policies from the local config file are enforced with ztunnel's semantics", () => {
  let loaded;
  try {
    loaded = parseLocalConfig(CONFIG, "local.yaml");
  } catch (e) {
    // Another engineer owns the loader; if it rejects this example, say exactly why.
    throw new Error(`local config rejected: ${String(e)} ${JSON.stringify((e as { details?: unknown }).details)}`);
  }
  const engine = new PolicyEngine([...loaded.state.policies.values()].map((p) => fromLocalConfig(p, "local.yaml")));
  const echo = loaded.state.workloads.get("cluster1//v1/Pod/default/echo-0")!;
  expect(engine.applicable(echo).policies.map((p) => p.key).sort()).toEqual(["default/allow-client", "istio-system/deny-plaintext"]);
  expect(engine.evaluate(echo, conn()).allowed).toBe(true);
  expect(engine.evaluate(echo, conn({ destinationPort: 9090 })).allowed).toBe(false);
  expect(engine.evaluate(echo, conn({ sourcePrincipal: spiffe("default", "client"), sourceIp: "192.168.0.1" })).allowed).toBe(false);
  expect(engine.evaluate(echo, conn({ sourcePrincipal: undefined })).reason).toContain("explicitly denied by istio-system/deny-plaintext");
  const ghosted = loaded.state.workloads.get("cluster1//v1/Pod/default/ghosted-0")!;
  expect(engine.evaluate(ghosted, conn()).allowed).toBe(false);
  expect(engine.applicable(ghosted).missing).toEqual(["default/not-there"]);
});
