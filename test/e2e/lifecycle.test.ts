// Process lifecycle: drain on SIGTERM and /quitquitquit (open connections hold the exit, the
// deadline forces it, a second signal skips it), and a clear start-up failure when a port is taken.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initLocalCa } from "../../core/identity/index.ts";
import {
  SocksError,
  TestMesh,
  allocSubnet,
  echoServer,
  socksConnect,
  stackFrames,
  twoNodeConfig,
  until,
  type TestServer,
  type ZtunnelProcess,
} from "../harness/index.ts";

/** Writes `msg` on an open socket and waits for the echo (the socket stays open). */
function roundTrip(s: net.Socket, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const cleanup = () => {
      s.off("data", onData);
      s.off("error", onError);
      s.off("close", onClose);
    };
    const onData = (c: Buffer) => {
      got += c.toString();
      if (got.length >= msg.length) {
        cleanup();
        resolve(got);
      }
    };
    const onError = (e: Error) => (cleanup(), reject(e));
    const onClose = () => (cleanup(), reject(new Error("closed during the round trip")));
    s.on("data", onData);
    s.on("error", onError);
    s.on("close", onClose);
    s.write(msg);
  });
}

/** Resolves when the peer is gone: its FIN ('end'; the socket allows half-open) or a close. */
function peerGone(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.closed || s.readableEnded) return resolve();
    s.once("end", () => resolve());
    s.once("close", () => resolve());
  });
}

async function readinessStatus(z: ZtunnelProcess): Promise<number | string> {
  try {
    return (await fetch(`http://127.0.0.1:${z.ports.readiness}/healthz/ready`)).status;
  } catch (e) {
    return (e as Error).message;
  }
}

/** What a new SOCKS connection attempt through `proxyIp` gets: "ok", a SOCKS reply code, or an error. */
async function tryConnect(proxyIp: string, host: string, port: number): Promise<string> {
  try {
    const s = await socksConnect({ host: proxyIp }, host, port, 5000);
    s.destroy();
    return "ok";
  } catch (e) {
    return e instanceof SocksError ? `socks reply ${e.reply}` : (e as Error).message;
  }
}

