import { describe, expect, test } from "bun:test";
import { hostnameRank, parseHttpRoutes, pathPrefixMatches, RouteTable, type RouteRequest, type RouteService } from "./index.ts";

const SVC: RouteService = { namespace: "default", name: "reviews", hostname: "reviews.default.svc.cluster.local" };

function route(name: string, rules: string, opts: { created?: string; hostnames?: string; parent?: string; namespace?: string } = {}): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: ${name}
  namespace: ${opts.namespace ?? "default"}
${opts.created ? `  creationTimestamp: "${opts.created}"\n` : ""}spec:
  parentRefs:
  - ${opts.parent ?? '{group: "", kind: Service, name: reviews, namespace: default}'}
${opts.hostnames ? `  hostnames: ${opts.hostnames}\n` : ""}  rules:
${rules}`;
}

function table(...docs: string[]): RouteTable {
  return new RouteTable(parseHttpRoutes(docs.join("---\n"), "t.yaml"));
}

function req(path: string, opts: { method?: string; host?: string; headers?: Record<string, string> } = {}): RouteRequest {
  return { method: opts.method ?? "GET", path, host: opts.host ?? "reviews:9080", headers: new Headers(opts.headers ?? {}) };
}

/** "route#rule" of the selection, or "none". */
function pick(t: RouteTable, r: RouteRequest, port = 9080): string {
  const s = t.match(r, SVC, port);
  return s ? `${s.route.name}#${s.ruleIndex}` : "none";
}

describe("PathPrefix", () => {
  test.each([
    ["/foo", "/foo", true],
    ["/foo", "/foo/", true],
    ["/foo", "/foo/bar", true],
    ["/foo", "/foobar", false],
    ["/foo/", "/foo", true],
    ["/foo/", "/foo/bar", true],
    ["/foo/", "/foobar", false],
    ["/", "/anything", true],
    ["/", "/", true],
    ["/foo", "/fo", false],
  ] as const)("prefix %s, path %s -> %p", (prefix, path, want) => expect(pathPrefixMatches(prefix, path)).toBe(want));
});

describe("hostnames", () => {
  test.each([
    [[], "any.host", [0, 0]],
    [["foo.example.com"], "foo.example.com", [15, 0]],
    [["foo.example.com"], "bar.example.com", undefined],
    [["*.example.com"], "foo.example.com", [0, 13]],
    [["*.example.com"], "a.b.example.com", [0, 13]],
    [["*.example.com"], "example.com", undefined],
    [["*.example.com", "foo.example.com"], "foo.example.com", [15, 0]],
  ] as const)("%p vs %s", (hostnames, host, want) => expect(hostnameRank(hostnames, host)).toEqual(want as never));

  test("the more specific hostname wins across routes; Host port and case are ignored", () => {
    const t = table(
      route("wild", "  - backendRefs: [{name: a, port: 80}]\n", { hostnames: '["*.example.com"]' }),
      route("exact", "  - matches: [{path: {type: PathPrefix, value: /}}]\n", { hostnames: '["foo.example.com"]' }),
      route("any", "  - matches: [{path: {type: Exact, value: /x}}]\n"),
    );
    expect(pick(t, req("/x", { host: "FOO.example.com:9080" }))).toBe("exact#0");
    expect(pick(t, req("/x", { host: "bar.example.com" }))).toBe("wild#0");
    expect(pick(t, req("/x", { host: "reviews" }))).toBe("any#0");
    expect(pick(t, req("/y", { host: "reviews" }))).toBe("none");
  });
});

