// Regression: HTTP/2 inside an HBONE tunnel lost whole frames when one session wrote into the other
// synchronously (fixed by writing into the tunnel off the inner session's call stack, copied).
import { test, expect } from "bun:test";
import http2 from "node:http2";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initLocalCa, loadLocalCa, svidTlsMaterial } from "../identity/index.ts";
import { HboneListener, HbonePool, hboneTuningFrom } from "../hbone/index.ts";
import { TunnelDuplex } from "../net/index.ts";
import { readRuntimeEnv } from "../config/index.ts";
import { serveH2 } from "./front-h2.ts";
import { DEFAULT_L7_LIMITS } from "./limits.ts";
import { DEFAULT_H2_GUARD } from "./h2-guard.ts";

test("HTTP/2 inside an HBONE tunnel from the pool: a 1 MiB upload and its 1 MiB echo, answered in async pieces, arrive whole, three times", async () => {
  const dir = mkdtempSync(join(tmpdir(), "h2loss-"));
  await initLocalCa(dir, { trustDomain: "cluster.local" });
  const ca = await loadLocalCa(dir);
  const srv = await ca.issueWorkloadSvid({ identity: "spiffe://cluster.local/ns/default/sa/wp", lifetimeMs: 3600_000 });
  const cli = await ca.issueWorkloadSvid({ identity: "spiffe://cluster.local/ns/default/sa/c", lifetimeMs: 3600_000 });
  const SIZE = 1 << 20;
  const tuning = hboneTuningFrom(readRuntimeEnv({}));
  const log = { debug() {}, info() {}, warn() {}, error() {} } as never;
  const verifier = { verifyClient: async () => ({ identity: "spiffe://cluster.local/ns/default/sa/c" }), verifyServer: async () => ({ identity: "spiffe://cluster.local/ns/default/sa/wp" }) } as never;
  const listener = await HboneListener.start({
    hostname: "127.0.0.1", port: 0, identity: svidTlsMaterial(srv), tuning, verifier, log: () => {},
    onTunnel: (t) => {
      const stream = t.accept();
      serveH2(stream, [], { limits: DEFAULT_L7_LIMITS, guard: DEFAULT_H2_GUARD, log, onRequest: (req, res) => {
        res.head(200, [], false);
        const chunks: Uint8Array[] = [];
        req.body.start({ data: (c) => chunks.push(Buffer.from(c)), end: () => {
          // answer asynchronously in 16 KiB pieces, like data arriving from an upstream
          let i = 0; const all = Buffer.concat(chunks);
          const step = () => { while (i < all.length) { const piece = all.subarray(i, i + 16384); i += piece.length; const ok = res.write(piece); if (!ok) { res.onDrain(step); return; } if (i % (16384 * 4) === 0) { setImmediate(step); return; } } res.end(); };
          step();
        }, error: () => res.reset() });
      } });
    },
  });
  const pool = new HbonePool({ tuning, verifier, log: () => {} });
  const t = await pool.open({ key: { sourceIdentity: "c", destinationIdentities: ["spiffe://cluster.local/ns/default/sa/wp"], address: "127.0.0.1", port: listener.port, sourceIp: "127.0.0.1" }, identity: svidTlsMaterial(cli), authority: "10.0.0.1:80", headers: {} });
  const duplex = new TunnelDuplex(t.stream);
  const session = http2.connect("http://x", { createConnection: () => duplex as never });
  for (let k = 0; k < 3; k++) {
    const got = await new Promise<number>((resolve) => {
      const r = session.request({ ":path": "/", ":method": "POST" });
      let n = 0;
      r.on("data", (d: Buffer) => (n += d.length));
      r.on("end", () => resolve(n));
      const up = Buffer.alloc(SIZE, 9);
      let off = 0;
      const pump = () => { while (off < SIZE) { const q = Math.min(65536, SIZE - off); const ok = r.write(up.subarray(off, off + q)); off += q; if (!ok) { r.once("drain", pump); return; } } r.end(); };
      pump();
    });
    expect(got).toBe(SIZE);
  }
}, 30000);
