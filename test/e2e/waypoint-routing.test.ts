// The waypoint's L7 routing and authorization end to end, every request through the real chain:
// client → SOCKS on its ztunnel (node-a) → HBONE to the waypoint → HBONE to the app's ztunnel
// (node-b) → a real node:http app. Gateway API HTTPRoute matches, precedence and filters
// (header edits, rewrites, redirects, mirrors, weights) across several routes on one service, L7 AuthorizationPolicy on every field a
// waypoint can see (Service and Gateway attachment), the forwarding and trace headers the app
// receives, and the waypoint's request metrics.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { localConfig, serviceKey, type ConfigService, type ConfigWorkload } from "../harness/config.ts";
import { startHttpApp, type HttpApp, type SeenRequest } from "../harness/l7-apps.ts";
import { first, h1Once, json, sha256, socksH1, type H1Request, type H1Response } from "../harness/l7-client.ts";
import { ISTIO_DURATION_BUCKETS, TRACEPARENT, inNamespace, requestLines, traceparent } from "../harness/l7-mesh.ts";
import { TestMesh, type ZtunnelProcess, allocSubnet } from "../harness/mesh.ts";
import { parsePrometheus, sampleSum, samples } from "../harness/metrics.ts";
import { until } from "../harness/net.ts";
import { startWaypoint } from "../harness/waypoint.ts";

const HOST = "server.default.svc.cluster.local";
const CLIENT = "spiffe://cluster.local/ns/default/sa/client";
const FOREIGN = "spiffe://cluster.local/ns/other/sa/foreign";

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: server-precedence, namespace: default}
spec:
  parentRefs:
  - {group: "", kind: Service, name: server, port: 80}
  rules:
  # precedence: the general rule comes first in the file, the specific ones must still win
  - matches: [{path: {type: PathPrefix, value: /prec}}]
    backendRefs: [{name: server-v2, port: 80}]
  - matches: [{path: {type: RegularExpression, value: "/prec/re.*"}}]
    backendRefs: [{name: canary, port: 80}]
  - matches: [{path: {type: Exact, value: /prec/exact}}]
    backendRefs: [{name: canary, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /prec/longer}}]
    backendRefs: [{name: canary, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /prec}, headers: [{name: x-prec, value: "yes"}]}]
    backendRefs: [{name: canary, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: server-matches, namespace: default}
spec:
  parentRefs:
  - {group: "", kind: Service, name: server, port: 80}
  rules:
  # single conditions
  - matches: [{path: {type: Exact, value: /exact}}]
    backendRefs: [{name: server-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /prefix}}]
    backendRefs: [{name: server-v2, port: 80}]
  - matches: [{path: {type: RegularExpression, value: "/regex/[0-9]+"}}]
    backendRefs: [{name: server-v2, port: 80}]
  - matches: [{headers: [{name: x-version, value: v2}]}]
    backendRefs: [{name: server-v2, port: 80}]
  - matches: [{headers: [{type: RegularExpression, name: x-user, value: "tester-[a-z]+"}]}]
    backendRefs: [{name: server-v2, port: 80}]
  - matches: [{queryParams: [{name: variant, value: b}]}]
    backendRefs: [{name: server-v2, port: 80}]
  - matches: [{method: DELETE}]
    backendRefs: [{name: server-v2, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: server-filters, namespace: default}
spec:
  parentRefs:
  - {group: "", kind: Service, name: server, port: 80}
  rules:
  # filters
  - matches: [{path: {type: PathPrefix, value: /hdr}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-set, value: from-route}]
        add: [{name: x-add, value: from-route}]
        remove: [x-remove]
    backendRefs: [{name: server, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /resp}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: x-app-set, value: from-route}]
        add: [{name: x-app-add, value: from-route}]
        remove: [x-app-remove]
    backendRefs: [{name: server, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /rw-host}}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: rewritten.example}}]
    backendRefs: [{name: server, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /rw-full}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /replaced}}}]
    backendRefs: [{name: server, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /rw-prefix}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
    backendRefs: [{name: server, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: server-redirects, namespace: default}
spec:
  parentRefs:
  - {group: "", kind: Service, name: server, port: 80}
  rules:
  - matches: [{path: {type: PathPrefix, value: /redir-full}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: example.com, port: 8443, path: {type: ReplacePrefixMatch, replacePrefixMatch: /moved}, statusCode: 301}
  - matches: [{path: {type: PathPrefix, value: /redir-host}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: other.example}}]
  - matches: [{path: {type: PathPrefix, value: /redir-scheme}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
  - matches: [{path: {type: PathPrefix, value: /redir-port}}]
    filters: [{type: RequestRedirect, requestRedirect: {port: 8080, path: {type: ReplaceFullPath, replaceFullPath: /elsewhere}}}]
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}]
    backendRefs: [{name: server, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /weighted}}]
    backendRefs: [{name: server, port: 80, weight: 80}, {name: canary, port: 80, weight: 20}]
  - matches: [{path: {type: PathPrefix, value: /missing}}]
    backendRefs: [{name: no-such-service, port: 80}]
`;

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
  servicePolicy("methods-allow", "authz-methods", "ALLOW", `  - to: [{operation: {methods: ["GET", "HEAD"]}}]\n`),
  servicePolicy("paths-deny", "authz-paths", "DENY", `  - to: [{operation: {paths: ["/private/*", "/exact-deny"]}}]\n`),
  servicePolicy("hosts-allow", "authz-hosts", "ALLOW", `  - to: [{operation: {hosts: ["allowed.example.com", "*.good.example"]}}]\n`),
  servicePolicy("token-allow", "authz-headers", "ALLOW", `  - when: [{key: "request.headers[x-token]", values: ["secret-*"]}]\n`),
  servicePolicy("block-deny", "authz-headers", "DENY", `  - when: [{key: "request.headers[x-block]", values: ["yes"]}]\n`),
  servicePolicy("principal-allow", "authz-principals", "ALLOW", `  - from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]\n`),
  servicePolicy("namespace-deny", "authz-ns", "DENY", `  - from: [{source: {namespaces: ["other"]}}]\n`),
  `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway-deny, namespace: default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: DENY
  rules:
  - when: [{key: "request.headers[x-gateway-deny]", values: ["1"]}]
