import { describe, expect, test } from "bun:test";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { ISTIO_DEFAULT_RETRY, parseGatewayDuration, parseHttpRoutes, ROUTE_LIMITS } from "./index.ts";

const BOOKINFO = `
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: bookinfo
spec:
  ports:
  - port: 9080
    name: http
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: bookinfo
  creationTimestamp: "2024-05-01T10:00:00Z"
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews
    port: 9080
  rules:
  - backendRefs:
    - name: reviews-v1
      port: 9080
      weight: 90
    - name: reviews-v2
      port: 9080
      weight: 10
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata:
  name: productpage
  namespace: bookinfo
spec:
  parentRefs:
  - {group: core, kind: Service, name: productpage}
  - {name: ingress, namespace: istio-ingress}
  hostnames: ["productpage.example.com", "*.bookinfo.example.com"]
  rules:
  - name: api
    matches:
    - path: {type: PathPrefix, value: /api/v1}
      method: GET
      headers:
      - {name: X-User, value: jason}
      - {type: RegularExpression, name: x-trace, value: "[0-9a-f]{8}"}
      queryParams:
      - {name: debug, value: "1"}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Route, value: api}]
        add: [{name: X-Hop, value: waypoint}]
        remove: [X-Internal]
    - type: URLRewrite
      urlRewrite:
        hostname: api.internal
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /v1}
    - type: RequestMirror
      requestMirror:
        backendRef: {name: productpage-shadow, port: 9080}
        fraction: {numerator: 1, denominator: 4}
    backendRefs:
    - name: productpage-v1
      port: 9080
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier:
          set: [{name: x-backend, value: v1}]
    timeouts: {request: 10s, backendRequest: 2s500ms}
    retry: {attempts: 3, codes: [503], backoff: 100ms}
  - matches:
    - path: {type: Exact, value: /old}
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: new.example.com, statusCode: 301}
---
`;

function problems(text: string): { code: string; details: readonly string[] } {
  try {
    parseHttpRoutes(text, "routes.yaml");
  } catch (e) {
    expect(e).toBeInstanceOf(MeshError);
    const m = e as MeshError;
    return { code: m.code, details: m.details };
  }
  throw new Error("expected the file to be rejected");
}

