// Attacks by an authenticated peer on what a CONNECT may reach (reference/reliability.md §7 B10,
// B16, and malformed requests): a valid mesh certificate buys a tunnel to the workload whose
// listener accepted the connection, on an application port, and nothing else.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SocksError, TestMesh, allocSubnet, localConfig, serverService, serviceKey, socksConnect, twoNodeWorkloads, until } from "../harness/index.ts";
import { headersFrame } from "../harness/h2-frames.ts";
import { CountingApp, hboneAttempt, meshCert, rawH2Attempt, statusOf, type PresentedCert } from "./fixtures.ts";

const CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client";

/** The two-node mesh plus `other` (node-b) and a `loop` service whose ports are the ztunnel's own. */
function config(subnet: string): string {
  const { client, server } = twoNodeWorkloads(subnet);
  const loopPorts = { 81: 15080, 82: 15008, 83: 15001, 84: 15006 };
  return localConfig({
    workloads: [
      client,
      { ...server, services: { ...server.services, [serviceKey("loop")]: loopPorts } },
      { name: "other", ip: `${subnet}3`, node: "node-b", services: { [serviceKey("other")]: { 80: 8080 } } },
    ],
    services: [serverService(subnet), { name: "other", vip: `${subnet}101`, ports: { 80: 8080 } }, { name: "loop", vip: `${subnet}102`, ports: loopPorts }],
  });
}

