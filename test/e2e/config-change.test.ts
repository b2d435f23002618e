// Config changes under load: the file is rewritten while a long stream flows. A valid change adds
// a workload and a service that become reachable; an invalid one is logged and ignored; the
// established connection is never dropped.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import type net from "node:net";
import { TestMesh, allocSubnet, echoServer, exchange, localConfig, serverService, serviceKey, socksConnect, twoNodeWorkloads, until, type LogRecord, type TestServer } from "../harness/index.ts";

/** The two-node mesh; with `server2`, a second server workload (node-b) and its service. */
function config(subnet: string, opts: { server2?: boolean; server2Ip?: string } = {}): string {
  const { client, server } = twoNodeWorkloads(subnet);
  const server2 = { name: "server2", ip: opts.server2Ip ?? `${subnet}3`, node: "node-b", services: { [serviceKey("server2")]: { 80: 8080 } } };
  const service2 = { name: "server2", vip: `${subnet}101`, ports: { 80: 8080 } };
  return localConfig({
    workloads: opts.server2 ? [client, server, server2] : [client, server],
    services: opts.server2 ? [serverService(subnet), service2] : [serverService(subnet)],
  });
}

/** A connection that keeps writing small chunks and checks that they all come back. */
class SteadyStream {
  sent = 0;
  echoed = 0;
  closed = false;
  private readonly sentHash = createHash("sha256");
  private readonly echoHash = createHash("sha256");
  private readonly timer: ReturnType<typeof setInterval>;
  private seq = 0;
  private readonly finished: Promise<void>;

  constructor(private readonly s: net.Socket) {
    s.on("data", (c: Buffer) => {
      this.echoed += c.length;
      this.echoHash.update(c);
    });
    this.finished = new Promise((resolve, reject) => {
      s.once("end", () => resolve());
      s.once("error", reject);
    });
    this.finished.catch(() => {}); // awaited in finish(); an early failure must not be unhandled
    s.once("close", () => (this.closed = true));
    this.timer = setInterval(() => {
      const chunk = Buffer.alloc(4096, this.seq++ % 251);
      chunk.writeUInt32BE(this.seq, 0);
      this.sentHash.update(chunk);
      this.sent += chunk.length;
      s.write(chunk);
    }, 5);
  }

  /** Resolves once `n` more bytes have been echoed than now. */
  async progress(n: number, what: string): Promise<void> {
    const target = this.echoed + n;
    await until(() => this.echoed >= target || this.closed, 10_000, what);
    if (this.echoed < target) throw new Error(`the steady stream closed while waiting for ${what}`);
  }

  async finish(): Promise<{ sent: number; echoed: number; intact: boolean }> {
    clearInterval(this.timer);
    this.s.end();
    await this.finished;
    return { sent: this.sent, echoed: this.echoed, intact: this.sentHash.digest("hex") === this.echoHash.digest("hex") };
  }
}

describe("config changes while traffic flows", () => {
  const subnet = allocSubnet();
  let mesh: TestMesh;
  const apps: TestServer[] = [];
  beforeAll(async () => {
    mesh = await TestMesh.start({ config: config(subnet), nodes: ["node-a", "node-b"] });
    apps.push(await echoServer(`${subnet}2`, 8080), await echoServer(`${subnet}3`, 8080));
  }, 30_000);
  afterAll(async () => {
    for (const a of apps) await a.close();
    await mesh?.stop();
  });

  test("a new workload becomes reachable, an invalid file is ignored, the open stream never drops", async () => {
    const a = mesh.z("node-a");
    const b = mesh.z("node-b");
    const steady = new SteadyStream(await socksConnect({ host: `${subnet}1` }, "server.default.svc.cluster.local", 80));
    await steady.progress(64 * 1024, "echo before the change");

    // Before: server2 is not in the mesh; its address is passthrough, its hostname unknown.
    const unknownName = await socksConnect({ host: `${subnet}1` }, "server2.default.svc.cluster.local", 80).then(
      () => "connected",
      (e: Error) => e.message,
    );
    expect(unknownName).not.toBe("connected");

    const reloadsBefore = (n: typeof a) => n.records.filter((r) => r.msg === "config reloaded").length;
    const [aReloads, bReloads] = [reloadsBefore(a), reloadsBefore(b)];
    mesh.updateConfig(config(subnet, { server2: true }));
    await b.waitForLog((r) => r.msg === "serving workload" && r.workload === "server2", 10_000);
    await until(() => reloadsBefore(a) > aReloads && reloadsBefore(b) > bReloads, 10_000, "both ztunnels reloaded");
    await steady.progress(64 * 1024, "echo after the change");

    for (const [host, port] of [[`${subnet}3`, 8080], [`${subnet}101`, 80], ["server2.default.svc.cluster.local", 80]] as const) {
      const s = await socksConnect({ host: `${subnet}1` }, host, port);
      expect((await exchange(s, `to ${host}`)).toString()).toBe(`to ${host}`);
    }
    await until(() => b.accessRecords("inbound").some((r) => r["dst.workload"] === "server2" && !r.error), 5000, "an inbound record for server2");
    expect(b.accessRecords("inbound").find((r) => r["dst.workload"] === "server2")!["src.identity"]).toBe("spiffe://cluster.local/ns/default/sa/client");

    // An invalid write: logged with the offending field, the last good state stays.
    const dumpOf = async (z: typeof a) => {
      const d = await z.configDump();
      return JSON.stringify({ workloads: d.workloads, services: d.services, policies: d.policies, local: d.localWorkloads });
    };
    const [goodA, goodB] = [await dumpOf(a), await dumpOf(b)];
    const errorsBefore = [a.records.length, b.records.length];
    mesh.updateConfig(config(subnet, { server2: true, server2Ip: `${subnet}999` }));
    const namesField = (r: LogRecord) => r.level === "error" && String(r.msg).includes("workloads[2].workloadIps[0]");
    await a.waitForLog((r) => a.records.indexOf(r) >= errorsBefore[0]! && namesField(r), 10_000);
    await b.waitForLog((r) => b.records.indexOf(r) >= errorsBefore[1]! && namesField(r), 10_000);
    expect(await dumpOf(a)).toBe(goodA);
    expect(await dumpOf(b)).toBe(goodB);
    await steady.progress(64 * 1024, "echo after the invalid change");
    const s = await socksConnect({ host: `${subnet}1` }, "server2.default.svc.cluster.local", 80);
    expect((await exchange(s, "still there")).toString()).toBe("still there");

    expect(steady.closed).toBe(false);
    const result = await steady.finish();
    expect(result.echoed).toBe(result.sent);
    expect(result.intact).toBe(true);
    expect(result.sent).toBeGreaterThan(3 * 64 * 1024);
    // The long connection was one connection from start to end, closed cleanly.
    await until(() => b.accessRecords("inbound").some((r) => r["dst.workload"] === "server" && r.bytes_recv === result.sent), 5000, "the steady stream's access record");
    expect(b.accessRecords("inbound").find((r) => r["dst.workload"] === "server" && r.bytes_recv === result.sent)!.error).toBeUndefined();
  }, 60_000);
});
