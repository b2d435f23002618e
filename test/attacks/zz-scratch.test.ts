import { afterAll, beforeAll, test } from "bun:test";
import { TestMesh, allocSubnet, echoServer, twoNodeConfig, type TestServer } from "../harness/index.ts";
import { hboneAttempt, meshCert, rogueCert, forgedMeshCert, tlsProbe, tcpProbe, statusOf } from "./fixtures.ts";
import { H2_PREFACE, settingsFrame, headersFrame } from "../harness/h2-frames.ts";

const subnet = allocSubnet();
let mesh: TestMesh; let app: TestServer;
beforeAll(async () => {
  mesh = await TestMesh.start({ config: twoNodeConfig(subnet), nodes: ["node-b"] });
  app = await echoServer(`${subnet}2`, 8080);
});
afterAll(async () => { await app?.close(); await mesh?.stop(); });

test("explore", async () => {
  const srv = `${subnet}2`;
  const good = await meshCert(mesh.caDir, "spiffe://cluster.local/ns/default/sa/client");
  const log = (n: string, a: any) => console.log(n, JSON.stringify({ tls: a.tlsEstablished, alpn: a.alpn, outcome: a.outcome, hs: a.handshake, proto: a.protocol, closed: a.closedByPeer, err: a.error, recv: a.received?.toString("hex").slice(0, 80) }));
  let a = await hboneAttempt({ address: srv, cert: good, authority: `${srv}:8080` }); log("good", a); a.close();
  console.log("app conns", app.connections);
  a = await hboneAttempt({ address: srv, cert: await rogueCert("spiffe://cluster.local/ns/default/sa/client"), authority: `${srv}:8080` }); log("rogue", a);
  a = await hboneAttempt({ address: srv, authority: `${srv}:8080` }); log("nocert", a);
  a = await hboneAttempt({ address: srv, cert: await forgedMeshCert(mesh.caDir, ["spiffe://evil.local/ns/default/sa/x"]), authority: `${srv}:8080` }); log("evil", a);
  a = await hboneAttempt({ address: srv, cert: await forgedMeshCert(mesh.caDir, ["spiffe://cluster.local/ns/default/sa/x"]), authority: `${srv}:8080` }); log("forged-ok", a); a.close();
  a = await hboneAttempt({ address: srv, cert: good, headers: { ":method": "GET", ":path": "/", ":authority": `${srv}:8080`, ":scheme": "https" } }); log("GET", a);
  for (const auth of ["bad_host!:80", `${srv}`, `${srv}:0`, `${srv}:99999`, "[1.2.3.4]:80", "", "a b:80"]) {
    a = await hboneAttempt({ address: srv, cert: good, authority: auth }); log("auth " + JSON.stringify(auth), a);
  }
  let p: any = await tlsProbe({ host: srv, port: 15008, cert: good, alpn: ["http/1.1"], data: Buffer.from(`CONNECT ${srv}:8080 HTTP/1.1\r\nHost: ${srv}:8080\r\n\r\n`) }); log("alpn http1", p);
  p = await tlsProbe({ host: srv, port: 15008, cert: good, alpn: null, data: Buffer.from(`CONNECT ${srv}:8080 HTTP/1.1\r\nHost: ${srv}:8080\r\n\r\n`) }); log("alpn none", p);
  p = await tlsProbe({ host: srv, port: 15008, cert: good, alpn: ["h2"], maxVersion: "TLSv1.2", data: Buffer.from("x") }); log("tls12", p);
  p = await tcpProbe({ host: srv, port: 15008, data: Buffer.from(`CONNECT ${srv}:8080 HTTP/1.1\r\n\r\n`) }); log("plain", p);
  p = await tcpProbe({ host: srv, port: 15008, data: Buffer.concat([H2_PREFACE, settingsFrame(), headersFrame(1, [[":method", "CONNECT"], [":authority", `${srv}:8080`]])]) }); log("h2c", p);
  console.log("app conns", app.connections);
  console.log(mesh.z("node-b").stderrText.filter(l => !l.includes('"scope":"access"')).slice(-30).join("\n"));
}, 60000);
