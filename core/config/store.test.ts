import { describe, expect, test } from "bun:test";
import { EMPTY_MESH_STATE, StateStore, parseLocalConfig, type MeshState } from "./index.ts";

const state = (yaml: string): MeshState => parseLocalConfig(yaml, "s.yaml").state;

const FILE = state(`
workloads:
- {uid: w-shared, name: from-file, namespace: ns, workloadIps: ["10.0.0.1"], services: {"ns/svc": {80: 8080}}}
- {uid: w-file, name: file-only, namespace: ns, workloadIps: ["10.0.0.2"]}
policies:
- {name: p, namespace: ns, scope: Namespace, action: Deny, rules: []}
`);
const XDS = state(`
workloads:
- {uid: w-shared, name: from-xds, namespace: ns, workloadIps: ["10.0.0.9"]}
- {uid: w-xds, name: xds-only, namespace: ns, workloadIps: ["10.0.0.3"], services: {"ns/svc": {80: 9090}}}
services:
- {name: svc, namespace: ns, hostname: svc, vips: ["/10.96.0.1"], ports: {80: 0}}
policies:
- {name: p, namespace: ns, scope: Namespace, action: Allow, rules: []}
`);

describe("StateStore", () => {
  test("starts empty; one source is served as is", () => {
    const store = new StateStore();
    expect(store.current()).toBe(EMPTY_MESH_STATE);
    store.setSource("file", FILE);
    expect(store.current()).toBe(FILE);
  });

  test("merges sources as a union; the higher-precedence source supplies a shared key", () => {
    const store = new StateStore(["file", "xds"]);
    store.setSource("xds", XDS);
    store.setSource("file", FILE);
    expect(store.sourceNames()).toEqual(["file", "xds"]);
    const st = store.current();
    expect([...st.workloads.keys()].sort()).toEqual(["w-file", "w-shared", "w-xds"]);
    expect(st.workloads.get("w-shared")?.name).toBe("from-file");
    // the losing copy is dropped whole: its address is not indexed
    expect(st.workloadByAddress("", "10.0.0.9")).toBeUndefined();
    expect(st.policies.get("ns/p")?.action).toBe("Deny");
    // indexes span sources: a file workload is an endpoint of a service xDS defined
    expect(st.serviceByVip("", "10.96.0.1")?.key).toBe("ns/svc");
    expect(st.endpointsOf("ns/svc").map((e) => e.workload.name).sort()).toEqual(["from-file", "xds-only"]);
  });

  test("without a precedence list the first source set wins, and keeps its rank when replaced", () => {
    const store = new StateStore();
    store.setSource("xds", XDS);
    store.setSource("file", FILE);
    expect(store.current().workloads.get("w-shared")?.name).toBe("from-xds");
    store.setSource("xds", XDS); // same object: no change
    store.setSource("xds", state(`workloads: [{uid: w-shared, name: xds-v2, namespace: ns, workloadIps: []}]`));
    expect(store.current().workloads.get("w-shared")?.name).toBe("xds-v2");
    expect(store.sourceNames()).toEqual(["xds", "file"]);
  });

  test("removeSource drops what only it supplied", () => {
    const store = new StateStore(["file"]);
    store.setSource("file", FILE);
    store.setSource("xds", XDS);
    store.removeSource("file");
    expect(store.current()).toBe(XDS);
    store.removeSource("xds");
    expect(store.current()).toBe(EMPTY_MESH_STATE);
    store.removeSource("nothing"); // no-op
  });

  test("subscribers see (next, prev) on every change, and can unsubscribe", () => {
    const store = new StateStore(["file"]);
    const seen: [MeshState, MeshState][] = [];
    const off = store.subscribe((next, prev) => seen.push([next, prev]));
    store.setSource("file", FILE);
    store.setSource("file", FILE); // unchanged: no call
    store.setSource("xds", XDS);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toEqual([FILE, EMPTY_MESH_STATE]);
    expect(seen[1]![1]).toBe(FILE);
    expect(seen[1]![0]).toBe(store.current());
    off();
    store.removeSource("xds");
    expect(seen).toHaveLength(2);
  });

  test("a throwing subscriber does not stop the others; its error surfaces after", () => {
    const store = new StateStore();
    let called = 0;
    store.subscribe(() => {
      throw new Error("boom");
    });
    store.subscribe(() => called++);
    expect(() => store.setSource("file", FILE)).toThrow("boom");
    expect(called).toBe(1);
    expect(store.current()).toBe(FILE);
  });
});
