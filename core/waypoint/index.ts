// The waypoint role: an L7 proxy on HBONE. HTTP/1.1 inside each tunnel is authorized (L7
// AuthorizationPolicy), routed (Gateway API HTTPRoutes attached to services) and forwarded by
// HBONE, as the waypoint's own identity, to an endpoint of the chosen service.
export { Waypoint, WAYPOINT_VERSION, type WaypointOptions } from "./waypoint.ts";
export { pickEndpoint, RBAC_DENIED_BODY } from "./proxy.ts";
