// Route selection: which HTTPRoutes attach to a service, and which rule a request takes, with the
// Gateway API precedence. Istio ranks path types Exact > PathPrefix > RegularExpression (the spec
// leaves regex precedence to implementations; istio/istio pilot/pkg/config/kube/gateway
// conversion.go `getURIRank`), then the longer value, then method, header count, query count,
// then the oldest route, then `namespace/name`, then rule and match order.

import type { HttpMethod, HttpRoute, ParentRef, PathMatch, RouteMatch, RouteRule, ValueMatch } from "./model.ts";

/** The service a request is addressed to (what the waypoint resolved from `:authority`). */
export interface RouteService {
  readonly namespace: string;
  readonly name: string;
  readonly hostname: string;
}

/** Anything with a case-insensitive `get` (Fetch `Headers`), or a Map keyed by lower-case names. */
export interface HeaderLookup {
  get(name: string): string | null | undefined;
}

export interface RouteRequest {
  readonly method: string;
  /** The request target in origin form: path and query (`/a/b?x=1`). */
  readonly path: string;
  /** `:authority` / Host, port allowed. */
  readonly host: string;
  readonly headers: HeaderLookup;
}

export interface RouteSelection {
  readonly route: HttpRoute;
  readonly ruleIndex: number;
  readonly rule: RouteRule;
  /** The match that selected the rule (URLRewrite ReplacePrefixMatch needs it). */
  readonly match: RouteMatch;
}

interface Candidate {
  readonly route: HttpRoute;
  readonly ruleIndex: number;
  readonly rule: RouteRule;
  readonly match: RouteMatch;
  readonly matchIndex: number;
}

const PATH_RANK: Readonly<Record<PathMatch["type"], number>> = { Exact: 3, PathPrefix: 2, RegularExpression: 1 };
/** Bound on cached (service, port) candidate lists; the table is rebuilt with the config anyway. */
const MAX_CACHED = 4096;

function compareCandidates(a: Candidate, b: Candidate): number {
  const ma = a.match;
  const mb = b.match;
  return (
    PATH_RANK[mb.path.type] - PATH_RANK[ma.path.type] ||
    mb.path.value.length - ma.path.value.length ||
    Number(mb.method !== undefined) - Number(ma.method !== undefined) ||
    mb.headers.length - ma.headers.length ||
    mb.queryParams.length - ma.queryParams.length ||
    compareRoutes(a.route, b.route) ||
    a.ruleIndex - b.ruleIndex ||
    a.matchIndex - b.matchIndex
  );
}

/** Oldest first; a route without a creation timestamp counts as newest (it was never created). */
function compareRoutes(a: HttpRoute, b: HttpRoute): number {
  const ta = a.creationTimestamp ?? Number.POSITIVE_INFINITY;
  const tb = b.creationTimestamp ?? Number.POSITIVE_INFINITY;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * Service parentRefs in the route's own namespace attach it (a "producer" route). A route in
 * another namespace is a "consumer" route: it applies to that namespace's clients only, which a
 * waypoint (destination side) does not apply, as in Istio.
 */
function attaching(route: HttpRoute, service: RouteService): ParentRef[] {
  return route.parentRefs.filter((r) => r.mesh && r.name === service.name && r.namespace === service.namespace && route.namespace === service.namespace);
}

/** Host without port or trailing dot, lower-case. */
export function hostWithoutPort(host: string): string {
  let h = host.trim();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    h = end > 0 ? h.slice(0, end + 1) : h;
  } else {
    const colon = h.lastIndexOf(":");
    if (colon >= 0 && h.indexOf(":") === colon) h = h.slice(0, colon);
  }
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h.toLowerCase();
}

/**
 * How specifically one of `hostnames` matches `host`: [exact characters, wildcard characters];
 * undefined = no match. No hostnames matches every host with the lowest rank. A wildcard
 * `*.example.com` matches one or more labels in front of `example.com`, never `example.com` itself.
 */
export function hostnameRank(hostnames: readonly string[], host: string): readonly [number, number] | undefined {
  if (hostnames.length === 0) return [0, 0];
  let best: [number, number] | undefined;
  for (const h of hostnames) {
    let rank: [number, number] | undefined;
    if (h.startsWith("*.")) {
      const suffix = h.slice(1);
      if (host.length > suffix.length && host.endsWith(suffix)) rank = [0, h.length];
    } else if (h === host) {
      rank = [h.length, 0];
    }
    if (rank && (!best || rank[0] > best[0] || (rank[0] === best[0] && rank[1] > best[1]))) best = rank;
  }
  return best;
}

/** Whether `path` is under `prefix` on a segment boundary; a trailing "/" in the prefix is ignored. */
export function pathPrefixMatches(prefix: string, path: string): boolean {
  const p = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  if (p === "") return true;
  return path === p || (path.startsWith(p) && path.charCodeAt(p.length) === 0x2f);
}

