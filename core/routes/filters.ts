// HTTPRoute filters as pure functions: they say what to change, the proxy changes it. Filters apply
// in list order; a chosen backend's own filters come after the rule's (pass both lists).

import type { HeaderModifier, PathModifier, RouteFilter, RouteMatch, RouteRule, ServiceRef } from "./model.ts";
import { hostWithoutPort, pathPrefixMatches } from "./table.ts";

/** One header edit; apply in order (Envoy's order within a modifier: remove, set, add). */
export type HeaderOp =
  | { readonly op: "remove"; readonly name: string }
  | { readonly op: "set"; readonly name: string; readonly value: string }
  | { readonly op: "add"; readonly name: string; readonly value: string };

export interface Redirect {
  readonly statusCode: 301 | 302;
  readonly location: string;
}

export interface MirrorTarget {
  readonly backendRef: ServiceRef;
  /** 0..100: the share of requests to copy; the caller samples. */
  readonly percent: number;
}

export interface FilterRequest {
  /** Origin-form target: path and query. */
  readonly path: string;
  /** `:authority` / Host as received (port allowed). */
  readonly host: string;
  /** Scheme the client used; default "http" (a waypoint receives plain HTTP inside the tunnel). */
  readonly scheme?: "http" | "https";
  /** Port the request was addressed to (the service port): a redirect without scheme keeps it. */
  readonly port?: number;
}

export interface RequestFilterResult {
  readonly headers: readonly HeaderOp[];
  /** Path and query to send upstream. */
  readonly path: string;
  /** `:authority` to send upstream. */
  readonly host: string;
  /** When set, answer the client with this instead of forwarding. */
  readonly redirect?: Redirect;
  readonly mirrors: readonly MirrorTarget[];
}

/** Target of header edits: Fetch `Headers` fits. */
export interface EditableHeaders {
  set(name: string, value: string): void;
  append(name: string, value: string): void;
  delete(name: string): void;
}

function filtersOf(f: readonly RouteFilter[] | RouteRule): readonly RouteFilter[] {
  return Array.isArray(f) ? (f as readonly RouteFilter[]) : (f as RouteRule).filters;
}

function headerOps(m: HeaderModifier): HeaderOp[] {
  return [
    ...m.remove.map((name) => ({ op: "remove" as const, name })),
    ...m.set.map((h) => ({ op: "set" as const, name: h.name, value: h.value })),
    ...m.add.map((h) => ({ op: "add" as const, name: h.name, value: h.value })),
  ];
}

function splitTarget(target: string): [string, string] {
  const q = target.indexOf("?");
  return q < 0 ? [target, ""] : [target.slice(0, q), target.slice(q)];
}

/**
 * ReplacePrefixMatch (Gateway API HTTPPathModifier): the matched prefix, compared on segment
 * boundaries with its trailing "/" ignored, is replaced; "/foo/bar" with prefix "/foo" and
 * replacement "/xyz" is "/xyz/bar", with "" or "/" it is "/bar"; an empty result is "/".
 */
export function replacePrefix(path: string, prefix: string, replacement: string): string {
  if (!pathPrefixMatches(prefix, path)) return path;
  const p = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  const r = replacement.endsWith("/") ? replacement.slice(0, -1) : replacement;
  const rest = path.slice(p.length);
  const out = r + rest;
  return out === "" ? "/" : out.startsWith("/") ? out : `/${out}`;
}

/** New path (query kept) for a path modifier; ReplacePrefixMatch needs the PathPrefix that matched. */
export function modifyPath(target: string, modifier: PathModifier, match: RouteMatch | undefined): string {
  const [path, query] = splitTarget(target);
  if (modifier.type === "ReplaceFullPath") return modifier.replaceFullPath + query;
  if (match?.path.type !== "PathPrefix") return target;
  return replacePrefix(path, match.path.value, modifier.replacePrefixMatch) + query;
}

function defaultPort(scheme: string): number {
  return scheme === "https" ? 443 : 80;
}

function portOfHost(host: string): number | undefined {
  const h = host.trim();
  const close = h.lastIndexOf("]");
  const colon = h.lastIndexOf(":");
  // "[::1]:8080" or "name:8080"; a bare IPv6 literal has no port.
  if (colon < 0 || (h.startsWith("[") ? colon < close : h.indexOf(":") !== colon)) return undefined;
  const digits = h.slice(colon + 1);
  if (!/^\d{1,5}$/.test(digits)) return undefined;
  const n = Number(digits);
  return n >= 1 && n <= 65535 ? n : undefined;
}

function redirectFor(f: Extract<RouteFilter, { type: "RequestRedirect" }>["requestRedirect"], req: FilterRequest, match: RouteMatch | undefined): Redirect {
  const scheme = f.scheme ?? req.scheme ?? "http";
  const hostname = f.hostname ?? hostWithoutPort(req.host);
  // Spec: no port given -> the scheme's well-known port when a scheme is given, else the port the
  // request came in on; the well-known port is left out of Location.
  const port = f.port ?? (f.scheme !== undefined ? defaultPort(scheme) : (req.port ?? portOfHost(req.host) ?? defaultPort(scheme)));
  const path = f.path ? modifyPath(req.path, f.path, match) : req.path;
  const authority = hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname;
  const portPart = port === defaultPort(scheme) ? "" : `:${port}`;
  return { statusCode: f.statusCode, location: `${scheme}://${authority}${portPart}${path}` };
}

/**
 * What the request filters change. `match` is the match that selected the rule (needed for
 * ReplacePrefixMatch). A RequestHeaderModifier that sets or adds `host` changes the authority.
 */
export function applyRequestFilters(filters: readonly RouteFilter[] | RouteRule, req: FilterRequest, match?: RouteMatch): RequestFilterResult {
  const headers: HeaderOp[] = [];
  const mirrors: MirrorTarget[] = [];
  let path = req.path;
  let host = req.host;
  let redirect: Redirect | undefined;
  for (const f of filtersOf(filters)) {
    switch (f.type) {
      case "RequestHeaderModifier":
        for (const op of headerOps(f.requestHeaderModifier)) {
          if (op.name === "host" && op.op !== "remove") host = op.value;
          else headers.push(op);
        }
        break;
      case "URLRewrite":
        if (f.urlRewrite.hostname !== undefined) host = f.urlRewrite.hostname;
        if (f.urlRewrite.path) path = modifyPath(req.path, f.urlRewrite.path, match);
        break;
      case "RequestRedirect":
        redirect = redirectFor(f.requestRedirect, req, match);
        break;
      case "RequestMirror":
        mirrors.push({ backendRef: f.requestMirror.backendRef, percent: f.requestMirror.percent });
        break;
      case "ResponseHeaderModifier":
        break;
    }
  }
  return { headers, path, host, ...(redirect ? { redirect } : {}), mirrors };
}

/** Header edits of the ResponseHeaderModifier filters, in order. */
export function applyResponseFilters(filters: readonly RouteFilter[] | RouteRule): HeaderOp[] {
  const out: HeaderOp[] = [];
  for (const f of filtersOf(filters)) if (f.type === "ResponseHeaderModifier") out.push(...headerOps(f.responseHeaderModifier));
  return out;
}

/** Applies header edits to a Headers-like object, in order. */
export function applyHeaderEdits(target: EditableHeaders, ops: readonly HeaderOp[]): void {
  for (const op of ops) {
    if (op.op === "remove") target.delete(op.name);
    else if (op.op === "set") target.set(op.name, op.value);
    else target.append(op.name, op.value);
  }
}
