// Wasm plugins in a real waypoint: the three AssemblyScript examples (compiled with the npm SDK and
// compiler) and misbehaving test plugins, configured in the mesh config's `plugins` section, on the
// chain client → SOCKS/ztunnel → waypoint → ztunnel → app. Covers each example end to end, plugin
// metrics on /metrics, a sha256 mismatch, each fail strategy with a trapping plugin, a looping
// plugin that must not stall other traffic, and a hot reload under load with nothing dropped.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http from "node:http";
import http2 from "node:http2";
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildExamples, loadTestdataPlugin } from "../../plugins/build/index.ts";
import { grpcAskPlugin, grpcStreamPlugin } from "../../wasm/testdata/plugins.ts";
import { pluginModule } from "../../wasm/testdata/wat.ts";
import { TestMesh, ZtunnelProcess, allocSubnet, httpOver, localConfig, serviceKey, socksConnect, startWaypoint, until } from "../harness/index.ts";



describe("Wasm plugins in the waypoint", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  const vip = (n: number) => `${subnet}${100 + n}`;
  const SERVICES = ["web", "guarded", "authed", "badsum", "trapclose", "trapopen", "trapreload", "looping", "hog", "swap", "upper", "inline", "steer", "props", "grpcguarded", "grpcstream"] as const;
  // The route of `steer` matches a header its plugin adds: routing happens after the request's plugins.
  const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: steer, namespace: default}
spec:
  parentRefs:
  - {group: "", kind: Service, name: steer, port: 80}
  rules:
  - matches: [{headers: [{name: x-steer, value: canary}]}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-wasm-filter, value: steered-by-plugin-header}]}
    backendRefs: [{name: steer, port: 80}]
`;
  let mesh: TestMesh;
  let waypoint: ZtunnelProcess;
  let app: http.Server;
  let authz: http.Server;
  let grpcAuthz: http2.Http2Server;
  const seen: { path: string; headers: http.IncomingHttpHeaders }[] = [];
  let dir: string;
  let configText: (addValue: string, denyBody?: string) => string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "mesh-plugins-"));
    const built = await buildExamples(dir);
    const byName = Object.fromEntries(built.map((b) => [b.example.name, b]));
    const trap = await loadTestdataPlugin("trap");
    const loop = await loadTestdataPlugin("loop");
    const hog = await loadTestdataPlugin("memory-hog");
    const upper = await loadTestdataPlugin("body-buffer");
    writeFileSync(join(dir, "upper.wasm"), upper.wasm);
    writeFileSync(join(dir, "hog.wasm"), hog.wasm);
    // swap.wasm starts as the trapping module; a test replaces the file with add-header.
    writeFileSync(join(dir, "swap.wasm"), trap.wasm);
    writeFileSync(join(dir, "trap.wasm"), trap.wasm);
    writeFileSync(join(dir, "loop.wasm"), loop.wasm);
    // Logs, at on_log, what Envoy knows only at the end: the endpoint that answered and the cluster.
    writeFileSync(
      join(dir, "props.wasm"),
      await pluginModule(`
(func $prop (param i32 i32)
  (if (i32.eqz (call $proxy_get_property (local.get 0) (local.get 1) (i32.const 256) (i32.const 260)))
    (then (drop (call $proxy_log (i32.const 2) (i32.load (i32.const 256)) (i32.load (i32.const 260)))))))
