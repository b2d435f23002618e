import { describe, expect, test } from "bun:test";
import { parseLocalConfig } from "../config/index.ts";
import { ErrorCodes } from "../errors/index.ts";
import { decideOutbound, pickWeighted, resolveMeshHostname } from "./route.ts";

const { state } = parseLocalConfig(
  `
workloads:
- uid: c
  name: client
  namespace: default
  serviceAccount: client
  workloadIps: ["10.0.0.1"]
  protocol: HBONE
  node: a
- uid: e1
  name: echo-1
  namespace: default
  serviceAccount: echo
  workloadIps: ["10.0.1.1"]
  protocol: HBONE
  node: b
  capacity: 3
  services:
    "default/echo.default.svc.cluster.local": {80: 8080}
- uid: e2
  name: echo-2
  namespace: default
  serviceAccount: echo
  workloadIps: ["10.0.1.2"]
  protocol: HBONE
  node: b
  capacity: 1
  services:
    "default/echo.default.svc.cluster.local": {80: 9090}
- uid: sick
  name: sick
  namespace: default
  workloadIps: ["10.0.1.3"]
  protocol: HBONE
  status: Unhealthy
  services:
    "default/lonely.default.svc.cluster.local": {80: 8080}
- uid: legacy
  name: legacy
  namespace: default
  workloadIps: ["10.0.2.1"]
  protocol: TCP
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  vips: ["/10.96.0.1"]
  ports: {80: 8080}
  subjectAltNames: ["spiffe://cluster.local/ns/default/sa/echo-svc"]
- name: lonely
  namespace: default
  hostname: lonely.default.svc.cluster.local
  vips: ["/10.96.0.2"]
  ports: {80: 8080}
- name: other
  namespace: other
  hostname: echo.other.svc.cluster.local
  vips: ["/10.96.0.3"]
  ports: {80: 8080}
`,
  "route-test.yaml",
);
const client = state.workloads.get("c")!;

describe("outbound routing", () => {
  test("service VIP -> weighted endpoint, endpoint port map wins, expected SANs include the service's", () => {
    const r = decideOutbound(state, client, "10.96.0.1", 80, () => 0.1);
    expect(r).toMatchObject({ kind: "hbone", address: "10.0.1.1", port: 15008, authority: "10.0.1.1:8080", targetPort: 8080 });
    if (r.kind !== "hbone") return;
    expect(r.expectedIdentities).toEqual(["spiffe://cluster.local/ns/default/sa/echo", "spiffe://cluster.local/ns/default/sa/echo-svc"]);
    const r2 = decideOutbound(state, client, "10.96.0.1", 80, () => 0.9);
    expect(r2).toMatchObject({ kind: "hbone", address: "10.0.1.2", authority: "10.0.1.2:9090" });
  });

  test("capacity weights the pick", () => {
    const counts = new Map<string, number>();
    let seed = 1;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let i = 0; i < 4000; i++) {
      const r = decideOutbound(state, client, "10.96.0.1", 80, rand);
      if (r.kind === "hbone") counts.set(r.address, (counts.get(r.address) ?? 0) + 1);
    }
    const ratio = counts.get("10.0.1.1")! / counts.get("10.0.1.2")!;
    expect(ratio).toBeGreaterThan(2.4);
    expect(ratio).toBeLessThan(3.7);
    expect(pickWeighted([], Math.random)).toBeUndefined();
  });

  test("workload IP -> HBONE to that workload on 15008 with the original port", () => {
    expect(decideOutbound(state, client, "10.0.1.2", 7000)).toMatchObject({ kind: "hbone", address: "10.0.1.2", authority: "10.0.1.2:7000", expectedIdentities: ["spiffe://cluster.local/ns/default/sa/echo"] });
  });

  test("TCP-protocol workload -> plain TCP", () => {
    expect(decideOutbound(state, client, "10.0.2.1", 5432)).toMatchObject({ kind: "tcp", address: "10.0.2.1", port: 5432 });
  });

  test("unknown address -> passthrough", () => {
    const r = decideOutbound(state, client, "192.0.2.9", 443);
    expect(r).toEqual({ kind: "tcp", address: "192.0.2.9", port: 443 });
  });

  test("known service with no healthy endpoint is refused at once", () => {
    expect(decideOutbound(state, client, "10.96.0.2", 80)).toMatchObject({ kind: "deny", code: ErrorCodes.NO_HEALTHY_UPSTREAM });
  });

  test("our own ports are refused on loopback and on mesh workloads", () => {
    for (const port of [15001, 15006, 15008, 15080]) {
      expect(decideOutbound(state, client, "127.0.0.1", port)).toMatchObject({ kind: "deny", code: ErrorCodes.HBONE_SELF_CALL });
      expect(decideOutbound(state, client, "10.0.1.1", port)).toMatchObject({ kind: "deny", code: ErrorCodes.HBONE_SELF_CALL });
    }
  });

  test("hostnames resolve with Kubernetes search forms, same namespace first", () => {
    for (const name of ["echo", "echo.default", "echo.default.svc", "echo.default.svc.cluster.local", "ECHO.default.svc.cluster.local."]) {
      expect(resolveMeshHostname(state, client, name)?.key).toBe("default/echo.default.svc.cluster.local");
    }
    expect(resolveMeshHostname(state, client, "echo.other")?.key).toBe("other/echo.other.svc.cluster.local");
    expect(resolveMeshHostname(state, client, "nope")).toBeUndefined();
  });
});
