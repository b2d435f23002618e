// Captured mode end to end on the network-namespace testbed (issue: captured mode): real ztunnel
// processes in the node namespaces, pods handed over with `mesh pod add`, redirect rules in the pod
// namespaces, and unmodified OS clients (curl, redis-cli, getent) and servers (redis-server, an
// HTTP app) inside the pods. Needs root, iproute2, iptables, tcpdump, curl and redis; skipped with
// one line otherwise.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import http2 from "node:http2";
import tls from "node:tls";
import { connectTcpInNetns, connectTransportInNetns } from "../../core/net/index.ts";
import { installRedirectRules } from "../../core/ztunnel/index.ts";
import { meshCert } from "../attacks/fixtures.ts";
import { CLUSTER_DNS, CapturedMesh, ECHO_APP, ECHO_VIP, REDIS_PORT, curlArgs, type PodWorkload } from "./captured-mesh.ts";
import { canRun } from "./testbed.ts";

const BUN = process.execPath;
const FIXTURES = join(import.meta.dir, "fixtures");
const missing = ["curl", "redis-server", "redis-cli", "getent"].filter((c) => Bun.which(c) === null);
const base = canRun({ capture: true });
const why = !base.ok ? base.why : missing.length > 0 ? `missing ${missing.join(", ")} (apt-get install curl redis-server)` : undefined;
if (why) console.log(`skip test/netns captured mode: ${why}`);

const uid = (pod: string) => `test//${pod}`;
const id = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;

