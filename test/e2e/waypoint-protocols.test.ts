// What the waypoint carries, end to end through the real chain: client → SOCKS on its ztunnel
// (node-a) → HBONE to the waypoint → HBONE to the app's ztunnel (node-b) → a real app. HTTP/1.1
// with keep-alive, HTTP/1.0, chunked and large bodies (hash-checked); HTTP/2 with prior knowledge
// to an h2c app (concurrent streams, bodies both ways, trailers, a gRPC-shaped call); and
// protocols that are not HTTP — a binary client-first echo and a server-first banner — proxied as
// TCP under L4 policy only, where a rule with HTTP fields fails closed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { localConfig, serviceKey, type ConfigService, type ConfigWorkload } from "../harness/config.ts";
import { startH2App, startHttpApp, type H2App, type HttpApp, type SeenRequest } from "../harness/l7-apps.ts";
import { h1Once, h2Request, json, patternBytes, readBytes, readUntilClosed, sha256, socksH1, socksH2 } from "../harness/l7-client.ts";
import { connectionLines, requestLines } from "../harness/l7-mesh.ts";
import { TestMesh, type ZtunnelProcess, allocSubnet } from "../harness/mesh.ts";
import { parsePrometheus, sampleSum } from "../harness/metrics.ts";
import { serve, socksConnect, until, type TestServer } from "../harness/net.ts";
import { startWaypoint } from "../harness/waypoint.ts";

const CLIENT = "spiffe://cluster.local/ns/default/sa/client";
const MiB = 1024 * 1024;
const BANNER = "220 banner.example ready\r\n";

function servicePolicy(name: string, service: string, action: "ALLOW" | "DENY", rules: string): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: ${service}}]
  action: ${action}
  rules:
