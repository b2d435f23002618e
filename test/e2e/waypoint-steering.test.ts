// ztunnel steering through a waypoint, end to end with real processes: client app → SOCKS on its
// ztunnel (node-a) → HBONE to the waypoint → HBONE to the server's ztunnel (node-b) → app. And the
// sandwich: a tunnel that skips the waypoint is hairpinned through it by the server's ztunnel, so
// the waypoint's L7 policy still applies and the app never sees it unseen.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http from "node:http";
import { meshCert } from "../attacks/fixtures.ts";
import { TestMesh, ZtunnelProcess, allocSubnet, hboneConnect, httpOver, localConfig, serviceKey, socksConnect, startWaypoint, until } from "../harness/index.ts";


const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-secret, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: server}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/secret*"]}}]
`;

function app(host: string, port: number, seen: string[]): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    seen.push(String(req.url));
    const body = JSON.stringify({ path: req.url, via: req.headers["x-forwarded-for"] ?? null });
    res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen({ host, port }, () => resolve(srv));
  });
}

/** One HTTP/1.1 GET over an already connected socket (SOCKS or tunnel), connection: close. */

describe("ztunnel steers through the waypoint", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  const serverIp = `${subnet}2`;
  const serverVip = `${subnet}100`;
  let mesh: TestMesh;
  let waypoint: ZtunnelProcess;
  let server: http.Server;
  const seen: string[] = [];

  beforeAll(async () => {
    const config = localConfig({
      workloads: [
        { name: "client", ip: clientIp, node: "node-a" },
        { name: "server", ip: serverIp, node: "node-b", services: { [serviceKey("server")]: { 80: 8080 } } },
        { name: "waypoint", ip: `${subnet}10`, node: "node-w", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
      ],
      services: [
        { name: "server", vip: serverVip, ports: { 80: 8080 }, waypoint: "waypoint" },
        { name: "waypoint", vip: `${subnet}102`, ports: { 15008: 15008 } },
      ],
    });
    server = await app(serverIp, 8080, seen);
    mesh = await TestMesh.start({ config, nodes: ["node-a", "node-b"] });
    waypoint = await startWaypoint(mesh, { policies: POLICIES });
  }, 60_000);

  afterAll(async () => {
    await waypoint?.stop();
    await mesh?.stop();
    server?.close();
  });

  test("a client's request to the service VIP goes through the waypoint (its policy applies, its log has the line)", async () => {
    const before = waypoint.accessRecords().length;
    const ok = await httpOver(await socksConnect({ host: clientIp }, serverVip, 80), "/hello", "server.default.svc.cluster.local");
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).path).toBe("/hello");
    await until(() => waypoint.accessRecords().length > before, 5000, "waypoint access line");
    const denied = await httpOver(await socksConnect({ host: clientIp }, serverVip, 80), "/secret/x", "server.default.svc.cluster.local");
    expect(denied.status).toBe(403);
    expect(seen).not.toContain("/secret/x");
  });

  test("a tunnel straight to the server pod, skipping the waypoint, is hairpinned through it", async () => {
    const cert = await meshCert(mesh.caDir, "spiffe://cluster.local/ns/default/sa/client");
    const before = waypoint.accessRecords().length;
    const t = await hboneConnect({ address: serverIp, authority: `${serverIp}:8080`, cert, localAddress: clientIp });
    expect(t.status).toBe(200);
    const r = await httpOver(t.stream, "/secret/direct", "server.default.svc.cluster.local");
    expect(r.status).toBe(403);
    expect(seen).not.toContain("/secret/direct");
    const lineFor = () => waypoint.accessRecords().slice(before).find((x) => (x as Record<string, unknown>).path === "/secret/direct") as Record<string, unknown> | undefined;
    await until(() => lineFor() !== undefined, 5000, "the hairpinned request in the waypoint's log");
    const line = lineFor();
    // The waypoint saw the original caller, vouched for by the server's ztunnel.
    expect(line?.["src.identity"]).toBe("spiffe://cluster.local/ns/default/sa/client");
    expect(line?.["src.workload"]).toBe("client");
    t.close();
    const t2 = await hboneConnect({ address: serverIp, authority: `${serverIp}:8080`, cert, localAddress: clientIp });
    const ok = await httpOver(t2.stream, "/fine", "server.default.svc.cluster.local");
    expect(ok.status).toBe(200);
    t2.close();
  });
});