describe("lifecycle", () => {
  let caDir: string;
  let caRoot: string;
  let mesh: TestMesh | undefined;
  let app: TestServer | undefined;

  beforeAll(async () => {
    caRoot = mkdtempSync(join(tmpdir(), "mesh-lifecycle-ca-"));
    caDir = join(caRoot, "ca");
    await initLocalCa(caDir, { trustDomain: "cluster.local" });
  });
  afterEach(async () => {
    await app?.close();
    await mesh?.stop();
    app = mesh = undefined;
  });
  afterAll(() => {
    rmSync(caRoot, { recursive: true, force: true });
  });

  async function start(subnet: string, deadline: string): Promise<TestMesh> {
    mesh = await TestMesh.start({
      config: twoNodeConfig(subnet),
      nodes: ["node-a", "node-b"],
      caDir,
      env: { CONNECTION_TERMINATION_DEADLINE: deadline },
    });
    app = await echoServer(`${subnet}2`, 8080);
    return mesh;
  }

  test("SIGTERM on the client node: an open connection holds the exit and keeps working; closing it lets the process exit 0", async () => {
    const subnet = allocSubnet();
    const m = await start(subnet, "30s");
    const a = m.z("node-a");
    const c = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080);
    expect(await roundTrip(c, "before")).toBe("before");

    const signalled = Date.now();
    a.signal("SIGTERM");
    await a.waitForLog((r) => r.msg === "draining");
    // New connections are refused, readiness turns unready, the open connection still carries data.
    expect(await tryConnect(`${subnet}1`, `${subnet}2`, 8080)).not.toBe("ok");
    expect(await readinessStatus(a)).not.toBe(200);
    expect(await roundTrip(c, "during drain")).toBe("during drain");
    await Bun.sleep(300);
    expect(await roundTrip(c, "still during drain")).toBe("still during drain");
    expect(a.running).toBe(true);

    c.end();
    const code = await a.exitWithin(10_000);
    expect(code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(30_000);
    const drained = await a.waitForLog((r) => r.msg === "drained", 1000);
    expect(drained.forced).toBe(0);
    // The other node was not affected.
    expect(m.z("node-b").running).toBe(true);
  }, 30_000);

  test("SIGTERM on the server node: the open tunnel survives the GOAWAY; new tunnels to it fail; exit 0 once it closes", async () => {
    const subnet = allocSubnet();
    const m = await start(subnet, "30s");
    const b = m.z("node-b");
    const c = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080);
    expect(await roundTrip(c, "before")).toBe("before");

    b.signal("SIGTERM");
    await b.waitForLog((r) => r.msg === "draining");
    expect(await tryConnect(`${subnet}1`, `${subnet}2`, 8080)).not.toBe("ok");
    expect(await roundTrip(c, "during drain")).toBe("during drain");
    expect(b.running).toBe(true);

    c.end();
    expect(await b.exitWithin(10_000)).toBe(0);
    expect((await b.waitForLog((r) => r.msg === "drained", 1000)).forced).toBe(0);
  }, 30_000);

  test("past CONNECTION_TERMINATION_DEADLINE the connection is force-closed and the process exits 0", async () => {
    const subnet = allocSubnet();
    const m = await start(subnet, "1s");
    const a = m.z("node-a");
    const c = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080);
    expect(await roundTrip(c, "before")).toBe("before");
    const gone = peerGone(c);
    c.on("error", () => {});

    const signalled = Date.now();
    a.signal("SIGTERM");
    const code = await a.exitWithin(1000 + 5000);
    const elapsed = Date.now() - signalled;
    expect(code).toBe(0);
    // It waited for the connection up to the deadline, not less.
    expect(elapsed).toBeGreaterThanOrEqual(900);
    await gone;
    const warn = a.records.find((r) => r.msg === "drain deadline passed; closing remaining connections");
    expect(warn?.connections).toBe(1);
    expect((await a.waitForLog((r) => r.msg === "drained", 1000)).forced).toBe(1);
  }, 30_000);

  test("POST /quitquitquit drains like SIGTERM", async () => {
    const subnet = allocSubnet();
    const m = await start(subnet, "30s");
    const a = m.z("node-a");
    const c = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080);
    expect(await roundTrip(c, "before")).toBe("before");

    const r = await a.quit();
    expect(r.status).toBe(200);
    await a.waitForLog((rec) => rec.msg === "draining");
    expect(await tryConnect(`${subnet}1`, `${subnet}2`, 8080)).not.toBe("ok");
    expect(await roundTrip(c, "during drain")).toBe("during drain");
    expect(a.running).toBe(true);
    c.end();
    expect(await a.exitWithin(10_000)).toBe(0);
    expect((await a.waitForLog((rec) => rec.msg === "drained", 1000)).forced).toBe(0);
  }, 30_000);

  test("a second SIGTERM exits at once, without waiting for the deadline", async () => {
    const subnet = allocSubnet();
    const m = await start(subnet, "30s");
    const a = m.z("node-a");
    const c = await socksConnect({ host: `${subnet}1` }, `${subnet}2`, 8080);
    c.on("error", () => {});
    expect(await roundTrip(c, "before")).toBe("before");
    const gone = peerGone(c);

    a.signal("SIGTERM");
    await a.waitForLog((r) => r.msg === "draining");
    expect(a.running).toBe(true);
    a.signal("SIGTERM");
    const code = await a.exitWithin(5000);
    expect(code).toBeDefined();
    await a.waitForLog((r) => r.msg === "second signal; exiting now", 1000);
    await gone;
  }, 30_000);

  describe("a port already in use at start", () => {
    let blocker: net.Server | undefined;
    afterEach(async () => {
      await new Promise<void>((r) => (blocker ? blocker.close(() => r()) : r()));
      blocker = undefined;
    });

    function occupy(host: string, port: number): Promise<number> {
      return new Promise((resolve, reject) => {
        blocker = net.createServer();
        blocker.once("error", reject);
        blocker.listen({ host, port, exclusive: true }, () => resolve((blocker!.address() as net.AddressInfo).port));
      });
    }

    async function failedStart(subnet: string, extraArgs: string[]): Promise<{ code: number; stderr: string; z: ZtunnelProcess }> {
      // Spawn directly: TestMesh.start would (rightly) throw on the failed start.
      const m = await TestMesh.start({ config: twoNodeConfig(subnet), nodes: [], caDir });
      mesh = m;
      const z = m.spawn("node-a", { extraArgs: { "node-a": extraArgs } });
      m.ztunnels.set("node-a", z);
      const code = await z.exitWithin(20_000);
      await until(() => z.stderrText.some((l) => l.startsWith("error[")), 2000, "the error line");
      return { code: code ?? -1, stderr: z.stderrText.join("\n"), z };
    }

    test("the workload's HBONE address: one error line naming it, non-zero exit, no stack trace", async () => {
      const subnet = allocSubnet();
      await occupy(`${subnet}1`, 15008);
      const { code, stderr, z } = await failedStart(subnet, []);
      expect(code).not.toBe(0);
      const errorLines = z.stderrText.filter((l) => l.startsWith("error["));
      expect(errorLines).toHaveLength(1);
      expect(errorLines[0]).toStartWith("error[ADDRESS_IN_USE]");
      expect(errorLines[0]).toContain(`${subnet}1:15008`);
      expect(stackFrames(stderr)).toEqual([]);
    }, 30_000);

    test("the admin port: one error line naming it, non-zero exit, no stack trace", async () => {
      const subnet = allocSubnet();
      const port = await occupy("127.0.0.1", 0);
      const { code, stderr, z } = await failedStart(subnet, ["--admin-port", String(port)]);
      expect(code).not.toBe(0);
      const errorLines = z.stderrText.filter((l) => l.startsWith("error["));
      expect(errorLines).toHaveLength(1);
      expect(errorLines[0]).toStartWith("error[ADDRESS_IN_USE]");
      expect(errorLines[0]).toContain(`127.0.0.1:${port}`);
      expect(stackFrames(stderr)).toEqual([]);
    }, 30_000);
  });
});
