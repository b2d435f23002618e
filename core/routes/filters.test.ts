import { describe, expect, test } from "bun:test";
import {
  applyHeaderEdits,
  applyRequestFilters,
  applyResponseFilters,
  parseHttpRoutes,
  pickBackend,
  replacePrefix,
  type BackendRef,
  type RouteMatch,
  type RouteRule,
} from "./index.ts";

/** The first rule of a one-route file whose rules[0] is `rule` (YAML, indented as a rules item). */
function rule(body: string): RouteRule {
  const [r] = parseHttpRoutes(
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: svc}]
  rules:
${body}`,
    "f.yaml",
  );
  return r!.rules[0]!;
}

/** mulberry32: a small seeded generator, so the distribution test is reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("ReplacePrefixMatch (the spec's table)", () => {
  test.each([
    ["/foo/bar", "/foo", "/xyz", "/xyz/bar"],
    ["/foo/bar", "/foo", "/xyz/", "/xyz/bar"],
    ["/foo/bar", "/foo/", "/xyz", "/xyz/bar"],
    ["/foo/bar", "/foo/", "/xyz/", "/xyz/bar"],
    ["/foo", "/foo", "/xyz", "/xyz"],
    ["/foo/", "/foo", "/xyz", "/xyz/"],
    ["/foo/bar", "/foo", "", "/bar"],
    ["/foo/", "/foo", "", "/"],
    ["/foo", "/foo", "", "/"],
    ["/foo/", "/foo", "/", "/"],
    ["/foo", "/foo", "/", "/"],
    // A "/" prefix: the whole path is kept behind the replacement.
    ["/foo/bar", "/", "/xyz", "/xyz/foo/bar"],
    ["/", "/", "/xyz", "/xyz/"],
    ["/foo", "/", "/", "/foo"],
    // Not under the prefix: unchanged.
    ["/foobar", "/foo", "/xyz", "/foobar"],
  ] as const)("%s with prefix %p replaced by %p -> %s", (path, prefix, repl, want) => expect(replacePrefix(path, prefix, repl)).toBe(want));
});

describe("applyRequestFilters", () => {
  test("RequestHeaderModifier: remove, set, add in order; Host edits change the authority", () => {
    const r = rule(`  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Env, value: prod}, {name: Host, value: reviews.internal}]
        add: [{name: X-Hop, value: waypoint}]
        remove: [X-Env, X-Debug]
`);
    const out = applyRequestFilters(r, { path: "/a", host: "reviews:9080" });
    expect(out.host).toBe("reviews.internal");
    expect(out.path).toBe("/a");
    expect(out.headers).toEqual([
      { op: "remove", name: "x-env" },
      { op: "remove", name: "x-debug" },
      { op: "set", name: "x-env", value: "prod" },
      { op: "add", name: "x-hop", value: "waypoint" },
    ]);
    const h = new Headers({ "x-env": "dev", "x-debug": "1", "x-hop": "client", keep: "me" });
    applyHeaderEdits(h, out.headers);
    expect([...h.entries()]).toEqual([
      ["keep", "me"],
      ["x-env", "prod"],
      ["x-hop", "client, waypoint"],
    ]);
    expect(out.redirect).toBeUndefined();
    expect(out.mirrors).toEqual([]);
  });

  test("URLRewrite: hostname and ReplacePrefixMatch keep the query", () => {
    const r = rule(`  - matches: [{path: {type: PathPrefix, value: /api/}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: api.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
`);
    const out = applyRequestFilters(r, { path: "/api/users?id=1", host: "reviews" }, r.matches[0]);
    expect(out).toEqual({ headers: [], path: "/v2/users?id=1", host: "api.internal", mirrors: [] });
    expect(applyRequestFilters(r, { path: "/api?x", host: "h" }, r.matches[0]).path).toBe("/v2?x");
  });

  test("URLRewrite: ReplaceFullPath", () => {
    const r = rule(`  - filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /fixed}}