function pathMatches(m: PathMatch, path: string): boolean {
  switch (m.type) {
    case "Exact":
      return path === m.value;
    case "PathPrefix":
      return pathPrefixMatches(m.value, path);
    case "RegularExpression":
      return m.regex.test(path);
  }
}

function valueMatches(m: ValueMatch, value: string | null | undefined): boolean {
  if (value === null || value === undefined) return false;
  return m.type === "Exact" ? value === m.value : m.regex.test(value);
}

/** Query parameters by name, first value wins (the spec leaves repeats to the implementation). */
export function parseQuery(query: string): Map<string, string> {
  const out = new Map<string, string>();
  if (query === "") return out;
  for (const [k, v] of new URLSearchParams(query)) if (!out.has(k)) out.set(k, v);
  return out;
}

function splitTarget(target: string): [string, string] {
  const q = target.indexOf("?");
  const noFragment = (s: string): string => {
    const h = s.indexOf("#");
    return h < 0 ? s : s.slice(0, h);
  };
  return q < 0 ? [noFragment(target), ""] : [target.slice(0, q), noFragment(target.slice(q + 1))];
}

/** Whether one match accepts the request (all its conditions hold). */
export function requestMatches(m: RouteMatch, method: string, path: string, query: () => Map<string, string>, headers: HeaderLookup): boolean {
  // Methods are case-sensitive (RFC 9110 §9.1), as Envoy matches `:method`.
  if (m.method !== undefined && m.method !== (method as HttpMethod)) return false;
  if (!pathMatches(m.path, path)) return false;
  for (const h of m.headers) if (!valueMatches(h, headers.get(h.name))) return false;
  if (m.queryParams.length > 0) {
    const q = query();
    for (const qp of m.queryParams) if (!valueMatches(qp, q.get(qp.name))) return false;
  }
  return true;
}

/** An immutable index of HTTPRoutes; build a new one when the routes change. */
export class RouteTable {
  readonly routes: readonly HttpRoute[];
  private readonly byService = new Map<string, HttpRoute[]>();
  private readonly cache = new Map<string, readonly Candidate[]>();

  constructor(routes: readonly HttpRoute[]) {
    this.routes = Object.freeze([...routes].sort(compareRoutes));
    for (const r of this.routes) {
      for (const ref of r.parentRefs) {
        if (!ref.mesh || ref.namespace !== r.namespace) continue;
        const key = `${ref.namespace}/${ref.name}`;
        const list = this.byService.get(key) ?? [];
        if (!list.includes(r)) list.push(r);
        this.byService.set(key, list);
      }
    }
  }

  /** Routes attached to the service on `port` (a parentRef without port attaches every port), oldest first. */
  routesFor(service: RouteService, port: number): HttpRoute[] {
    const routes = this.byService.get(`${service.namespace}/${service.name}`) ?? [];
    return routes.filter((r) => attaching(r, service).some((ref) => ref.port === undefined || ref.port === port));
  }

  /**
   * The rule a request takes, or undefined when no route attaches to the service or none matches
   * (the caller then forwards to the original service, as Istio does with no route).
   */
  match(req: RouteRequest, service: RouteService, port: number): RouteSelection | undefined {
    const candidates = this.candidates(service, port);
    if (candidates.length === 0) return undefined;
    const [path, rawQuery] = splitTarget(req.path);
    let query: Map<string, string> | undefined;
    const lazyQuery = (): Map<string, string> => (query ??= parseQuery(rawQuery));
    const host = hostWithoutPort(req.host);
    // Hostname specificity comes first (spec: HTTPRouteSpec.hostnames), then the match order.
    let best: Candidate | undefined;
    let bestRank: readonly [number, number] | undefined;
    for (const c of candidates) {
      const rank = hostnameRank(c.route.hostnames, host);
      if (!rank) continue;
      if (bestRank && (rank[0] < bestRank[0] || (rank[0] === bestRank[0] && rank[1] <= bestRank[1]))) continue;
      if (!requestMatches(c.match, req.method, path, lazyQuery, req.headers)) continue;
      best = c;
      bestRank = rank;
    }
    if (!best) return undefined;
    return { route: best.route, ruleIndex: best.ruleIndex, rule: best.rule, match: best.match };
  }

  private candidates(service: RouteService, port: number): readonly Candidate[] {
    const key = `${service.namespace}/${service.name}:${port}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    const out: Candidate[] = [];
    for (const route of this.routesFor(service, port)) {
      route.rules.forEach((rule, ruleIndex) => {
        rule.matches.forEach((match, matchIndex) => {
          out.push({ route, ruleIndex, rule, match, matchIndex });
        });
      });
    }
    out.sort(compareCandidates);
    // Only services with routes are cached, so the cache is bounded by the configuration.
    if (out.length > 0 && this.cache.size < MAX_CACHED) this.cache.set(key, Object.freeze(out));
    return out;
  }
}
