// What an observer between two nodes sees: a relay on the server's 15008 records every byte of
// the HBONE connection; only TLS records cross, the application's bytes never do in the clear.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  TestMesh,
  allocSubnet,
  echoServer,
  exchange,
  freePort,
  recordingRelay,
  socksConnect,
  tlsRecords,
  twoNodeConfig,
  until,
  type RecordingRelay,
  type TestServer,
} from "../harness/index.ts";

const TLS_HANDSHAKE = 0x16;
const TLS_APPLICATION_DATA = 0x17;

describe("HBONE on the wire", () => {
  const subnet = allocSubnet();
  const serverIp = `${subnet}2`;
  let mesh: TestMesh;
  let app: TestServer;
  let relay: RecordingRelay;

  beforeAll(async () => {
    // The server ztunnel listens elsewhere; peers still dial <serverIP>:15008, which is our relay.
    const hbonePort = await freePort(serverIp);
    relay = await recordingRelay({ host: serverIp, port: 15008 }, { host: serverIp, port: hbonePort }, { keepSource: true });
    mesh = await TestMesh.start({
      config: twoNodeConfig(subnet),
      nodes: ["node-a", "node-b"],
      extraArgs: { "node-b": ["--hbone-port", String(hbonePort)] },
    });
    app = await echoServer(serverIp, 8080);
  }, 30_000);
  afterAll(async () => {
    await app?.close();
    await mesh?.stop();
    await relay?.close();
  });

  test("the relay sees only TLS records and never the plaintext, in either direction", async () => {
    const marker = `PLAINTEXT-MARKER-${crypto.randomUUID()}`;
    // Many copies and a long run: no framing or chunking could hide all of them.
    const payload = Buffer.from(`${marker}\n`.repeat(2000));
    const s = await socksConnect({ host: `${subnet}1` }, serverIp, 8080);
    const echoed = await exchange(s, payload);
    expect(echoed.equals(payload)).toBe(true);

    // The traffic really went through the relay (not around it) and was answered by node-b.
    await until(() => mesh.z("node-b").accessRecords("inbound").length >= 1, 5000, "the inbound access record");
    const inbound = mesh.z("node-b").accessRecords("inbound")[0]!;
    expect(inbound["src.identity"]).toBe("spiffe://cluster.local/ns/default/sa/client");
    expect(relay.connections.length).toBeGreaterThanOrEqual(1);
    const up = relay.bytes("up");
    const down = relay.bytes("down");
    expect(up.length).toBeGreaterThan(payload.length);
    expect(down.length).toBeGreaterThan(payload.length);

    for (const conn of relay.connections) {
      for (const dir of ["up", "down"] as const) {
        const bytes = Buffer.concat(conn[dir]);
        if (bytes.length === 0) continue;
        const records = tlsRecords(bytes);
        // Every connection opens with a TLS handshake record (ClientHello / ServerHello) ...
        expect(records[0]!.type).toBe(TLS_HANDSHAKE);
        // ... and then carries application data records.
        expect(records.some((r) => r.type === TLS_APPLICATION_DATA)).toBe(true);
      }
    }
    // TLS 1.3 encrypts everything after the hellos as application data, so the bulk is 0x17.
    const appDataBytes = tlsRecords(up).filter((r) => r.type === TLS_APPLICATION_DATA).reduce((n, r) => n + r.length, 0);
    expect(appDataBytes).toBeGreaterThan(payload.length);

    for (const needle of [marker, marker.slice(0, 16), "PLAINTEXT-MARKER"]) {
      expect(up.indexOf(needle)).toBe(-1);
      expect(down.indexOf(needle)).toBe(-1);
    }
    // Nor the HBONE request itself: the CONNECT authority travels inside TLS.
    expect(up.indexOf(`${serverIp}:8080`)).toBe(-1);
  }, 30_000);
});
