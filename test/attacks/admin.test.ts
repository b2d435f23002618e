// The admin port (reference/reliability.md §7 A9): it can shut the proxy down and dump its state,
// so it must be reachable on 127.0.0.1 only, and what it dumps must never carry key material.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { networkInterfaces } from "node:os";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TestMesh, allocSubnet, twoNodeConfig } from "../harness/index.ts";
import { hboneAttempt, meshCert, statusOf } from "./fixtures.ts";

/** "connected", or the reason a TCP connect failed (ECONNREFUSED, ...). */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve("timeout");
    }, 3000);
    s.once("connect", () => {
      clearTimeout(t);
      s.destroy();
      resolve("connected");
    });
    s.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code ?? e.message);
    });
  });
}

/** Base64 openings of PKCS#8 (P-256, P-384, RSA) and SEC1 EC private keys: key material in any wrapper. */
const KEY_DER_PREFIXES = ["MIGHAgEAMBMGByqGSM49", "MIG2AgEAMBAGByqGSM49", "MIIEvQIBADANBgkqhkiG9w0BAQEF", "MIIEvgIBADANBgkqhkiG9w0BAQEF", "MHcCAQEE", "MIGkAgEBBD"];

function expectNoKeyMaterial(what: string, text: string, caKeyBody: string): void {
  expect([what, /PRIVATE KEY/i.test(text)]).toEqual([what, false]);
  expect([what, /keyPem|privateKey|private_key|signingKey/i.test(text)]).toEqual([what, false]);
  expect([what, KEY_DER_PREFIXES.filter((p) => text.includes(p))]).toEqual([what, []]);
  // the CA's own signing key, in any 48-character window of its base64
  for (let i = 0; i + 48 <= caKeyBody.length; i += 24) expect([what, text.includes(caKeyBody.slice(i, i + 48))]).toEqual([what, false]);
}

describe("admin, metrics and readiness endpoints", () => {
  const subnet = allocSubnet();
  let mesh: TestMesh;
  let caKeyBody: string;
  beforeAll(async () => {
    mesh = await TestMesh.start({ config: twoNodeConfig(subnet), nodes: ["node-a", "node-b"] });
    caKeyBody = readFileSync(join(mesh.caDir, "ca-key.pem"), "utf8")
      .replace(/-----[^-]+-----/g, "")
      .replace(/\s+/g, "");
  });
  afterAll(async () => {
    await mesh?.stop();
  });

  test("A9 the admin listener is bound to 127.0.0.1 exactly: other loopback, workload and host addresses are refused", async () => {
    const z = mesh.z("node-b");
    const port = z.ports.admin;
    expect(port).toBeGreaterThan(0);
    // control: reachable where it should be
    expect(await tryConnect("127.0.0.1", port)).toBe("connected");
    expect((await fetch(`http://127.0.0.1:${port}/config_dump`)).status).toBe(200);
    // 127.0.0.0/8 all routes to lo on Linux: a socket bound to 0.0.0.0 (or 127.0.0.0/8) would accept these.
    const elsewhere = ["127.0.0.2", "127.1.2.3", `${subnet}2`, `${subnet}1`];
    for (const addrs of Object.values(networkInterfaces())) {
      for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) elsewhere.push(a.address);
    }
    for (const host of elsewhere) {
      const r = await tryConnect(host, port);
      expect([host, r === "connected" ? "reachable" : "unreachable"]).toEqual([host, "unreachable"]);
    }
    expect(await tryConnect("::1", port)).not.toBe("connected");
  });

  test("A9 /config_dump carries no private key material but does list certificate serials", async () => {
    for (const node of ["node-a", "node-b"]) {
      const z = mesh.z(node);
      const text = await (await fetch(`http://127.0.0.1:${z.ports.admin}/config_dump`)).text();
      expectNoKeyMaterial(`${node} config_dump`, text, caKeyBody);
      const dump = JSON.parse(text) as { certificates?: { identity: string; serialNumber: string | null }[] };
      const issued = z.records.filter((r) => r.msg === "issued workload certificate");
      expect(issued.length).toBeGreaterThan(0);
      for (const rec of issued) {
        const serial = String(rec.serial).toLowerCase();
        const listed = (dump.certificates ?? []).find((c) => c.identity === rec.identity);
        expect([rec.identity, listed?.serialNumber?.toLowerCase()]).toEqual([rec.identity, serial]);
        expect(text.toLowerCase()).toContain(serial);
      }
    }
  });

  test("A9 metrics, readiness and the admin index carry no key material either", async () => {
    const z = mesh.z("node-b");
    const pages = {
      metrics: await (await fetch(`http://127.0.0.1:${z.ports.metrics}/metrics`)).text(),
      readiness: await (await fetch(`http://127.0.0.1:${z.ports.readiness}/healthz/ready`)).text(),
      adminIndex: await (await fetch(`http://127.0.0.1:${z.ports.admin}/`)).text(),
    };
    for (const [what, text] of Object.entries(pages)) expectNoKeyMaterial(what, text, caKeyBody);
  });
});

describe("the ztunnel's own listeners behind a workload on 127.0.0.1 (istio's localhost example config)", () => {
  let mesh: TestMesh;
  let hbonePort: number;
  let socksPort: number;
  beforeAll(async () => {
    // A workload on 127.0.0.1, where the admin API listens. Listener ports are random (the flags
    // exist for this), so the test shares no fixed port with anything else on the machine.
    const config = `workloads:
- uid: test//local
  name: local
  namespace: default
  serviceAccount: default
  workloadIps: ["127.0.0.1"]
  protocol: HBONE
  node: node-l
`;
    mesh = await TestMesh.start({ config, nodes: ["node-l"], extraArgs: { "node-l": ["--hbone-port", "0", "--socks5-port", "0"] } });
    const dump = (await mesh.z("node-l").configDump()) as { localWorkloads: { listeners: { hbone: { port: number }[]; socks5: { port: number }[] } }[] };
    hbonePort = dump.localWorkloads[0]!.listeners.hbone[0]!.port;
    socksPort = dump.localWorkloads[0]!.listeners.socks5[0]!.port;
  });
  afterAll(async () => {
    await mesh?.stop();
  });

  test("A9/B16 a mesh peer cannot tunnel into the admin API (or any other ztunnel listener) on 127.0.0.1", async () => {
    const z = mesh.z("node-l");
    const cert = await meshCert(mesh.caDir, "spiffe://cluster.local/ns/default/sa/anyone");
    const own = { admin: z.ports.admin, metrics: z.ports.metrics, readiness: z.ports.readiness, hbone: hbonePort, socks5: socksPort };
    const results: Record<string, string> = {};
    for (const [name, port] of Object.entries(own)) {
      const a = await hboneAttempt({ address: "127.0.0.1", port: hbonePort, cert, authority: `127.0.0.1:${port}` });
      a.close();
      const status = statusOf(a);
      results[name] = status === 503 || status === 400 ? "refused" : `status ${status ?? JSON.stringify(a.outcome)}`;
    }
    expect(results).toEqual({ admin: "refused", metrics: "refused", readiness: "refused", hbone: "refused", socks5: "refused" });
    expect(z.proc.exitCode).toBeNull();
  });
});
