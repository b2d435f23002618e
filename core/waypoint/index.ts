// The waypoint role: an L7 proxy on HBONE. Each tunnel is checked (a destination this waypoint
// serves; the caller's verified identity), its protocol detected (HTTP/1.x, HTTP/2, else TCP), and
// each request authorized (L7 AuthorizationPolicy), routed (Gateway API HTTPRoutes), and sent by
// HBONE, as the waypoint's own identity, to an endpoint chosen by least request.
export { Waypoint, WAYPOINT_VERSION, type WaypointOptions } from "./waypoint.ts";
export { EndpointBalancer, serviceEndpoints, DEFAULT_EJECTION, type Endpoint, type EjectionPolicy } from "./endpoints.ts";
export { DEFAULT_L7_LIMITS, type L7Limits } from "./limits.ts";
export type { RequestHooks, RequestPlugins, RequestCompletion, PluginOutcome, HookRequest, LocalReply, RequestOrigin, MeshHttpCall, MeshStreamCall, WaypointPlugins, WaypointPluginsContext } from "./plugin-api.ts";
export { PluginReplyError } from "./plugin-api.ts";
export { BufferedBody, headerValue, type HeaderPairs, type BodySource, type BodySink } from "./exchange.ts";
