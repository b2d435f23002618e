import { afterEach, describe, expect, test } from "bun:test";
import { ErrorCodes, isMeshError } from "../errors/index.ts";
import { serveHttp, type HttpListener } from "../net/index.ts";
import { MeshMetrics } from "../telemetry/index.ts";
import { createAdminApp, createMetricsApp, createReadinessApp, isLoopbackHost, startAdminServers, type AdminServers } from "./index.ts";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

function apps(onQuit: () => void = () => {}) {
  return {
    admin: createAdminApp({ configDump: () => ({ workloads: [], key: "secret" }), quit: onQuit }),
    metrics: createMetricsApp({ metrics: new MeshMetrics({ component: "ztunnel", version: "t" }) }),
    readiness: createReadinessApp({ readiness: () => ({ ready: false, pending: ["proxy"] }) }),
  };
}

const any = (hostname = "127.0.0.1") => ({ hostname, port: 0 });

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

/** Whether the port can be bound right now, i.e. nobody else holds it. */
async function portIsFree(port: number): Promise<boolean> {
  try {
    const l = serveHttp(() => new Response(), { hostname: "127.0.0.1", port });
    await l.stop();
    return true;
  } catch (e) {
    if (isMeshError(e, ErrorCodes.ADDRESS_IN_USE)) return false;
    throw e;
  }
}

describe("startAdminServers", () => {
  test("serves all three apps over real HTTP on port 0", async () => {
    let quitServers: AdminServers | undefined;
    const quitDone = Promise.withResolvers<void>();
    const s = await startAdminServers({
      adminAddress: any(),
      metricsAddress: any(),
      readinessAddress: any(),
      // quit stops the very server that answered: the OK must still arrive.
      ...apps(() => void quitServers!.stop().then(quitDone.resolve, quitDone.reject)),
    });
    quitServers = s;
    cleanup.push(() => s.stop());
    expect(s.admin.port).toBeGreaterThan(0);
    expect(new Set([s.admin.port, s.metrics.port, s.readiness.port]).size).toBe(3);

    const dump = await fetch(`http://127.0.0.1:${s.admin.port}/config_dump`);
    expect(dump.status).toBe(200);
    expect(await dump.json()).toEqual({ workloads: [] });

    const metrics = await fetch(`http://127.0.0.1:${s.metrics.port}/stats/prometheus`);
    expect(metrics.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    expect(await metrics.text()).toContain("istio_build");

    const ready = await fetch(`http://127.0.0.1:${s.readiness.port}/healthz/ready`);
    expect(ready.status).toBe(500);
    expect(await ready.text()).toBe("not ready, pending: proxy\n");

    const quit = await fetch(`http://127.0.0.1:${s.admin.port}/quitquitquit`, { method: "POST" });
    expect(quit.status).toBe(200);
    expect(await quit.text()).toBe("OK\n");
    await quitDone.promise;
    expect(await portIsFree(s.admin.port)).toBe(true);
    expect(await portIsFree(s.metrics.port)).toBe(true);
  });

  test("admin refuses a non-loopback address with FLAG_INVALID", async () => {
    for (const hostname of ["0.0.0.0", "::", "10.0.0.1", "example.com", "128.0.0.1"]) {
      const e = await caught(startAdminServers({ adminAddress: any(hostname), metricsAddress: any(), readinessAddress: any(), ...apps() }));
      expect(isMeshError(e, ErrorCodes.FLAG_INVALID)).toBe(true);
      expect((e as Error).message).toContain(hostname);
    }
  });

  test("a taken port surfaces ADDRESS_IN_USE and releases the servers already started", async () => {
    const squatter: HttpListener = serveHttp(() => new Response("mine"), { hostname: "127.0.0.1", port: 0 });
    cleanup.push(() => squatter.stop());
    // Find two ports that are free now, so we can tell afterwards whether they were released.
    const probe = [serveHttp(() => new Response(), any()), serveHttp(() => new Response(), any())];
    const [adminPort, metricsPort] = probe.map((l) => l.port) as [number, number];
    await Promise.all(probe.map((l) => l.stop()));

    const e = await caught(
      startAdminServers({
        adminAddress: { hostname: "127.0.0.1", port: adminPort },
        metricsAddress: { hostname: "127.0.0.1", port: metricsPort },
        readinessAddress: { hostname: "127.0.0.1", port: squatter.port },
        ...apps(),
      }),
    );
    expect(isMeshError(e, ErrorCodes.ADDRESS_IN_USE)).toBe(true);
    expect(await portIsFree(adminPort)).toBe(true);
    expect(await portIsFree(metricsPort)).toBe(true);
    expect(await (await fetch(`http://127.0.0.1:${squatter.port}/`)).text()).toBe("mine");
  });

  test("stop() can be called twice", async () => {
    const s = await startAdminServers({ adminAddress: any(), metricsAddress: any(), readinessAddress: any(), ...apps() });
    await s.stop();
    await s.stop();
    expect(await portIsFree(s.readiness.port)).toBe(true);
  });
});

describe("isLoopbackHost", () => {
  test("accepts loopback spellings only", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"]) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ["0.0.0.0", "::", "", "127.0.0.256", "127.0.0", "::ffff:10.0.0.1", "localhost.example.com"]) expect(isLoopbackHost(h)).toBe(false);
  });
});