/** A one-route document with `rule` (YAML lines, indented for a rules[] item) spliced in. */
function routeDoc(rule: string, extraSpec = ""): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews}
${extraSpec}  rules:
${rule}`;
}

describe("parseHttpRoutes: a realistic file", () => {
  const routes = parseHttpRoutes(BOOKINFO, "bookinfo.yaml");

  test("skips the Service and reads both routes with defaults applied", () => {
    expect(routes.map((r) => r.key)).toEqual(["bookinfo/reviews", "bookinfo/productpage"]);
    const reviews = routes[0]!;
    expect(reviews.creationTimestamp).toBe(Date.parse("2024-05-01T10:00:00Z"));
    expect(reviews.source).toBe("bookinfo.yaml: document 2 (reviews)");
    expect(reviews.parentRefs).toEqual([{ group: "", kind: "Service", name: "reviews", namespace: "bookinfo", port: 9080, mesh: true }]);
    const rule = reviews.rules[0]!;
    expect(rule.matches).toEqual([{ path: { type: "PathPrefix", value: "/" }, headers: [], queryParams: [] }]);
    expect(rule.backendRefs.map((b) => [b.name, b.namespace, b.port, b.weight])).toEqual([
      ["reviews-v1", "bookinfo", 9080, 90],
      ["reviews-v2", "bookinfo", 9080, 10],
    ]);
    expect(rule.retry).toBe(ISTIO_DEFAULT_RETRY);
    expect(rule.timeouts).toEqual({});
  });

  test("reads matches, filters, timeouts and retry of a full rule", () => {
    const pp = routes[1]!;
    expect(pp.hostnames).toEqual(["productpage.example.com", "*.bookinfo.example.com"]);
    expect(pp.parentRefs.map((r) => [r.group, r.kind, r.name, r.namespace, r.mesh])).toEqual([
      ["", "Service", "productpage", "bookinfo", true],
      ["gateway.networking.k8s.io", "Gateway", "ingress", "istio-ingress", false],
    ]);
    const rule = pp.rules[0]!;
    expect(rule.name).toBe("api");
    const m = rule.matches[0]!;
    expect(m.method).toBe("GET");
    expect(m.headers.map((h) => [h.type, h.name])).toEqual([
      ["Exact", "x-user"],
      ["RegularExpression", "x-trace"],
    ]);
    expect(m.queryParams).toEqual([{ type: "Exact", name: "debug", value: "1" }]);
    expect(rule.filters.map((f) => f.type)).toEqual(["RequestHeaderModifier", "URLRewrite", "RequestMirror"]);
    const mirror = rule.filters[2]!;
    expect(mirror.type === "RequestMirror" && mirror.requestMirror).toEqual({
      backendRef: { name: "productpage-shadow", namespace: "bookinfo", port: 9080 },
      percent: 25,
    });
    expect(rule.backendRefs[0]!.filters[0]!.type).toBe("ResponseHeaderModifier");
    expect(rule.timeouts).toEqual({ requestMs: 10_000, backendRequestMs: 2500 });
    expect(rule.retry).toEqual({
      attempts: 3,
      retryOn: ["connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"],
      codes: [503],
      backoffMs: 100,
      isDefault: false,
    });
    const redirect = pp.rules[1]!.filters[0]!;
    expect(redirect.type === "RequestRedirect" && redirect.requestRedirect).toEqual({ scheme: "https", hostname: "new.example.com", statusCode: 301 });
  });

  test("the result is frozen", () => {
    expect(Object.isFrozen(routes[0])).toBe(true);
    expect(Object.isFrozen(routes[0]!.rules[0]!.backendRefs)).toBe(true);
  });

  test("a route with no rules gets the CRD default rule, the default namespace applies", () => {
    const [r] = parseHttpRoutes(routeDoc("").replace("  rules:\n", ""), "x.yaml", { defaultNamespace: "shop" });
    expect(r!.key).toBe("shop/reviews");
    expect(r!.rules).toHaveLength(1);
    expect(r!.rules[0]!.backendRefs).toEqual([]);
    expect(r!.rules[0]!.matches[0]!.path).toEqual({ type: "PathPrefix", value: "/" });
  });
});

describe("parseHttpRoutes: each kind of bad document, with its exact message", () => {
  const D = "routes.yaml: document 1 (reviews)";
  const cases: [string, string, string][] = [
    [
      "path type of another API",
      routeDoc("  - matches:\n    - path: {value: /a}\n    - path: {type: Prefix, value: /a}\n"),
      `${D}: spec.rules[0].matches[1].path.type: expected one of Exact, PathPrefix, RegularExpression, got "Prefix"`,
    ],
    ["unknown field in a rule", routeDoc("  - backendRef: []\n"), `${D}: spec.rules[0].backendRef: unknown field (expected one of name, matches, filters, backendRefs, timeouts, retry, sessionPersistence)`],
    ["relative path", routeDoc("  - matches:\n    - path: {type: Exact, value: api}\n"), `${D}: spec.rules[0].matches[0].path.value: must be an absolute path starting with "/", got "api"`],
    ["dot segment", routeDoc("  - matches:\n    - path: {value: /a/../b}\n"), `${D}: spec.rules[0].matches[0].path.value: must not contain "/../"`],
    ["regex that is not RE2", routeDoc("  - matches:\n    - path: {type: RegularExpression, value: '/(?=a)'}\n"), `${D}: spec.rules[0].matches[0].path.value: regular expression "/(?=a)" lookahead and lookbehind are not RE2`],
    [
      "regex that does not compile",
      routeDoc("  - matches:\n    - headers: [{type: RegularExpression, name: x, value: '(a'}]\n"),
      `${D}: spec.rules[0].matches[0].headers[0].value: regular expression "(a" does not compile: `,
    ],
    ["bad method", routeDoc("  - matches:\n    - method: get\n"), `${D}: spec.rules[0].matches[0].method: expected one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH, got "get"`],
    ["bad header name", routeDoc("  - matches:\n    - headers: [{name: 'x y', value: a}]\n"), `${D}: spec.rules[0].matches[0].headers[0].name: expected a header or parameter name (RFC 7230 token characters), got "x y"`],
    [
      "duplicate header match",
      routeDoc("  - matches:\n    - headers: [{name: X-A, value: a}, {name: x-a, value: b}]\n"),
      `${D}: spec.rules[0].matches[0].headers[1].name: duplicate header name "x-a" in one match`,
    ],
    ["header value too long", routeDoc(`  - matches:\n    - headers: [{name: x, value: ${"v".repeat(4097)}}]\n`), `${D}: spec.rules[0].matches[0].headers[0].value: must be at most 4096 characters, got 4097`],
    ["unquoted number", routeDoc("  - matches:\n    - queryParams: [{name: page, value: 2}]\n"), `${D}: spec.rules[0].matches[0].queryParams[0].value: expected a string, got the number 2 (quote it)`],
    [
      "filter body of the wrong type",
      routeDoc("  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {remove: [a]}\n      urlRewrite: {hostname: a}\n"),
      `${D}: spec.rules[0].filters[0].urlRewrite: must not be set when type is RequestHeaderModifier`,
    ],
    ["unsupported filter", routeDoc("  - filters:\n    - type: ExtensionRef\n      extensionRef: {group: a, kind: b, name: c}\n"), `${D}: spec.rules[0].filters[0].type: ExtensionRef filters are not supported by this mesh (supported: RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect, RequestMirror)`],
    [
      "redirect with backends",
      routeDoc("  - filters:\n    - type: RequestRedirect\n      requestRedirect: {hostname: a.example}\n    backendRefs: [{name: a, port: 80}]\n"),
      `${D}: spec.rules[0]: a RequestRedirect filter cannot be used together with backendRefs`,
    ],
    [
      "ReplacePrefixMatch without a PathPrefix match",
      routeDoc("  - matches:\n    - path: {type: Exact, value: /a}\n    filters:\n    - type: URLRewrite\n      urlRewrite:\n        path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}\n"),
      `${D}: spec.rules[0].filters: URLRewrite with path.replacePrefixMatch needs exactly one match, with a PathPrefix path`,
    ],
    [
      "redirect and rewrite together",
      routeDoc("  - filters:\n    - type: URLRewrite\n      urlRewrite: {hostname: a.example}\n    - type: RequestRedirect\n      requestRedirect: {statusCode: 301}\n"),
      `${D}: spec.rules[0].filters: RequestRedirect and URLRewrite cannot be used together`,
    ],
    ["redirect status", routeDoc("  - filters:\n    - type: RequestRedirect\n      requestRedirect: {statusCode: 307}\n"), `${D}: spec.rules[0].filters[0].requestRedirect.statusCode: expected one of 301, 302, got the number 307`],
    [
      "header modifier twice",
      routeDoc("  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {remove: [a]}\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {remove: [b]}\n"),
      `${D}: spec.rules[0].filters[1]: RequestHeaderModifier may appear at most once (also at spec.rules[0].filters[0])`,
    ],
    ["backend without port", routeDoc("  - backendRefs: [{name: reviews-v1}]\n"), `${D}: spec.rules[0].backendRefs[0].port: required for a Service backend`],
    ["negative weight", routeDoc("  - backendRefs: [{name: a, port: 80, weight: -1}]\n"), `${D}: spec.rules[0].backendRefs[0].weight: expected an integer from 0 to 1000000, got -1`],
    ["backend of another kind", routeDoc("  - backendRefs: [{group: networking.istio.io, kind: ServiceEntry, name: a, port: 80}]\n"), `${D}: spec.rules[0].backendRefs[0]: only a Service (group "", kind Service) is supported as a backend, got networking.istio.io/ServiceEntry`],
    ["bad duration", routeDoc("  - timeouts: {request: 1.5s}\n"), `${D}: spec.rules[0].timeouts.request: expected a duration like "10s", "500ms" or "1h30m" (units h, m, s, ms), got "1.5s"`],
    ["backend timeout above request timeout", routeDoc("  - timeouts: {request: 1s, backendRequest: 2s}\n"), `${D}: spec.rules[0].timeouts.backendRequest: must not be longer than the request timeout (1s)`],
    ["mirror percent", routeDoc("  - filters:\n    - type: RequestMirror\n      requestMirror: {backendRef: {name: a, port: 80}, percent: 101}\n"), `${D}: spec.rules[0].filters[0].requestMirror.percent: expected an integer from 0 to 100, got 101`],
    ["wildcard in a rewrite hostname", routeDoc("  - filters:\n    - type: URLRewrite\n      urlRewrite: {hostname: '*.a.example'}\n"), `${D}: spec.rules[0].filters[0].urlRewrite.hostname: expected a lower-case DNS name (no wildcard), got "*.a.example"`],
    ["IP as a hostname", routeDoc("  - {}\n", "  hostnames: ['10.0.0.1:80']\n"), `${D}: spec.hostnames[0]: expected a lower-case DNS name, optionally starting with "*." (no IP addresses), got "10.0.0.1:80"`],
    ["removing Host", routeDoc("  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {remove: [Host]}\n"), `${D}: spec.rules[0].filters[0].requestHeaderModifier.remove[0]: the Host header cannot be removed (it names the destination)`],
  ];
  test.each(cases)("%s", (_name, text, line) => {
    const p = problems(text);
    expect(p.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(p.details).toHaveLength(1);
    expect(p.details[0]!.startsWith(line)).toBe(true);
    if (!line.endsWith(": ")) expect(p.details[0]).toBe(line);
  });

  test("a parentRef of another kind, and a missing parentRefs", () => {
    const bad = routeDoc("  - {}\n").replace('{group: "", kind: Service, name: reviews}', "{group: networking.istio.io, kind: ServiceEntry, name: x}");
    expect(problems(bad).details).toEqual([
      `${D}: spec.parentRefs[0]: parentRef must be a Service (group "", kind Service) or a Gateway (group gateway.networking.k8s.io), got networking.istio.io/ServiceEntry`,
    ]);
    const none = routeDoc("  - {}\n").replace('  parentRefs:\n  - {group: "", kind: Service, name: reviews}\n', "");
    expect(problems(none).details).toEqual([`${D}: spec.parentRefs: required: the Service (group "", kind Service) this route attaches to`]);
  });

  test("every problem of every document is collected, each naming its document", () => {
    const text = `${routeDoc("  - matches:\n    - method: FETCH\n    backendRefs: [{name: a}]\n")}---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: HTTPRoute
