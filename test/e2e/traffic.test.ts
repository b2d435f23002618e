import { describe, expect, test } from "bun:test";
import { exchange, socksConnect, twoNodeEchoMesh, until } from "../harness/index.ts";

describe("two ztunnels, loopback mode", () => {
  const two = twoNodeEchoMesh();
  const { subnet } = two;

  test("pod IP, service VIP and service hostname all reach the app over HBONE", async () => {
    for (const [host, port] of [[`${subnet}2`, 8080], [`${subnet}100`, 80], ["server.default.svc.cluster.local", 80], ["server", 80]] as const) {
      const s = await socksConnect({ host: `${subnet}1` }, host, port);
      expect((await exchange(s, `ping ${host}`)).toString()).toBe(`ping ${host}`);
    }
    await until(() => two.mesh.z("node-b").accessRecords("inbound").length >= 4, 5000, "4 inbound access records");
    const inbound = two.mesh.z("node-b").accessRecords("inbound");
    expect(inbound[0]!["src.identity"]).toBe("spiffe://cluster.local/ns/default/sa/client");
    expect(inbound[0]!["tls_version"]).toBe("TLSv1.3");
  });
});
