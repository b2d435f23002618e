// Captured mode (in-pod redirection): pods handed over on a unix socket, their traffic redirected
// inside their own network namespace to listeners the ztunnel opens there.
export { InpodManager, type InpodManagerOptions } from "./manager.ts";
export { InpodProxy, type InpodListeners } from "./proxy.ts";
export { addPod, removePod } from "./handoff.ts";
export { podRequest, DEFAULT_POD_SOCKET, type PodRequest, type PodResponse } from "./protocol.ts";
export { installRedirectRules, removeRedirectRules, redirectRulesInstalled, redirectRules, INPOD_PORTS, ZTUNNEL_MARK } from "./rules.ts";
export { meshDnsLookup } from "./dns.ts";
export type { PodDialer } from "./dialer.ts";
