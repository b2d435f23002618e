// The ztunnel role: per-workload HBONE and SOCKS5 listeners in loopback mode, outbound routing,
// inbound validation, telemetry, drain.
export { Ztunnel, VERSION, type ZtunnelOptions } from "./ztunnel.ts";
export { decideOutbound, resolveMeshHostname, routeToService, pickWeighted, ILLEGAL_PORTS, HBONE_PORT, type OutboundRoute } from "./route.ts";
export { isFromWaypoint, isWaypointReplica, pickWaypointReplica, serviceWaypoint, waypointReplicas, waypointsGuarding, type WaypointHop } from "./waypoints.ts";
export { Socks5Handshake, socksReply, type SocksTarget, type SocksStep } from "./socks5.ts";
export { SOCKS5_PORT, type WorkloadPorts } from "./workload-proxy.ts";
export { InpodManager, InpodProxy, addPod, removePod, podRequest, DEFAULT_POD_SOCKET, installRedirectRules, removeRedirectRules, redirectRulesInstalled, redirectRules, INPOD_PORTS, ZTUNNEL_MARK } from "./inpod/index.ts";