metadata: {name: other}
spec:
  parentRefs: [{group: "", kind: Service, name: other}]
  rules: [{}]
---
kind: HTTPRoute
apiVersion: gateway.networking.k8s.io/v1
metadata: {name: reviews}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  extra: true
`;
    expect(problems(text).details).toEqual([
      `${D}: spec.rules[0].matches[0].method: expected one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH, got "FETCH"`,
      `${D}: spec.rules[0].backendRefs[0].port: required for a Service backend`,
      `routes.yaml: document 2 (other): apiVersion: expected one of gateway.networking.k8s.io/v1, gateway.networking.k8s.io/v1beta1, got "gateway.networking.k8s.io/v1alpha2"`,
      `routes.yaml: document 3 (reviews): spec.extra: unknown field (expected one of parentRefs, hostnames, rules)`,
    ]);
  });

  test("a duplicate route in one file", () => {
    const doc = routeDoc("  - {}\n");
    expect(problems(`${doc}---\n${doc}`).details).toEqual([
      "routes.yaml: document 2 (reviews): duplicate HTTPRoute default/reviews (also defined by routes.yaml: document 1 (reviews))",
    ]);
  });

  test("a document without kind is an error, an unnamed route is labelled by index", () => {
    expect(problems("apiVersion: v1\nmetadata: {name: x}\n").details[0]).toBe("routes.yaml: document 1 (x): kind: required (a Kubernetes object with kind HTTPRoute)");
    const unnamed = routeDoc("  - {}\n").replace("  name: reviews\n", "  labels: {a: b}\n");
    expect(problems(unnamed).details).toEqual(["routes.yaml: document 1: metadata.name: required"]);
  });

  test("YAML syntax errors are CONFIG_PARSE with line and column", () => {
    const p = problems(`${routeDoc("  - {}\n")}---\nkind: HTTPRoute\nspec: [unclosed\n`);
    expect(p.code).toBe(ErrorCodes.CONFIG_PARSE);
    expect(p.details[0]).toMatch(/^routes\.yaml: document 2: line \d+, column \d+: /);
  });

  test("duplicate YAML keys are syntax errors", () => {
    const p = problems("kind: HTTPRoute\nkind: HTTPRoute\n");
    expect(p.code).toBe(ErrorCodes.CONFIG_PARSE);
    expect(p.details[0]).toMatch(/^routes\.yaml: document 1: line 2, column 1: /);
  });

  test("size bounds: rules per route, matches per rule, rules per file", () => {
    const rules = "  - {}\n".repeat(ROUTE_LIMITS.rulesPerRoute + 1);
    expect(problems(routeDoc(rules)).details).toEqual([`${D}: spec.rules: at most 16 entries are allowed, got 17`]);
    const matches = `  - matches:\n${"    - {}\n".repeat(65)}`;
    expect(problems(routeDoc(matches)).details).toEqual([`${D}: spec.rules[0].matches: at most 64 entries are allowed, got 65`]);
    const docs: string[] = [];
    for (let i = 0; i < 65; i++) docs.push(routeDoc("  - {}\n".repeat(16)).replace("name: reviews\nspec", `name: r${i}\nspec`));
    const p = problems(docs.join("---\n"));
    expect(p.details).toEqual(["routes.yaml: document 65 (r64): spec.rules: the file has more than 1024 rules in total; split it"]);
  });
});

describe("parseGatewayDuration", () => {
  test.each([
    ["0s", 0],
    ["10s", 10_000],
    ["500ms", 500],
    ["1h30m", 5_400_000],
    ["1m1ms", 60_001],
    ["2h0m0s1ms", 7_200_001],
  ] as const)("%s", (s, ms) => expect(parseGatewayDuration(s)).toBe(ms));
  test.each(["", "1", "1.5s", "1d", "-1s", "123456s", "1s1s1s1s1s"])("rejects %p", (s) => expect(parseGatewayDuration(s)).toBeUndefined());
});
