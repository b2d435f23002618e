// Egress through a waypoint: services outside the mesh (endpoints with `protocol: TCP`, one known
// only by DNS name) name a waypoint; ztunnel steers to it, the waypoint applies L7 policy and
// routes, then connects out in plain TCP, or originates TLS when a DestinationRule says SIMPLE —
// verifying the server against the configured CA and name.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestMesh, ZtunnelProcess, allocSubnet, httpOver, localConfig, socksConnect, startWaypoint } from "../harness/index.ts";


function selfSigned(dir: string, name: string): { key: string; cert: string; certPath: string } {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.crt`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${name}`, "-addext", `subjectAltName=DNS:${name}`, "-days", "1", "-keyout", keyPath, "-out", certPath], { stdio: "ignore" });
  return { key: readFileSync(keyPath, "utf8"), cert: readFileSync(certPath, "utf8"), certPath };
}

describe("egress through a waypoint", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  const secureIp = `${subnet}51`;
  let mesh: TestMesh;
  let waypoint: ZtunnelProcess;
  const servers: (http.Server | https.Server)[] = [];
  const seen: string[] = [];

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "mesh-egress-"));
    const good = selfSigned(dir, "secure.example.test");
    const other = selfSigned(dir, "other.example.test");
    const handler = (tag: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
      seen.push(`${tag}${req.url}`);
      const body = JSON.stringify({ tag, path: req.url, host: req.headers.host });
      res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
      res.end(body);
    };
    const plain = http.createServer(handler("plain"));
    const secure = https.createServer({ key: good.key, cert: good.cert }, handler("tls"));
    // Known only by DNS name: "localhost", on a port the OS picks.
    await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
    const plainPort = (plain.address() as net.AddressInfo).port;
    await new Promise<void>((r) => secure.listen(8443, secureIp, r));
    servers.push(plain, secure);
    const config = localConfig({
      workloads: [
        { name: "client", ip: clientIp, node: "node-a" },
        { name: "waypoint", ip: `${subnet}10`, node: "node-w", services: { "default/waypoint.default.svc.cluster.local": { 15008: 15008 } } },
      ],
      services: [{ name: "waypoint", vip: `${subnet}102`, ports: { 15008: 15008 } }],
      extra: `- name: api
  namespace: default
  hostname: api.example.test
  vips: ["/${subnet}120"]
  ports: {80: ${plainPort}}
  waypoint: {destination: "default/waypoint.default.svc.cluster.local", hboneMtlsPort: 15008}
- name: secure
  namespace: default
  hostname: secure.example.test
  vips: ["/${subnet}121"]
  ports: {80: 8443}
  waypoint: {destination: "default/waypoint.default.svc.cluster.local", hboneMtlsPort: 15008}
- name: wrongca
  namespace: default
  hostname: wrongca.example.test
  vips: ["/${subnet}122"]
  ports: {80: 8443}
  waypoint: {destination: "default/waypoint.default.svc.cluster.local", hboneMtlsPort: 15008}
`,
    });
    // The external endpoints: TCP workloads (not in the mesh); `plain` is known only by DNS name.
    const externals = `
- uid: ext//api
  name: api-endpoint
  namespace: default
  workloadIps: []
  hostname: localhost
  protocol: TCP
  services: {"default/api.example.test": {80: ${plainPort}}}
- uid: ext//secure
  name: secure-endpoint
  namespace: default
  workloadIps: ["${secureIp}"]
  protocol: TCP
  services: {"default/secure.example.test": {80: 8443}, "default/wrongca.example.test": {80: 8443}}
`;
    const withExternals = config.replace(/\nservices:\n/, `\n${externals.trim()}\nservices:\n`);
    const routes = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure-tls, namespace: default}
spec:
  host: secure.example.test
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: ${good.certPath}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wrongca-tls, namespace: default}
spec:
  host: wrongca.example.test
  trafficPolicy:
    tls: {mode: SIMPLE, sni: secure.example.test, caCertificates: ${other.certPath}}
`;
    const policies = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: egress-rules, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: api}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/blocked*"]}}]
`;
    // The DestinationRules come from a routes file named in the config (`routeFiles`), not a flag.
    writeFileSync(join(dir, "egress-routes.yaml"), routes);
    mesh = await TestMesh.start({ config: `${withExternals}routeFiles: [${join(dir, "egress-routes.yaml")}]\n`, nodes: ["node-a"] });
    waypoint = await startWaypoint(mesh, { policies });
  }, 60_000);

  afterAll(async () => {
    await waypoint?.stop();
    await mesh?.stop();
    for (const s of servers) s.close();
  });

  test("plain TCP out to an endpoint known by DNS name, with the waypoint's L7 policy applied", async () => {
    const ok = await httpOver(await socksConnect({ host: clientIp }, "api.example.test", 80), "/v1/things", "api.example.test");
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ tag: "plain", path: "/v1/things", host: "api.example.test" });
    const denied = await httpOver(await socksConnect({ host: clientIp }, "api.example.test", 80), "/blocked/x", "api.example.test");
    expect(denied.status).toBe(403);
    expect(seen).not.toContain("plain/blocked/x");
  });

  test("TLS origination verified against the DestinationRule's CA and the service name", async () => {
    const ok = await httpOver(await socksConnect({ host: clientIp }, "secure.example.test", 80), "/secure", "secure.example.test");
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ tag: "tls", path: "/secure" });
  });

  test("a server that fails verification gets nothing: 503, no request reaches it", async () => {
    const before = seen.length;
    const r = await httpOver(await socksConnect({ host: clientIp }, "wrongca.example.test", 80), "/never", "wrongca.example.test");
    expect(r.status).toBe(503);
    expect(seen.length).toBe(before);
  });
});