`,
].join("---\n");

const GATEWAY2_POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway-allow, namespace: default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint2}]
  action: ALLOW
  rules:
  - to: [{operation: {paths: ["/gw-ok*"]}}]
`;

const AUTHZ_SERVICES = ["authz-methods", "authz-paths", "authz-hosts", "authz-headers", "authz-principals", "authz-ns"] as const;

describe("waypoint L7 routing and authorization (multi-process)", () => {
  const subnet = allocSubnet();
  const clientIp = `${subnet}1`;
  const foreignIp = `${subnet}5`;
  const vip = {
    server: `${subnet}100`,
    plain: `${subnet}104`,
    gw: `${subnet}111`,
  } as Record<string, string>;
  AUTHZ_SERVICES.forEach((s, i) => (vip[s] = `${subnet}${105 + i}`));
  let mesh: TestMesh;
  let waypoint: ZtunnelProcess;
  let waypoint2: ZtunnelProcess;
  const apps: Record<string, HttpApp> = {};

  beforeAll(async () => {
    const onServer: Record<string, Record<number, number>> = { [serviceKey("server")]: { 80: 8080 }, [serviceKey("plain")]: { 80: 8080 } };
    for (const s of AUTHZ_SERVICES) onServer[serviceKey(s)] = { 80: 8080 };
    const workloads: ConfigWorkload[] = [
      { name: "client", ip: clientIp, node: "node-a" },
      { name: "foreign", ip: foreignIp, node: "node-a" },
      { name: "waypoint", ip: `${subnet}10`, node: "node-w", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
      { name: "waypoint2", ip: `${subnet}11`, node: "node-w", services: { [serviceKey("waypoint2")]: { 15008: 15008 } } },
      { name: "server", ip: `${subnet}20`, node: "node-b", services: onServer },
      { name: "v2", ip: `${subnet}21`, node: "node-b", services: { [serviceKey("server-v2")]: { 80: 8080 } } },
      { name: "shadow", ip: `${subnet}22`, node: "node-b", services: { [serviceKey("shadow")]: { 80: 8080 } } },
      { name: "canary", ip: `${subnet}23`, node: "node-b", services: { [serviceKey("canary")]: { 80: 8080 } } },
      { name: "gwapp", ip: `${subnet}24`, node: "node-b", services: { [serviceKey("gw")]: { 80: 8080 } } },
    ];
    const services: ConfigService[] = [
      { name: "server", vip: vip.server!, ports: { 80: 8080 }, waypoint: "waypoint" },
      { name: "server-v2", vip: `${subnet}101`, ports: { 80: 8080 }, waypoint: "waypoint" },
      { name: "shadow", vip: `${subnet}102`, ports: { 80: 8080 }, waypoint: "waypoint" },
      { name: "canary", vip: `${subnet}103`, ports: { 80: 8080 }, waypoint: "waypoint" },
      { name: "plain", vip: vip.plain!, ports: { 80: 8080 }, waypoint: "waypoint" },
      ...AUTHZ_SERVICES.map((s) => ({ name: s, vip: vip[s]!, ports: { 80: 8080 }, waypoint: "waypoint" })),
      { name: "gw", vip: vip.gw!, ports: { 80: 8080 }, waypoint: "waypoint2" },
      { name: "waypoint", vip: `${subnet}120`, ports: { 15008: 15008 } },
      { name: "waypoint2", vip: `${subnet}121`, ports: { 15008: 15008 } },
    ];
    const config = inNamespace(localConfig({ workloads, services }), "foreign", "other");
    for (const [name, last] of [["server", 20], ["v2", 21], ["shadow", 22], ["canary", 23], ["gwapp", 24]] as const) {
      apps[name] = await startHttpApp(name, `${subnet}${last}`, 8080);
    }
    mesh = await TestMesh.start({ config, nodes: ["node-a", "node-b"] });
    [waypoint, waypoint2] = await Promise.all([
      startWaypoint(mesh, { routes: ROUTES, policies: POLICIES }),
      startWaypoint(mesh, { uid: "test//waypoint2", policies: GATEWAY2_POLICIES }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([waypoint?.stop(), waypoint2?.stop()]);
    await mesh?.stop();
    await Promise.all(Object.values(apps).map((a) => a.close()));
  });

  /** One request to the `server` service as the client. */
  function get(path: string, req: Partial<H1Request> = {}, from = clientIp, to = vip.server!): Promise<H1Response> {
    return h1Once(from, to, { path, ...req });
  }

  /** Which app answered, and what it saw. */
  function seen(r: H1Response): SeenRequest {
    expect(r.status).toBe(200);
    return json<SeenRequest>(r);
  }

  async function appFor(path: string, req: Partial<H1Request> = {}): Promise<string> {
    return seen(await get(path, req)).app;
  }

  test("path matches: Exact, PathPrefix on segment boundaries, RegularExpression on the whole path", async () => {
    expect(await appFor("/exact")).toBe("v2");
    expect(await appFor("/exact?x=1")).toBe("v2"); // the query is not part of the path
    expect(await appFor("/exact/")).toBe("server");
    expect(await appFor("/exactly")).toBe("server");
    expect(await appFor("/prefix")).toBe("v2");
    expect(await appFor("/prefix/a/b")).toBe("v2");
    expect(await appFor("/prefixed")).toBe("server");
    expect(await appFor("/regex/42")).toBe("v2");
    expect(await appFor("/regex/abc")).toBe("server");
    expect(await appFor("/regex/42/more")).toBe("server");
    // The rewrite-free route keeps the request target exactly.
    const s = seen(await get("/exact?x=1"));
    expect(s.url).toBe("/exact?x=1");
  });

  test("header matches (Exact, RegularExpression), query parameter and method matches", async () => {
    expect(await appFor("/h", { headers: { "x-version": "v2" } })).toBe("v2");
    expect(await appFor("/h", { headers: { "X-Version": "v2" } })).toBe("v2"); // names are case-insensitive
    expect(await appFor("/h", { headers: { "x-version": "v3" } })).toBe("server");
    expect(await appFor("/h", { headers: { "x-user": "tester-abc" } })).toBe("v2");
    expect(await appFor("/h", { headers: { "x-user": "tester-ABC" } })).toBe("server");
    expect(await appFor("/h", { headers: { "x-user": "xtester-abc" } })).toBe("server"); // whole-value match
    expect(await appFor("/q?variant=b")).toBe("v2");
    expect(await appFor("/q?other=1&variant=b")).toBe("v2");
    expect(await appFor("/q?variant=a")).toBe("server");
    expect(await appFor("/q?variant=bb")).toBe("server");
    expect(await appFor("/m", { method: "DELETE" })).toBe("v2");
    expect(await appFor("/m", { method: "GET" })).toBe("server");
  });

  test("precedence: Exact over the longest PathPrefix over RegularExpression, then more header matches — not file order", async () => {
    expect(await appFor("/prec/a")).toBe("v2");
    expect(await appFor("/prec/exact")).toBe("canary");
    expect(await appFor("/prec/exact/x")).toBe("v2");
    expect(await appFor("/prec/longer/x")).toBe("canary");
    expect(await appFor("/prec/a", { headers: { "x-prec": "yes" } })).toBe("canary");
    // "/prec/regex" matches both the PathPrefix /prec and the regex: the prefix ranks higher (Istio).
    expect(await appFor("/prec/regex")).toBe("v2");
  });

  test("no matching rule, or no route attached at all: the request goes to the original service", async () => {
    const unmatched = seen(await get("/nothing-matches?a=1"));
    expect(unmatched.app).toBe("server");
    expect(unmatched.url).toBe("/nothing-matches?a=1");
    const plain = seen(await get("/x", { host: "plain.default.svc.cluster.local", method: "POST", body: "hello" }, clientIp, vip.plain));
    expect(plain.app).toBe("server");
    expect(plain.method).toBe("POST");
    expect(plain.bodySha256).toBe(sha256("hello"));
    // plain has no route: even a path the server's routes send elsewhere stays on plain's endpoints
    expect(seen(await get("/exact", { host: "plain.default.svc.cluster.local" }, clientIp, vip.plain)).app).toBe("server");
  });

  test("RequestHeaderModifier: set replaces, add appends, remove drops", async () => {
    const s = seen(await get("/hdr", { headers: { "x-set": "from-client", "x-add": "from-client", "x-remove": "gone", "x-keep": "kept" } }));
    expect(s.headers["x-set"]).toEqual(["from-route"]);
    expect(s.headers["x-add"]).toEqual(["from-client", "from-route"]);
    expect(s.headers["x-remove"]).toBeUndefined();
    expect(s.headers["x-keep"]).toEqual(["kept"]);
    // set also works when the client did not send the header
    expect(seen(await get("/hdr")).headers["x-set"]).toEqual(["from-route"]);
  });

  test("ResponseHeaderModifier: the client sees the route's edits of the app's headers", async () => {
    const r = await get("/resp");
    expect(r.status).toBe(200);
    expect(r.headers["x-app-set"]).toEqual(["from-route"]);
    expect(r.headers["x-app-add"]).toEqual(["app", "from-route"]);
    expect(r.headers["x-app-remove"]).toBeUndefined();
    // other routes leave the app's headers alone
    const other = await get("/nothing");
    expect(other.headers["x-app-remove"]).toEqual(["app"]);
  });

  test("URLRewrite: hostname, ReplaceFullPath (query kept), ReplacePrefixMatch", async () => {
    const host = seen(await get("/rw-host/p"));
    expect(host.headers.host).toEqual(["rewritten.example"]);
    expect(host.url).toBe("/rw-host/p");
    expect(seen(await get("/rw-full/a/b?q=1")).url).toBe("/replaced?q=1");
    expect(seen(await get("/rw-prefix/a/b?z=1")).url).toBe("/new/a/b?z=1");
    expect(seen(await get("/rw-prefix")).url).toBe("/new");
  });

  test("RequestRedirect: scheme, hostname, port, path and status code in Location; the app never sees it", async () => {
    const before = apps.server!.requests.length;
    const full = await get("/redir-full/x?q=1");
    expect(full.status).toBe(301);
    expect(first(full.headers, "location")).toBe("https://example.com:8443/moved/x?q=1");
    const host = await get("/redir-host/p");
    expect(host.status).toBe(302);
    expect(first(host.headers, "location")).toBe("http://other.example/redir-host/p");
    const scheme = await get("/redir-scheme/x");
    expect(scheme.status).toBe(302);
    expect(first(scheme.headers, "location")).toBe(`https://${HOST}/redir-scheme/x`);
    const port = await get("/redir-port/x");
    expect(port.status).toBe(302);
    expect(first(port.headers, "location")).toBe(`http://${HOST}:8080/elsewhere`);
    expect(apps.server!.requests.length).toBe(before);
  });

  test("RequestMirror: the mirror backend gets a copy with a -shadow host; the client gets the primary's answer", async () => {
    const body = "mirrored body";
    const r = await get("/mirror/x?y=1", { method: "POST", body, headers: { "x-trace-me": "1" } });
    const primary = seen(r);
    expect(primary.app).toBe("server");
    expect(primary.url).toBe("/mirror/x?y=1");
    await until(() => apps.shadow!.requests.some((q) => q.url === "/mirror/x?y=1"), 5000, "the mirrored copy");
    const copy = apps.shadow!.requests.find((q) => q.url === "/mirror/x?y=1")!;
    expect(copy.headers.host).toEqual([`${HOST}-shadow`]);
    expect(copy.method).toBe("POST");
    expect(copy.bodySha256).toBe(sha256(body));
    expect(copy.headers["x-trace-me"]).toEqual(["1"]);
  });

  test("weighted backendRefs 80/20: the split over 400 requests is within 5 sigma of the weights", async () => {
    const N = 400;
    const CONNS = 4;
    const counts: Record<string, number> = {};
    await Promise.all(
      Array.from({ length: CONNS }, async () => {
        const c = await socksH1(clientIp, vip.server!);
        try {
          for (let i = 0; i < N / CONNS; i++) {
            const app = seen(await c.request({ path: `/weighted/${i}` })).app;
            counts[app] = (counts[app] ?? 0) + 1;
          }
        } finally {
          c.close();
        }
      }),
    );
    expect(Object.keys(counts).sort()).toEqual(["canary", "server"]);
    expect(counts.server! + counts.canary!).toBe(N);
    const mean = N * 0.2;
    const sigma = Math.sqrt(N * 0.2 * 0.8);
    expect(counts.canary!).toBeGreaterThanOrEqual(mean - 5 * sigma);
    expect(counts.canary!).toBeLessThanOrEqual(mean + 5 * sigma);
  }, 30_000);

  test("a route whose backend service does not exist answers 500", async () => {
    const r = await get("/missing/x");
    expect(r.status).toBe(500);
    await until(() => requestLines(waypoint).some((l) => l.path === "/missing/x"), 5000, "the access line");
    const line = requestLines(waypoint).find((l) => l.path === "/missing/x")!;
    expect(line.response_code).toBe(500);
    expect(line.response_flags).toBe("NR");
  });

  test("L7 ALLOW on methods (Service target): GET allowed, POST gets 403 RBAC: access denied; other services unaffected", async () => {
    const host = "authz-methods.default.svc.cluster.local";
    expect((await get("/a", { host }, clientIp, vip["authz-methods"])).status).toBe(200);
    const post = await get("/a", { host, method: "POST", body: "x" }, clientIp, vip["authz-methods"]);
    expect(post.status).toBe(403);
    expect(post.body.toString()).toBe("RBAC: access denied");
    expect((await get("/a", { host: "plain.default.svc.cluster.local", method: "POST", body: "x" }, clientIp, vip.plain)).status).toBe(200);
  });

  test("L7 DENY on paths (prefix and exact)", async () => {
    const host = "authz-paths.default.svc.cluster.local";
    const at = (p: string) => get(p, { host }, clientIp, vip["authz-paths"]).then((r) => r.status);
    expect(await at("/private/x")).toBe(403);
    expect(await at("/exact-deny")).toBe(403);
    expect(await at("/exact-deny2")).toBe(200);
    expect(await at("/private")).toBe(200);
    expect(await at("/public")).toBe(200);
  });

  test("L7 ALLOW on hosts (exact, wildcard suffix, case-insensitive)", async () => {
    const at = (host: string) => get("/h", { host }, clientIp, vip["authz-hosts"]).then((r) => r.status);
    expect(await at("allowed.example.com")).toBe(200);
    expect(await at("ALLOWED.Example.com")).toBe(200);
    expect(await at("a.good.example")).toBe(200);
    expect(await at("evil.example")).toBe(403);
    expect(await at("authz-hosts.default.svc.cluster.local")).toBe(403);
  });

  test("L7 policy on request headers (when: request.headers[...]): ALLOW needs the token, DENY wins over it", async () => {
    const host = "authz-headers.default.svc.cluster.local";
    const at = (headers: Record<string, string>) => get("/h", { host, headers }, clientIp, vip["authz-headers"]).then((r) => r.status);
    expect(await at({})).toBe(403);
    expect(await at({ "x-token": "secret-1" })).toBe(200);
    expect(await at({ "x-token": "public-1" })).toBe(403);
    expect(await at({ "x-token": "secret-1", "x-block": "yes" })).toBe(403);
    expect(await at({ "x-token": "secret-1", "x-block": "no" })).toBe(200);
  });

  test("L7 ALLOW on principals: the verified caller counts, not who it claims to be", async () => {
    const host = "authz-principals.default.svc.cluster.local";
    expect((await get("/p", { host }, clientIp, vip["authz-principals"])).status).toBe(200);
    const foreign = await get("/p", { host, headers: { "x-forwarded-client-cert": `By=x;URI=${CLIENT}` } }, foreignIp, vip["authz-principals"]);
    expect(foreign.status).toBe(403);
    expect(foreign.body.toString()).toBe("RBAC: access denied");
  });

  test("L7 DENY on source namespaces", async () => {
    const host = "authz-ns.default.svc.cluster.local";
    expect((await get("/n", { host }, clientIp, vip["authz-ns"])).status).toBe(200);
    expect((await get("/n", { host }, foreignIp, vip["authz-ns"])).status).toBe(403);
    // the foreign workload itself can reach services without such a policy
    expect((await get("/n", { host: "plain.default.svc.cluster.local" }, foreignIp, vip.plain)).status).toBe(200);
  });

  test("targetRefs kind Gateway: a policy on the waypoint applies to every service it serves, and only there", async () => {
    // waypoint2 has an ALLOW on its Gateway: only /gw-ok* passes, for any service it serves.
    const gw = (p: string) => get(p, { host: "gw.default.svc.cluster.local" }, clientIp, vip.gw).then((r) => r.status);
    expect(await gw("/gw-ok")).toBe(200);
    expect(await gw("/gw-ok/deeper")).toBe(200);
    expect(await gw("/other")).toBe(403);
    // waypoint's Gateway DENY (a header condition) applies to server and plain alike
    expect((await get("/x", { headers: { "x-gateway-deny": "1" } })).status).toBe(403);
    expect((await get("/x", { host: "plain.default.svc.cluster.local", headers: { "x-gateway-deny": "1" } }, clientIp, vip.plain)).status).toBe(403);
    expect((await get("/x", { headers: { "x-gateway-deny": "0" } })).status).toBe(200);
    // and waypoint2's ALLOW does not leak into waypoint
    expect((await get("/other")).status).toBe(200);
  });

  test("forwarding headers: x-forwarded-for appended, client identity headers dropped, trace context continued, request id added", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const sent = traceparent(traceId, "00f067aa0ba902b7", "01");
    const s = seen(
      await get("/fwd", {
        headers: {
          "x-forwarded-for": "203.0.113.9",
          "x-forwarded-client-cert": `By=spiffe://cluster.local/ns/default/sa/admin;URI=${CLIENT}`,
          "x-mesh-source-principal": "spiffe://cluster.local/ns/default/sa/admin",
          "x-mesh-anything": "1",
          traceparent: sent,
        },
      }),
    );
    expect(s.headers["x-forwarded-for"]).toEqual([`203.0.113.9, ${clientIp}`]);
    expect((s.headers["x-forwarded-client-cert"] ?? []).join()).not.toContain("sa/admin");
    expect(Object.keys(s.headers).filter((k) => k.startsWith("x-mesh-"))).toEqual([]);
    const tp = s.headers.traceparent?.[0] ?? "";
    const m = TRACEPARENT.exec(tp);
    expect(m).not.toBeNull();
    expect(m![1]).toBe(traceId);
    expect(m![2]).not.toBe("00f067aa0ba902b7");
    expect(m![3]).toBe("01");
    expect(s.headers["x-request-id"]?.[0]).toMatch(/^[0-9a-f-]{16,}$/i);

    // Nothing sent: the app still gets a fresh, valid trace and a request id, different per request.
    const a = seen(await get("/fwd2"));
    const b = seen(await get("/fwd2"));
    expect(a.headers["x-forwarded-for"]).toEqual([clientIp]);
    const ta = TRACEPARENT.exec(a.headers.traceparent?.[0] ?? "");
    const tb = TRACEPARENT.exec(b.headers.traceparent?.[0] ?? "");
    expect(ta).not.toBeNull();
    expect(tb).not.toBeNull();
    expect(ta![1]).not.toMatch(/^0+$/);
    expect(ta![1]).not.toBe(tb![1]);
    expect(a.headers["x-request-id"]?.length).toBe(1);
    expect(a.headers["x-request-id"]![0]).not.toBe(b.headers["x-request-id"]![0]);
    // The waypoint's access line carries the trace id the app saw.
    await until(() => requestLines(waypoint).some((l) => l.path === "/fwd"), 5000, "the access line");
    expect(requestLines(waypoint).find((l) => l.path === "/fwd")!.trace_id).toBe(traceId);
  });

  test("metrics: istio_requests_total with reporter=waypoint and Istio's labels; the duration histogram has Istio's buckets", async () => {
    // make sure there is one denied request from the foreign workload and one NR
    expect((await get("/p", { host: "authz-principals.default.svc.cluster.local" }, foreignIp, vip["authz-principals"])).status).toBe(403);
    expect((await get("/missing/y")).status).toBe(500);
    const all = parsePrometheus(await waypoint.metricsText());
    const ok = samples(all, "istio_requests_total", {
      reporter: "waypoint",
      response_code: "200",
      response_flags: "-",
      source_principal: CLIENT,
      source_workload: "client",
      destination_service: "server.default.svc.cluster.local",
      destination_principal: "spiffe://cluster.local/ns/default/sa/server",
      request_protocol: "http",
      connection_security_policy: "mutual_tls",
    });
    expect(ok.length).toBe(1);
    expect(ok[0]!.value).toBeGreaterThan(10);
    // weighted traffic is labelled with the service that served it
    expect(sampleSum(all, "istio_requests_total", { reporter: "waypoint", response_code: "200", destination_service: "canary.default.svc.cluster.local" })).toBeGreaterThan(0);
    const denied = sampleSum(all, "istio_requests_total", {
      reporter: "waypoint",
      response_code: "403",
      source_principal: FOREIGN,
      source_workload_namespace: "other",
      destination_service: "authz-principals.default.svc.cluster.local",
    });
    expect(denied).toBeGreaterThanOrEqual(2);
    expect(sampleSum(all, "istio_requests_total", { reporter: "waypoint", response_code: "500", response_flags: "NR" })).toBeGreaterThanOrEqual(2);
    expect(sampleSum(all, "istio_requests_total", { reporter: "waypoint", response_code: "301" })).toBeGreaterThanOrEqual(1);
    // no sample of the waypoint claims another reporter
    expect(samples(all, "istio_requests_total").every((s) => s.labels.reporter === "waypoint")).toBe(true);

    const buckets = samples(all, "istio_request_duration_milliseconds_bucket", { reporter: "waypoint", response_code: "200", source_principal: CLIENT, destination_service: "server.default.svc.cluster.local" });
    expect(buckets.map((b) => b.labels.le)).toEqual([...ISTIO_DURATION_BUCKETS]);
    const inf = buckets.find((b) => b.labels.le === "+Inf")!.value;
    const count = sampleSum(all, "istio_request_duration_milliseconds_count", { reporter: "waypoint", response_code: "200", source_principal: CLIENT, destination_service: "server.default.svc.cluster.local" });
    expect(inf).toBe(count);
    expect(count).toBe(ok[0]!.value);
    // cumulative
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
  });
});
