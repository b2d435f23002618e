// L4 authorization enforced by the destination ztunnel, from the local config's `policies`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestMesh, SocksError, allocSubnet, echoServer, exchange, socksConnect, twoNodeConfig, until, type TestServer } from "../harness/index.ts";

const allowOnly = (principal: string) => `policies:
- name: allow-one
  namespace: default
  scope: Namespace
  action: Allow
  dryRun: false
  rules:
  - - - principals: [!Exact ${principal}]
`;

describe("authorization at ztunnel", () => {
  const subnet = allocSubnet();
  let mesh: TestMesh;
  let app: TestServer;
  beforeAll(async () => {
    mesh = await TestMesh.start({ config: twoNodeConfig(subnet, allowOnly("cluster.local/ns/default/sa/client")), nodes: ["node-a", "node-b"] });
    app = await echoServer(`${subnet}2`, 8080);
  });
  afterAll(async () => {
    await app?.close();
    await mesh?.stop();
  });

  test("an allowed principal passes; the decision is in config_dump", async () => {
    const s = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080);
    expect((await exchange(s, "allowed")).toString()).toBe("allowed");
    const dump = await mesh.z("node-b").configDump();
    const local = dump.localWorkloads.find((w: { uid: string }) => w.uid === "test//server");
    expect(JSON.stringify(local.policies)).toContain("allow-one");
  });

  test("a policy change closes an open connection that is no longer allowed, within a second", async () => {
    const s = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080);
    s.write("one");
    await new Promise((r) => s.once("data", r));
    const closed = new Promise<number>((resolve) => s.once("close", () => resolve(Date.now())));
    s.on("end", () => s.end());
    s.on("error", () => {});
    s.resume();
    const changedAt = Date.now();
    mesh.updateConfig(twoNodeConfig(subnet, allowOnly("cluster.local/ns/default/sa/somebody-else")));
    const at = await closed;
    // file watch debounce (~100 ms) + re-evaluation; the bound is the one second plus slack for the reload
    expect(at - changedAt).toBeLessThan(2000);
    await mesh.z("node-b").waitForLog((r) => String(r.msg).includes("no longer allowed"));
    // new connections are now refused with "connection not allowed by ruleset"
    const err = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080).catch((e) => e);
    expect(err).toBeInstanceOf(SocksError);
    expect((err as SocksError).reply).toBe(0x02);
    await until(() => mesh.z("node-b").accessRecords("inbound").filter((r) => r.response_flags === "DENY").length >= 2, 5000, "DENY access records");
    const denied = mesh.z("node-b").accessRecords("inbound").filter((r) => r.response_flags === "DENY");
    expect(denied.some((r) => String(r.error).includes("no longer allowed"))).toBe(true);
    const metrics = await mesh.z("node-b").metricsText();
    expect(metrics).toMatch(/istio_tcp_connections_closed_total\{[^}]*response_flags="DENY"[^}]*\} [1-9]/);
  });

  test("a workload that references a policy that is not loaded is denied everything", async () => {
    // first: no policies at all, so everything is allowed
    mesh.updateConfig(twoNodeConfig(subnet));
    await until(async () => {
      const s = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080).catch(() => undefined);
      if (!s) return false;
      return (await exchange(s, "open")).toString() === "open";
    }, 5000, "the open config to apply");
    const cfg = twoNodeConfig(subnet).replace('  node: node-b\n', '  node: node-b\n  authorizationPolicies: ["default/not-loaded"]\n');
    expect(cfg).toContain("not-loaded");
    mesh.updateConfig(cfg);
    await until(async () => {
      const err = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080).then((s) => (s.destroy(), undefined), (e) => e);
      return err instanceof SocksError && err.reply === 0x02;
    }, 5000, "the missing policy to deny");
  });
});

describe("Kubernetes AuthorizationPolicy files (--policies)", () => {
  const subnet = allocSubnet();
  let mesh: TestMesh;
  let app: TestServer;
  let policyPath: string;
  const denyClient = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-client
  namespace: default
spec:
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/client"]
    to:
    - operation:
        ports: ["8080"]
`;
  beforeAll(async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "mesh-policies-"));
    policyPath = join(dir, "policies.yaml");
    writeFileSync(policyPath, "# no policies yet\n");
    mesh = await TestMesh.start({ config: twoNodeConfig(subnet), nodes: ["node-a", "node-b"], extraArgs: { "node-b": ["--policies", policyPath] } });
    app = await echoServer(`${subnet}2`, 8080);
  });
  afterAll(async () => {
    await app?.close();
    await mesh?.stop();
  });

  test("a DENY document applies live, an invalid edit keeps the last good set", async () => {
    const ok = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080);
    expect((await exchange(ok, "before")).toString()).toBe("before");
    const { writeFileSync, renameSync } = await import("node:fs");
    writeFileSync(`${policyPath}.tmp`, denyClient);
    renameSync(`${policyPath}.tmp`, policyPath);
    await until(async () => {
      const err = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080).then((s) => (s.destroy(), undefined), (e) => e);
      return err instanceof SocksError && err.reply === 0x02;
    }, 5000, "the DENY policy to apply");
    // an invalid edit: the error names the document and field; the DENY stays in force
    writeFileSync(`${policyPath}.tmp`, denyClient.replace('ports: ["8080"]', 'ports: ["eighty"]'));
    renameSync(`${policyPath}.tmp`, policyPath);
    const line = await mesh.z("node-b").waitForLog((r) => String(r.msg).includes("spec.rules[0].to[0].operation.ports[0]"));
    expect(String(line.msg)).toContain("deny-client");
    const still = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080).catch((e) => e);
    expect(still).toBeInstanceOf(SocksError);
  });
});
