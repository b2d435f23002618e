import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestMesh, allocSubnet, echoServer, exchange, socksConnect, twoNodeConfig, until, type TestServer } from "../harness/index.ts";

describe("two ztunnels, loopback mode", () => {
  const subnet = allocSubnet();
  let mesh: TestMesh;
  let app: TestServer;
  beforeAll(async () => {
    mesh = await TestMesh.start({ config: twoNodeConfig(subnet), nodes: ["node-a", "node-b"] });
    app = await echoServer(`${subnet}2`, 8080);
  });
  afterAll(async () => {
    await app?.close();
    await mesh?.stop();
  });

  test("pod IP, service VIP and service hostname all reach the app over HBONE", async () => {
    for (const [host, port] of [[`${subnet}2`, 8080], [`${subnet}100`, 80], ["server.default.svc.cluster.local", 80], ["server", 80]] as const) {
      const s = await socksConnect({ host: `${subnet}1` }, host, port);
      expect((await exchange(s, `ping ${host}`)).toString()).toBe(`ping ${host}`);
    }
    await until(() => mesh.z("node-b").accessRecords("inbound").length >= 4, 5000, "4 inbound access records");
    const inbound = mesh.z("node-b").accessRecords("inbound");
    expect(inbound[0]!["src.identity"]).toBe("spiffe://cluster.local/ns/default/sa/client");
    expect(inbound[0]!["tls_version"]).toBe("TLSv1.3");
  });
});
