// The HBONE engine in one process with real TLS and HTTP/2: listener + pool, peer verification,
// resource bounds, and the Bun flow-control regression (reference/bun.md §2.3).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import { createHash, randomBytes } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { createLocalCa, peerChainFromTlsSocket, verifySvidChain, type LocalCa, type Svid } from "../identity/index.ts";
import { ErrorCodes, isMeshError } from "../errors/index.ts";
import type { ByteStream, TlsIdentity } from "../net/index.ts";
import { DEFAULT_TUNING, HboneListener, HbonePool, type InboundTunnel, type PeerVerifier } from "./index.ts";

const TD = "cluster.local";
const id = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}`;
const tlsOf = (s: Svid): TlsIdentity => ({ certChainPem: s.chainPem, keyPem: s.keyPem, rootPem: s.rootPem });
const HOST = "127.0.0.1";

let ca: LocalCa;
let server: Svid;
let client: Svid;
let verifier: PeerVerifier;
const quiet = () => {};

beforeAll(async () => {
  ca = await createLocalCa({ trustDomain: TD });
  server = await ca.issueWorkloadSvid({ identity: id("server"), lifetimeMs: 3_600_000 });
  client = await ca.issueWorkloadSvid({ identity: id("client"), lifetimeMs: 3_600_000 });
  verifier = {
    verifyClient: (s: TLSSocket) => verifySvidChain(peerChainFromTlsSocket(s), { trustBundle: ca.trustBundle, usage: "client", trustDomain: TD }),
    verifyServer: (s: TLSSocket, expected) => verifySvidChain(peerChainFromTlsSocket(s), { trustBundle: ca.trustBundle, usage: "server", expectedIdentities: expected }),
  };
});

/** A listener whose tunnels echo everything back (answering 200 at once). */
async function echoListener(tuning = DEFAULT_TUNING, onTunnel?: (t: InboundTunnel) => void): Promise<{ l: HboneListener; tunnels: InboundTunnel[] }> {
  const tunnels: InboundTunnel[] = [];
  const l = await HboneListener.start({
    hostname: HOST,
    port: 0,
    identity: tlsOf(server),
    tuning,
    verifier,
    log: quiet,
    onTunnel:
      onTunnel ??
      ((t) => {
        tunnels.push(t);
        const s = t.accept();
        s.setEvents({ data: (c) => s.write(c), end: () => s.end() });
      }),
  });
  return { l, tunnels };
}

function collect(s: ByteStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    s.setEvents({
      data: (c) => chunks.push(new Uint8Array(c)),
      end: () => resolve(Buffer.concat(chunks)),
      close: (e) => (e ? reject(e) : resolve(Buffer.concat(chunks))),
    });
  });
}

function open(pool: HbonePool, port: number, expected = [id("server")], authority = "127.0.0.1:9") {
  return pool.open({
    key: { sourceIdentity: client.identity, destinationIdentities: expected, address: HOST, port, sourceIp: HOST },
    identity: tlsOf(client),
    authority,
    headers: { baggage: "k8s.namespace.name=default" },
  });
}

describe("HBONE engine", () => {
  let pools: HbonePool[] = [];
  let listeners: HboneListener[] = [];
  const newPool = (tuning = DEFAULT_TUNING) => {
    const p = new HbonePool({ tuning, verifier, log: quiet });
    pools.push(p);
    return p;
  };
  afterAll(() => {
    for (const p of pools) p.destroy();
    for (const l of listeners) l.destroy();
  });

  test("CONNECT round trip: TLS 1.3, verified identities both ways, headers carried", async () => {
    const { l, tunnels } = await echoListener();
    listeners.push(l);
    const t = await open(newPool(), l.port);
    expect(t.tlsVersion).toBe("TLSv1.3");
    expect(t.peer.identity).toBe(id("server"));
    const got = collect(t.stream);
    t.stream.write(new TextEncoder().encode("hello"));
    t.stream.end();
    expect((await got).toString()).toBe("hello");
    expect(tunnels[0]!.peer.identity).toBe(id("client"));
    expect(tunnels[0]!.authority).toBe("127.0.0.1:9");
    expect(tunnels[0]!.headers.baggage).toBe("k8s.namespace.name=default");
  });

  test("more than 1 MiB each way through one stream (Bun window-size regression)", async () => {
    const { l } = await echoListener();
    listeners.push(l);
    const t = await open(newPool(), l.port);
    const data = randomBytes(6 * 1024 * 1024);
    const got = collect(t.stream);
    for (let i = 0; i < data.length; i += 256 * 1024) t.stream.write(data.subarray(i, i + 256 * 1024));
    t.stream.end();
    const back = await got;
    expect(back.length).toBe(data.length);
    expect(createHash("sha256").update(back).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
  });

  test("a server presenting an unexpected identity gets no CONNECT", async () => {
    const { l, tunnels } = await echoListener();
    listeners.push(l);
    const err = await open(newPool(), l.port, [id("someone-else")]).catch((e) => e);
    expect(isMeshError(err, ErrorCodes.SVID_IDENTITY_MISMATCH)).toBe(true);
    await Bun.sleep(50);
    expect(tunnels.length).toBe(0);
  });

  test("pooling: 250 concurrent streams use 3 connections and single-flight handshakes", async () => {
    const { l } = await echoListener();
    listeners.push(l);
    const pool = newPool();
    const tunnels = await Promise.all(Array.from({ length: 250 }, () => open(pool, l.port)));
    expect(pool.connectionCount).toBe(3);
    expect(pool.handshakes).toBe(3);
    expect(new Set(tunnels.map((t) => t.connectionId)).size).toBe(3);
    for (const t of tunnels) t.stream.destroy();
  });

  test("non-CONNECT and malformed authorities get 400, oversized headers 431", async () => {
    const { l, tunnels } = await echoListener();
    listeners.push(l);
    const pool = newPool();
    const bad = await open(pool, l.port, [id("server")], "10.0.0.1:99999").catch((e) => e);
    expect(isMeshError(bad, ErrorCodes.HBONE_BAD_AUTHORITY)).toBe(true);
    const big = await pool
      .open({
        key: { sourceIdentity: client.identity, destinationIdentities: [id("server")], address: HOST, port: l.port, sourceIp: HOST },
        identity: tlsOf(client),
        authority: "127.0.0.1:9",
        headers: { "x-filler": "a".repeat(DEFAULT_TUNING.maxRequestHeaderBytes + 10) },
      })
      .catch((e) => e);
    expect(big.message).toContain("431");
    // A raw client sending GET instead of CONNECT, with a valid certificate.
    const session = http2.connect(`https://${HOST}:${l.port}`, {
      key: client.keyPem,
      cert: client.chainPem,
      ca: client.rootPem,
      checkServerIdentity: () => undefined,
      ALPNProtocols: ["h2"],
    } as http2.SecureClientSessionOptions);
    const status = await new Promise<number>((resolve) => {
      const r = session.request({ ":method": "GET", ":path": "/", ":authority": "127.0.0.1:9" });
      r.on("response", (h) => resolve(Number(h[":status"])));
      r.on("error", () => resolve(-1));
    });
    session.destroy();
    expect(status).toBe(400);
    expect(tunnels.length).toBe(0);
  });

  test("our own stream bound refuses streams beyond the limit", async () => {
    const tuning = { ...DEFAULT_TUNING, serverMaxConcurrentStreams: 5, poolMaxStreamsPerConnection: 10 };
    const held: InboundTunnel[] = [];
    const { l } = await echoListener(tuning, (t) => held.push(t)); // never answered: streams stay open
    listeners.push(l);
    const pool = newPool({ ...DEFAULT_TUNING, poolMaxStreamsPerConnection: 10 });
    const attempts = Array.from({ length: 8 }, () => open(pool, l.port).then(() => "ok", (e: Error) => e.message));
    await Bun.sleep(300);
    // 5 are held open by the server; the rest are refused by our bound (or by the peer's SETTINGS)
    expect(held.length).toBe(5);
    for (const t of held) t.reject(503);
    const results = await Promise.all(attempts);
    expect(results.every((r) => r !== "ok")).toBe(true);
  });

  test("rapid reset: a peer resetting streams faster than the budget gets GOAWAY", async () => {
    const tuning = { ...DEFAULT_TUNING, maxPrematureResetsPerSecond: 50 };
    const { l } = await echoListener(tuning, () => {}); // never answers, so every reset is premature
    listeners.push(l);
    const session = http2.connect(`https://${HOST}:${l.port}`, {
      key: client.keyPem,
      cert: client.chainPem,
      ca: client.rootPem,
      checkServerIdentity: () => undefined,
    } as http2.SecureClientSessionOptions);
    session.on("error", () => {});
    let goaway = -1;
    session.on("goaway", (code) => (goaway = code));
    await new Promise((r) => session.once("connect", r));
    await Bun.sleep(50); // let the server verify us
    for (let i = 0; i < 500 && !session.destroyed && goaway < 0; i++) {
      try {
        const r = session.request({ ":method": "CONNECT", ":authority": "127.0.0.1:9" });
        r.on("error", () => {});
        r.close(http2.constants.NGHTTP2_CANCEL);
      } catch {
        break;
      }
      if (i % 20 === 0) await Bun.sleep(1);
    }
    await Bun.sleep(100);
    expect(session.destroyed || goaway === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM).toBe(true);
    session.destroy();
  });

  test("an unused pooled connection is released after the idle timeout; a busy one is kept", async () => {
    const { l } = await echoListener();
    listeners.push(l);
    const tuning = { ...DEFAULT_TUNING, poolUnusedReleaseTimeoutMs: 150, keepaliveIntervalMs: 50 };
    const pool = newPool(tuning);
    const t = await open(pool, l.port);
    t.stream.destroy();
    await Bun.sleep(50);
    expect(pool.connectionCount).toBe(1);
    const busyPool = newPool(tuning);
    const busy = await open(busyPool, l.port);
    const deadline = Date.now() + 3000;
    while (pool.connectionCount > 0 && Date.now() < deadline) await Bun.sleep(25);
    expect(pool.connectionCount).toBe(0);
    expect(busyPool.connectionCount).toBe(1); // a stream is open, so it stays
    busy.stream.destroy();
  });

  test("keepalive: a peer that stops answering PINGs is torn down", async () => {
    const { l } = await echoListener();
    listeners.push(l);
    // A TCP relay we can freeze, standing for a peer that vanished without closing.
    let frozen = false;
    const net = await import("node:net");
    const relaySrv = net.createServer((c) => {
      const up = net.connect(l.port, HOST);
      c.on("data", (d) => !frozen && up.write(d));
      up.on("data", (d) => !frozen && c.write(d));
      c.on("error", () => up.destroy());
      up.on("error", () => c.destroy());
    });
    await new Promise<void>((r) => relaySrv.listen(0, HOST, r));
    const port = (relaySrv.address() as { port: number }).port;
    const pool = newPool({ ...DEFAULT_TUNING, keepaliveIntervalMs: 50, keepaliveTimeoutMs: 300 });
    const t = await open(pool, port);
    expect(pool.connectionCount).toBe(1);
    frozen = true;
    const closed = new Promise<void>((r) => t.stream.setEvents({ close: () => r() }));
    const deadline = Date.now() + 3000;
    while (pool.connectionCount > 0 && Date.now() < deadline) await Bun.sleep(25);
    expect(pool.connectionCount).toBe(0);
    await closed; // the tunnel on it was closed too
    relaySrv.close();
  });

  test("drain sends GOAWAY: open tunnels finish, the pool opens a new connection", async () => {
    const { l } = await echoListener();
    listeners.push(l);
    const pool = newPool();
    const t = await open(pool, l.port);
    l.drain();
    await Bun.sleep(50);
    const got = collect(t.stream);
    t.stream.write(new TextEncoder().encode("still here"));
    t.stream.end();
    expect((await got).toString()).toBe("still here");
  });
});
