// Authorization in captured mode: the same engine on HBONE inbound (identity = verified peer
// certificate) and on plaintext inbound through 15006 (no identity: principal and namespace
// conditions never match, ipBlocks do). Real pods on the testbed, plain curl.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync, renameSync } from "node:fs";
import { CapturedMesh, ECHO_APP, curlArgs, meshConfig, type PodWorkload } from "./captured-mesh.ts";
import { canRun } from "./testbed.ts";

const BUN = process.execPath;
const base = canRun({ capture: false });
const why = !base.ok ? base.why : Bun.which("curl") === null ? "missing curl (apt-get install curl)" : undefined;
if (why) console.log(`skip test/netns authorization: ${why}`);

const workloads = (): PodWorkload[] => [
  { pod: "a1", node: "node-a", serviceAccount: "a1" },
  { pod: "b1", node: "node-b", serviceAccount: "b1" },
];

describe.skipIf(why !== undefined)("authorization in captured mode", () => {
  let mesh: CapturedMesh;
  const ip = (pod: string) => mesh.tb.pod(pod).ip;
  const curl = (pod: string, url: string) => mesh.tb.exec(pod, curlArgs(url, ["--max-time", "5"]), { timeoutMs: 20_000 });
  const reloads = () => mesh.z("node-b").records.filter((r) => r.msg === "config reloaded").length;
  const setPolicies = async (policies: string) => {
    const before = reloads();
    const tmp = `${mesh.configPath}.tmp`;
    writeFileSync(tmp, meshConfig(mesh.tb, workloads(), policies));
    renameSync(tmp, mesh.configPath);
    const until = Date.now() + 10_000;
    while (reloads() === before) {
      if (Date.now() > until) throw new Error(`node-b did not reload:\n${mesh.z("node-b").stderrText.slice(-8).join("\n")}`);
      await Bun.sleep(25);
    }
  };

  beforeAll(async () => {
    mesh = await CapturedMesh.start({
      testbed: {
        pods: [
          { name: "a1", node: "node-a" },
          { name: "a3", node: "node-a", inMesh: false },
          { name: "b1", node: "node-b" },
        ],
      },
      workloads,
    });
    await mesh.app("b1", [BUN, "-e", ECHO_APP, "b1"]);
    for (const p of ["a1", "b1"]) await mesh.addPod(p);
  }, 120_000);

  afterAll(async () => {
    await mesh?.stop();
  }, 60_000);

  test("ALLOW by principal: the mesh peer passes over HBONE, the plaintext client is reset at 15006", async () => {
    await setPolicies(
      `policies:
- name: allow-a1
  namespace: default
  scope: Namespace
  action: Allow
  dryRun: false
  rules:
  - - - principals: [!Exact cluster.local/ns/default/sa/a1]
`,
    );
    expect((await curl("a1", `http://${ip("b1")}:8080/from-a1`)).stdout).toBe(`b1 saw ${ip("a1")} /from-a1\n`);
    const denied = await curl("a3", `http://${ip("b1")}:8080/from-a3`);
    expect(denied.code).not.toBe(0);
    expect(denied.stdout).not.toContain("b1 saw");
    const rec = await mesh.z("node-b").waitForLog((r) => r.scope === "access" && r.direction === "inbound" && r.response_flags === "DENY" && String(r["src.addr"]).startsWith(`${ip("a3")}:`));
    expect(rec["src.identity"]).toBeUndefined();
    expect(String(rec.error)).toContain("AUTHZ_DENIED");
  });

  test("ALLOW by ipBlocks: plaintext from that address passes, a principal condition alone never would", async () => {
    await setPolicies(
      `policies:
- name: allow-a3-address
  namespace: default
  scope: Namespace
  action: Allow
  dryRun: false
  rules:
  - - - sourceIps: ["${ip("a3")}/32"]
`,
    );
    expect((await curl("a3", `http://${ip("b1")}:8080/by-ip`)).stdout).toBe(`b1 saw ${ip("a3")} /by-ip\n`);
    // a1's HBONE connection arrives from a1's address too, but a1 is not in that block
    const a1 = await curl("a1", `http://${ip("b1")}:8080/a1-by-ip`);
    expect(a1.stdout).not.toContain("b1 saw");
  });

  test("STRICT mTLS as a DENY of notPrincipals presence: plaintext refused, mTLS allowed", async () => {
    await setPolicies(
      `policies:
- name: strict-mtls
  namespace: default
  scope: Namespace
  action: Deny
  dryRun: false
  rules:
  - - - notPrincipals: [!Presence []]
`,
    );
    expect((await curl("a1", `http://${ip("b1")}:8080/mtls`)).stdout).toBe(`b1 saw ${ip("a1")} /mtls\n`);
    const plain = await curl("a3", `http://${ip("b1")}:8080/plain`);
    expect(plain.stdout).not.toContain("b1 saw");
  });
});
