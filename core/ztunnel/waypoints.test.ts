import { describe, expect, test } from "bun:test";
import { parseLocalConfig } from "../config/index.ts";
import { ErrorCodes } from "../errors/index.ts";
import { decideOutbound, routeToServiceByName } from "./route.ts";
import { isFromWaypoint, waypointsGuarding } from "./waypoints.ts";

const { state } = parseLocalConfig(
  `
workloads:
- {uid: c, name: client, namespace: default, serviceAccount: client, workloadIps: ["10.0.0.1"], protocol: HBONE}
- uid: wp1
  name: waypoint-1
  namespace: default
  serviceAccount: waypoint
  workloadIps: ["10.0.9.1"]
  protocol: HBONE
  services: {"default/waypoint.default.svc.cluster.local": {15008: 15008}}
- uid: wp2
  name: waypoint-2
  namespace: default
  serviceAccount: waypoint
  workloadIps: ["10.0.9.2"]
  protocol: HBONE
  capacity: 3
  services: {"default/waypoint.default.svc.cluster.local": {15008: 15008}}
- uid: r1
  name: reviews-1
  namespace: default
  serviceAccount: reviews
  workloadIps: ["10.0.1.1"]
  protocol: HBONE
  services: {"default/reviews.default.svc.cluster.local": {80: 9080}}
- uid: pod
  name: pinned
  namespace: default
  serviceAccount: pinned
  workloadIps: ["10.0.1.5"]
  protocol: HBONE
  waypoint: {destination: "default/waypoint.default.svc.cluster.local", hboneMtlsPort: 15008}
  services: {"default/plain.default.svc.cluster.local": {80: 8080}}
- {uid: free, name: free, namespace: default, serviceAccount: free, workloadIps: ["10.0.1.9"], protocol: HBONE}
services:
- name: waypoint
  namespace: default
  hostname: waypoint.default.svc.cluster.local
  vips: ["/10.96.0.9"]
  ports: {15008: 15008}
- name: reviews
  namespace: default
  hostname: reviews.default.svc.cluster.local
  vips: ["/10.96.0.1"]
  ports: {80: 9080}
  waypoint: {destination: "default/waypoint.default.svc.cluster.local", hboneMtlsPort: 15008}
- name: plain
  namespace: default
  hostname: plain.default.svc.cluster.local
  vips: ["/10.96.0.2"]
  ports: {80: 8080}
- name: ghost
  namespace: default
  hostname: ghost.default.svc.cluster.local
  vips: ["/10.96.0.3"]
  ports: {80: 80}
  waypoint: {destination: "default/missing.default.svc.cluster.local", hboneMtlsPort: 15008}
- name: headless
  namespace: default
  hostname: headless.default.svc.cluster.local
  vips: []
  ports: {80: 9080}
  waypoint: {destination: "default/waypoint.default.svc.cluster.local", hboneMtlsPort: 15008}
`,
  "waypoints.yaml",
);
const client = state.workloads.get("c")!;
const wp1 = state.workloads.get("wp1")!;

describe("steering to waypoints", () => {
  test("service-addressed traffic goes by HBONE to a waypoint replica with the VIP as :authority", () => {
    const r = decideOutbound(state, client, "10.96.0.1", 80, () => 0.1);
    expect(r.kind).toBe("hbone");
    if (r.kind !== "hbone") return;
    expect(r.address).toBe("10.0.9.1");
    expect(r.port).toBe(15008);
    expect(r.authority).toBe("10.96.0.1:80");
    expect(r.expectedIdentities).toEqual(["spiffe://cluster.local/ns/default/sa/waypoint"]);
    expect(r.service?.name).toBe("reviews");
    expect(r.waypoint?.workload.uid).toBe("wp1");
  });

  test("replicas are picked by capacity", () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const r = decideOutbound(state, client, "10.96.0.1", 80, () => (i + 0.5) / 400);
      if (r.kind === "hbone") counts.set(r.address, (counts.get(r.address) ?? 0) + 1);
    }
    expect(counts.get("10.0.9.1")).toBe(100);
    expect(counts.get("10.0.9.2")).toBe(300);
  });

  test("workload-addressed traffic to a pod with a waypoint goes there, keeping the pod address as :authority", () => {
    const r = decideOutbound(state, client, "10.0.1.5", 8080, () => 0);
    expect(r.kind === "hbone" && r.address === "10.0.9.1" && r.authority === "10.0.1.5:8080" && r.destination.uid === "pod").toBe(true);
  });

  test("a service endpoint that has its own waypoint is reached through it", () => {
    const r = decideOutbound(state, client, "10.96.0.2", 80, () => 0);
    expect(r.kind === "hbone" && r.address === "10.0.9.1" && r.authority === "10.0.1.5:8080").toBe(true);
  });

  test("the waypoint itself goes direct, never back to itself", () => {
    const r = decideOutbound(state, wp1, "10.0.1.5", 8080, () => 0);
    expect(r.kind === "hbone" && r.address === "10.0.1.5" && r.waypoint === undefined).toBe(true);
  });

  test("an unknown waypoint refuses the connection instead of skipping it", () => {
    const r = decideOutbound(state, client, "10.96.0.3", 80, () => 0);
    expect(r.kind).toBe("deny");
    if (r.kind === "deny") expect(r.code).toBe(ErrorCodes.WAYPOINT_UNRESOLVED);
  });

  test("a headless service with a waypoint is addressed by hostname:port", () => {
    const svc = state.services.get("default/headless.default.svc.cluster.local")!;
    const r = routeToServiceByName(state, client, svc, 80, () => 0);
    expect(r.kind === "hbone" && r.authority === "headless.default.svc.cluster.local:80" && r.address === "10.0.9.1").toBe(true);
  });

  test("workloads without a waypoint are unaffected", () => {
    const r = decideOutbound(state, client, "10.0.1.9", 80, () => 0);
    expect(r.kind === "hbone" && r.address === "10.0.1.9" && r.waypoint === undefined).toBe(true);
  });
});

describe("the sandwich guard", () => {
  test("a workload is behind its own waypoint and its services' waypoints", () => {
    expect(waypointsGuarding(state, state.workloads.get("r1")!)).toHaveLength(1);
    expect(waypointsGuarding(state, state.workloads.get("pod")!)).toHaveLength(1);
    expect(waypointsGuarding(state, state.workloads.get("free")!)).toHaveLength(0);
  });

  test("from the waypoint means its identity from a replica's address", () => {
    const guards = waypointsGuarding(state, state.workloads.get("r1")!);
    const id = "spiffe://cluster.local/ns/default/sa/waypoint";
    expect(isFromWaypoint(state, "", guards, id, "10.0.9.2")).toBe(true);
    expect(isFromWaypoint(state, "", guards, id, "10.0.0.1")).toBe(false);
    expect(isFromWaypoint(state, "", guards, client.identity, "10.0.9.1")).toBe(false);
  });
});
