// The waypoint's resilience features end to end, every request through the real chain: client →
// SOCKS on its ztunnel (node-a) → HBONE to a waypoint replica → HBONE to the app's ztunnel (node-b)
// → a real node:http app. Route timeouts (request and per-try), Istio's default retry on connect
// failure with passive ejection of a dead endpoint, route retries on status codes, two waypoint
// replicas sharing the load, least-request endpoint choice, and pooled keep-alive upstreams.
// Counts are taken where they happen (at the apps, in the waypoints' logs); nothing is timed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { localConfig, serviceKey, type ConfigService, type ConfigWorkload } from "../harness/config.ts";
import { echoResponse, startHttpApp, type HttpApp, type SeenRequest } from "../harness/l7-apps.ts";
import { h1Once, json, socksH1, type H1Response } from "../harness/l7-client.ts";
import { requestLines } from "../harness/l7-mesh.ts";
import { TestMesh, type ZtunnelProcess, allocSubnet } from "../harness/mesh.ts";
import { parsePrometheus, sampleSum } from "../harness/metrics.ts";
import { until } from "../harness/net.ts";
import { startWaypoint } from "../harness/waypoint.ts";

const CLIENT = "spiffe://cluster.local/ns/default/sa/client";

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: slow-timeouts, namespace: default}
spec:
  parentRefs:
  - {group: "", kind: Service, name: slow, port: 80}
  rules:
  - matches: [{path: {type: PathPrefix, value: /backend}}]
    timeouts: {request: 10s, backendRequest: 800ms}
    backendRefs: [{name: slow, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /request}}]
    timeouts: {request: 1s}
    backendRefs: [{name: slow, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: retry-on-503, namespace: default}
spec:
  parentRefs:
  - {group: "", kind: Service, name: retry503, port: 80}
  rules:
  - retry: {attempts: 2, codes: [503]}
    backendRefs: [{name: retry503, port: 80}]
`;

/** `?delay=ms` holds the answer that long. */
function delayed(seen: SeenRequest, _body: Buffer, res: import("node:http").ServerResponse): Promise<boolean> | undefined {
  const ms = Number(new URL(seen.url, "http://x").searchParams.get("delay") ?? "0");
  if (!ms) return undefined;
  return new Promise((resolve) =>
    setTimeout(() => {
      if (!res.destroyed) echoResponse(seen, res);
      resolve(true);
    }, ms),
  );
}

describe("waypoint resilience: timeouts, retries, ejection, replicas, least request, keep-alive (multi-process)", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  const ip = (n: number) => `${subnet}${n}`;
  const vip = { slow: ip(100), flaky: ip(101), retry503: ip(102), noretry: ip(103), shared: ip(104), lr: ip(105), ka: ip(106) };
  const host = (svc: string) => `${svc}.default.svc.cluster.local`;
  const deadKey = `${ip(22)}:8080`;
  let mesh: TestMesh;
  let waypoint: ZtunnelProcess;
  let wpA: ZtunnelProcess;
  let wpB: ZtunnelProcess;
  const apps: Record<string, HttpApp> = {};
  /** retryapp: tries per request target */
  const tries = new Map<string, number>();

  beforeAll(async () => {
    const svc = (name: string, n: number, waypointName = "waypoint"): ConfigService => ({ name, vip: ip(n), ports: { 80: 8080 }, waypoint: waypointName });
    const backs = (...names: string[]) => Object.fromEntries(names.map((n) => [serviceKey(n), { 80: 8080 }]));
    const workloads: ConfigWorkload[] = [
      { name: "client", ip: clientIp, node: "node-a" },
      { name: "waypoint", ip: ip(10), node: "node-w", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
      { name: "wp-a", ip: ip(12), node: "node-w", services: { [serviceKey("waypoint-pair")]: { 15008: 15008 } } },
      { name: "wp-b", ip: ip(13), node: "node-w", services: { [serviceKey("waypoint-pair")]: { 15008: 15008 } } },
      { name: "slowapp", ip: ip(20), node: "node-b", services: backs("slow") },
      { name: "live", ip: ip(21), node: "node-b", services: backs("flaky") },
      // nothing listens on dead's port: every connection to it is refused
      { name: "dead", ip: ip(22), node: "node-b", services: backs("flaky") },
      { name: "retryapp", ip: ip(23), node: "node-b", services: backs("retry503", "noretry") },
      { name: "sharedapp", ip: ip(24), node: "node-b", services: backs("shared") },
      { name: "fast", ip: ip(25), node: "node-b", services: backs("lr") },
      { name: "slowep", ip: ip(26), node: "node-b", services: backs("lr") },
      { name: "kaapp", ip: ip(27), node: "node-b", services: backs("ka") },
    ];
    const services: ConfigService[] = [
      svc("slow", 100),
      svc("flaky", 101),
      svc("retry503", 102),
      svc("noretry", 103),
      svc("shared", 104, "waypoint-pair"),
      svc("lr", 105),
      svc("ka", 106),
      { name: "waypoint", vip: ip(120), ports: { 15008: 15008 } },
      { name: "waypoint-pair", vip: ip(121), ports: { 15008: 15008 } },
    ];
    apps.slowapp = await startHttpApp("slowapp", ip(20), 8080, delayed);
    apps.live = await startHttpApp("live", ip(21), 8080);
    apps.retryapp = await startHttpApp("retryapp", ip(23), 8080, (seen, _b, res) => {
      const n = (tries.get(seen.url) ?? 0) + 1;
      tries.set(seen.url, n);
      if (seen.url.startsWith("/always/") || (seen.url.startsWith("/once/") && n === 1)) {
        res.writeHead(503, { "content-type": "text/plain", "content-length": "11" });
        res.end("unavailable");
        return true;
      }
      return undefined;
    });
    apps.sharedapp = await startHttpApp("sharedapp", ip(24), 8080);
    apps.fast = await startHttpApp("fast", ip(25), 8080);
    apps.slowep = await startHttpApp("slowep", ip(26), 8080, (seen, body, res) => delayed({ ...seen, url: "/?delay=150" }, body, res));
    apps.kaapp = await startHttpApp("kaapp", ip(27), 8080);
    mesh = await TestMesh.start({ config: localConfig({ workloads, services }), nodes: ["node-a", "node-b"] });
    [waypoint, wpA, wpB] = await Promise.all([
      startWaypoint(mesh, { routes: ROUTES }),
      startWaypoint(mesh, { uid: "test//wp-a" }),
      startWaypoint(mesh, { uid: "test//wp-b" }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([waypoint?.stop(), wpA?.stop(), wpB?.stop()]);
    await mesh?.stop();
    await Promise.all(Object.values(apps).map((a) => a.close()));
  });

  function get(svc: keyof typeof vip, path: string): Promise<H1Response> {
    return h1Once(clientIp, vip[svc], { path, host: host(svc) });
  }

  async function accessLine(wp: ZtunnelProcess, path: string) {
    await until(() => requestLines(wp).some((l) => l.path === path), 5000, `the access line for ${path}`);
    return requestLines(wp).find((l) => l.path === path)!;
  }

  test("timeouts.backendRequest: a backend slower than the per-try budget gives 504 upstream request timeout, flag UT", async () => {
    const r = await get("slow", "/backend/x?delay=2500");
    expect(r.status).toBe(504);
    expect(r.body.toString()).toBe("upstream request timeout");
    const line = await accessLine(waypoint, "/backend/x?delay=2500");
    expect(line.response_code).toBe(504);
    expect(String(line.response_flags).split(",")).toContain("UT");
    // a fast answer on the same route is fine
    expect((await get("slow", "/backend/y")).status).toBe(200);
  });

  test("timeouts.request: the whole request's budget gives 504 upstream request timeout, flag UT", async () => {
    const r = await get("slow", "/request/x?delay=2500");
    expect(r.status).toBe(504);
    expect(r.body.toString()).toBe("upstream request timeout");
    const line = await accessLine(waypoint, "/request/x?delay=2500");
    expect(line.response_code).toBe(504);
    expect(String(line.response_flags).split(",")).toContain("UT");
    expect((await get("slow", "/request/y")).status).toBe(200);
    // no timeout configured: the same delay is simply waited for
    expect((await get("slow", "/none?delay=1100")).status).toBe(200);
  });

  test("default retry on connect failure: with one endpoint refusing connections every request succeeds, and the dead one is ejected after 5 failures", async () => {
    const c = await socksH1(clientIp, vip.flaky);
    const triedDead = () => waypoint.records.filter((r) => r.msg === "upstream try failed" && r.endpoint === deadKey).length;
    let sent = 0;
    try {
      for (; sent < 200; sent++) {
        const r = await c.request({ path: `/flaky/${sent}`, host: host("flaky") });
        expect(r.status).toBe(200);
        expect(json<SeenRequest>(r).app).toBe("live");
        if (triedDead() >= 5 && (await waypoint.configDump()).upstream?.ejectedEndpoints >= 1) break;
      }
      expect(triedDead()).toBeGreaterThanOrEqual(5);
      const dump = await waypoint.configDump();
      expect(dump.upstream.ejectedEndpoints).toBe(1);
      await waypoint.waitForLog((r) => r.msg === "endpoint ejected after consecutive connect failures" && r.endpoint === deadKey, 2000);
      // Ejected: later requests all go to the live endpoint without trying the dead one first.
      const before = triedDead();
      for (let i = 0; i < 30; i++) {
        const r = await c.request({ path: `/after/${i}`, host: host("flaky") });
        expect(r.status).toBe(200);
      }
      expect(triedDead()).toBe(before);
    } finally {
      c.close();
    }
  }, 30_000);

  test("route retry {attempts: 2, codes: [503]}: 503 once then 200 gives 200 after 2 tries; 503 always gives 503 after 3 tries, flagged URX", async () => {
    const once = await get("retry503", "/once/a");
    expect(once.status).toBe(200);
    expect(tries.get("/once/a")).toBe(2);
    const always = await get("retry503", "/always/b");
    expect(always.status).toBe(503);
    expect(always.body.toString()).toBe("unavailable"); // the upstream's own answer is passed on
    expect(tries.get("/always/b")).toBe(3);
    // Envoy marks a response whose retries ran out as UpstreamRetryLimitExceeded (URX).
    const line = await accessLine(waypoint, "/always/b");
    expect(line.response_code).toBe(503);
    expect(String(line.response_flags).split(",")).toContain("URX");
  });

  test("without a route, Istio's default retry policy does not retry a 503 answer", async () => {
    const r = await get("noretry", "/always/c");
    expect(r.status).toBe(503);
    expect(tries.get("/always/c")).toBe(1);
  });

  test("two waypoint replicas behind one waypoint service share ~200 requests from 20 client connections", async () => {
    const beforeA = requestLines(wpA).length;
    const beforeB = requestLines(wpB).length;
    const CONNS = 20;
    const PER = 10;
    await Promise.all(
      Array.from({ length: CONNS }, async (_, k) => {
        const c = await socksH1(clientIp, vip.shared);
        try {
          for (let i = 0; i < PER; i++) {
            const r = await c.request({ path: `/shared/${k}/${i}`, host: host("shared") });
            expect(r.status).toBe(200);
          }
        } finally {
          c.close();
        }
      }),
    );
    await until(() => requestLines(wpA).length - beforeA + requestLines(wpB).length - beforeB >= CONNS * PER, 5000, "every access line");
    const a = requestLines(wpA).length - beforeA;
    const b = requestLines(wpB).length - beforeB;
    expect(a + b).toBe(CONNS * PER);
    // A replica is chosen per connection: each took at least one connection's worth.
    expect(a).toBeGreaterThanOrEqual(PER);
    expect(b).toBeGreaterThanOrEqual(PER);
    expect(requestLines(waypoint).some((l) => String(l.path).startsWith("/shared/"))).toBe(false);
  }, 30_000);

  test("least request: a slow endpoint gets fewer requests than a fast one under concurrent load", async () => {
    const CONNS = 8;
    const PER = 20;
    await Promise.all(
      Array.from({ length: CONNS }, async (_, k) => {
        const c = await socksH1(clientIp, vip.lr);
        try {
          for (let i = 0; i < PER; i++) expect((await c.request({ path: `/lr/${k}/${i}`, host: host("lr") })).status).toBe(200);
        } finally {
          c.close();
        }
      }),
    );
    const fast = apps.fast!.requests.length;
    const slow = apps.slowep!.requests.length;
    expect(fast + slow).toBe(CONNS * PER);
    // Random choice would split ~50/50; least request keeps the slow one's share far lower.
    expect(slow).toBeLessThan(fast);
    expect(slow).toBeLessThanOrEqual(0.3 * CONNS * PER);
  }, 30_000);

  test("upstream keep-alive: many sequential requests, even on new client connections, reuse a few upstream connections", async () => {
    const c = await socksH1(clientIp, vip.ka);
    try {
      for (let i = 0; i < 30; i++) expect((await c.request({ path: `/ka/${i}`, host: host("ka") })).status).toBe(200);
    } finally {
      c.close();
    }
    for (let i = 0; i < 10; i++) expect((await get("ka", `/ka-new/${i}`)).status).toBe(200);
    expect(apps.kaapp!.requests.length).toBe(40);
    expect(apps.kaapp!.connections).toBeGreaterThanOrEqual(1);
    expect(apps.kaapp!.connections).toBeLessThanOrEqual(3);
    const dump = await waypoint.configDump();
    expect(dump.upstream.http1IdleConnections).toBeGreaterThanOrEqual(1);
  });

  test("metrics: timeouts and retried requests in istio_requests_total with reporter=waypoint", async () => {
    const all = parsePrometheus(await waypoint.metricsText());
    expect(
      sampleSum(all, "istio_requests_total", {
        reporter: "waypoint",
        response_code: "504",
        response_flags: "UT",
        source_principal: CLIENT,
        destination_service: host("slow"),
      }),
    ).toBeGreaterThanOrEqual(2);
    // the flaky service's requests all succeeded (retries are invisible to the client)
    expect(sampleSum(all, "istio_requests_total", { reporter: "waypoint", destination_service: host("flaky"), response_code: "200", response_flags: "-" })).toBeGreaterThanOrEqual(35);
    expect(sampleSum(all, "istio_requests_total", { reporter: "waypoint", destination_service: host("flaky"), response_code: "503" })).toBe(0);
    expect(sampleSum(all, "istio_requests_total", { reporter: "waypoint", destination_service: host("retry503"), response_code: "503" })).toBe(1);
    expect(sampleSum(all, "istio_requests_total", { reporter: "waypoint", destination_service: host("retry503"), response_code: "200" })).toBe(1);
    // the replicas report their own traffic
    const shared = async (wp: ZtunnelProcess) => sampleSum(parsePrometheus(await wp.metricsText()), "istio_requests_total", { reporter: "waypoint", destination_service: host("shared") });
    expect((await shared(wpA)) + (await shared(wpB))).toBe(200);
  });
});
