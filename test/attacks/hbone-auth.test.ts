// Attacks on the HBONE listener's authentication (reference/reliability.md §7 A1–A4): whoever
// cannot prove a mesh identity of our trust domain gets no HTTP/2 answer, and the app behind the
// listener never sees a connection. Each describe block also runs a genuine client, so a listener
// that is simply down cannot pass these tests.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { TestMesh, allocSubnet, twoNodeConfig, until } from "../harness/index.ts";
import { FrameType, H2_PREFACE, headersFrame, settingsFrame } from "../harness/h2-frames.ts";
import {
  CountingApp,
  forgedMeshCert,
  hboneAttempt,
  inParallel,
  meshCert,
  rawH2Attempt,
  rogueCert,
  tcpProbe,
  tlsProbe,
  type HboneAttempt,
  type PresentedCert,
  type ProbeResult,
} from "./fixtures.ts";

const CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client";
const SERVER_ID = "spiffe://cluster.local/ns/default/sa/server";

/** One server workload (node-b) with an echo app on :8080; the test process is the attacker. */
async function startServerSide(env?: Record<string, string>): Promise<{ mesh: TestMesh; app: CountingApp; serverIp: string; attackerIp: string }> {
  const subnet = allocSubnet();
  const mesh = await TestMesh.start({ config: twoNodeConfig(subnet), nodes: ["node-b"], ...(env ? { env } : {}) });
  const app = await CountingApp.start(`${subnet}2`, 8080);
  return { mesh, app, serverIp: `${subnet}2`, attackerIp: `${subnet}50` };
}

/** A genuine client completes a tunnel and echoes bytes: the listener and the app are up. */
async function expectGenuineClientServed(caDir: string, serverIp: string, attackerIp: string, app: CountingApp): Promise<void> {
  const before = await app.settled();
  const a = await hboneAttempt({ address: serverIp, localAddress: attackerIp, cert: await meshCert(caDir, CLIENT_ID), authority: `${serverIp}:8080` });
  try {
    expect(a.outcome).toEqual({ kind: "response", status: 200 });
    const echoed = await new Promise<string>((resolve, reject) => {
      let got = "";
      a.stream!.on("data", (d: Buffer) => (got += d.toString()));
      a.stream!.on("end", () => resolve(got));
      a.stream!.on("error", reject);
      a.stream!.end("hello through the mesh");
    });
    expect(echoed).toBe("hello through the mesh");
    expect(await app.settled()).toBe(before + 1);
  } finally {
    a.close();
  }
}

/** A rejected peer gets no HTTP/2 answer at all, and the server closes on it (no hang). */
function expectRejected(a: HboneAttempt): void {
  expect(a.outcome.kind === "response" ? `answered ${a.outcome.status}` : "no answer").toBe("no answer");
  expect(a.outcome.kind).not.toBe("timeout");
}

/** What a plaintext client may get back from a TLS port: nothing, or a TLS alert record. */
function expectOnlyTlsAlert(r: ProbeResult): void {
  expect(r.closedByPeer).toBe(true);
  expect(r.received.length === 0 || r.received[0] === 0x15 ? "nothing or a TLS alert" : `bytes ${r.received.subarray(0, 32).toString("hex")}`).toBe(
    "nothing or a TLS alert",
  );
}

/** ≥ 200 handshakes + CONNECTs with untrusted certificates, 10 in flight: none may get through. */
async function untrustedStorm(mesh: TestMesh, serverIp: string, attackerIp: string, rounds: number): Promise<{ outcomes: Record<string, number>; answered: number }> {
  const rejectedBefore = rejections(mesh);
  const certs: PresentedCert[] = await Promise.all([
    rogueCert(CLIENT_ID), // a real workload's identity, same trust domain, wrong CA
    rogueCert(SERVER_ID), // the server's own identity
    rogueCert("spiffe://evil.local/ns/default/sa/x", "evil.local"),
  ]);
  const results = await inParallel(rounds, 10, (i) =>
    hboneAttempt({ address: serverIp, localAddress: attackerIp, cert: certs[i % certs.length]!, authority: `${serverIp}:8080`, timeoutMs: 10_000 }),
  );
  const outcomes: Record<string, number> = {};
  for (const r of results) outcomes[r.outcome.kind] = (outcomes[r.outcome.kind] ?? 0) + 1;
  // Every attempt reached the ztunnel and was refused there (not, say, dropped by our own client).
  await until(() => rejections(mesh) - rejectedBefore >= rounds, 5000, `${rounds} "HBONE peer rejected" log records`);
  return { outcomes, answered: results.filter((r) => r.outcome.kind === "response").length };
}

