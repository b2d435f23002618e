// Istio TCP metrics after real traffic, on both reporters: the standard label set, mutual TLS, and
// byte counts in Istio's direction convention (client→server bytes are "received").
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestMesh, allocSubnet, parsePrometheus, samples, serve, socksConnect, twoNodeConfig, until, type Sample, type TestServer } from "../harness/index.ts";

const CLIENT_TO_SERVER = 123_457;
const SERVER_TO_CLIENT = 654_321;

describe("Istio TCP metrics", () => {
  const subnet = allocSubnet();
  let mesh: TestMesh;
  let app: TestServer;
  beforeAll(async () => {
    mesh = await TestMesh.start({ config: twoNodeConfig(subnet), nodes: ["node-a", "node-b"] });
    // Reads the whole request, then answers with a different amount, so the directions differ.
    app = await serve(`${subnet}2`, 8080, (s) => {
      let got = 0;
      s.on("data", (c: Buffer) => {
        got += c.length;
        if (got === CLIENT_TO_SERVER) s.end(Buffer.alloc(SERVER_TO_CLIENT, 0x61));
      });
    });
  }, 30_000);
  afterAll(async () => {
    await app?.close();
    await mesh?.stop();
  });

  test("both sides report the connection with Istio labels and the bytes that crossed", async () => {
    const c = await socksConnect({ host: `${subnet}1` }, "server.default.svc.cluster.local", 80);
    const received = await new Promise<number>((resolve, reject) => {
      let n = 0;
      c.on("data", (d: Buffer) => (n += d.length));
      c.once("end", () => resolve(n));
      c.once("error", reject);
      c.write(Buffer.alloc(CLIENT_TO_SERVER, 0x62));
    });
    c.end();
    expect(received).toBe(SERVER_TO_CLIENT);
    await until(() => mesh.z("node-a").accessRecords("outbound").length === 1, 5000, "node-a's access record");
    await until(() => mesh.z("node-b").accessRecords("inbound").length === 1, 5000, "node-b's access record");

    const labels = {
      source_workload: "client",
      source_workload_namespace: "default",
      source_principal: "spiffe://cluster.local/ns/default/sa/client",
      destination_workload: "server",
      destination_workload_namespace: "default",
      destination_principal: "spiffe://cluster.local/ns/default/sa/server",
      destination_service: "server.default.svc.cluster.local",
      destination_service_name: "server",
      destination_service_namespace: "default",
      connection_security_policy: "mutual_tls",
      request_protocol: "tcp",
      response_flags: "-",
    };
    for (const [node, reporter, other] of [["node-a", "source", "destination"], ["node-b", "destination", "source"]] as const) {
      const all = parsePrometheus(await mesh.z(node).metricsText());
      const one = (name: string): Sample => {
        const found = samples(all, name, { reporter, ...labels });
        expect(found.map((s) => `${node} ${name}`)).toEqual([`${node} ${name}`]);
        return found[0]!;
      };
      expect(one("istio_tcp_connections_opened_total").value).toBe(1);
      expect(one("istio_tcp_connections_closed_total").value).toBe(1);
      // Istio: bytes from client to server are "received", server to client "sent", on both reporters.
      expect(one("istio_tcp_received_bytes_total").value).toBe(CLIENT_TO_SERVER);
      expect(one("istio_tcp_sent_bytes_total").value).toBe(SERVER_TO_CLIENT);
      // Nothing was reported for the other role, and nothing without mTLS.
      const stray = samples(all, "istio_tcp_connections_opened_total").filter(
        (s) => s.value > 0 && (s.labels.reporter === other || s.labels.connection_security_policy !== "mutual_tls"),
      );
      expect(stray).toEqual([]);
    }
  }, 30_000);
});
