// The waypoint role end to end: the test is the client side (an HBONE CONNECT to the waypoint with
// the client workload's mesh certificate), the waypoint is a real `mesh --role waypoint` process,
// and the apps sit behind a real ztunnel on node-b. Routing, a redirect, L7 deny, keep-alive,
// forwarding headers and the waypoint's request metrics are checked on real traffic.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http from "node:http";
import http2 from "node:http2";
import tls from "node:tls";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { meshCert, type PresentedCert } from "../attacks/fixtures.ts";
import { TestMesh, ZtunnelProcess, allocSubnet, localConfig, meshCommand, parsePrometheus, samples, serviceKey, until } from "../harness/index.ts";

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: server-routes, namespace: default}
spec:
  parentRefs:
  - {group: "", kind: Service, name: server, port: 80}
  rules:
  - matches:
    - headers: [{name: x-version, value: v2}]
    backendRefs: [{name: server-v2, port: 80}]
  - matches:
    - path: {type: PathPrefix, value: /old}
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}, statusCode: 302}
`;

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: server}]
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]
    to: [{operation: {paths: ["/admin*"]}}]
`;

interface AppReply {
  app: string;
  path: string;
  host: string;
  xff: string;
  xfcc: string | null;
}

function appServer(host: string, port: number, name: string): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    const body = JSON.stringify({
      app: name,
      path: req.url,
      host: req.headers.host,
      xff: req.headers["x-forwarded-for"],
      xfcc: req.headers["x-forwarded-client-cert"] ?? null,
    });
    res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen({ host, port }, () => resolve(srv));
  });
}

