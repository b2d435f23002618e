// Outbound identity (reference/reliability.md §7 A5): a ztunnel sends a CONNECT only to a peer
// that proved the identity the mesh state expects for the destination. A server with a valid mesh
// certificate for another identity, or with a certificate from another CA, gets no request.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SocksError, TestMesh, allocSubnet, exchange, localConfig, serverService, socksConnect, twoNodeWorkloads, until } from "../harness/index.ts";
import { frameTypeName } from "../harness/h2-frames.ts";
import { CountingApp, RogueHboneServer, meshCert, rogueCert } from "./fixtures.ts";

const SERVER_ID = "spiffe://cluster.local/ns/default/sa/server";

/** client (node-a); server (node-b) with the given service account; honest (node-b) as a control. */
function config(subnet: string, serverSa: string): string {
  const { client, server } = twoNodeWorkloads(subnet);
  return localConfig({
    workloads: [client, { ...server, serviceAccount: serverSa }, { name: "honest", ip: `${subnet}3`, node: "node-b" }],
    services: [serverService(subnet)],
  });
}

/** SOCKS CONNECT through the client's ztunnel; the SOCKS reply code, 0 when it connected. */
async function socksReply(clientIp: string, host: string, port: number): Promise<number> {
  try {
    (await socksConnect({ host: clientIp }, host, port)).destroy();
    return 0;
  } catch (e) {
    if (e instanceof SocksError) return e.reply;
    throw e;
  }
}

describe("A5 outbound: the server presents a valid mesh certificate for another identity", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  let mesh: TestMesh;
  let app: CountingApp;
  let honestApp: CountingApp;
  beforeAll(async () => {
    // The client's view says the server is sa/server; the server's own ztunnel (same CA) believes
    // it is sa/impostor and presents that certificate.
    mesh = await TestMesh.start({ config: config(subnet, "server"), nodes: ["node-a"] });
    const impostorConfig = join(mesh.dir, "config-node-b.yaml");
    writeFileSync(impostorConfig, config(subnet, "impostor"));
    const zb = mesh.spawn("node-b", {}, impostorConfig);
    mesh.ztunnels.set("node-b", zb);
    await zb.waitReady();
    await zb.waitForLog((r) => r.msg === "serving workload" && r.identity === "spiffe://cluster.local/ns/default/sa/impostor");
    [app, honestApp] = await Promise.all([CountingApp.start(`${subnet}2`, 8080), CountingApp.start(`${subnet}3`, 8080)]);
  });
  afterAll(async () => {
    await Promise.all([app?.close(), honestApp?.close()]);
    await mesh?.stop();
  });

  test("A5 SOCKS CONNECT fails, the app receives nothing, the client logs SVID_IDENTITY_MISMATCH", async () => {
    for (const [host, port] of [[`${subnet}2`, 8080], [`${subnet}100`, 80], ["server.default.svc.cluster.local", 80]] as const) {
      const reply = await socksReply(clientIp, host, port);
      expect([host, reply !== 0 ? "refused" : "connected"]).toEqual([host, "refused"]);
    }
    expect(await app.settled()).toBe(0);
    const za = mesh.z("node-a");
    await za.waitForLog((r) => String(r.error ?? "").includes("SVID_IDENTITY_MISMATCH") || r.code === "SVID_IDENTITY_MISMATCH");
    // The mismatch names both identities, so an operator can tell what happened.
    expect(za.stderrText.some((l) => l.includes("SVID_IDENTITY_MISMATCH") && l.includes("sa/impostor"))).toBe(true);

    // Control through the same two ztunnels: an honest workload is reached, and by the time its
    // tunnel is logged on node-b no CONNECT for the impostor's workload has arrived there.
    const s = await socksConnect({ host: clientIp }, `${subnet}3`, 8080);
    expect((await exchange(s, "control")).toString()).toBe("control");
    const zb = mesh.z("node-b");
    await until(() => zb.accessRecords("inbound").some((r) => r["dst.workload"] === "honest"), 5000, "the control's inbound record");
    expect(zb.accessRecords("inbound").filter((r) => String(r["dst.addr"] ?? "").startsWith(`${subnet}2:`))).toEqual([]);
    expect(await app.settled()).toBe(0);
  });
});