(func (export "proxy_on_log") (param i32)
  (call $prop {{"upstream\\00address"}})
  (call $prop {{"upstream\\00uri_san_peer_certificate"}})
  (call $prop {{"xds\\00cluster_name"}})
  (call $prop {{"response\\00code_details"}}))`),
    );
    writeFileSync(join(dir, "grpc-ask.wasm"), await pluginModule(grpcAskPlugin("grpcauthz.default.svc.cluster.local:80", "x-wasm-filter")));
    writeFileSync(join(dir, "grpc-stream.wasm"), await pluginModule(grpcStreamPlugin("grpcauthz.default.svc.cluster.local:80", "x-wasm-filter")));
    app = http.createServer((req, res) => {
      seen.push({ path: String(req.url), headers: req.headers });
      let received = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (received += c));
      req.on("end", () => {
        const body = JSON.stringify({ path: req.url, authUser: req.headers["x-auth-user"] ?? null, filter: req.headers["x-wasm-filter"] ?? null, received });
        res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
        res.end(body);
      });
    });
    authz = http.createServer((req, res) => {
      const ok = req.headers["authorization"] === "Bearer good";
      res.writeHead(ok ? 200 : 401, ok ? { "x-auth-user": "alice", "content-length": "0" } : { "content-length": "0" });
      res.end();
    });
    await new Promise<void>((r) => app.listen(8080, `${subnet}2`, r));
    await new Promise<void>((r) => authz.listen(8080, `${subnet}3`, r));
    // a unary gRPC service over h2c: "please" is granted (with a message), anything else is PERMISSION_DENIED
    grpcAuthz = http2.createServer();
    grpcAuthz.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      if (headers[":path"] === "/mesh.test.Chat/Echo") {
        // bidirectional: each message back in upper case as it arrives, the status at the client's end
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        let pending = Buffer.alloc(0);
        stream.on("data", (c: Buffer) => {
          pending = Buffer.concat([pending, c]);
          while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
            const len = pending.readUInt32BE(1);
            const msg = Buffer.from(pending.subarray(5, 5 + len).toString().toUpperCase());
            pending = pending.subarray(5 + len);
            const frame = Buffer.alloc(5 + msg.length);
            frame.writeUInt32BE(msg.length, 1);
            msg.copy(frame, 5);
            stream.write(frame);
          }
        });
        stream.on("end", () => stream.end());
        return;
      }
      stream.on("end", () => {
        const body = Buffer.concat(chunks);
        const ok = headers[":path"] === "/mesh.test.Authz/Check" && headers["content-type"] === "application/grpc" && body.subarray(5).toString() === "please";
        if (!ok) {
          // trailers-only: the status in the only header block
          stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "7", "grpc-message": "not you" }, { endStream: true });
          return;
        }
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        const msg = Buffer.from("granted-by-grpc");
        const frame = Buffer.alloc(5 + msg.length);
        frame.writeUInt32BE(msg.length, 1);
        msg.copy(frame, 5);
        stream.end(frame);
      });
    });
    await new Promise<void>((r) => grpcAuthz.listen(9000, `${subnet}4`, r));
    const plugin = (name: string, service: string, extra: string) => `- name: ${name}
  namespace: default
  targetRefs: [{kind: Service, group: "", name: ${service}}]
${extra}`;
    configText = (addValue: string, denyBody = "denied by plugin") =>
      localConfig({
        workloads: [
          { name: "client", ip: clientIp, node: "node-a" },
          { name: "app", ip: `${subnet}2`, node: "node-b", services: Object.fromEntries(SERVICES.map((s) => [serviceKey(s), { 80: 8080 }])) },
          { name: "authz", ip: `${subnet}3`, node: "node-b", services: { [serviceKey("authz")]: { 80: 8080 } } },
          { name: "grpcauthz", ip: `${subnet}4`, node: "node-b", services: { [serviceKey("grpcauthz")]: { 80: 9000 } } },
          { name: "waypoint", ip: `${subnet}10`, node: "node-w", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
        ],
        services: [
          ...SERVICES.map((s, i) => ({ name: s, vip: vip(i), ports: { 80: 8080 }, waypoint: "waypoint" })),
          { name: "authz", vip: `${subnet}99`, ports: { 80: 8080 } },
          { name: "grpcauthz", vip: `${subnet}97`, ports: { 80: 9000 } },
          { name: "waypoint", vip: `${subnet}98`, ports: { 15008: 15008 } },
        ],
        extra: `plugins:
