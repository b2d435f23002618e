// The immutable route model: Gateway API HTTPRoute (gateway.networking.k8s.io/v1) as the waypoint
// uses it. Defaults from the CRD are already applied, durations are milliseconds, regexes are
// compiled, so the request path never re-validates anything.

export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** Path match. RegularExpression matches the whole path (Envoy safe_regex semantics, as Istio). */
export type PathMatch =
  | { readonly type: "Exact" | "PathPrefix"; readonly value: string }
  | { readonly type: "RegularExpression"; readonly value: string; readonly regex: RegExp };

/** Header or query parameter match; a regex matches the whole value. */
export type ValueMatch =
  | { readonly type: "Exact"; readonly name: string; readonly value: string }
  | { readonly type: "RegularExpression"; readonly name: string; readonly value: string; readonly regex: RegExp };

export interface RouteMatch {
  readonly path: PathMatch;
  /** Header names are lower-cased at load (they match case-insensitively). */
  readonly headers: readonly ValueMatch[];
  /** Query parameter names match case-sensitively. */
  readonly queryParams: readonly ValueMatch[];
  readonly method?: HttpMethod;
}

export interface HeaderValue {
  readonly name: string;
  readonly value: string;
}

/** Header edits in Envoy's order: remove, then set (overwrite), then add (append). */
export interface HeaderModifier {
  readonly set: readonly HeaderValue[];
  readonly add: readonly HeaderValue[];
  readonly remove: readonly string[];
}

export type PathModifier =
  | { readonly type: "ReplaceFullPath"; readonly replaceFullPath: string }
  | { readonly type: "ReplacePrefixMatch"; readonly replacePrefixMatch: string };

export interface ServiceRef {
  readonly name: string;
  readonly namespace: string;
  readonly port: number;
}

export type RouteFilter =
  | { readonly type: "RequestHeaderModifier"; readonly requestHeaderModifier: HeaderModifier }
  | { readonly type: "ResponseHeaderModifier"; readonly responseHeaderModifier: HeaderModifier }
  | { readonly type: "URLRewrite"; readonly urlRewrite: { readonly hostname?: string; readonly path?: PathModifier } }
  | {
      readonly type: "RequestRedirect";
      readonly requestRedirect: {
        readonly scheme?: "http" | "https";
        readonly hostname?: string;
        readonly path?: PathModifier;
        readonly port?: number;
        readonly statusCode: 301 | 302;
      };
    }
  /** `percent` is 0..100 (a `fraction` is converted); the caller samples. */
  | { readonly type: "RequestMirror"; readonly requestMirror: { readonly backendRef: ServiceRef; readonly percent: number } };

export type RouteFilterType = RouteFilter["type"];

export interface BackendRef extends ServiceRef {
  /** 0 never chosen; default 1. */
  readonly weight: number;
  /** Filters applied only when this backend is chosen (after the rule's). */
  readonly filters: readonly RouteFilter[];
}

export interface RouteTimeouts {
  /** Whole request, including retries; 0 = no timeout; absent = none configured. */
  readonly requestMs?: number;
  /** One try to a backend; 0 = no timeout. */
  readonly backendRequestMs?: number;
}

/**
 * Retry policy. With no `retry` on the rule this is Istio's default (MeshConfig
 * defaultHttpRetryPolicy): 2 retries on connect-failure, refused-stream, unavailable, cancelled.
 */
export interface RetryPolicy {
  /** Retries after the first try (0 disables). */
  readonly attempts: number;
  readonly retryOn: readonly string[];
  /** HTTP status codes that are retried (`retriable-status-codes`). */
  readonly codes: readonly number[];
  readonly backoffMs?: number;
  /** True when the rule said nothing and Istio's default applies. */
  readonly isDefault: boolean;
}

export interface RouteRule {
  readonly name?: string;
  /** Never empty: no matches means one PathPrefix "/" match (the CRD default). */
  readonly matches: readonly RouteMatch[];
  readonly filters: readonly RouteFilter[];
  /** Empty: nothing to forward to; unless a redirect answers, the caller answers 500 (spec). */
  readonly backendRefs: readonly BackendRef[];
  readonly timeouts: RouteTimeouts;
  readonly retry: RetryPolicy;
}

export interface ParentRef {
  /** "" for the core group (Service); "gateway.networking.k8s.io" for a Gateway. */
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
  readonly port?: number;
  readonly sectionName?: string;
  /** True for the mesh (GAMMA) form: a Service parent. A Gateway parent is not for the mesh. */
  readonly mesh: boolean;
}

export interface HttpRoute {
  readonly name: string;
  readonly namespace: string;
  /** `namespace/name` */
  readonly key: string;
  /** metadata.creationTimestamp in ms since the epoch, when given (it orders ties). */
  readonly creationTimestamp?: number;
  /** Lower-case; may start with "*." */
  readonly hostnames: readonly string[];
  readonly parentRefs: readonly ParentRef[];
  readonly rules: readonly RouteRule[];
  /** "file: document N (name)", for messages. */
  readonly source: string;
}
