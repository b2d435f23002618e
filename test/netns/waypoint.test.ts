// The waypoint in captured mode on the network-namespace testbed: unmodified curl in a captured pod
// calls the echo service, whose traffic the node's ztunnel steers to a waypoint running in its own
// (uncaptured) pod; the waypoint's L7 policy applies; a call straight to the app's pod IP, skipping
// the waypoint, is hairpinned through it by the destination's ztunnel.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ZtunnelProcess, meshCommand } from "../harness/mesh.ts";
import { serviceKey } from "../harness/config.ts";
import { CapturedMesh, ECHO_APP, ECHO_PORT, ECHO_VIP, curlArgs, type PodWorkload } from "./captured-mesh.ts";
import { canRun } from "./testbed.ts";

const BUN = process.execPath;
const base = canRun({ capture: true });
const why = !base.ok ? base.why : Bun.which("curl") === null ? "missing curl (apt-get install curl)" : undefined;
if (why) console.log(`skip test/netns waypoint: ${why}`);

const POLICY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-secret, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: echo}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/secret*"]}}]
`;

describe.skipIf(why !== undefined)("waypoint in captured mode", () => {
  let mesh: CapturedMesh;
  let waypoint: ZtunnelProcess;
  const curl = (pod: string, url: string) => mesh.tb.exec(pod, curlArgs(url, ["-w", "\\n%{http_code}"]), { timeoutMs: 20_000 });

  beforeAll(async () => {
    mesh = await CapturedMesh.start({
      testbed: {
        pods: [
          { name: "a1", node: "node-a" },
          { name: "b1", node: "node-b" },
          { name: "wp", node: "node-b", inMesh: false },
        ],
      },
      workloads: (): PodWorkload[] => [
        { pod: "a1", node: "node-a", serviceAccount: "a1" },
        { pod: "b1", node: "node-b", serviceAccount: "b1", services: { [serviceKey("echo")]: { [ECHO_PORT]: ECHO_PORT, 80: ECHO_PORT } } },
        { pod: "wp", node: "node-w", serviceAccount: "waypoint", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
      ],
      echoWaypoint: "waypoint",
    });
    const policies = join(mesh.dir, "policies.yaml");
    writeFileSync(policies, POLICY);
    // The waypoint is a pod of its own, not captured: it binds HBONE on its pod address.
    const proc = mesh.tb.spawnIn("wp", [...meshCommand(), "--role", "waypoint", "--config", mesh.configPath, "--workload", "test//wp", "--ca-dir", mesh.caDir, "--policies", policies, "--admin-port", "0", "--metrics-port", "0", "--readiness-port", "0"]);
    waypoint = new ZtunnelProcess("waypoint", proc as never);
    const started = await waypoint.waitForLog((r) => r.msg === "waypoint started" || r.level === "error", 20_000);
    expect(started.msg).toBe("waypoint started");
    await mesh.app("b1", [BUN, "-e", ECHO_APP, "b1"]);
    for (const p of ["a1", "b1"]) await mesh.addPod(p);
  }, 120_000);

  afterAll(async () => {
    await waypoint?.stop();
    await mesh?.stop();
  }, 60_000);

  test("curl to the service goes through the waypoint: served, and the app sees the waypoint as its caller", async () => {
    const r = await curl("a1", `http://${ECHO_VIP}:${ECHO_PORT}/hello`);
    const lines = r.stdout.trim().split("\n");
    const [body, code] = [lines[0], lines.at(-1)];
    expect(code).toBe("200");
    expect(body).toBe(`b1 saw ${mesh.tb.pod("wp").ip} /hello`);
    // the access line leaves after the response, and reaches us through the process's stdout pipe
    const line = await waypoint.waitForLog((rec) => rec.scope === "access" && rec.path === "/hello", 5_000);
    expect(line.response_code).toBe(200);
  });

  test("the waypoint's L7 policy holds, also for a call to the pod IP that skips the waypoint (hairpin)", async () => {
    const viaService = await curl("a1", `http://${ECHO_VIP}:${ECHO_PORT}/secret/a`);
    expect(viaService.stdout.trim().split("\n").at(-1)).toBe("403");
    const direct = await curl("a1", `http://${mesh.tb.pod("b1").ip}:${ECHO_PORT}/secret/b`);
    expect(direct.stdout.trim().split("\n").at(-1)).toBe("403");
    const fine = await curl("a1", `http://${mesh.tb.pod("b1").ip}:${ECHO_PORT}/fine`);
    expect(fine.stdout.trim().split("\n").at(-1)).toBe("200");
    const line = waypoint.accessRecords().find((x) => (x as Record<string, unknown>).path === "/secret/b") as Record<string, unknown> | undefined;
    expect(line?.["src.identity"]).toBe("spiffe://cluster.local/ns/default/sa/a1");
  });
});