describe("A5 outbound: a rogue HBONE server on the destination's address", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  let mesh: TestMesh;
  const rogues: RogueHboneServer[] = [];
  beforeAll(async () => {
    // Only the client's ztunnel runs; the server's addresses belong to the attacker.
    mesh = await TestMesh.start({ config: config(subnet, "server"), nodes: ["node-a"] });
  });
  afterAll(async () => {
    await Promise.all(rogues.map((r) => r.close()));
    await mesh?.stop();
  });

  test("A5 a rogue-CA certificate claiming the expected identity: the handshake fails, nothing is sent", async () => {
    const rogue = await RogueHboneServer.start(`${subnet}2`, 15008, await rogueCert(SERVER_ID));
    rogues.push(rogue);
    for (const [host, port] of [[`${subnet}2`, 8080], [`${subnet}100`, 80]] as const) {
      const reply = await socksReply(clientIp, host, port);
      expect([host, reply !== 0 ? "refused" : "connected"]).toEqual([host, "refused"]);
    }
    // The client did dial the rogue (so the test exercised something) ...
    expect(rogue.connections.length).toBeGreaterThanOrEqual(1);
    // ... and sent it not a single byte after the handshake, nor finished the handshake at all.
    expect(rogue.connections.map((c) => c.bytes.length)).toEqual(rogue.connections.map(() => 0));
    expect(rogue.headersFrames()).toEqual([]);
    expect(rogue.connections.filter((c) => c.handshake)).toEqual([]);
  });

  test("A5 a mesh-CA certificate for another identity: no CONNECT headers reach the server", async () => {
    // Same CA as the mesh, so the TLS library's chain check passes: only our identity check stands
    // between the client and the impostor. It runs inside the handshake (as ztunnel's verifier
    // does), so the client aborts before its Finished and sends no HTTP/2 at all.
    const rogue = await RogueHboneServer.start(`${subnet}3`, 15008, await meshCert(mesh.caDir, "spiffe://cluster.local/ns/default/sa/impostor"));
    rogues.push(rogue);
    const reply = await socksReply(clientIp, `${subnet}3`, 8080);
    expect(reply).not.toBe(0);
    expect(rogue.connections.length).toBeGreaterThanOrEqual(1);
    expect(rogue.connections.filter((c) => c.handshake)).toEqual([]);
    const frames = rogue.frames();
    const seen = frames.flatMap((f) => f.frames.map((x) => frameTypeName(x.type)));
    expect(rogue.headersFrames()).toEqual([]);
    expect(seen).toEqual([]);
    for (const c of rogue.connections) {
      expect(c.bytes.includes(Buffer.from(`${subnet}3:8080`))).toBe(false);
      expect(c.bytes.includes(Buffer.from("baggage"))).toBe(false);
    }
    await mesh.z("node-a").waitForLog((r) => String(r.error ?? "").includes("SVID_IDENTITY_MISMATCH"));
  });
});

describe("A3/A5 outbound with NODE_TLS_REJECT_UNAUTHORIZED=0 in the client ztunnel's environment", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  let mesh: TestMesh;
  let rogue: RogueHboneServer | undefined;
  beforeAll(async () => {
    mesh = await TestMesh.start({ config: config(subnet, "server"), nodes: ["node-a"], env: { NODE_TLS_REJECT_UNAUTHORIZED: "0" } });
  });
  afterAll(async () => {
    await rogue?.close();
    await mesh?.stop();
  });

  test("A5 a rogue-CA server claiming the expected identity still gets no CONNECT", async () => {
    rogue = await RogueHboneServer.start(`${subnet}2`, 15008, await rogueCert(SERVER_ID));
    for (let i = 0; i < 3; i++) expect(await socksReply(clientIp, `${subnet}2`, 8080)).not.toBe(0);
    expect(rogue.connections.length).toBeGreaterThanOrEqual(1);
    // Whether or not the TLS library honoured the variable, our own check must have refused.
    expect(rogue.headersFrames()).toEqual([]);
    for (const c of rogue.connections) expect(c.bytes.includes(Buffer.from(`${subnet}2:8080`))).toBe(false);
  });
});