describe("precedence (Gateway API HTTPRouteRule.matches, Istio's regex rank)", () => {
  test("Exact beats every prefix; the longest prefix wins; regex comes last", () => {
    const t = table(
      route(
        "r",
        `  - matches: [{path: {type: PathPrefix, value: /}}]
  - matches: [{path: {type: PathPrefix, value: /match}}]
  - matches: [{path: {type: PathPrefix, value: /match/prefix}}]
  - matches: [{path: {type: Exact, value: /match/prefix/one}}]
  - matches: [{path: {type: RegularExpression, value: "/match/.*"}}]
  - matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}}]
`,
      ),
    );
    expect(pick(t, req("/match/prefix/one"))).toBe("r#3");
    expect(pick(t, req("/match/prefix/two"))).toBe("r#2");
    expect(pick(t, req("/match/prefixx"))).toBe("r#1");
    expect(pick(t, req("/match"))).toBe("r#1");
    expect(pick(t, req("/other"))).toBe("r#0");
    // A regex only wins where no Exact or PathPrefix matches; it matches the whole path.
    const noRoot = table(route("r", "  - matches: [{path: {type: RegularExpression, value: \"/re/[0-9]+\"}}, {path: {value: /re/1/x}}]\n"));
    expect(pick(noRoot, req("/re/123"))).toBe("r#0");
    expect(pick(noRoot, req("/re/123x"))).toBe("none");
    expect(pick(t, req("/re/123"))).toBe("r#0");
  });

  test("then method, then the number of header matches, then query parameters", () => {
    const t = table(
      route(
        "r",
        `  - matches: [{path: {value: /api}}]
  - matches: [{path: {value: /api}, headers: [{name: a, value: "1"}]}]
  - matches: [{path: {value: /api}, headers: [{name: a, value: "1"}, {name: b, value: "2"}]}]
  - matches: [{path: {value: /api}, queryParams: [{name: q, value: "1"}], headers: [{name: a, value: "1"}, {name: b, value: "2"}]}]
  - matches: [{path: {value: /api}, method: POST}]
`,
      ),
    );
    expect(pick(t, req("/api", { headers: { a: "1", b: "2" } }))).toBe("r#2");
    expect(pick(t, req("/api?q=1", { headers: { a: "1", b: "2" } }))).toBe("r#3");
    expect(pick(t, req("/api", { headers: { a: "1" } }))).toBe("r#1");
    expect(pick(t, req("/api", { method: "POST", headers: { a: "1", b: "2" } }))).toBe("r#4");
    expect(pick(t, req("/api/x", { headers: { a: "2" } }))).toBe("r#0");
  });

  test("ties across routes: oldest creationTimestamp, then namespace/name; within a route, the first rule", () => {
    const rules = "  - matches: [{path: {value: /a}}]\n  - matches: [{path: {value: /a}}]\n";
    const t = table(route("b-old", rules, { created: "2024-01-01T00:00:00Z" }), route("a-new", rules, { created: "2024-06-01T00:00:00Z" }), route("a-untimed", rules));
    expect(pick(t, req("/a"))).toBe("b-old#0");
    const t2 = table(route("b", rules), route("a", rules));
    expect(pick(t2, req("/a"))).toBe("a#0");
  });

  test("matches within a rule are ORed, fields within a match ANDed", () => {
    const t = table(route("r", '  - matches:\n    - {path: {value: /a}, method: GET}\n    - {headers: [{name: x-canary, value: "true"}]}\n'));
    expect(pick(t, req("/a"))).toBe("r#0");
    expect(pick(t, req("/a", { method: "PUT" }))).toBe("none");
    expect(pick(t, req("/b", { method: "PUT", headers: { "X-Canary": "true" } }))).toBe("r#0");
    const s = t.match(req("/b", { headers: { "x-canary": "true" } }), SVC, 9080);
    expect(s?.match.headers[0]?.name).toBe("x-canary");
  });
});

describe("header, query and method matching", () => {
  const t = table(
    route(
      "r",
      `  - matches: [{headers: [{name: X-Version, value: v2}]}]
  - matches: [{headers: [{type: RegularExpression, name: user-agent, value: ".*Mobile.*"}]}]
  - matches: [{queryParams: [{name: Env, value: canary}]}]
  - matches: [{queryParams: [{type: RegularExpression, name: id, value: "[0-9]{3}"}]}]
  - matches: [{method: DELETE}]
`,
    ),
  );
  test.each([
    ["exact header, name case-insensitive", req("/", { headers: { "x-version": "v2" } }), "r#0"],
    ["header value is case-sensitive", req("/", { headers: { "x-version": "V2" } }), "none"],
    ["regex header matches the whole value", req("/", { headers: { "user-agent": "Foo Mobile Bar" } }), "r#1"],
    ["query name is case-sensitive", req("/?env=canary"), "none"],
    ["exact query", req("/?x=1&Env=canary"), "r#2"],
    ["first repeated query value counts", req("/?Env=prod&Env=canary"), "none"],
    ["percent-decoded query value", req("/?Env=%63anary"), "r#2"],
    ["regex query is anchored", req("/?id=1234"), "none"],
    ["regex query", req("/?id=123"), "r#3"],
    ["method", req("/", { method: "DELETE" }), "r#4"],
    ["method is case-sensitive", req("/", { method: "delete" }), "none"],
    ["nothing", req("/"), "none"],
  ] as const)("%s", (_n, r, want) => expect(pick(t, r)).toBe(want));

  test("a Map keyed by lower-case names works as headers", () => {
    expect(pick(t, { method: "GET", path: "/", host: "reviews", headers: new Map([["x-version", "v2"]]) })).toBe("r#0");
  });
});

describe("attachment", () => {
  const docs = [
    route("all-ports", "  - matches: [{path: {value: /a}}]\n"),
    route("port-80", "  - matches: [{path: {value: /b}}]\n", { parent: '{group: "", kind: Service, name: reviews, port: 80}' }),
    route("gateway", "  - matches: [{path: {value: /c}}]\n", { parent: "{name: ingress}" }),
    route("consumer", "  - matches: [{path: {value: /d}}]\n", { namespace: "client", parent: '{group: "", kind: Service, name: reviews, namespace: default}' }),
    route("other-svc", "  - matches: [{path: {value: /e}}]\n", { parent: '{group: "", kind: Service, name: ratings}' }),
  ];
  const t = table(...docs);

  test("routesFor: Service parentRefs of the service's namespace, by port", () => {
    expect(t.routesFor(SVC, 9080).map((r) => r.name)).toEqual(["all-ports"]);
    expect(t.routesFor(SVC, 80).map((r) => r.name)).toEqual(["all-ports", "port-80"]);
    expect(t.routesFor({ ...SVC, name: "ratings" }, 9080).map((r) => r.name)).toEqual(["other-svc"]);
    expect(t.routesFor({ ...SVC, name: "details" }, 9080)).toEqual([]);
  });

  test("match only considers attached routes; no route means undefined", () => {
    expect(pick(t, req("/b"), 9080)).toBe("none");
    expect(pick(t, req("/b"), 80)).toBe("port-80#0");
    expect(pick(t, req("/c"))).toBe("none");
    expect(pick(t, req("/d"))).toBe("none");
    expect(t.match(req("/"), { ...SVC, name: "details" }, 9080)).toBeUndefined();
  });
});
