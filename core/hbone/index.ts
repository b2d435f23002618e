// HBONE: HTTP/2 CONNECT inside mutual TLS, wire-compatible with istio/ztunnel. This folder knows
// nothing of workloads or policy; roles supply identities, a peer verifier and a tunnel handler.
export { HboneListener, type InboundTunnel, type HboneListenerOptions, type PeerIdentity, type PeerVerifier, type HboneLog } from "./server.ts";
export { HbonePool, type PoolKey, type OutboundTunnel, type OutboundTunnelRequest } from "./pool.ts";
export { parseAuthority, formatAuthority, type HboneTarget } from "./authority.ts";
export { formatBaggage, parseBaggage, formatForwarded, forwardedHost, forwardedFor, newTraceparent, SOURCE_PRINCIPAL_HEADER, type BaggageFields } from "./headers.ts";
export { DEFAULT_TUNING, serverSettings, clientSettings, hboneTuningFrom, type HboneTuning } from "./settings.ts";