describe.skipIf(why !== undefined)("captured mode on the testbed", () => {
  let mesh: CapturedMesh;
  const ip = (pod: string) => mesh.tb.pod(pod).ip;
  const inPod = (pod: string, argv: string[]) => mesh.tb.exec(pod, argv, { timeoutMs: 20_000 });
  const curl = (pod: string, url: string, extra: string[] = []) => inPod(pod, curlArgs(url, extra));
  const dns = async (pod: string, name: string, type: string, transport: "udp" | "tcp") => {
    const r = await inPod(pod, [BUN, join(FIXTURES, "dns-client.ts"), CLUSTER_DNS, name, type, transport]);
    return JSON.parse(r.stdout.trim() || "{}") as { rcode?: string; answers?: string[]; error?: string };
  };
  const iptablesSave = async (pod: string) => (await inPod(pod, ["iptables-save"])).stdout;

  beforeAll(async () => {
    mesh = await CapturedMesh.start({
      testbed: {
        pods: [
          { name: "a1", node: "node-a" },
          { name: "a2", node: "node-a" },
          { name: "a3", node: "node-a", inMesh: false },
          { name: "a4", node: "node-a" },
          { name: "b1", node: "node-b" },
          { name: "b2", node: "node-b" },
        ],
      },
      workloads: (): PodWorkload[] => [
        { pod: "a1", node: "node-a", serviceAccount: "a1" },
        { pod: "a2", node: "node-a", serviceAccount: "a2" },
        { pod: "a4", node: "node-a", serviceAccount: "a4" },
        { pod: "b1", node: "node-b", serviceAccount: "b1", services: { "default/echo.default.svc.cluster.local": { 80: 8080, 8080: 8080 } } },
        { pod: "b2", node: "node-b", serviceAccount: "b2", services: { "default/redis.default.svc.cluster.local": { [REDIS_PORT]: REDIS_PORT } } },
      ],
      // node-a's ztunnel forwards to a resolver on the network; node-b's has none (fails fast).
      resolvConf: { "node-a": "nameserver 10.10.0.1\n", "node-b": "# no resolvers\n" },
    });
    const tb = mesh.tb;
    await mesh.app("b1", [BUN, "-e", ECHO_APP, "b1"]);
    await mesh.app("a2", [BUN, "-e", ECHO_APP, "a2"]);
    await mesh.app("a3", [BUN, "-e", ECHO_APP, "a3"]);
    await mesh.app("net", [BUN, join(FIXTURES, "fake-upstream.ts"), "10.10.0.1"]);
    // redis-server prints its banner on stdout; its first line is enough to know it runs.
    await mesh.app("b2", ["redis-server", "--port", String(REDIS_PORT), "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--loglevel", "notice"]);
    for (const p of ["a1", "a2", "b1", "b2"]) await mesh.addPod(p);
    expect(tb.pods.length).toBe(6);
  }, 120_000);

  afterAll(async () => {
    await mesh?.stop();
  }, 60_000);

  test("pod → pod by IP across nodes and on the same node, over HBONE; the app sees the client pod's own address", async () => {
    const cross = await curl("a1", `http://${ip("b1")}:8080/cross`);
    expect(cross.stdout).toBe(`b1 saw ${ip("a1")} /cross\n`);
    const local = await curl("a1", `http://${ip("a2")}:8080/local`);
    expect(local.stdout).toBe(`a2 saw ${ip("a1")} /local\n`);
    const za = mesh.z("node-a");
    await za.waitForLog((r) => r.scope === "access" && r["dst.hbone_addr"] === `${ip("b1")}:8080` && r["dst.identity"] === id("b1") && r["tls_version"] === "TLSv1.3");
    await za.waitForLog((r) => r.scope === "access" && r.direction === "outbound" && r["dst.hbone_addr"] === `${ip("a2")}:8080` && r["dst.addr"] === `${ip("a2")}:15008`);
    const inbound = await mesh.z("node-b").waitForLog((r) => r.scope === "access" && r.direction === "inbound" && r["src.identity"] === id("a1"));
    expect(inbound["dst.workload"]).toBe("b1");
  });

  test("pod → service VIP (port mapped), across nodes and on the same node", async () => {
    expect((await curl("a1", `http://${ECHO_VIP}/vip`)).stdout).toBe(`b1 saw ${ip("a1")} /vip\n`);
    expect((await curl("b2", `http://${ECHO_VIP}:8080/vip-local`)).stdout).toBe(`b1 saw ${ip("b2")} /vip-local\n`);
    await mesh.z("node-b").waitForLog((r) => r.scope === "access" && r.direction === "outbound" && r["src.workload"] === "b2" && r["dst.service"] === "echo.default.svc.cluster.local");
  });

  test("pod → service hostname through the DNS proxy, in every Kubernetes search form", async () => {
    for (const host of ["echo", "echo.default", "echo.default.svc", "echo.default.svc.cluster.local"]) {
      const r = await curl("a1", `http://${host}:8080/${host}`);
      expect(r.stdout).toBe(`b1 saw ${ip("a1")} /${host}\n`);
    }
    const getent = await inPod("b2", ["getent", "ahostsv4", "echo.default.svc.cluster.local"]);
    expect(getent.stdout).toContain(ECHO_VIP);
  });

  test("the DNS proxy answers over UDP and TCP, says NXDOMAIN for unknown cluster names, forwards the rest, and fails fast without upstreams", async () => {
    expect(await dns("a1", "echo.default.svc.cluster.local", "A", "udp")).toEqual({ rcode: "NOERROR", answers: [ECHO_VIP] });
    expect(await dns("a1", "echo.default.svc.cluster.local", "A", "tcp")).toEqual({ rcode: "NOERROR", answers: [ECHO_VIP] });
    // The name exists but has no IPv6 address: NODATA, not NXDOMAIN.
    expect(await dns("a1", "echo.default.svc.cluster.local", "AAAA", "udp")).toEqual({ rcode: "NOERROR", answers: [] });
    expect((await dns("a1", "nope.default.svc.cluster.local", "A", "udp")).rcode).toBe("NXDOMAIN");
    // Not a mesh name: forwarded to node-a's resolver (in the network namespace), UDP and TCP.
    expect(await dns("a1", "external.test", "A", "udp")).toEqual({ rcode: "NOERROR", answers: ["192.0.2.55"] });
    expect(await dns("a1", "external.test", "A", "tcp")).toEqual({ rcode: "NOERROR", answers: ["192.0.2.55"] });
    expect((await dns("a1", "unknown.test", "A", "udp")).rcode).toBe("NXDOMAIN");
    expect((await inPod("a1", ["getent", "ahostsv4", "external.test"])).stdout).toContain("192.0.2.55");
    // node-b has no resolver: SERVFAIL straight away (the client's own timeout is 8 s).
    expect((await dns("b1", "external.test", "A", "udp")).rcode).toBe("SERVFAIL");
    // Mesh names still resolve there.
    expect((await dns("b1", "echo", "A", "udp")).answers).toEqual([ECHO_VIP]);
  });

  test("redis-cli ↔ redis-server through the mesh, by service name and by pod IP", async () => {
    const set = await inPod("a1", ["redis-cli", "-h", "redis", "-p", String(REDIS_PORT), "SET", "mesh-key", "through-the-mesh"]);
    expect(set.stdout.trim()).toBe("OK");
    const get = await inPod("a2", ["redis-cli", "-h", ip("b2"), "-p", String(REDIS_PORT), "GET", "mesh-key"]);
    expect(get.stdout.trim()).toBe("through-the-mesh");
    for (const client of ["a1", "a2"]) {
      await mesh.z("node-b").waitForLog((r) => r.scope === "access" && r.direction === "inbound" && r["dst.addr"] === `${ip("b2")}:${REDIS_PORT}` && r["src.identity"] === id(client));
    }
  });

  test("between the nodes a capture sees only TLS to port 15008; the plaintext marker never crosses", async () => {
    const marker = `PLAINTEXT-MARKER-${crypto.randomUUID()}`;
    const pcap = join(mesh.dir, "between-nodes.pcap");
    const capture = await mesh.tb.capture("net", mesh.tb.node("node-a").networkIface, "tcp", { pcapPath: pcap });
    expect((await curl("a1", `http://${ip("b1")}:8080/${marker}`)).stdout).toContain(marker);
    expect((await curl("a2", `http://echo/${marker}`, ["-d", marker])).stdout).toContain(marker);
    expect((await inPod("a1", ["redis-cli", "-h", "redis", "SET", "marker", marker])).stdout.trim()).toBe("OK");
    const text = await capture.stop();
    const lines = text.split("\n").filter((l) => l.includes(" IP "));
    expect(lines.length).toBeGreaterThan(10);
    for (const l of lines) expect(l).toMatch(/\.15008[ :]/);
    expect(readFileSync(pcap).includes(Buffer.from(marker))).toBe(false);
  });

  test("mesh pod → pod outside the mesh is plain passthrough; outside pod → mesh pod goes through 15006", async () => {
    expect((await curl("a1", `http://${ip("a3")}:8080/out`)).stdout).toBe(`a3 saw ${ip("a1")} /out\n`);
    const out = await mesh.z("node-a").waitForLog((r) => r.scope === "access" && r.direction === "outbound" && r["dst.addr"] === `${ip("a3")}:8080`);
    expect(out["dst.hbone_addr"]).toBeUndefined();
    expect((await curl("a3", `http://${ip("a2")}:8080/in`)).stdout).toBe(`a2 saw ${ip("a3")} /in\n`);
    const inbound = await mesh.z("node-a").waitForLog((r) => r.scope === "access" && r.direction === "inbound" && r["src.addr"]?.toString().startsWith(`${ip("a3")}:`) === true);
    expect(inbound["dst.addr"]).toBe(`${ip("a2")}:8080`);
    expect(inbound["src.identity"]).toBeUndefined();
  });

  test("IPv6 is captured too: a mesh pod's IPv6 connection goes through its ztunnel, never around it", async () => {
    const v6 = { a1: "fd00:10:1::10", a3: "fd00:10:1::12" };
    for (const [pod, addr] of Object.entries(v6)) expect((await inPod(pod, ["ip", "-6", "addr", "add", `${addr}/64`, "dev", "eth0", "nodad"])).code).toBe(0);
    await mesh.app("a3", [BUN, "-e", ECHO_APP.replace('"0.0.0.0"', '"::"').replace(`port: ${8080}`, "port: 8081"), "a3v6"]);
    expect((await curl("a1", `http://[${v6.a3}]:8081/v6`, ["-g"])).stdout).toBe(`a3v6 saw ${v6.a1} /v6\n`);
    const out = await mesh.z("node-a").waitForLog((r) => r.scope === "access" && r.direction === "outbound" && r["dst.addr"] === `[${v6.a3}]:8081`);
    expect(out["src.workload"]).toBe("a1");
    expect(await iptablesSave("a1")).toContain("MESH_OUTPUT");
    expect((await inPod("a1", ["ip6tables-save"])).stdout).toContain("-j REDIRECT --to-ports 15001");
  });

  test("traffic aimed at our own ports is refused, from a captured pod and from outside the mesh", async () => {
    const self = ip("a1");
    for (const url of [`http://127.0.0.1:15001/`, `http://127.0.0.1:15006/`, `http://${self}:15001/`, `http://${self}:15006/`, `http://${self}:15008/`, `http://${ip("b1")}:15001/`, `http://${ip("b1")}:15006/`]) {
      const r = await curl("a1", url);
      expect(r.code).not.toBe(0);
      expect(r.stdout).not.toContain("saw");
    }
    for (const port of [15001, 15006, 15008, 15053]) {
      const r = await curl("a3", `http://${ip("a2")}:${port}/`);
      expect(r.code).not.toBe(0);
      expect(r.stdout).not.toContain("saw");
    }
  });

  test("a CONNECT for another address or for a mesh port is refused, even with a valid certificate", async () => {
    const cert = await meshCert(mesh.caDir, id("a1"));
    // From the pod outside the mesh: a stolen certificate does not make it a mesh pod.
    const transport = await connectTransportInNetns(mesh.tb.pod("a3").netnsPath, { ip: ip("b1"), port: 15008, mark: 0, timeoutMs: 5000 });
    const session = http2.connect(`https://${ip("b1")}:15008`, {
      createConnection: () =>
        tls.connect({ socket: transport, key: cert.keyPem, cert: cert.certChainPem, ca: cert.rootPem, servername: "", ALPNProtocols: ["h2"], checkServerIdentity: () => undefined }),
    });
    session.on("error", () => {});
    const status = (authority: string) =>
      new Promise<number>((resolve) => {
        const req = session.request({ ":method": "CONNECT", ":authority": authority }, { endStream: false });
        req.on("response", (h) => resolve(Number(h[":status"])));
        req.on("error", () => resolve(-1));
        req.on("close", () => resolve(-1));
      });
    try {
      expect(await status(`${ip("b1")}:8080`)).toBe(200);
      expect(await status(`${ip("b2")}:${REDIS_PORT}`)).toBe(400);
      for (const port of [15001, 15006, 15008]) expect(await status(`${ip("b1")}:${port}`)).not.toBe(200);
    } finally {
      session.destroy();
    }
  });

  test("a connection with a spoofed source address never completes", async () => {
    // a3 (outside the mesh) claims to be a1: a2's side answers a1, which never opened it.
    let err: unknown;
    try {
      const c = await connectTcpInNetns(mesh.tb.pod("a3").netnsPath, { ip: ip("a2"), port: 8080, mark: 0, sourceIp: ip("a1"), timeoutMs: 3000 });
      c.destroy();
    } catch (e) {
      err = e;
    }
    expect(err).toBeDefined();
    expect(mesh.z("node-a").accessRecords("inbound").some((r) => r["src.addr"]?.toString().startsWith(`${ip("a1")}:`) && r["dst.addr"] === `${ip("a2")}:8080` && r["src.identity"] === undefined)).toBe(false);
  });

  test("mesh pod add errors are clear and leave nothing installed", async () => {
    const a4 = mesh.tb.pod("a4");
    const unknown = await mesh.podCli(["add", "--uid", "test//nobody", "--netns", a4.netnsPath, "--socket", mesh.socketOf("node-a")]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("POD_UNKNOWN_WORKLOAD");
    const otherNode = await mesh.podCli(["add", "--uid", uid("b1"), "--netns", a4.netnsPath, "--socket", mesh.socketOf("node-a")]);
    expect(otherNode.stderr).toContain("POD_UNKNOWN_WORKLOAD");
    expect(otherNode.stderr).toContain("node-b");
    const noNetns = await mesh.podCli(["add", "--uid", uid("a4"), "--netns", "/var/run/netns/mesh-no-such-ns", "--socket", mesh.socketOf("node-a")]);
    expect(noNetns.stderr).toContain("NETNS_FAILED");
    const noZtunnel = await mesh.podCli(["add", "--uid", uid("a4"), "--netns", a4.netnsPath, "--socket", join(mesh.dir, "nobody.sock")]);
    expect(noZtunnel.stderr).toContain("POD_SOCKET_UNAVAILABLE");
    expect(await iptablesSave("a4")).not.toContain("MESH_");
    // Rules that fail half way (here `ip` fails after iptables-restore succeeded) are rolled back.
    const fakeBin = join(mesh.dir, "fakebin");
    await Bun.write(join(fakeBin, "ip"), "#!/bin/sh\necho 'RTNETLINK answers: Operation not permitted' >&2\nexit 2\n");
    Bun.spawnSync(["chmod", "+x", join(fakeBin, "ip")]);
    const cli = Bun.spawn([BUN, join(import.meta.dir, "../../cmd/mesh.ts"), "pod", "add", "--uid", uid("a4"), "--netns", a4.netnsPath, "--socket", mesh.socketOf("node-a")], {
      env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH}` },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stderr, code] = await Promise.all([new Response(cli.stderr).text(), cli.exited]);
    expect(code).not.toBe(0);
    expect(stderr).toContain("CAPTURE_RULES_FAILED");
    expect(stderr).toContain("Operation not permitted");
    expect(await iptablesSave("a4")).not.toContain("MESH_");
    expect((await inPod("a4", ["ip6tables-save"])).stdout).not.toContain("MESH_");
    expect((await inPod("a4", ["ip", "rule"])).stdout).not.toContain("0x111");
    const list = await mesh.podCli(["list", "--socket", mesh.socketOf("node-a")]);
    expect(list.stdout).not.toContain(uid("a4"));
  });

  test("ztunnel restart: captured connections are refused while it is down, pods are re-adopted, a pod whose namespace is gone is dropped", async () => {
    await mesh.addPod("a4");
    const before = mesh.z("node-b").accessRecords("inbound").length;
    const old = mesh.z("node-a");
    old.signal("SIGKILL");
    await old.exited;
    // Fail closed: the rules stay, 15001 is gone, so a1's connection is refused, never sent around the mesh.
    const down = await curl("a1", `http://${ip("b1")}:8080/while-down`);
    expect(down.code).toBe(7); // curl: failed to connect
    expect(down.stdout).toBe("");
    const a3 = await curl("a3", `http://${ip("a2")}:8080/while-down`);
    expect(a3.code).not.toBe(0);
    expect(mesh.z("node-b").accessRecords("inbound").length).toBe(before);
    // a4's pod goes away while the ztunnel is down.
    Bun.spawnSync(["ip", "netns", "del", mesh.tb.pod("a4").ns]);
    const z = await mesh.startZtunnel("node-a");
    await z.waitForLog((r) => r.msg === "dropping a pod served before restart" && r.uid === uid("a4"));
    for (const p of ["a1", "a2"]) await z.waitForLog((r) => r.msg === "serving workload" && r.workload === p);
    expect((await curl("a1", `http://${ip("b1")}:8080/after-restart`)).stdout).toBe(`b1 saw ${ip("a1")} /after-restart\n`);
    expect((await curl("a3", `http://${ip("a2")}:8080/after-restart`)).stdout).toBe(`a2 saw ${ip("a3")} /after-restart\n`);
    const list = await mesh.podCli(["list", "--socket", mesh.socketOf("node-a")]);
    expect(list.stdout).toContain(uid("a1"));
    expect(list.stdout).not.toContain(uid("a4"));
  }, 60_000);

  test("mesh pod remove returns the pod to plain networking", async () => {
    const r = await mesh.removePod("a2");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(await iptablesSave("a2")).not.toContain("MESH_");
    expect((await inPod("a2", ["ip6tables-save"])).stdout).not.toContain("MESH_");
    expect((await inPod("a2", ["ip", "rule"])).stdout).not.toContain("0x111");
    expect((await inPod("a2", ["ip", "-6", "rule"])).stdout).not.toContain("0x111");
    const outBefore = mesh.z("node-a").accessRecords("outbound").length;
    // Plain TCP from a2 now; b1 is still captured, so it arrives through b1's 15006 with a2's address.
    expect((await curl("a2", `http://${ip("b1")}:8080/plain`)).stdout).toBe(`b1 saw ${ip("a2")} /plain\n`);
    expect(mesh.z("node-a").accessRecords("outbound").length).toBe(outBefore);
    const inbound = await mesh.z("node-b").waitForLog((r) => r.scope === "access" && r.direction === "inbound" && r["src.addr"]?.toString().startsWith(`${ip("a2")}:`) === true && r["src.identity"] === undefined);
    expect(inbound["dst.addr"]).toBe(`${ip("b1")}:8080`);
    const again = await mesh.removePod("a2");
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("POD_UNKNOWN_WORKLOAD");
    expect(existsSync(mesh.tb.pod("a2").netnsPath)).toBe(true);
    // Rules in a namespace the ztunnel does not serve (e.g. dropped at a restart) are removed with --netns.
    await installRedirectRules(mesh.tb.pod("a3").netnsPath);
    expect(await iptablesSave("a3")).toContain("MESH_OUTPUT");
    const cleanup = await mesh.podCli(["remove", "--uid", "test//a3", "--netns", mesh.tb.pod("a3").netnsPath, "--socket", mesh.socketOf("node-a")]);
    expect([cleanup.code, cleanup.stdout]).toEqual([0, expect.stringContaining("not served")]);
    expect(await iptablesSave("a3")).not.toContain("MESH_");
  });
});
