// The DNS proxy: mesh service names answered from the current state, everything else forwarded
// to the node's resolvers.
export { DnsProxy, splitTcpMessages, frameTcpMessage, MAX_DNS_MESSAGE, type MeshAnswer, type MeshLookup, type DnsLog, type DnsProxyOptions } from "./proxy.ts";
export { serveDns, DNS_PROXY_PORT, type DnsListeners } from "./server.ts";
export { parseResolvConf, readResolvConf, type ResolverConfig } from "./resolv.ts";