describe("waypoint role", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  const waypointIp = `${subnet}10`;
  const serverVip = `${subnet}100`;
  let mesh: TestMesh;
  let waypoint: ZtunnelProcess;
  let apps: http.Server[] = [];
  let clientCert: PresentedCert;
  const sessions: http2.ClientHttp2Session[] = [];

  beforeAll(async () => {
    const config = localConfig({
      workloads: [
        { name: "client", ip: clientIp, node: "node-a" },
        { name: "server", ip: `${subnet}2`, node: "node-b", services: { [serviceKey("server")]: { 80: 8080 } } },
        { name: "server-v2", ip: `${subnet}3`, node: "node-b", services: { [serviceKey("server-v2")]: { 80: 8081 } } },
        { name: "waypoint", ip: waypointIp, node: "node-w", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
      ],
      services: [
        { name: "server", vip: serverVip, ports: { 80: 8080 }, waypoint: "waypoint" },
        { name: "server-v2", vip: `${subnet}101`, ports: { 80: 8081 }, waypoint: "waypoint" },
        { name: "waypoint", vip: `${subnet}102`, ports: { 15008: 15008 } },
      ],
    });
    apps = [await appServer(`${subnet}2`, 8080, "v1"), await appServer(`${subnet}3`, 8081, "v2")];
    mesh = await TestMesh.start({ config, nodes: ["node-b"] });
    const routes = join(mesh.dir, "routes.yaml");
    const policies = join(mesh.dir, "policies.yaml");
    writeFileSync(routes, ROUTES);
    writeFileSync(policies, POLICIES);
    const proc = Bun.spawn(
      [
        ...meshCommand(),
        "--role", "waypoint",
        "--config", mesh.configPath,
        "--workload", "test//waypoint",
        "--ca-dir", mesh.caDir,
        "--routes", routes,
        "--policies", policies,
        "--admin-port", "0",
        "--metrics-port", "0",
        "--readiness-port", "0",
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, MESH_LOG_LEVEL: "debug" } },
    );
    waypoint = new ZtunnelProcess("waypoint", proc);
    const started = await waypoint.waitForLog((r) => r.msg === "waypoint started" || r.level === "error", 20_000);
    expect(started.msg).toBe("waypoint started");
    waypoint.ports = { admin: Number(String(started.admin).split(":").pop()), metrics: Number(started.metrics), readiness: Number(started.readiness) };
    clientCert = await meshCert(mesh.caDir, "spiffe://cluster.local/ns/default/sa/client");
  }, 40_000);

  afterAll(async () => {
    for (const s of sessions) s.destroy();
    await waypoint?.stop();
    await mesh?.stop();
    for (const a of apps) a.close();
  });

  /** An HBONE CONNECT to the waypoint as the client workload; resolves with the open tunnel. */
  async function tunnel(authority = `${serverVip}:80`): Promise<http2.ClientHttp2Stream> {
    const session = http2.connect(`https://${waypointIp}:15008`, {
      createConnection: () => {
        // localAddress is a net option tls.connect passes on (not in its typings).
        const opts: tls.ConnectionOptions = {
          host: waypointIp,
          port: 15008,
          cert: clientCert.certChainPem,
          key: clientCert.keyPem,
          ca: clientCert.rootPem,
          ALPNProtocols: ["h2"],
          // The waypoint's SPIFFE certificate has no DNS name; its chain is still verified against the mesh root.
          checkServerIdentity: () => undefined,
        };
        return tls.connect({ ...opts, localAddress: clientIp } as tls.ConnectionOptions);
      },
    });
    sessions.push(session);
    session.on("error", () => {});
    const stream = session.request({ ":method": "CONNECT", ":authority": authority }, { endStream: false });
    const status = await new Promise<number>((resolve, reject) => {
      stream.once("response", (h) => resolve(Number(h[":status"])));
      stream.once("error", reject);
    });
    expect(status).toBe(200);
    return stream;
  }

  /** One HTTP/1.1 request through a fresh tunnel. */
  async function request(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    const stream = await tunnel();
    return new Promise((resolve, reject) => {
      const req = http.request(
        { method: "GET", path, headers: { host: "server.default.svc.cluster.local", connection: "close", ...headers }, createConnection: () => stream as never },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    });
  }

  test("a plain request reaches the original service's app through the server's ztunnel", async () => {
    const r = await request("/hello?x=1", { "x-forwarded-for": "203.0.113.9", "x-forwarded-client-cert": "By=spiffe://cluster.local/ns/default/sa/admin" });
    expect(r.status).toBe(200);
    const reply = JSON.parse(r.body) as AppReply;
    expect(reply.app).toBe("v1");
    expect(reply.path).toBe("/hello?x=1");
    expect(reply.host).toBe("server.default.svc.cluster.local");
    // The tunnel's source is appended; a client-supplied identity header is not passed on.
    expect(reply.xff).toBe(`203.0.113.9, ${clientIp}`);
    expect(reply.xfcc).toBeNull();
  });

  test("an HTTPRoute header match sends the request to the second backend service", async () => {
    const r = await request("/hello", { "x-version": "v2" });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as AppReply).app).toBe("v2");
  });

  test("a RequestRedirect filter answers 302 with the rewritten location", async () => {
    const r = await request("/old/page");
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe("http://server.default.svc.cluster.local/new");
  });

  test("an L7 DENY policy on the verified peer and path answers 403 with Istio's body", async () => {
    const r = await request("/admin/settings");
    expect(r.status).toBe(403);
    expect(r.body).toBe("RBAC: access denied");
    const prefix = await request("/administrator-free");
    expect(prefix.status).toBe(403); // "/admin*" is a prefix match, as in Istio
    const other = await request("/public");
    expect(other.status).toBe(200);
  });

  test("requests on one tunnel share the downstream connection (keep-alive)", async () => {
    const stream = await tunnel();
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (c: string) => (text += c));
    const h = "Host: server.default.svc.cluster.local\r\n";
    stream.write(`GET /ka1 HTTP/1.1\r\n${h}\r\n`);
    await until(() => text.includes('"path":"/ka1"'), 5000, "first response");
    stream.write(`GET /ka2 HTTP/1.1\r\n${h}Connection: close\r\n\r\n`);
    await until(() => text.includes('"path":"/ka2"'), 5000, "second response on the same tunnel");
    expect(text.match(/HTTP\/1\.1 200/g)?.length).toBe(2);
  });

  test("the waypoint reports istio_requests_total with reporter=waypoint and one access line per request", async () => {
    const before = waypoint.accessRecords().length;
    const r = await request("/metrics-probe");
    expect(r.status).toBe(200);
    const probe = () => waypoint.accessRecords().slice(before).find((x) => (x as Record<string, unknown>)["path"] === "/metrics-probe");
    await until(() => probe() !== undefined, 5000, "the access log line");
    const line = probe();
    expect(line).toBeDefined();
    const text = await waypoint.metricsText();
    const ok = samples(parsePrometheus(text), "istio_requests_total", {
      reporter: "waypoint",
      response_code: "200",
      source_principal: "spiffe://cluster.local/ns/default/sa/client",
      destination_service: "server.default.svc.cluster.local",
      destination_principal: "spiffe://cluster.local/ns/default/sa/server",
      connection_security_policy: "mutual_tls",
    });
    expect(ok.length).toBe(1);
    expect(ok[0]!.value).toBeGreaterThanOrEqual(3);
    const denied = samples(parsePrometheus(text), "istio_requests_total", { reporter: "waypoint", response_code: "403" });
    expect(denied.reduce((n, s) => n + s.value, 0)).toBeGreaterThanOrEqual(2);
  });
});
