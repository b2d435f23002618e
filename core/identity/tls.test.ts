// A real TLS 1.3 mTLS handshake over loopback with two issued SVIDs (node:tls directly: this is a
// test fixture), then our own verification of each side's peer chain.
import { beforeAll, describe, expect, test } from "bun:test";
import tls from "node:tls";
import type { AddressInfo } from "node:net";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { createLocalCa, peerChainFromTlsSocket, verifySvidChain, type LocalCa, type Svid, type VerifiedPeer } from "./index.ts";
import { pemCertificates } from "./x509.ts";

const TD = "cluster.local";
const SERVER_ID = `spiffe://${TD}/ns/backend/sa/server`;
const CLIENT_ID = `spiffe://${TD}/ns/frontend/sa/client`;

let ca: LocalCa;
let serverSvid: Svid;
let clientSvid: Svid;

beforeAll(async () => {
  ca = await createLocalCa({ trustDomain: TD });
  serverSvid = await ca.issueWorkloadSvid({ identity: SERVER_ID, lifetimeMs: 3600_000 });
  clientSvid = await ca.issueWorkloadSvid({ identity: CLIENT_ID, lifetimeMs: 3600_000 });
});

interface Outcome {
  serverSaw: VerifiedPeer;
  clientSaw: VerifiedPeer;
  serverChain: Uint8Array[];
  protocols: [string | null, string | null];
  echoed: string;
}

async function handshake(server: Svid, client: Svid): Promise<Outcome> {
  let serverSide: Promise<{ peer: VerifiedPeer; chain: Uint8Array[]; protocol: string | null }> | undefined;
  const srv = tls.createServer(
    { key: server.keyPem, cert: server.chainPem, ca: server.rootPem, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.3" },
    (sock) => {
      const chain = peerChainFromTlsSocket(sock);
      const protocol = sock.getProtocol(); // now: the echo below may close the socket before verification ends
      serverSide = verifySvidChain(chain, { trustBundle: ca.trustBundle, usage: "client", trustDomain: TD }).then((peer) => ({ peer, chain, protocol }));
      sock.on("data", (d) => sock.end(d));
      sock.on("error", () => {});
    },
  );
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as AddressInfo;
  let conn: tls.TLSSocket | undefined;
  try {
    conn = tls.connect({
      host: "127.0.0.1",
      port,
      key: client.keyPem,
      cert: client.chainPem,
      ca: client.rootPem,
      minVersion: "TLSv1.3",
      // The certificate carries no DNS/IP name; identity is checked below on the URI SAN.
      checkServerIdentity: () => undefined,
    });
    const c = conn;
    let clientProtocol: string | null = null;
    const clientSaw = await new Promise<VerifiedPeer>((resolve, reject) => {
      c.once("error", reject);
      c.once("secureConnect", () => {
        clientProtocol = c.getProtocol();
        verifySvidChain(peerChainFromTlsSocket(c), { trustBundle: ca.trustBundle, usage: "server", expectedIdentities: [SERVER_ID] }).then(resolve, reject);
      });
    });
    const echoed = await new Promise<string>((resolve, reject) => {
      let got = "";
      c.on("data", (d) => (got += d.toString()));
      c.once("end", () => resolve(got));
      c.once("error", reject);
      c.write("ping");
    });
    const s = await serverSide!;
    return { serverSaw: s.peer, clientSaw, serverChain: s.chain, protocols: [s.protocol, clientProtocol], echoed };
  } finally {
    conn?.destroy();
    srv.close();
  }
}

describe("issued SVIDs work with node:tls", () => {
  test("TLS 1.3 mTLS handshake, verified on both sides", async () => {
    const out = await handshake(serverSvid, clientSvid);
    expect(out.protocols).toEqual(["TLSv1.3", "TLSv1.3"]);
    expect(out.echoed).toBe("ping");
    expect(out.serverSaw).toMatchObject({ identity: CLIENT_ID, trustDomain: TD, namespace: "frontend", serviceAccount: "client" });
    expect(out.clientSaw).toMatchObject({ identity: SERVER_ID, trustDomain: TD, namespace: "backend", serviceAccount: "server" });
    // the peer's leaf and intermediate, without the root the runtime appends from our trust store
    expect(out.serverChain).toEqual(pemCertificates(clientSvid.chainPem));
  });

  test("the client's expected identity is enforced after the handshake", async () => {
    const other = await ca.issueWorkloadSvid({ identity: `spiffe://${TD}/ns/backend/sa/impostor`, lifetimeMs: 3600_000 });
    const e = await handshake(other, clientSvid).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(MeshError);
    expect((e as MeshError).code).toBe(ErrorCodes.SVID_IDENTITY_MISMATCH);
  });

  test("peerChainFromTlsSocket: no peer certificate gives an empty chain", () => {
    expect(peerChainFromTlsSocket({ getPeerCertificate: () => ({}) })).toEqual([]);
    expect(peerChainFromTlsSocket({ getPeerCertificate: () => null })).toEqual([]);
  });

  test("peerChainFromTlsSocket: stops on a cyclic issuer chain", () => {
    const a: { raw: Buffer; issuerCertificate?: unknown } = { raw: Buffer.from([1]) };
    const b = { raw: Buffer.from([2]), issuerCertificate: a };
    a.issuerCertificate = b;
    expect(peerChainFromTlsSocket({ getPeerCertificate: () => a }).length).toBe(10);
  });
});