${rules}`;
}

const POLICIES = [
  // an L7-only ALLOW cannot match a TCP connection: nothing is allowed
  servicePolicy("http-allow", "tcp-allow-http", "ALLOW", `  - to: [{operation: {methods: ["GET"]}}]\n`),
  // an L7 DENY on TCP keeps its L4 part (here: none), so it denies every connection — fail closed
  servicePolicy("http-deny", "tcp-deny-path", "DENY", `  - to: [{operation: {paths: ["/admin"]}}]\n`),
  // an L4 rule works as usual
  servicePolicy("principal-allow", "tcp-allow-principal", "ALLOW", `  - from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]\n`),
].join("---\n");

describe("waypoint protocols: HTTP/1.x, HTTP/2, TCP (multi-process)", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  const ip = (n: number) => `${subnet}${n}`;
  const vip = { web: ip(100), grpc: ip(101), echo: ip(102), banner: ip(103), "tcp-allow-http": ip(104), "tcp-deny-path": ip(105), "tcp-allow-principal": ip(106) };
  const host = (svc: string) => `${svc}.default.svc.cluster.local`;
  let mesh: TestMesh;
  let waypoint: ZtunnelProcess;
  let web: HttpApp;
  let h2app: H2App;
  let echo: TestServer;
  let banner: TestServer;
  const downloads = new Map<number, Buffer>();
  const download = (size: number): Buffer => {
    let b = downloads.get(size);
    if (!b) downloads.set(size, (b = patternBytes(size, `download-${size}`)));
    return b;
  };

  beforeAll(async () => {
    const tcpServices = ["echo", "tcp-allow-http", "tcp-deny-path", "tcp-allow-principal"] as const;
    const workloads: ConfigWorkload[] = [
      { name: "client", ip: clientIp, node: "node-a" },
      { name: "waypoint", ip: ip(10), node: "node-w", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
      { name: "web", ip: ip(20), node: "node-b", services: { [serviceKey("web")]: { 80: 8080 } } },
      { name: "h2app", ip: ip(21), node: "node-b", services: { [serviceKey("grpc")]: { 80: 8080 } } },
      { name: "echo", ip: ip(22), node: "node-b", services: Object.fromEntries(tcpServices.map((s) => [serviceKey(s), { 9000: 9000 }])) },
      { name: "banner", ip: ip(23), node: "node-b", services: { [serviceKey("banner")]: { 9001: 9001 } } },
    ];
    const services: ConfigService[] = [
      { name: "web", vip: vip.web, ports: { 80: 8080 }, waypoint: "waypoint" },
      { name: "grpc", vip: vip.grpc, ports: { 80: 8080 }, waypoint: "waypoint" },
      ...tcpServices.map((s) => ({ name: s, vip: vip[s], ports: { 9000: 9000 }, waypoint: "waypoint" })),
      { name: "banner", vip: vip.banner, ports: { 9001: 9001 }, waypoint: "waypoint" },
      { name: "waypoint", vip: ip(120), ports: { 15008: 15008 } },
    ];
    web = await startHttpApp("web", ip(20), 8080, (seen, _body, res) => {
      const url = new URL(seen.url, "http://x");
      if (url.pathname === "/download") {
        const data = download(Number(url.searchParams.get("size")));
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(data.length) });
        // in pieces, so the waypoint sees a stream rather than one write
        for (let off = 0; off < data.length; off += 256 * 1024) res.write(data.subarray(off, off + 256 * 1024));
        res.end();
        return true;
      }
      if (url.pathname === "/cut") {
        // a declared 64 KiB body, 16 KiB of it, then the connection dies
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(64 * 1024) });
        res.write(download(16 * 1024));
        setTimeout(() => res.socket?.destroy(), 50);
        return true;
      }
      if (url.pathname === "/chunked-response") {
        res.writeHead(200, { "content-type": "text/plain" }); // no length: chunked on the wire
        res.write("part1-");
        res.write("part2-");
        res.end("part3");
        return true;
      }
      return undefined;
    });
    h2app = await startH2App(ip(21), 8080, (stream, seen, body) => {
      const url = new URL(seen.path, "http://x");
      if (url.pathname === "/echo" || seen.headers["content-type"] === "application/grpc") {
        stream.respond({ ":status": 200, "content-type": String(seen.headers["content-type"] ?? "application/octet-stream") }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": "ok", "x-body-sha256": sha256(body) }));
        stream.end(body);
        return;
      }
      if (url.pathname === "/download") {
        stream.respond({ ":status": 200, "content-type": "application/octet-stream" });
        stream.end(download(Number(url.searchParams.get("size"))));
        return;
      }
      if (url.pathname === "/cut") {
        // half a response, then RST_STREAM INTERNAL_ERROR alone (how an app that fails mid-body
        // looks on the wire; Bun's close(code) would send END_STREAM first)
        stream.respond({ ":status": 200, "content-type": "application/octet-stream" });
        stream.write(download(64 * 1024));
        setTimeout(() => {
          (stream as unknown as { rstCode: number }).rstCode = 2;
          stream.destroy(new Error("the app fails mid-body"));
        }, 50);
        return;
      }
      const reply = JSON.stringify({ path: seen.path, authority: seen.authority, method: seen.method, bodyBytes: seen.bodyBytes });
      stream.respond({ ":status": 200, "content-type": "application/json" });
      stream.end(reply);
    });
    echo = await serve(ip(22), 9000, (s) => s.pipe(s));
    banner = await serve(ip(23), 9001, (s) => {
      s.write(BANNER);
      s.pipe(s);
    });
    mesh = await TestMesh.start({ config: localConfig({ workloads, services }), nodes: ["node-a", "node-b"] });
    waypoint = await startWaypoint(mesh, { policies: POLICIES });
  }, 60_000);

  afterAll(async () => {
    await waypoint?.stop();
    await mesh?.stop();
    await Promise.all([web?.close(), h2app?.close(), echo?.close(), banner?.close()]);
  });

  // ---------------------------------------------------------------- HTTP/1.x

  test("HTTP/1.1 keep-alive: several requests, with and without bodies, on one client connection", async () => {
    const c = await socksH1(clientIp, vip.web);
    try {
      for (let i = 0; i < 5; i++) {
        const body = i % 2 === 1 ? `body-${i}` : undefined;
        const r = await c.request({ method: body ? "POST" : "GET", path: `/ka/${i}`, host: host("web"), ...(body ? { body } : {}) });
        expect(r.status).toBe(200);
        expect(r.version).toBe("1.1");
        const s = json<SeenRequest>(r);
        expect(s.url).toBe(`/ka/${i}`);
        expect(s.bodyBytes).toBe(body ? body.length : 0);
        if (body) expect(s.bodySha256).toBe(sha256(body));
      }
      expect(c.closed).toBe(false);
    } finally {
      c.close();
    }
    await until(() => requestLines(waypoint).filter((l) => String(l.path).startsWith("/ka/")).length === 5, 5000, "five access lines");
    const lines = requestLines(waypoint).filter((l) => String(l.path).startsWith("/ka/"));
    expect(new Set(lines.map((l) => l.downstream_remote_address)).size).toBe(1);
    expect(lines.every((l) => l.protocol === "HTTP/1.1")).toBe(true);
  });

  test("HTTP/1.0: answered without chunked framing, then the connection closes; the app is spoken to in HTTP/1.1", async () => {
    const c = await socksH1(clientIp, vip.web);
    try {
      const r = await c.request({ path: "/v10", version: "1.0", host: host("web") });
      expect(r.status).toBe(200);
      const s = json<SeenRequest>(r);
      expect(s.url).toBe("/v10");
      expect(s.httpVersion).toBe("1.1");
      expect(await c.waitClosed(5000)).toBe(true);
    } finally {
      c.close();
    }
    // The app answers chunked; an HTTP/1.0 client cannot read chunks.
    const c2 = await socksH1(clientIp, vip.web);
    try {
      const r = await c2.request({ path: "/chunked-response", version: "1.0", host: host("web") });
      expect(r.status).toBe(200);
      expect((r.headers["transfer-encoding"] ?? []).join()).not.toContain("chunked");
      expect(r.body.toString()).toBe("part1-part2-part3");
    } finally {
      c2.close();
    }
    // HTTP/1.0 with no Host header at all is still served (the tunnel names the destination).
    const noHost = await h1Once(clientIp, vip.web, { path: "/nohost", version: "1.0", host: null });
    expect(noHost.status).toBe(200);
    await until(() => requestLines(waypoint).some((l) => l.path === "/v10"), 5000, "the access line");
    expect(requestLines(waypoint).find((l) => l.path === "/v10")!.protocol).toBe("HTTP/1.0");
  });

  test("chunked request body: many chunks of odd sizes arrive whole", async () => {
    const chunks = Array.from({ length: 64 }, (_, i) => randomBytes(1 + ((i * 7919) % 5000)));
    const all = Buffer.concat(chunks);
    const c = await socksH1(clientIp, vip.web);
    try {
      const r = await c.request({ method: "POST", path: "/upload-chunked", host: host("web"), chunks });
      expect(r.status).toBe(200);
      const s = json<SeenRequest>(r);
      expect(s.bodyBytes).toBe(all.length);
      expect(s.bodySha256).toBe(sha256(all));
      // and the connection is still good for the next request
      expect((await c.request({ path: "/after-chunked", host: host("web") })).status).toBe(200);
    } finally {
      c.close();
    }
  });

  test("large HTTP/1.1 bodies: 8 MiB up and 8 MiB down, hash-checked", async () => {
    const up = patternBytes(8 * MiB, "upload");
    const c = await socksH1(clientIp, vip.web);
    try {
      const r = await c.request({ method: "POST", path: "/upload", host: host("web"), body: up, headers: { "content-type": "application/octet-stream" } });
      expect(r.status).toBe(200);
      const s = json<SeenRequest>(r);
      expect(s.bodyBytes).toBe(up.length);
      expect(s.bodySha256).toBe(sha256(up));
      const d = await c.request({ path: `/download?size=${8 * MiB}`, host: host("web") });
      expect(d.status).toBe(200);
      expect(d.body.length).toBe(8 * MiB);
      expect(sha256(d.body)).toBe(sha256(download(8 * MiB)));
    } finally {
      c.close();
    }
  }, 60_000);

  // ---------------------------------------------------------------- HTTP/2

  test("HTTP/2 prior knowledge: concurrent streams on one client connection reach the h2c app", async () => {
    const session = await socksH2(clientIp, vip.grpc);
    try {
      const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => h2Request(session, { ":path": `/s/${i}`, ":authority": host("grpc") })));
      rs.forEach((r, i) => {
        expect(r.status).toBe(200);
        const body = JSON.parse(r.body.toString()) as { path: string; authority: string; method: string };
        expect(body.path).toBe(`/s/${i}`);
        expect(body.authority).toBe(host("grpc"));
        expect(body.method).toBe("GET");
      });
    } finally {
      session.close();
    }
    await until(() => requestLines(waypoint).filter((l) => String(l.path).startsWith("/s/")).length === 12, 5000, "twelve access lines");
    expect(requestLines(waypoint).filter((l) => String(l.path).startsWith("/s/")).every((l) => l.protocol === "HTTP/2")).toBe(true);
    // multiplexed upstream too: far fewer app connections than streams
    expect(h2app.connections).toBeLessThanOrEqual(3);
  });

  test("HTTP/2 bodies both ways, 1 MiB each, hash-checked", async () => {
    const session = await socksH2(clientIp, vip.grpc);
    try {
      const up = patternBytes(MiB, "h2-upload");
      const r = await h2Request(session, { ":method": "POST", ":path": "/echo", ":authority": host("grpc") }, up);
      expect(r.status).toBe(200);
      expect(h2app.requests.find((q) => q.path === "/echo" && q.bodyBytes === MiB)?.bodySha256).toBe(sha256(up));
      expect(r.body.length).toBe(MiB);
      expect(sha256(r.body)).toBe(sha256(up));

      const d = await h2Request(session, { ":path": `/download?size=${MiB}`, ":authority": host("grpc") });
      expect(d.status).toBe(200);
      expect(d.body.length).toBe(MiB);
      expect(sha256(d.body)).toBe(sha256(download(MiB)));
    } finally {
      session.close();
    }
  }, 30_000);

  test("an HTTP/1.1 response the app cuts off mid-body reaches the client cut off, never as a complete one", async () => {
    const sock = await socksConnect({ host: clientIp }, vip.web, 80);
    const got = readUntilClosed(sock, 15_000);
    sock.write(`GET /cut HTTP/1.1\r\nHost: ${host("web")}\r\n\r\n`);
    const { data } = await got;
    sock.destroy();
    const headEnd = data.indexOf("\r\n\r\n");
    expect(headEnd).toBeGreaterThan(0);
    const head = data.subarray(0, headEnd).toString("latin1").toLowerCase();
    const body = data.subarray(headEnd + 4);
    expect(head.startsWith("http/1.1 200")).toBe(true);
    const length = /\r\ncontent-length: *(\d+)/.exec(head);
    if (length) expect(body.length).toBeLessThan(Number(length[1]));
    else {
      // chunked: the terminating chunk must not come
      expect(head).toContain("transfer-encoding: chunked");
      expect(body.toString("latin1").endsWith("0\r\n\r\n")).toBe(false);
    }
    await until(() => requestLines(waypoint).some((l) => l.path === "/cut" && l.protocol === "HTTP/1.1"), 5000, "the access line of /cut");
    expect(String(requestLines(waypoint).find((l) => l.path === "/cut" && l.protocol === "HTTP/1.1")?.response_flags)).toContain("UPE");
  });

  test("an HTTP/2 response the app resets mid-body reaches the client as a reset stream, never as a complete one", async () => {
    const session = await socksH2(clientIp, vip.grpc);
    try {
      const stream = session.request({ ":path": "/cut", ":authority": host("grpc") });
      let status = 0;
      let bytes = 0;
      let ended = false;
      stream.on("response", (h) => (status = Number(h[":status"])));
      stream.on("data", (c: Buffer) => (bytes += c.length));
      stream.on("end", () => (ended = true));
      stream.on("error", () => {});
      await new Promise<void>((r) => stream.once("close", () => r()));
      expect(status).toBe(200);
      expect(bytes).toBeLessThanOrEqual(64 * 1024);
      expect(ended).toBe(false);
      expect(stream.rstCode).not.toBe(0);
    } finally {
      session.close();
    }
    await until(() => requestLines(waypoint).some((l) => l.path === "/cut" && l.protocol === "HTTP/2"), 5000, "the access line of /cut");
    expect(String(requestLines(waypoint).find((l) => l.path === "/cut" && l.protocol === "HTTP/2")?.response_flags)).toContain("UPE");
  });

  test("HTTP/2 trailers: response trailers (grpc-status) and request trailers are delivered", async () => {
    const session = await socksH2(clientIp, vip.grpc);
    try {
      const r = await h2Request(session, { ":method": "POST", ":path": "/echo?trailers", ":authority": host("grpc") }, "small body", { "x-request-trailer": "sent" });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe("small body");
      const seen = h2app.requests.find((q) => q.path === "/echo?trailers")!;
      expect(seen.trailers?.["x-request-trailer"]).toBe("sent");
      expect(r.trailers?.["grpc-status"]).toBe("0");
      expect(r.trailers?.["grpc-message"]).toBe("ok");
      expect(r.trailers?.["x-body-sha256"]).toBe(sha256("small body"));
    } finally {
      session.close();
    }
  });

  test("a gRPC-shaped call (application/grpc, length-prefixed message) gets its grpc-status trailer", async () => {
    const session = await socksH2(clientIp, vip.grpc);
    try {
      const msg = Buffer.from("hello grpc");
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
      const r = await h2Request(session, { ":method": "POST", ":path": "/test.Echo/Call", ":authority": host("grpc"), "content-type": "application/grpc", te: "trailers" }, frame);
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe("application/grpc");
      expect(r.body.equals(frame)).toBe(true);
      expect(r.trailers?.["grpc-status"]).toBe("0");
    } finally {
      session.close();
    }
  });

  // ---------------------------------------------------------------- TCP

  test("a binary client-first protocol passes through the waypoint as TCP, bytes intact both ways", async () => {
    const data = Buffer.concat([Buffer.from([0x00, 0xff, 0x16, 0x03]), randomBytes(256 * 1024)]);
    const s = await socksConnect({ host: clientIp }, vip.echo, 9000);
    const got = readUntilClosed(s, 15_000);
    s.end(data);
    const out = await got;
    expect(out.how).not.toBe("timeout");
    expect(out.data.length).toBe(data.length);
    expect(out.data.equals(data)).toBe(true);
    await until(() => connectionLines(waypoint).some((l) => l["dst.service"] === host("echo") && l.msg === "connection complete"), 5000, "the waypoint's connection line");
    const line = connectionLines(waypoint).find((l) => l["dst.service"] === host("echo"))!;
    expect(line["src.identity"]).toBe(CLIENT);
    expect(line.bytes_recv).toBe(data.length);
    expect(line.bytes_sent).toBe(data.length);
  }, 30_000);

  test("a server-first protocol: the waypoint waits for the client, then proxies as TCP and the banner arrives", async () => {
    const s = await socksConnect({ host: clientIp }, vip.banner, 9001);
    try {
      const hello = await readBytes(s, BANNER.length, 10_000);
      expect(hello.toString()).toBe(BANNER);
      s.write("PING\r\n");
      const pong = await readBytes(s, 6, 5000);
      expect(pong.toString()).toBe("PING\r\n");
    } finally {
      s.destroy();
    }
    await until(() => connectionLines(waypoint).some((l) => l["dst.service"] === host("banner")), 5000, "the waypoint's connection line");
  }, 20_000);

  test("TCP through the waypoint gets L4 policy only: an L4 ALLOW works; an ALLOW or DENY with HTTP fields fails closed", async () => {
    const roundTrip = async (svc: keyof typeof vip) => {
      const s = await socksConnect({ host: clientIp }, vip[svc], 9000);
      const got = readUntilClosed(s, 10_000);
      s.end(Buffer.from([0x00, 0x01, 0x02, 0x03, 0xfe]));
      return got;
    };
    const ok = await roundTrip("tcp-allow-principal");
    expect(ok.data.equals(Buffer.from([0x00, 0x01, 0x02, 0x03, 0xfe]))).toBe(true);

    const before = echo.connections;
    for (const svc of ["tcp-allow-http", "tcp-deny-path"] as const) {
      const denied = await roundTrip(svc);
      expect(denied.how).not.toBe("timeout");
      expect(denied.data.length).toBe(0);
    }
    // the denied connections never reached the app
    expect(echo.connections).toBe(before);
    await until(
      () => connectionLines(waypoint).filter((l) => l.response_flags === "DENY" && [host("tcp-allow-http"), host("tcp-deny-path")].includes(String(l["dst.service"]))).length === 2,
      5000,
      "two denied connection lines",
    );
  });

  test("metrics: HTTP/1.1, HTTP/2, gRPC and TCP traffic in the waypoint's Istio metrics", async () => {
    const all = parsePrometheus(await waypoint.metricsText());
    const base = { reporter: "waypoint", source_principal: CLIENT, response_flags: "-", connection_security_policy: "mutual_tls" };
    expect(sampleSum(all, "istio_requests_total", { ...base, response_code: "200", request_protocol: "http", destination_service: host("web") })).toBeGreaterThanOrEqual(10);
    expect(sampleSum(all, "istio_requests_total", { ...base, response_code: "200", request_protocol: "http", destination_service: host("grpc") })).toBeGreaterThanOrEqual(13);
    expect(sampleSum(all, "istio_requests_total", { ...base, response_code: "200", request_protocol: "grpc", destination_service: host("grpc") })).toBe(1);
    // large bodies are counted in the size distributions
    expect(sampleSum(all, "istio_request_bytes_sum", { reporter: "waypoint", destination_service: host("web") })).toBeGreaterThanOrEqual(8 * MiB);
    expect(sampleSum(all, "istio_response_bytes_sum", { reporter: "waypoint", destination_service: host("web") })).toBeGreaterThanOrEqual(8 * MiB);
    // the proxied TCP connections
    expect(sampleSum(all, "istio_tcp_connections_opened_total", { reporter: "waypoint", destination_service: host("echo") })).toBeGreaterThanOrEqual(1);
    // no HTTP request was made up for the TCP traffic
    expect(sampleSum(all, "istio_requests_total", { reporter: "waypoint", destination_service: host("echo") })).toBe(0);
    // every byte the client sent, including those read to detect the protocol
    expect(sampleSum(all, "istio_tcp_received_bytes_total", { reporter: "waypoint", destination_service: host("echo") })).toBeGreaterThanOrEqual(256 * 1024 + 4);
  });
});
