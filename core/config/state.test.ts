import { describe, expect, test } from "bun:test";
import { buildMeshState, parseLocalConfig, type MeshState, type Service, type Workload } from "./index.ts";

const state = (yaml: string): MeshState => parseLocalConfig(yaml, "s.yaml").state;

const MESH = `
workloads:
- uid: c1//Pod/default/echo-0
  name: echo-0
  namespace: default
  workloadIps: ["10.0.1.7", "2001:db8::7"]
  protocol: HBONE
  services: {"default/echo.default.svc.cluster.local": {80: 8080}}
- uid: c1//Pod/default/echo-1
  name: echo-1
  namespace: default
  network: net-b
  workloadIps: ["10.0.1.7"]
  status: Unhealthy
  services: {"default/echo.default.svc.cluster.local": {80: 9090}}
- uid: c1//Pod/kube-system/node-agent
  name: node-agent
  namespace: kube-system
  networkMode: HostNetwork
  workloadIps: ["10.0.1.7"]
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  vips: ["/10.96.0.20", "/2001:DB8:FFFF::20"]
  ports: {80: 8080}
- name: wide
  namespace: default
  hostname: wide.example.com
  vips: []
  cidrVips: [{network: "", cidr: "10.97.0.0/16"}]
  ports: {443: 443}
- name: narrow
  namespace: default
  hostname: narrow.example.com
  vips: []
  cidrVips: [{network: "", cidr: "10.97.5.0/24"}, {network: "", cidr: "fd00::/8"}]
  ports: {443: 443}
- name: exact
  namespace: default
  hostname: exact.example.com
  vips: ["/10.97.5.5"]
  ports: {443: 443}
- name: entry
  namespace: team-a
  hostname: api.example.com
  vips: []
  ports: {443: 443}
- name: entry
  namespace: team-b
  hostname: api.example.com
  vips: []
  ports: {443: 443}
`;

describe("MeshState indexes", () => {
  const st = state(MESH);

  test("workload by network/ip, with IPv6 and mapped forms normalised", () => {
    expect(st.workloadByAddress("", "10.0.1.7")?.name).toBe("echo-0");
    expect(st.workloadByAddress("", "::ffff:10.0.1.7")?.name).toBe("echo-0");
    expect(st.workloadByAddress("", "2001:DB8:0::7")?.name).toBe("echo-0");
    expect(st.workloadByAddress("net-b", "10.0.1.7")?.name).toBe("echo-1");
    expect(st.workloadByAddress("net-c", "10.0.1.7")).toBeUndefined();
    expect(st.workloadByAddress("", "10.0.1.8")).toBeUndefined();
    expect(st.workloadByAddress("", "not-an-ip")).toBeUndefined();
  });

  test("host-network workloads are not indexed by address (and may share the node IP)", () => {
    expect(st.workloads.get("c1//Pod/kube-system/node-agent")).toBeDefined();
    expect(st.workloadByAddress("", "10.0.1.7")?.name).not.toBe("node-agent");
  });

  test("service by exact VIP", () => {
    expect(st.serviceByVip("", "10.96.0.20")?.name).toBe("echo");
    expect(st.serviceByVip("", "2001:db8:ffff::20")?.name).toBe("echo");
    expect(st.serviceByVip("", "::ffff:10.96.0.20")?.name).toBe("echo");
    expect(st.serviceByVip("net-b", "10.96.0.20")).toBeUndefined();
  });

  test("CIDR VIPs: exact VIP first, then the longest prefix", () => {
    expect(st.serviceByVip("", "10.97.5.5")?.name).toBe("exact");
    expect(st.serviceByVip("", "10.97.5.6")?.name).toBe("narrow");
    expect(st.serviceByVip("", "10.97.6.1")?.name).toBe("wide");
    expect(st.serviceByVip("", "::ffff:10.97.6.1")?.name).toBe("wide");
    expect(st.serviceByVip("", "fd12::1")?.name).toBe("narrow");
    expect(st.serviceByVip("", "10.98.0.1")).toBeUndefined();
    expect(st.serviceByVip("other", "10.97.6.1")).toBeUndefined();
  });

  test("services by hostname (a hostname may exist in several namespaces)", () => {
    expect(st.servicesByHostname("api.example.com").map((s) => s.key)).toEqual([
      "team-a/api.example.com",
      "team-b/api.example.com",
    ]);
    expect(st.servicesByHostname("echo.default.svc.cluster.local").map((s) => s.name)).toEqual(["echo"]);
    expect(st.servicesByHostname("nope")).toEqual([]);
  });

  test("endpoints of a service: every workload listing it, with its own port map", () => {
    const eps = st.endpointsOf("default/echo.default.svc.cluster.local");
    expect(eps.map((e) => [e.workload.name, e.ports.get(80), e.workload.status])).toEqual([
      ["echo-0", 8080, "Healthy"],
      ["echo-1", 9090, "Unhealthy"],
    ]);
    expect(st.endpointsOf("default/none")).toEqual([]);
  });
});

describe("buildMeshState conflict rules (merged sources)", () => {
  const base = state(`
workloads:
- {uid: "c//Pod/ns/a", name: a, namespace: ns, workloadIps: ["10.0.0.1"], protocol: TCP}
services:
- {name: s1, namespace: ns, hostname: s1, vips: ["/10.96.0.1"], ports: {}}
`);
  const other = state(`
workloads:
- {uid: "c//Pod/ns/b", name: b, namespace: ns, workloadIps: ["10.0.0.1"], protocol: HBONE}
- {uid: "c//WorkloadEntry/ns/e", name: e, namespace: ns, workloadIps: ["10.0.0.2"], protocol: HBONE}
- {uid: "c//Pod/ns/a", name: a-again, namespace: ns, workloadIps: ["10.0.0.9"]}
services:
- {name: s2, namespace: ns, hostname: s2, vips: ["/10.96.0.1"], ports: {}, canonical: true}
`);
  const third = state(`
services:
- {name: s3, namespace: ns, hostname: s3, vips: ["/10.96.0.1", "/10.96.0.3"], ports: {}}
- {name: s4, namespace: ns, hostname: s4, vips: ["/10.96.0.4"], ports: {}}
`);
  const all = <T>(m: ReadonlyMap<string, T>) => [...m.values()];
  const merged = buildMeshState({
    workloads: [...all(base.workloads), ...all(other.workloads)] as Workload[],
    services: [...all(base.services), ...all(other.services), ...all(third.services)] as Service[],
    policies: [],
  });

  test("the first entry with a uid wins", () => {
    expect(merged.workloads.get("c//Pod/ns/a")?.name).toBe("a");
    expect(merged.workloadByAddress("", "10.0.0.9")).toBeUndefined();
  });
  test("two workloads on one address: ztunnel's ranking (Pod and HBONE first)", () => {
    expect(merged.workloadByAddress("", "10.0.0.1")?.name).toBe("b");
  });
  test("two services on one VIP: the canonical one wins", () => {
    expect(merged.serviceByVip("", "10.96.0.1")?.name).toBe("s2");
    const plain = buildMeshState({ workloads: [], services: [...all(third.services), ...all(base.services)], policies: [] });
    expect(plain.serviceByVip("", "10.96.0.1")?.name).toBe("s3"); // neither canonical: first listed
    expect(merged.serviceByVip("", "10.96.0.4")?.name).toBe("s4");
  });
});
