import { describe, expect, test } from "bun:test";
import { MeshMetrics, createLogger, type LogLevel } from "../telemetry/index.ts";
import { createAdminApp, createMetricsApp, createReadinessApp, isKeyMaterialName, scrubKeyMaterial } from "./index.ts";

const KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";

function adminWith(overrides: Partial<Parameters<typeof createAdminApp>[0]> = {}) {
  let quits = 0;
  const logger = createLogger({ format: "json", level: "info", component: "test", write: () => {} });
  const quitted = new Promise<void>((resolve) => {
    overrides.quit ??= () => {
      quits++;
      resolve();
    };
  });
  const app = createAdminApp({
    configDump: () => ({ workloads: [] }),
    quit: () => {},
    logging: { get: () => logger.level, set: (l) => (logger.level = l as LogLevel) },
    ...overrides,
  });
  return { app, logger, quitted, quits: () => quits };
}

describe("admin app", () => {
  test("GET / lists the endpoints as HTML", async () => {
    const { app } = adminWith();
    const res = await app.request("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const html = await res.text();
    for (const p of ["config_dump", "quitquitquit", "logging"]) expect(html).toContain(`href="${p}"`);
  });

  test("unknown path is 404", async () => {
    const { app } = adminWith();
    expect((await app.request("/nope")).status).toBe(404);
    expect((await app.request("/config_dump/x")).status).toBe(404);
  });

  test("GET /config_dump is pretty JSON; Maps, Sets and BigInts survive", async () => {
    const { app } = adminWith({
      configDump: async () => ({
        workloads: [{ uid: "w1", services: new Map([["default/echo", { 80: 8080 }]]) }],
        tags: new Set(["a"]),
        generation: 3n,
      }),
    });
    const res = await app.request("/config_dump");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    const text = await res.text();
    expect(text).toContain('\n  "workloads": [');
    expect(JSON.parse(text)).toEqual({
      workloads: [{ uid: "w1", services: { "default/echo": { "80": 8080 } } }],
      tags: ["a"],
      generation: "3",
    });
  });

  test("config_dump never carries key material, however it is nested or named", async () => {
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic.self = cyclic;
    const { app } = adminWith({
      configDump: () => ({
        certificates: [
          {
            identity: "spiffe://cluster.local/ns/default/sa/echo",
            certChain: [{ pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", serialNumber: "1" }],
            key: KEY_PEM,
            keyPem: KEY_PEM,
            PrivateKey: { d: "secret-d" },
            private_key: "x",
            signingKeyPEM: "y",
            KEY: "z",
          },
        ],
        ca: new Map<string, unknown>([["privateKey", "k"], ["root", "-----BEGIN CERTIFICATE-----"]]),
        notes: ["stray " + KEY_PEM],
        der: new Uint8Array([1, 2, 3]),
        cyclic,
        nested: { deeper: [{ keypem: "a", ok: "kept" }] },
      }),
    });
    const text = await (await app.request("/config_dump")).text();
    expect(text).not.toContain("PRIVATE KEY");
    expect(text).not.toContain("secret-d");
    const dump = JSON.parse(text);
    expect(dump.certificates[0]).toEqual({
      identity: "spiffe://cluster.local/ns/default/sa/echo",
      certChain: [{ pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", serialNumber: "1" }],
    });
    expect(dump.ca).toEqual({ root: "-----BEGIN CERTIFICATE-----" });
    expect(dump.notes).toEqual(["[redacted]"]);
    expect(dump.der).toBe("[3 bytes]");
    expect(dump.cyclic).toEqual({ name: "loop", self: "[circular]" });
    expect(dump.nested).toEqual({ deeper: [{ ok: "kept" }] });
  });

  test("key-name matcher: broad on purpose, but keeps ordinary fields", () => {
    for (const n of ["key", "Key", "keyPem", "key_pem", "privateKey", "PRIVATE_KEY", "caPrivateKey", "signingKey", "keyDer", "secret-key"]) {
      expect(isKeyMaterialName(n)).toBe(true);
    }
    for (const n of ["certChain", "keys_total", "keyUsage", "monkey", "identity", "rootCerts", "serialNumber"]) {
      expect(isKeyMaterialName(n)).toBe(false);
    }
    expect(scrubKeyMaterial({ a: { toJSON: () => ({ privateKey: "x", b: 1 }) } })).toEqual({ a: { b: 1 } });
  });

  test("config_dump failure is a 500 naming the cause", async () => {
    const { app } = adminWith({
      configDump: () => {
        throw new Error("state not loaded");
      },
    });
    const res = await app.request("/config_dump");
    expect(res.status).toBe(500);
    expect(await res.text()).toContain("state not loaded");
  });

  test("POST /config_dump is 405", async () => {
    const { app } = adminWith();
    const res = await app.request("/config_dump", { method: "POST" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toContain("GET");
  });

  test("POST /quitquitquit answers OK and calls quit once", async () => {
    const { app, quitted, quits } = adminWith();
    const res = await app.request("/quitquitquit", { method: "POST" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("OK\n");
    await quitted;
    expect(quits()).toBe(1);
  });

  test("other methods on /quitquitquit are 405 and do not quit", async () => {
    let quits = 0;
    const { app } = adminWith({ quit: () => quits++ });
    for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
      const res = await app.request("/quitquitquit", { method });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("POST");
    }
    await Bun.sleep(0);
    await Bun.sleep(0);
    expect(quits).toBe(0);
  });

  test("POST /logging shows, sets and validates the level", async () => {
    const { app, logger } = adminWith();
    let res = await app.request("/logging", { method: "POST" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("current log level is info\n");

    res = await app.request("/logging?level=debug", { method: "POST" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("current log level is debug\n");
    expect(logger.level).toBe("debug");

    res = await app.request("/logging?level=verbose", { method: "POST" });
    expect(res.status).toBe(400);
    const body = await res.text();
    expect(body).toContain('invalid level "verbose"');
    expect(body).toContain("debug, info, warn, error");
    expect(logger.level).toBe("debug");

    expect((await app.request("/logging")).status).toBe(405);
  });

  test("a level the logging control refuses is a 400", async () => {
    const { app } = adminWith({
      logging: {
        get: () => "info",
        set: () => {
          throw new Error("locked");
        },
      },
    });
    const res = await app.request("/logging?level=warn", { method: "POST" });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("locked");
  });

  test("without a logging control, /logging does not exist", async () => {
    const app = createAdminApp({ configDump: () => ({}), quit: () => {} });
    expect((await app.request("/logging", { method: "POST" })).status).toBe(404);
    expect(await (await app.request("/")).text()).not.toContain("logging");
  });
});

describe("readiness app", () => {
  test("200 ready when nothing is pending", async () => {
    const app = createReadinessApp({ readiness: () => ({ ready: true, pending: [] }) });
    const res = await app.request("/healthz/ready");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ready\n");
  });

  test("500 naming the pending tasks, sorted, as istio/ztunnel answers", async () => {
    const app = createReadinessApp({ readiness: () => ({ ready: false, pending: ["state manager", "proxy", "dns proxy"] }) });
    const res = await app.request("/healthz/ready");
    expect(res.status).toBe(500);
    expect(await res.text()).toBe("not ready, pending: dns proxy, proxy, state manager\n");
  });

  test("other methods 405, other paths 404", async () => {
    const app = createReadinessApp({ readiness: () => ({ ready: true, pending: [] }) });
    expect((await app.request("/healthz/ready", { method: "POST" })).status).toBe(405);
    expect((await app.request("/healthz/live")).status).toBe(404);
  });
});

describe("metrics app", () => {
  test("/metrics and /stats/prometheus serve the registry with its content type", async () => {
    const metrics = new MeshMetrics({ component: "ztunnel", version: "1.0.0" });
    metrics.connectionOpened({ reporter: "source" }).addBytes(5, 6);
    const app = createMetricsApp({ metrics });
    for (const path of ["/metrics", "/stats/prometheus"]) {
      const res = await app.request(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      const body = await res.text();
      expect(body).toContain('istio_build{component="ztunnel",tag="1.0.0"} 1');
      expect(body).toMatch(/istio_tcp_received_bytes_total\{[^}]*\} 5/);
    }
    const om = await app.request("/metrics", { headers: { accept: "application/openmetrics-text; version=1.0.0" } });
    expect(om.headers.get("content-type")).toStartWith("application/openmetrics-text");
    expect(await om.text()).toEndWith("# EOF\n");
  });

  test("render failure is a 500; other methods 405; other paths 404", async () => {
    const app = createMetricsApp({
      metrics: {
        render: () => Promise.reject(new Error("boom")),
      },
    });
    expect((await app.request("/metrics")).status).toBe(500);
    expect((await app.request("/metrics", { method: "POST" })).status).toBe(405);
    expect((await app.request("/")).status).toBe(404);
  });
});