`);
    expect(applyRequestFilters(r, { path: "/any/thing?q=1", host: "h" }, r.matches[0])).toEqual({ headers: [], path: "/fixed?q=1", host: "h", mirrors: [] });
  });

  test("ReplacePrefixMatch without the PathPrefix match that selected the rule leaves the path", () => {
    const r = rule(`  - matches: [{path: {value: /a}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}
`);
    const exact: RouteMatch = { path: { type: "Exact", value: "/a/x" }, headers: [], queryParams: [] };
    expect(applyRequestFilters(r, { path: "/a/x", host: "h" }, exact).path).toBe("/a/x");
    expect(applyRequestFilters(r, { path: "/a/x", host: "h" }).path).toBe("/a/x");
  });

  const redirects: [string, string, { path: string; host: string; scheme?: "http" | "https"; port?: number }, number, string][] = [
    ["defaults: 302, same scheme, host, port and path", "{}", { path: "/a?b=1", host: "reviews:9080", port: 9080 }, 302, "http://reviews:9080/a?b=1"],
    ["port from Host when the caller gives none", "{}", { path: "/a", host: "reviews:8080" }, 302, "http://reviews:8080/a"],
    ["scheme given: its well-known port, left out", "{scheme: https, statusCode: 301}", { path: "/a", host: "reviews:9080", port: 9080 }, 301, "https://reviews/a"],
    ["explicit port", "{scheme: https, port: 8443, hostname: secure.example.com}", { path: "/", host: "reviews" }, 302, "https://secure.example.com:8443/"],
    ["well-known port of the request scheme is left out", "{hostname: a.example.com}", { path: "/x", host: "reviews", port: 80 }, 302, "http://a.example.com/x"],
    ["full path replaced, query kept", "{path: {type: ReplaceFullPath, replaceFullPath: /new}}", { path: "/old?x=1", host: "reviews", port: 80 }, 302, "http://reviews/new?x=1"],
    ["IPv6 authority keeps its brackets", "{}", { path: "/", host: "[fd00::1]:9080" }, 302, "http://[fd00::1]:9080/"],
  ];
  test.each(redirects)("RequestRedirect: %s", (_n, spec, request, status, location) => {
    const r = rule(`  - filters:\n    - type: RequestRedirect\n      requestRedirect: ${spec}\n`);
    expect(applyRequestFilters(r, request, r.matches[0]).redirect).toEqual({ statusCode: status as 301 | 302, location });
  });

  test("RequestRedirect with ReplacePrefixMatch", () => {
    const r = rule(`  - matches: [{path: {value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
`);
    expect(applyRequestFilters(r, { path: "/old/page?p=2", host: "reviews", port: 80 }, r.matches[0]).redirect?.location).toBe("http://reviews/new/page?p=2");
  });

  test("RequestMirror: every mirror, with its share", () => {
    const r = rule(`  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 80}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: audit, namespace: ops, port: 81}, percent: 10}
    backendRefs: [{name: svc, port: 80}]
`);
    expect(applyRequestFilters(r, { path: "/", host: "svc" }).mirrors).toEqual([
      { backendRef: { name: "shadow", namespace: "default", port: 80 }, percent: 100 },
      { backendRef: { name: "audit", namespace: "ops", port: 81 }, percent: 10 },
    ]);
  });

  test("a backend's filters apply after the rule's", () => {
    const r = rule(`  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-a, value: rule}]}
    backendRefs:
    - name: v2
      port: 80
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: x-a, value: backend}]}
`);
    const out = applyRequestFilters([...r.filters, ...r.backendRefs[0]!.filters], { path: "/", host: "svc" });
    const h = new Headers();
    applyHeaderEdits(h, out.headers);
    expect(h.get("x-a")).toBe("backend");
  });
});

describe("applyResponseFilters", () => {
  test("only ResponseHeaderModifier edits, in order", () => {
    const r = rule(`  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-req, value: "1"}]}
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: Cache-Control, value: no-store}]
        add: [{name: X-Served-By, value: waypoint}]
        remove: [Server]
`);
    const ops = applyResponseFilters(r);
    expect(ops).toEqual([
      { op: "remove", name: "server" },
      { op: "set", name: "cache-control", value: "no-store" },
      { op: "add", name: "x-served-by", value: "waypoint" },
    ]);
    const h = new Headers({ server: "envoy", "cache-control": "max-age=60" });
    applyHeaderEdits(h, ops);
    expect(Object.fromEntries(h)).toEqual({ "cache-control": "no-store", "x-served-by": "waypoint" });
  });
});

describe("pickBackend", () => {
  const r = rule(`  - backendRefs:
    - {name: v1, port: 80, weight: 90}
    - {name: off, port: 80, weight: 0}
    - {name: v2, port: 80, weight: 10}
`);

  test("boundaries of the weighted ranges", () => {
    expect(pickBackend(r, () => 0)?.name).toBe("v1");
    expect(pickBackend(r, () => 0.8999)?.name).toBe("v1");
    expect(pickBackend(r, () => 0.9)?.name).toBe("v2");
    expect(pickBackend(r, () => 0.999999)?.name).toBe("v2");
  });

  test("90/10 split within statistical bounds; weight 0 never chosen", () => {
    const rand = seeded(42);
    const counts = new Map<string, number>();
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const b = pickBackend(r, rand)!;
      counts.set(b.name, (counts.get(b.name) ?? 0) + 1);
    }
    expect(counts.get("off")).toBeUndefined();
    // 5 standard deviations of a binomial(20000, 0.1) is about 212.
    expect(Math.abs((counts.get("v2") ?? 0) - n * 0.1)).toBeLessThan(212);
    expect((counts.get("v1") ?? 0) + (counts.get("v2") ?? 0)).toBe(n);
  });

  test("default weight is 1 (an even split); all zero or none gives undefined", () => {
    const even = rule("  - backendRefs: [{name: a, port: 80}, {name: b, port: 80}]\n");
    expect(even.backendRefs.map((b: BackendRef) => b.weight)).toEqual([1, 1]);
    expect(pickBackend(even, () => 0.49)?.name).toBe("a");
    expect(pickBackend(even, () => 0.5)?.name).toBe("b");
    const zero = rule("  - backendRefs: [{name: a, port: 80, weight: 0}]\n");
    expect(pickBackend(zero, () => 0.5)).toBeUndefined();
    expect(pickBackend(rule("  - {}\n"), () => 0.5)).toBeUndefined();
  });
});
