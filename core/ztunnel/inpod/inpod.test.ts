// Captured mode pieces that need no privilege: DNS name forms, the hand-off protocol, the pod
// registry on disk, the redirect rules' shape. The real thing runs in test/netns/captured.test.ts.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseLocalConfig } from "../../config/index.ts";
import { ErrorCodes, isMeshError } from "../../errors/index.ts";
import { meshDnsLookup } from "./dns.ts";
import { parsePodRequest, podRequest } from "./protocol.ts";
import { PodRegistry } from "./registry.ts";
import { redirectRules } from "./rules.ts";

const { state } = parseLocalConfig(
  `
workloads:
- uid: c
  name: client
  namespace: default
  workloadIps: ["10.0.0.1"]
  node: a
- uid: h1
  name: headless-1
  namespace: other
  workloadIps: ["10.0.2.1"]
  node: b
  services:
    "other/db.other.svc.cluster.local": {5432: 5432}
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  vips: ["/10.96.0.1"]
  ports: {80: 8080}
- name: db
  namespace: other
  hostname: db.other.svc.cluster.local
  vips: []
  ports: {5432: 5432}
`,
  "test.yaml",
);

const dir = mkdtempSync(join(tmpdir(), "inpod-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("captured mode DNS names", () => {
  const lookup = meshDnsLookup(() => state, () => state.workloads.get("c")!, "cluster.local");
  test("every Kubernetes search form of a service, also with a search domain appended", () => {
    for (const n of ["echo", "echo.default", "echo.default.svc", "echo.default.svc.cluster.local", "echo.default.default.svc.cluster.local", "echo.default.svc.cluster.local.cluster.local"]) {
      expect(lookup(n)).toEqual({ kind: "addresses", ips: ["10.96.0.1"] });
    }
  });
  test("a headless service answers with its endpoints; unknown cluster names are NXDOMAIN; the rest goes upstream", () => {
    expect(lookup("db.other")).toEqual({ kind: "addresses", ips: ["10.0.2.1"] });
    expect(lookup("nope.default.svc.cluster.local")).toEqual({ kind: "nxdomain" });
    expect(lookup("example.com.default.svc.cluster.local")).toEqual({ kind: "nxdomain" });
    expect(lookup("example.com")).toEqual({ kind: "forward" });
    expect(lookup("db")).toEqual({ kind: "forward" }); // another namespace's short name is not ours
  });
});

describe("pod hand-off protocol", () => {
  test("requests are validated", () => {
    expect(parsePodRequest(`{"op":"add","uid":"u","netns":"/var/run/netns/x"}`)).toEqual({ op: "add", uid: "u", netns: "/var/run/netns/x" });
    expect(parsePodRequest(`{"op":"remove","uid":"u"}`)).toEqual({ op: "remove", uid: "u" });
    for (const bad of ["nope", `{"op":"add","uid":"u","netns":"relative"}`, `{"op":"add","netns":"/x"}`, `{"op":"explode"}`, "[]"]) {
      expect(() => parsePodRequest(bad)).toThrow();
    }
  });
  test("no ztunnel on the socket is POD_SOCKET_UNAVAILABLE", async () => {
    let err: unknown;
    try {
      await podRequest(join(dir, "none.sock"), { op: "list" }, 1000);
    } catch (e) {
      err = e;
    }
    expect(isMeshError(err, ErrorCodes.POD_SOCKET_UNAVAILABLE)).toBe(true);
  });
});

describe("pod registry", () => {
  test("persists across instances; a corrupt file is reported, not fatal", () => {
    const path = join(dir, "pods.json");
    const a = new PodRegistry(path);
    a.set("u1", "/var/run/netns/p1");
    a.set("u2", "/var/run/netns/p2");
    a.delete("u1");
    const b = new PodRegistry(path);
    expect(b.load().loaded.map((p) => [p.uid, p.netns])).toEqual([["u2", "/var/run/netns/p2"]]);
    expect(JSON.parse(readFileSync(path, "utf8")).version).toBe(1);
    writeFileSync(path, "{not json");
    const c = new PodRegistry(path);
    const r = c.load();
    expect(r.loaded).toEqual([]);
    expect(r.error).toContain("cannot read pod state");
  });
});

describe("redirect rules", () => {
  test("the in-pod rules of the reference: mark exemption, 15001/15006/15053, loopback and 15008 untouched", () => {
    const r = redirectRules();
    expect(r).toContain("-A MESH_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff");
    expect(r).toContain("! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006");
    expect(r).toContain("-m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001");
    expect(r).toContain("--dport 53 -j REDIRECT --to-ports 15053");
    expect(r).toContain("! -d 127.0.0.1/32 -o lo -j ACCEPT");
    expect(r.match(/^COMMIT$/gm)?.length).toBe(2);
  });
});