${plugin("add-header", "web", `  url: ${byName["add-header"]!.outFile}
  pluginName: add-header
  pluginConfig: {header: x-hello, value: "${addValue}"}
`)}${plugin("deny-by-header", "guarded", `  url: ${byName["deny-by-header"]!.outFile}
  pluginName: deny-by-header
  phase: AUTHZ
  pluginConfig: {header: x-deny, status: 403, body: "${denyBody}"}
`)}${plugin("http-callout", "authed", `  url: ${byName["http-callout"]!.outFile}
  pluginName: http-callout
  phase: AUTHN
  pluginConfig: {upstream: "authz.default.svc.cluster.local:80", path: /check}
`)}${plugin("badsum", "badsum", `  url: ${byName["add-header"]!.outFile}
  pluginName: add-header
  sha256: "${"0".repeat(64)}"
`)}${plugin("trap-close", "trapclose", `  url: ${join(dir, "trap.wasm")}
`)}${plugin("trap-open", "trapopen", `  url: ${join(dir, "trap.wasm")}
  failStrategy: FAIL_OPEN
`)}${plugin("trap-reload", "trapreload", `  url: ${join(dir, "trap.wasm")}
  failStrategy: FAIL_RELOAD
`)}${plugin("loop", "looping", `  url: ${join(dir, "loop.wasm")}
  limits: {callbackBudgetMs: 300}
`)}${plugin("hog", "hog", `  url: ${join(dir, "hog.wasm")}
  limits: {maxMemoryPages: 32}
`)}${plugin("swap", "swap", `  url: ${join(dir, "swap.wasm")}
`)}${plugin("upper", "upper", `  url: ${join(dir, "upper.wasm")}
`)}${plugin("steer", "steer", `  url: ${byName["add-header"]!.outFile}
  pluginName: add-header
  pluginConfig: {request_header: x-steer, request_value: canary}
`)}${plugin("props", "props", `  url: ${join(dir, "props.wasm")}
`)}${plugin("grpc-ask", "grpcguarded", `  url: ${join(dir, "grpc-ask.wasm")}
  phase: AUTHZ
`)}${plugin("grpc-stream", "grpcstream", `  url: ${join(dir, "grpc-stream.wasm")}
`)}${plugin("inline", "inline", `  url: ${byName["add-header"]!.outFile}
  pluginName: add-header
  pluginConfig: {header: x-inline, value: "yes"}
  limits: {isolation: inline}
`)}`,
      });
    mesh = await TestMesh.start({ config: configText("world"), nodes: ["node-a", "node-b"] });
    waypoint = await startWaypoint(mesh, { routes: ROUTES });
  }, 180_000);

  afterAll(async () => {
    await waypoint?.stop();
    await mesh?.stop();
    app?.close();
    authz?.close();
    grpcAuthz?.close();
  });

  const call = async (svc: (typeof SERVICES)[number], path: string, headers: Record<string, string> = {}, body?: string) =>
    httpOver(await socksConnect({ host: clientIp }, vip(SERVICES.indexOf(svc)), 80), path, `${svc}.default.svc.cluster.local`, headers, body);

  test("add-header: the response carries the configured header and the app got the request header", async () => {
    const r = await call("web", "/a");
    expect(r.status).toBe(200);
    expect(r.headers["x-hello"]).toBe("world");
    expect(JSON.parse(r.body).filter).toBe("add-header");
  });

  test("a request header a plugin adds steers routing (routes are matched after the request's plugins, as Envoy clears its route cache on an edit)", async () => {
    const r = await call("steer", "/s");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).filter).toBe("steered-by-plugin-header");
    // without the plugin's header the rule would not match: the web service's app sees the plugin's own header
    expect(JSON.parse((await call("web", "/s")).body).filter).toBe("add-header");
  });

  test("at on_log a plugin reads the endpoint that answered, its verified identity and Istio's cluster name", async () => {
    expect((await call("props", "/p")).status).toBe(200);
    const logged = () => waypoint.records.filter((r) => r.msg === "plugin log" && String(r.plugin).includes("props")).map((r) => String(r.message));
    await until(() => logged().length >= 4, 5_000, "the plugin's on_log lines");
    const [address, identity, cluster, details] = logged();
    expect(address).toBe(`${subnet}2:8080`);
    expect(identity).toMatch(/^spiffe:\/\/cluster\.local\/ns\/default\/sa\//);
    expect(cluster).toBe("inbound-vip|80|http|props.default.svc.cluster.local");
    expect(details).toBe("via_upstream");
  });

  test("a gRPC callout (proxy_grpc_call) to a mesh service over HTTP/2: its answer lets the request through, its status denies", async () => {
    const ok = await call("grpcguarded", "/g", { "x-ask": "please" });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).filter).toBe("granted-by-grpc");
    const no = await call("grpcguarded", "/g-denied", { "x-ask": "gimme" });
    expect(no.status).toBe(403); // PERMISSION_DENIED reached the plugin (a failed call would be 503)
    expect(no.body).toBe("denied by the gRPC service");
    expect(seen.some((x) => x.path === "/g-denied")).toBe(false);
  });

  test("a gRPC stream (proxy_grpc_stream) to a mesh service over HTTP/2: messages both ways as they go, then the status", async () => {
    const r = await call("grpcstream", "/s");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).filter).toBe("HITHERE");
  });

  test("deny-by-header: a local 403 with the configured body, the app never sees it, and the plugin's counter shows on /metrics", async () => {
    const denied = await call("guarded", "/blocked-by-plugin", { "x-deny": "1" });
    expect(denied.status).toBe(403);
    expect(denied.body).toBe("denied by plugin");
    expect(seen.some((s) => s.path === "/blocked-by-plugin")).toBe(false);
    expect((await call("guarded", "/fine")).status).toBe(200);
    const text = await waypoint.metricsText();
    expect(text).toMatch(/deny_by_header_denied_total\S*\s+1/);
  });

  test("http-callout: the plugin asks the authz service; allowed requests carry its answer, others get 403", async () => {
    const ok = await call("authed", "/profile", { authorization: "Bearer good", "x-auth-user": "mallory" });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).authUser).toBe("alice");
    const no = await call("authed", "/profile-denied", { authorization: "Bearer bad" });
    expect(no.status).toBe(403);
    expect(seen.some((s) => s.path === "/profile-denied")).toBe(false);
  });

  test("a module whose sha256 does not match is refused: FAIL_CLOSE answers 503 and the app sees nothing", async () => {
    const r = await call("badsum", "/never");
    expect(r.status).toBe(503);
    expect(seen.some((s) => s.path === "/never")).toBe(false);
    expect(waypoint.records.some((x) => x.msg === "plugin refused" && String(x.error).includes("sha256"))).toBe(true);
  });

  test("a trapping plugin: FAIL_CLOSE 503, FAIL_OPEN passes the request on, FAIL_RELOAD 503 and a fresh VM next time", async () => {
    expect((await call("trapclose", "/t1")).status).toBe(503);
    expect((await call("trapclose", "/t2")).status).toBe(503);
    const open = await call("trapopen", "/t-open");
    expect(open.status).toBe(200);
    expect(seen.some((s) => s.path === "/t-open")).toBe(true);
    expect((await call("trapreload", "/t-r1")).status).toBe(503);
    expect((await call("trapreload", "/t-r2")).status).toBe(503);
    // other services keep working throughout
    expect((await call("web", "/still-fine")).status).toBe(200);
  });

  test("a looping plugin is stopped at its time budget, then moved to its own worker: from then on it stalls nothing else", async () => {
    const runsIn = async (): Promise<string | undefined> =>
      ((await waypoint.configDump()).plugins as { plugin: string; runsIn?: string }[]).find((p) => p.plugin === "default/loop")?.runsIn;
    // isolation "auto" (the default): the first loop runs on the waypoint's thread, at most its budget
    expect(await runsIn()).toBe("inline");
    const first = await call("looping", "/spin");
    expect(first.status).toBe(503);
    await until(async () => (await runsIn()) === "worker", 10_000, "the looping plugin moved to a worker");
    // now it loops in its worker while the waypoint serves everything else
    const done: string[] = [];
    const looping = call("looping", "/spin2").then((r) => (done.push("looping"), r));
    await Bun.sleep(20);
    const others = await Promise.all([call("web", "/o1"), call("web", "/o2"), call("guarded", "/o3")].map((p) => p.then((r) => (done.push("other"), r))));
    for (const o of others) expect(o.status).toBe(200);
    expect((await looping).status).toBe(503);
    expect(done).toEqual(["other", "other", "other", "looping"]);
    expect((await call("web", "/after-loop")).status).toBe(200);
  });

  test("a trusted plugin can run inline (on the waypoint's thread)", async () => {
    const r = await call("inline", "/inline");
    expect(r.status).toBe(200);
    expect(r.headers["x-inline"]).toBe("yes");
  });

  test("a plugin that buffers the request body and rewrites it: the app gets the rewritten body", async () => {
    const text = "hello wasm body ".repeat(2000);
    const r = await call("upper", "/upper", {}, text);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).received).toBe(text.toUpperCase());
  });

  test("a memory-hungry plugin hits its page limit: its fail strategy answers, the waypoint lives on", async () => {
    expect((await call("hog", "/grow")).status).toBe(503);
    expect((await call("hog", "/grow-again")).status).toBe(503);
    expect((await call("web", "/after-hog")).status).toBe(200);
    expect(waypoint.proc.exitCode).toBeNull();
  });

  test("replacing a plugin's module file reloads it: the next requests use the new module", async () => {
    expect((await call("swap", "/before-swap")).status).toBe(503);
    const before = waypoint.records.filter((r) => r.msg === "plugin reloaded").length;
    const tmp = join(dir, "swap.wasm.tmp");
    writeFileSync(tmp, readFileSync(join(dir, "add-header.wasm")));
    renameSync(tmp, join(dir, "swap.wasm"));
    await until(() => waypoint.records.filter((r) => r.msg === "plugin reloaded").length > before, 15_000, "the module reload");
    const r = await call("swap", "/after-swap");
    expect(r.status).toBe(200);
    expect(r.headers["x-hello"]).toBeDefined();
  });

  test("changing a plugin's config reloads it under load without dropping a request", async () => {
    const before = waypoint.records.filter((r) => r.msg === "plugin reloaded").length;
    let running = true;
    const statuses: number[] = [];
    const values = new Set<string>();
    const load = (async () => {
      while (running) {
        const r = await call("web", "/load");
        statuses.push(r.status);
        values.add(String(r.headers["x-hello"]));
      }
    })();
    await until(() => statuses.length >= 5, 10_000, "load running");
    const tmp = `${mesh.configPath}.tmp`;
    writeFileSync(tmp, configText("reloaded"));
    renameSync(tmp, mesh.configPath);
    await until(() => waypoint.records.filter((r) => r.msg === "plugin reloaded").length > before, 15_000, "the plugin reload");
    await until(() => values.has("reloaded"), 10_000, "responses from the new VM");
    running = false;
    await load;
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(values.has("world")).toBe(true);
  }, 40_000);

  test("a reloaded plugin's counters continue where the previous version left them", async () => {
    const counter = async () => Number(/deny_by_header_denied_total\S*\s+(\d+)/.exec(await waypoint.metricsText())?.[1]);
    expect((await call("guarded", "/deny-before", { "x-deny": "1" })).status).toBe(403);
    const before = await counter();
    expect(before).toBeGreaterThanOrEqual(1);
    const reloads = () => waypoint.records.filter((r) => r.msg === "plugin reloaded" && String(r.plugin).includes("deny-by-header")).length;
    const n = reloads();
    const tmp = `${mesh.configPath}.tmp`;
    writeFileSync(tmp, configText("reloaded", "denied again"));
    renameSync(tmp, mesh.configPath);
    await until(() => reloads() > n, 15_000, "the deny-by-header reload");
    const again = await call("guarded", "/deny-after", { "x-deny": "1" });
    expect(again.status).toBe(403);
    expect(again.body).toBe("denied again"); // the new version answered
    expect(await counter()).toBe(before + 1);
  }, 40_000);
});
