// core/routes: Gateway API HTTPRoute for the waypoint — loading (strictly validated), attachment
// to services (the mesh/GAMMA form: parentRefs naming a Service), request matching with the spec's
// precedence, weighted backend choice and the filters as pure edits. No I/O here.

export type {
  BackendRef,
  HeaderModifier,
  HeaderValue,
  HttpMethod,
  HttpRoute,
  ParentRef,
  PathMatch,
  PathModifier,
  RetryPolicy,
  RouteFilter,
  RouteFilterType,
  RouteMatch,
  RouteRule,
  RouteTimeouts,
  ServiceRef,
  ValueMatch,
} from "./model.ts";
export { HTTP_METHODS } from "./model.ts";
export { parseHttpRoutes, parseGatewayDuration, ISTIO_DEFAULT_RETRY, ROUTE_LIMITS, type RouteParseOptions } from "./parse.ts";
export {
  RouteTable,
  hostnameRank,
  pathPrefixMatches,
  type HeaderLookup,
  type RouteRequest,
  type RouteSelection,
  type RouteService,
} from "./table.ts";
export { pickBackend } from "./backend.ts";
export { parseDestinationRules, type DestinationRule } from "./destination-rule.ts";
export {
  applyHeaderEdits,
  applyRequestFilters,
  applyResponseFilters,
  replacePrefix,
  type EditableHeaders,
  type FilterRequest,
  type HeaderOp,
  type MirrorTarget,
  type Redirect,
  type RequestFilterResult,
} from "./filters.ts";
