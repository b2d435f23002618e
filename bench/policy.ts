// Micro-benchmark of the authorization engine: cost of one decision with 10, 1,000 and 10,000
// policies loaded, 10 of which apply to the workload under test (1 mesh-wide DENY, 3
// namespace-wide, 6 label-selected). Standalone: `bun bench/policy.ts [--quick]`.
//
// Columns: parse = Kubernetes YAML -> policies, build = PolicyEngine construction, first =
// the first decision for the workload (resolves and caches its applicable set), then the steady
// cost per decision of an L4 connection allowed by a rule, denied by a DENY, denied for lack of
// a matching ALLOW, and an L7 request at the waypoint layer.

import { parseArgs } from "node:util";
import { parseAuthorizationPolicies, PolicyEngine, type L4Attributes, type RequestAttributes } from "../core/policy/index.ts";
import { workloadFixture } from "../test/harness/workload.ts";

const { values: args } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
const ITERATIONS = args.quick ? 100_000 : 1_000_000;
const BATCHES = 5;

function policyDoc(name: string, namespace: string, spec: string): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: ${namespace}}
spec:
${spec}
---
`;
}

/** Two-rule ALLOW: principals + ports, and namespaces + ipBlocks + ports. */
function allowSpec(i: number, selector?: string): string {
  return `${selector ? `  selector: {matchLabels: {${selector}}}\n` : ""}  rules:
  - from: [{source: {principals: ["cluster.local/ns/client-${i}/sa/app", "cluster.local/ns/team-${i}/*"]}}]
    to: [{operation: {ports: ["8080", "${9000 + (i % 500)}"]}}]
  - from: [{source: {namespaces: ["ns-${i}", "prefix-${i}-*"], ipBlocks: ["10.${i % 250}.0.0/16", "2001:db8:${(i % 65535).toString(16)}::/48"]}}]
    to: [{operation: {notPorts: ["15000"]}}]
`;
}

function buildYaml(total: number): string {
  let out = "";
  // The 10 that apply to default/echo (labels app=echo, tier=backend).
  out += policyDoc("mesh-deny", "istio-system", `  action: DENY\n  rules:\n  - from: [{source: {namespaces: ["quarantine"]}}]\n`);
  for (let i = 0; i < 3; i++) out += policyDoc(`ns-allow-${i}`, "default", allowSpec(i));
  for (let i = 0; i < 6; i++) out += policyDoc(`sel-allow-${i}`, "default", allowSpec(100 + i, i % 2 ? "app: echo" : "tier: backend"));
  // The rest: other namespaces, and selectors in default that do not match the workload.
  for (let i = 10; i < total; i++) {
    if (i % 10 === 0) out += policyDoc(`other-sel-${i}`, "default", allowSpec(i, `app: other-${i}`));
    else out += policyDoc(`p-${i}`, `ns-${i % 997}`, allowSpec(i, i % 3 === 0 ? `app: a${i}` : undefined));
  }
  return out;
}

const WORKLOAD = workloadFixture({ name: "echo-0", serviceAccount: "echo", labels: { app: "echo", tier: "backend" } });

// A spread of sources per scenario so the loop is not one constant input.
function connections(kind: "allow" | "deny" | "nomatch"): L4Attributes[] {
  return Array.from({ length: 64 }, (_, i) => {
    const base = { destinationIp: "10.0.1.7", destinationPort: 8080 };
    if (kind === "allow") {
      // Matches the last applicable ALLOW's second rule (worst-ish case: walks the others first).
      return { ...base, sourceIp: `10.105.${i}.9`, sourcePrincipal: `spiffe://cluster.local/ns/ns-105/sa/s${i}` };
    }
    if (kind === "deny") return { ...base, sourceIp: `10.9.${i}.1`, sourcePrincipal: `spiffe://cluster.local/ns/quarantine/sa/s${i}` };
    return { ...base, sourceIp: `172.16.${i}.1`, sourcePrincipal: `spiffe://cluster.local/ns/stranger/sa/s${i}` };
  });
}

function requests(): RequestAttributes[] {
  return connections("allow").map((c, i) => ({
    ...c,
    method: "GET",
    path: `/api/items/${i}?q=1`,
    host: "echo.default.svc.cluster.local",
    headers: new Headers({ "x-request-id": String(i) }),
  }));
}

function measure(run: (i: number) => boolean): number {
  let sink = 0;
  for (let i = 0; i < Math.min(ITERATIONS, 50_000); i++) if (run(i)) sink++;
  const perBatch = Math.floor(ITERATIONS / BATCHES);
  const samples: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const t0 = Bun.nanoseconds();
    for (let i = 0; i < perBatch; i++) if (run(i)) sink++;
    samples.push((Bun.nanoseconds() - t0) / perBatch / 1000);
  }
  if (sink < 0) console.log(sink);
  samples.sort((a, b) => a - b);
  return samples[Math.floor(BATCHES / 2)]!;
}

const fmt = (n: number, digits = 2) => n.toFixed(digits);

const rows: string[][] = [];
for (const total of [10, 1_000, 10_000]) {
  const yaml = buildYaml(total);
  let t0 = performance.now();
  const policies = parseAuthorizationPolicies(yaml, `bench-${total}.yaml`);
  const parseMs = performance.now() - t0;
  t0 = performance.now();
  const engine = new PolicyEngine(policies);
  const buildMs = performance.now() - t0;
  t0 = Bun.nanoseconds();
  const first = engine.evaluate(WORKLOAD, connections("allow")[0]!);
  const firstUs = (Bun.nanoseconds() - t0) / 1000;
  const applicable = engine.applicable(WORKLOAD).policies.length;
  if (applicable !== 10 || !first.allowed) throw new Error(`bench setup: ${applicable} applicable, first ${first.reason}`);

  const allow = connections("allow");
  const deny = connections("deny");
  const nomatch = connections("nomatch");
  const reqs = requests();
  // Sanity: each scenario yields the outcome it is named after.
  if (!engine.evaluate(WORKLOAD, allow[1]!).allowed || engine.evaluate(WORKLOAD, deny[1]!).policy !== "istio-system/mesh-deny") {
    throw new Error("bench setup: unexpected decisions");
  }
  if (engine.evaluate(WORKLOAD, nomatch[1]!).allowed || !engine.evaluate(WORKLOAD, reqs[1]!, "l7").allowed) {
    throw new Error("bench setup: unexpected decisions");
  }
  const allowUs = measure((i) => engine.evaluate(WORKLOAD, allow[i & 63]!).allowed);
  const denyUs = measure((i) => engine.evaluate(WORKLOAD, deny[i & 63]!).allowed);
  const nomatchUs = measure((i) => engine.evaluate(WORKLOAD, nomatch[i & 63]!).allowed);
  const l7Us = measure((i) => engine.evaluate(WORKLOAD, reqs[i & 63]!, "l7").allowed);
  rows.push([
    total.toLocaleString("en-US"),
    String(applicable),
    fmt(parseMs, 1),
    fmt(buildMs, 1),
    fmt(firstUs, 1),
    fmt(allowUs, 3),
    fmt(denyUs, 3),
    fmt(nomatchUs, 3),
    fmt(l7Us, 3),
  ]);
}

const header = ["policies", "applicable", "parse ms", "build ms", "first µs", "allow µs", "deny µs", "no-match µs", "l7 allow µs"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(" | ")} |`;
console.log(`policy engine decision cost (Bun ${Bun.version}, ${ITERATIONS.toLocaleString("en-US")} decisions per cell, median of ${BATCHES} batches)`);
console.log(line(header));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const r of rows) console.log(line(r));
