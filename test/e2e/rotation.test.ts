// Certificate rotation under traffic: with a 6 s SECRET_TTL the workload certificates are renewed
// at half-life (~3 s); an open tunnel keeps working across it and new connections use the new one.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type net from "node:net";
import {
  TestMesh,
  allocSubnet,
  echoServer,
  exchange,
  presentedCertificate,
  socksConnect,
  twoNodeConfig,
  until,
  type TestServer,
  type ZtunnelProcess,
} from "../harness/index.ts";

interface CertInfo {
  identity: string;
  serialNumber: string | null;
  validFrom: string | null;
  expirationTime: string | null;
}

async function certOf(z: ZtunnelProcess, identity: string): Promise<CertInfo | undefined> {
  const dump = await z.configDump();
  return (dump.certificates as CertInfo[]).find((c) => c.identity === identity);
}

/** Writes `msg` on an open socket and waits for the echo (the socket stays open). */
function roundTrip(s: net.Socket, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const onData = (c: Buffer) => {
      got += c.toString();
      if (got.length >= msg.length) {
        s.off("data", onData);
        s.off("error", reject);
        resolve(got);
      }
    };
    s.on("data", onData);
    s.once("error", reject);
    s.write(msg);
  });
}

describe("certificate rotation", () => {
  const subnet = allocSubnet();
  const CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client";
  const SERVER_ID = "spiffe://cluster.local/ns/default/sa/server";
  let mesh: TestMesh;
  let app: TestServer;
  let clientApp: TestServer;
  beforeAll(async () => {
    mesh = await TestMesh.start({ config: twoNodeConfig(subnet), nodes: ["node-a", "node-b"], env: { SECRET_TTL: "6s" } });
    app = await echoServer(`${subnet}2`, 8080);
    clientApp = await echoServer(`${subnet}1`, 9090);
  }, 30_000);
  afterAll(async () => {
    await app?.close();
    await clientApp?.close();
    await mesh?.stop();
  });

  test("an open tunnel survives the rotation; config_dump shows new serials; new connections work", async () => {
    const a = mesh.z("node-a");
    const b = mesh.z("node-b");
    const firstClient = await certOf(a, CLIENT_ID);
    const firstServer = await certOf(b, SERVER_ID);
    expect(firstClient?.serialNumber).toBeString();
    expect(firstServer?.serialNumber).toBeString();
    // The requested lifetime was honoured (a 24 h default here would make this test meaningless).
    const life = Date.parse(firstServer!.expirationTime!) - Date.parse(firstServer!.validFrom!);
    expect(life).toBeLessThanOrEqual(7_000);

    const open = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080);
    expect(await roundTrip(open, "before rotation")).toBe("before rotation");

    await until(async () => (await certOf(b, SERVER_ID))?.serialNumber !== firstServer!.serialNumber, 10_000, "node-b rotated the server certificate");
    await until(async () => (await certOf(a, CLIENT_ID))?.serialNumber !== firstClient!.serialNumber, 10_000, "node-a rotated the client certificate");
    await b.waitForLog((r) => r.msg === "certificate rotated" && r.identity === SERVER_ID, 1000);

    expect(await roundTrip(open, "during the second certificate")).toBe("during the second certificate");
    const fresh = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080);
    expect((await exchange(fresh, "new connection after rotation")).toString()).toBe("new connection after rotation");

    // New handshakes get the new certificate.
    const rotated = (await certOf(b, SERVER_ID))!;
    const presented = await presentedCertificate(mesh.caDir, `${subnet}2`, 15008, CLIENT_ID);
    expect(presented.serialNumber).toBe(rotated.serialNumber!.toLowerCase());
    expect(presented.subjectAltName).toBe(`URI:${SERVER_ID}`);

    // Past the first certificates' expiry, both the old tunnel and new ones still work.
    const expired = Date.parse(firstServer!.expirationTime!);
    await Bun.sleep(Math.max(0, expired - Date.now() + 200));
    expect(await roundTrip(open, "after the first certificate expired")).toBe("after the first certificate expired");
    const late = await socksConnect({ host: `${subnet}1` }, "server.default.svc.cluster.local", 80);
    expect((await exchange(late, "new connection after expiry")).toString()).toBe("new connection after expiry");
    // A connection that needs a fresh HBONE handshake (the reverse direction was never dialed)
    // uses only rotated certificates on both ends.
    const reverse = await socksConnect({ host: `${subnet}2` }, `${subnet}1`, 9090);
    expect((await exchange(reverse, "reverse after expiry")).toString()).toBe("reverse after expiry");
    await until(() => a.accessRecords("inbound").length >= 1, 5000, "node-a's inbound access record");
    expect(a.accessRecords("inbound")[0]!["src.identity"]).toBe(SERVER_ID);
    open.end();
    await until(() => b.accessRecords("inbound").length >= 3, 5000, "three inbound access records");
    expect(b.accessRecords("inbound").filter((r) => r.error)).toEqual([]);
  }, 30_000);
});