describe("CONNECT targets of an authenticated peer", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  const serverIp = `${subnet}2`;
  const otherIp = `${subnet}3`;
  const outsideIp = `${subnet}50`;
  let mesh: TestMesh;
  let serverApp: CountingApp;
  let otherApp: CountingApp;
  let outsideApp: CountingApp;
  let cert: PresentedCert;
  const appConnections = async () => (await serverApp.settled()) + (await otherApp.settled()) + (await outsideApp.settled());

  beforeAll(async () => {
    mesh = await TestMesh.start({ config: config(subnet), nodes: ["node-a", "node-b"] });
    [serverApp, otherApp, outsideApp] = await Promise.all([CountingApp.start(serverIp, 8080), CountingApp.start(otherIp, 8080), CountingApp.start(outsideIp, 8080)]);
    // The attacker holds a genuine mesh identity (a compromised workload) and sends from its address.
    cert = await meshCert(mesh.caDir, CLIENT_ID);
  });
  afterAll(async () => {
    await Promise.all([serverApp?.close(), otherApp?.close(), outsideApp?.close()]);
    await mesh?.stop();
  });

  const connect = (listenerIp: string, authority: string) => hboneAttempt({ address: listenerIp, localAddress: clientIp, cert, authority });

  test("control: CONNECT to the listener's own workload by IP and by service hostname is served", async () => {
    for (const authority of [`${serverIp}:8080`, "server.default.svc.cluster.local:80"]) {
      const before = await serverApp.settled();
      const a = await connect(serverIp, authority);
      a.close();
      expect([authority, statusOf(a)]).toEqual([authority, 200]);
      expect(await serverApp.settled()).toBe(before + 1);
    }
  });

  test("B10 CONNECT whose :authority IP differs from the connection's destination is answered 400, nothing dialled", async () => {
    const before = await appConnections();
    const cases: [string, string][] = [
      [serverIp, `${otherIp}:8080`], // another workload on the same ztunnel
      [serverIp, `${outsideIp}:8080`], // an address outside the mesh
      [serverIp, "127.0.0.1:8080"],
      [otherIp, `${serverIp}:8080`],
    ];
    for (const [listener, authority] of cases) {
      const a = await connect(listener, authority);
      expect([listener, authority, statusOf(a)]).toEqual([listener, authority, 400]);
    }
    expect((await appConnections()) - before).toBe(0);
    await until(() => mesh.z("node-b").records.filter((r) => String(r.error ?? "").startsWith("HBONE_IP_MISMATCH")).length >= cases.length, 5000, "IP mismatch access records");
  });

  test("B10 CONNECT naming a service of another workload is answered 400, nothing dialled", async () => {
    const before = await appConnections();
    for (const authority of ["other.default.svc.cluster.local:80", "kubernetes.default.svc.cluster.local:443"]) {
      const a = await connect(serverIp, authority);
      expect([authority, statusOf(a)]).toEqual([authority, 400]);
    }
    expect((await appConnections()) - before).toBe(0);
  });

  test("B16 CONNECT to the ztunnel's own ports is refused (never 200)", async () => {
    const before = await appConnections();
    const authorities = [15008, 15080, 15001, 15006].map((p) => `${serverIp}:${p}`);
    // a service whose target ports are the mesh's own ports
    authorities.push(...[81, 82, 83, 84].map((p) => `loop.default.svc.cluster.local:${p}`));
    for (const authority of authorities) {
      const status = statusOf(await connect(serverIp, authority));
      expect([authority, status === 503 || status === 400 ? "refused" : `status ${status}`]).toEqual([authority, "refused"]);
    }
    expect((await appConnections()) - before).toBe(0);
    const selfCalls = () => mesh.z("node-b").records.filter((r) => String(r.error ?? "").startsWith("HBONE_SELF_CALL")).length;
    await until(() => selfCalls() >= authorities.length, 5000, "HBONE_SELF_CALL access records");
  });

  test("B16 CONNECT to the ztunnel's own admin, metrics and readiness listeners via a workload address is refused (self call)", async () => {
    // In loopback mode metrics and readiness listen on 0.0.0.0, which includes every workload
    // address: a tunnel to <workload IP>:<metrics port> would land in the ztunnel itself.
    const z = mesh.z("node-b");
    const own = { admin: z.ports.admin, metrics: z.ports.metrics, readiness: z.ports.readiness };
    const results: Record<string, string> = {};
    for (const [name, port] of Object.entries(own)) {
      const a = await connect(serverIp, `${serverIp}:${port}`);
      a.close();
      const status = statusOf(a);
      results[name] = status === 503 || status === 400 ? "refused" : `status ${status ?? JSON.stringify(a.outcome)}`;
    }
    expect(results).toEqual({ admin: "refused", metrics: "refused", readiness: "refused" });
  });

  test("B16 SOCKS requests for a mesh port on loopback or on a mesh workload are refused", async () => {
    const before = await appConnections();
    const targets: [string, number][] = [
      ["127.0.0.1", 15008],
      ["127.0.0.1", 15080],
      ["localhost", 15008],
      [clientIp, 15080], // its own SOCKS listener
      [clientIp, 15008], // its own HBONE listener
      [serverIp, 15008], // another workload's HBONE port, as an application port
      [serverIp, 15080],
      [`${subnet}102`, 81], // a service VIP whose target port is 15080
      [`${subnet}102`, 82], // ... and 15008
    ];
    for (const [host, port] of targets) {
      let reply: number | string = "connected";
      try {
        (await socksConnect({ host: clientIp }, host, port)).destroy();
      } catch (e) {
        reply = e instanceof SocksError ? e.reply : `error: ${(e as Error).message}`;
      }
      expect([host, port, typeof reply === "number" && reply !== 0 ? "refused" : reply]).toEqual([host, port, "refused"]);
    }
    expect((await appConnections()) - before).toBe(0);
  });

  test("a non-CONNECT method is answered 400", async () => {
    const before = await appConnections();
    for (const method of ["GET", "POST", "PUT", "OPTIONS"]) {
      const a = await hboneAttempt({
        address: serverIp,
        localAddress: clientIp,
        cert,
        headers: { ":method": method, ":scheme": "https", ":path": "/", ":authority": `${serverIp}:8080` },
      });
      expect([method, statusOf(a)]).toEqual([method, 400]);
    }
    expect((await appConnections()) - before).toBe(0);
  });

  test("a malformed CONNECT authority is answered 400", async () => {
    const before = await appConnections();
    const bad = [
      serverIp, // no port
      `${serverIp}:`,
      `${serverIp}:0`,
      `${serverIp}:65536`,
      `${serverIp}:99999999999`,
      `${serverIp}:80a`,
      `${serverIp}:-1`,
      `${serverIp}:+80`,
      `${serverIp}:0x50`,
      `[${serverIp}]:8080`,
      `${serverIp}:8080:8080`,
      "fd00::1:8080",
      "[fd00::1]8080",
      "bad_host!:8080",
      "a..b:8080",
      `user@${serverIp}:8080`,
      `${serverIp}:8080/path`,
      `${"a".repeat(300)}:8080`,
    ];
    for (const authority of bad) {
      const a = await connect(serverIp, authority);
      // Some forms are refused by HTTP/2 itself (stream reset); none may be served.
      const s = statusOf(a);
      expect([authority, s === 400 || (s === undefined && a.outcome.kind !== "timeout") ? "refused" : JSON.stringify(a.outcome)]).toEqual([authority, "refused"]);
    }
    expect((await appConnections()) - before).toBe(0);
  });

  test("raw frames: CONNECT without :authority, or with CR/LF/space in it, is never served", async () => {
    const before = await appConnections();
    // control: the hand-written request works when well-formed, so the decoder is trusted
    const ok = await rawH2Attempt({ address: serverIp, cert, frames: [headersFrame(1, [[":method", "CONNECT"], [":authority", `${serverIp}:8080`]])] });
    expect(ok.status).toBe(200);
    const requests: [string, [string, string][]][] = [
      ["no :authority", [[":method", "CONNECT"]]],
      ["empty :authority", [[":method", "CONNECT"], [":authority", ""]]],
      ["CRLF in :authority", [[":method", "CONNECT"], [":authority", `${serverIp}:8080\r\nx: y`]]],
      ["space in :authority", [[":method", "CONNECT"], [":authority", `${serverIp} :8080`]]],
      ["no :method", [[":authority", `${serverIp}:8080`]]],
      ["lowercase method", [[":method", "connect"], [":authority", `${serverIp}:8080`]]],
      ["authority of another workload in a host header", [[":method", "CONNECT"], [":authority", `${otherIp}:8080`], ["host", `${serverIp}:8080`]]],
    ];
    for (const [what, headers] of requests) {
      const r = await rawH2Attempt({ address: serverIp, cert, frames: [headersFrame(1, headers)] });
      expect([what, r.status === 200 ? "served" : "refused"]).toEqual([what, "refused"]);
      expect([what, r.status !== undefined || r.reset || r.closedByPeer || r.frames.some((f) => f.type === 0x7) ? "answered" : "no answer"]).toEqual([what, "answered"]);
    }
    expect((await appConnections()) - before).toBe(1);
  });
});