function rejections(mesh: TestMesh): number {
  return mesh.z("node-b").records.filter((r) => r.msg === "HBONE peer rejected").length;
}

describe("HBONE listener authentication", () => {
  let mesh: TestMesh;
  let app: CountingApp;
  let serverIp: string;
  let attackerIp: string;
  beforeAll(async () => {
    ({ mesh, app, serverIp, attackerIp } = await startServerSide());
    await expectGenuineClientServed(mesh.caDir, serverIp, attackerIp, app);
  });
  afterAll(async () => {
    await app?.close();
    await mesh?.stop();
  });

  test("A1 plaintext TCP to the HBONE port is rejected before any upstream connect", async () => {
    const before = await app.settled();
    const payloads = [
      Buffer.from(`CONNECT ${serverIp}:8080 HTTP/1.1\r\nHost: ${serverIp}:8080\r\n\r\n`),
      Buffer.from(`GET / HTTP/1.1\r\nHost: ${serverIp}\r\n\r\n`),
      Buffer.from(crypto.getRandomValues(new Uint8Array(512))),
    ];
    for (const data of payloads) expectOnlyTlsAlert(await tcpProbe({ host: serverIp, port: 15008, localAddress: attackerIp, data }));
    expect((await app.settled()) - before).toBe(0);
  });

  test("A1 plaintext h2c (preface + CONNECT) to the HBONE port is rejected before any upstream connect", async () => {
    const before = await app.settled();
    const h2c = Buffer.concat([
      H2_PREFACE,
      settingsFrame(),
      headersFrame(1, [
        [":method", "CONNECT"],
        [":authority", `${serverIp}:8080`],
      ]),
    ]);
    const r = await tcpProbe({ host: serverIp, port: 15008, localAddress: attackerIp, data: h2c });
    expectOnlyTlsAlert(r);
    expect(r.received.includes(Buffer.from("200"))).toBe(false);
    expect((await app.settled()) - before).toBe(0);
  });

  test("A2 client certificates from an untrusted CA are refused every time (200 handshakes + CONNECTs)", async () => {
    const before = await app.settled();
    const { outcomes, answered } = await untrustedStorm(mesh, serverIp, attackerIp, 200);
    expect(answered).toBe(0);
    expect(outcomes.timeout ?? 0).toBe(0);
    expect((await app.settled()) - before).toBe(0);
    // still serving genuine peers afterwards
    await expectGenuineClientServed(mesh.caDir, serverIp, attackerIp, app);
  });

  test("A4 a mesh-CA-signed certificate for another trust domain is rejected", async () => {
    const before = await app.settled();
    const evil = await forgedMeshCert(mesh.caDir, ["spiffe://evil.local/ns/default/sa/x"]);
    const a = await hboneAttempt({ address: serverIp, localAddress: attackerIp, cert: evil, authority: `${serverIp}:8080` });
    expectRejected(a);
    expect((await app.settled()) - before).toBe(0);
    await mesh.z("node-b").waitForLog((r) => r.code === "SVID_TRUST_DOMAIN_MISMATCH" && String(r.error).includes("evil.local"));
  });

  test("A4 CONNECTs pipelined in the first flight with a foreign-trust-domain certificate are not served", async () => {
    const before = await app.settled();
    const evil = await forgedMeshCert(mesh.caDir, ["spiffe://evil.local/ns/default/sa/x"]);
    // 50 CONNECT streams written together with the preface, before the server could verify the peer.
    const frames = Array.from({ length: 50 }, (_, i) =>
      headersFrame(2 * i + 1, [
        [":method", "CONNECT"],
        [":authority", `${serverIp}:8080`],
      ]),
    );
    const r = await rawH2Attempt({ address: serverIp, cert: evil, frames, waitMs: 5000 });
    expect(r.frames.filter((f) => f.type === FrameType.HEADERS)).toEqual([]);
    expect(r.closedByPeer || r.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(true);
    expect((await app.settled()) - before).toBe(0);
  });

  test("A4 control: the same forgery with our trust domain is accepted (only the trust domain differed)", async () => {
    const before = await app.settled();
    const ok = await forgedMeshCert(mesh.caDir, ["spiffe://cluster.local/ns/default/sa/x"]);
    const a = await hboneAttempt({ address: serverIp, localAddress: attackerIp, cert: ok, authority: `${serverIp}:8080` });
    a.close();
    expect(a.outcome).toEqual({ kind: "response", status: 200 });
    expect((await app.settled()) - before).toBe(1);
  });

  test("A4 a client without any certificate is rejected", async () => {
    const before = await app.settled();
    for (let i = 0; i < 5; i++) expectRejected(await hboneAttempt({ address: serverIp, localAddress: attackerIp, authority: `${serverIp}:8080` }));
    expect((await app.settled()) - before).toBe(0);
  });

  test("ALPN other than h2 gets no service: http/1.1 only fails the handshake, no ALPN gets no tunnel", async () => {
    const before = await app.settled();
    const cert = await meshCert(mesh.caDir, CLIENT_ID);
    const connect = Buffer.from(`CONNECT ${serverIp}:8080 HTTP/1.1\r\nHost: ${serverIp}:8080\r\n\r\n`);
    const http11 = await tlsProbe({ host: serverIp, port: 15008, cert, alpn: ["http/1.1"], data: connect });
    expect(http11.handshake).toBe(false);
    for (const alpn of [null, ["h2c"], ["http/1.0", "spdy/3.1"]]) {
      const r = await tlsProbe({ host: serverIp, port: 15008, cert, alpn, data: connect });
      // Either refused in the handshake, or closed after it without a tunnel.
      if (r.handshake) {
        expect(r.alpn === "h2" ? "h2 negotiated" : "no h2").toBe("no h2");
        expect(r.closedByPeer).toBe(true);
        expect(/^HTTP\/1\.[01] 2/.test(r.received.toString("latin1"))).toBe(false);
      }
    }
    expect((await app.settled()) - before).toBe(0);
  });

  test("TLS 1.2 clients are refused in the handshake, even with a genuine certificate", async () => {
    const before = await app.settled();
    const r = await tlsProbe({ host: serverIp, port: 15008, cert: await meshCert(mesh.caDir, CLIENT_ID), alpn: ["h2"], maxVersion: "TLSv1.2", data: Buffer.from("x") });
    expect(r.handshake).toBe(false);
    expect((await app.settled()) - before).toBe(0);
  });
});

describe("HBONE listener authentication with NODE_TLS_REJECT_UNAUTHORIZED=0 in the ztunnel's environment", () => {
  let mesh: TestMesh;
  let app: CountingApp;
  let serverIp: string;
  let attackerIp: string;
  beforeAll(async () => {
    ({ mesh, app, serverIp, attackerIp } = await startServerSide({ NODE_TLS_REJECT_UNAUTHORIZED: "0" }));
    await expectGenuineClientServed(mesh.caDir, serverIp, attackerIp, app);
    // The premise: the variable really is in the ztunnel process's environment.
    const environ = `/proc/${mesh.z("node-b").proc.pid}/environ`;
    if (existsSync(environ)) expect(readFileSync(environ, "latin1").split("\0")).toContain("NODE_TLS_REJECT_UNAUTHORIZED=0");
  });
  afterAll(async () => {
    await app?.close();
    await mesh?.stop();
  });

  test("A3 untrusted-CA client certificates are still refused every time (200 handshakes + CONNECTs)", async () => {
    const before = await app.settled();
    const { outcomes, answered } = await untrustedStorm(mesh, serverIp, attackerIp, 200);
    expect(answered).toBe(0);
    expect(outcomes.timeout ?? 0).toBe(0);
    expect((await app.settled()) - before).toBe(0);
  });

  test("A3 no client certificate and a foreign trust domain are still refused", async () => {
    const before = await app.settled();
    expectRejected(await hboneAttempt({ address: serverIp, localAddress: attackerIp, authority: `${serverIp}:8080` }));
    const evil = await forgedMeshCert(mesh.caDir, ["spiffe://evil.local/ns/default/sa/x"]);
    expectRejected(await hboneAttempt({ address: serverIp, localAddress: attackerIp, cert: evil, authority: `${serverIp}:8080` }));
    expect((await app.settled()) - before).toBe(0);
  });
});
