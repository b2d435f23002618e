// Connection pooling: many concurrent tunnels to one destination share a few HBONE connections
// (100 CONNECT streams each), and a burst costs one handshake per pooled connection, not one per tunnel.
import { describe, expect, test } from "bun:test";
import type net from "node:net";
import { exchange, socksConnect, twoNodeEchoMesh, until } from "../harness/index.ts";

const CONNS = 500;
const STREAMS_PER_CONNECTION = 100;

/** Writes `msg`, resolves once the same bytes came back. */
function echoOnce(s: net.Socket, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    s.setEncoding("utf8");
    s.on("data", (c: string) => {
      got += c;
      if (got.length >= msg.length) resolve(got);
    });
    s.once("error", reject);
    s.once("close", () => reject(new Error(`closed after ${got.length} of ${msg.length} bytes`)));
    s.write(msg);
  });
}

describe("HBONE connection pool", () => {
  const two = twoNodeEchoMesh();
  const { subnet } = two;

  test(`${CONNS} concurrent connections share pooled HBONE connections`, async () => {
    const sockets = await Promise.all(
      Array.from({ length: CONNS }, () => socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080, 30_000)),
    );
    try {
      // Every tunnel is open at once (SOCKS answered only after its CONNECT got 200).
      const dump = await two.mesh.z("node-a").configDump();
      const pool = dump.pool as { connections: number; streams: number; handshakes: number };
      expect(pool.streams).toBe(CONNS);
      const minimum = Math.ceil(CONNS / STREAMS_PER_CONNECTION);
      expect(pool.connections).toBeGreaterThanOrEqual(minimum);
      expect(pool.connections).toBeLessThanOrEqual(minimum + 2);
      // Single flight: concurrent checkouts waited for the handshake in progress instead of dialing.
      expect(pool.handshakes).toBeLessThanOrEqual(pool.connections + 1);
      // The server side sees the same few HBONE sessions.
      const inbound = await two.mesh.z("node-b").configDump();
      expect(inbound.connections).toBe(CONNS);

      const replies = await Promise.all(sockets.map((s, i) => echoOnce(s, `conn-${i}-${"x".repeat(i % 50)}`)));
      replies.forEach((r, i) => expect(r).toBe(`conn-${i}-${"x".repeat(i % 50)}`));
    } finally {
      for (const s of sockets) s.destroy();
    }
    expect(two.app.connections).toBe(CONNS);

    // Closed tunnels give their streams back; the idle connections stay for the next burst.
    const a = two.mesh.z("node-a");
    await until(async () => (await a.configDump()).pool.streams === 0, 10_000, "all pooled streams released");
    const before = (await a.configDump()).pool as { connections: number; handshakes: number };
    expect(before.connections).toBeGreaterThanOrEqual(1);
    const again = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => (await exchange(await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080), `again-${i}`)).toString()),
    );
    again.forEach((r, i) => expect(r).toBe(`again-${i}`));
    expect((await a.configDump()).pool.handshakes).toBe(before.handshakes);
  }, 60_000);
});
