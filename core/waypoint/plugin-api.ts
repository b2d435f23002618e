// What the request pipeline shares with the tunnel layer and with the plugin chain (plugins/):
// where a request came from, and the plugin interface in Istio's filter order.
import type { Service, Workload } from "../config/index.ts";
import type { Logger } from "../telemetry/index.ts";
import type { BodySource, HeaderPairs } from "./exchange.ts";

/** Where a tunnel was addressed and who is calling, as the waypoint established it. */
export interface RequestOrigin {
  /** the tunnel's target: service VIP or workload IP (or a hostname for headless services) */
  readonly targetIp: string;
  readonly targetPort: number;
  readonly service?: Service;
  readonly workload?: Workload;
  /** verified caller: the HBONE peer, or the source its destination's ztunnel vouched for */
  readonly principal: string;
  readonly sourceIp: string;
  readonly sourcePort: number;
  /** the source workload, only when its identity is the principal */
  readonly source?: Workload;
}

/** The plugin chain (plugins/) as the pipeline sees it: what applies to a request, and its run. */
export interface RequestHooks {
  /** The plugins for this request, or undefined when none applies. `routeKey`: the HTTPRoute it matches, if any. */
  forRequest(origin: RequestOrigin, routeKey: string | undefined): RequestPlugins | undefined;
}

export type PluginOutcome =
  | { readonly kind: "forward"; readonly body: BodySource; /** a response status a plugin changed */ readonly status?: number }
  | { readonly kind: "local"; readonly reply: LocalReply }
  | { readonly kind: "reset" };

/** What a plugin's `proxy_http_call` does: a request to a mesh service `host:port`, headers with pseudo-headers. */
/** A plugin's callout to a mesh service; `kind` "grpc" is a unary gRPC call and goes over HTTP/2. */
export type MeshHttpCall = (
  upstream: string,
  headers: readonly (readonly [string, string])[],
  body: Uint8Array,
  trailers: readonly (readonly [string, string])[],
  timeoutMs: number,
  kind: "http" | "grpc",
) => Promise<{ readonly headers: readonly (readonly [string, string])[]; readonly body?: Uint8Array; readonly trailers?: readonly (readonly [string, string])[] } | { readonly failure: string }>;

/** A plugin's streaming callout (a gRPC stream): an HTTP/2 request written and answered as it goes. */
export type MeshStreamCall = (
  upstream: string,
  headers: readonly (readonly [string, string])[],
  events: {
    headers(headers: [string, string][]): void;
    data(chunk: Uint8Array): void;
    end(trailers: [string, string][] | undefined): void;
    error(reason: string): void;
  },
) => { write(chunk: Uint8Array, end: boolean): void; end(): void; cancel(): void };

/** What the waypoint gives the plugin chain when it starts. */
export interface WaypointPluginsContext {
  readonly configPath: string;
  /** files that may hold WasmPlugin documents (the route files) */
  readonly documentFiles: readonly string[];
  readonly httpCall: MeshHttpCall;
  /** gRPC streams; without it a plugin's stream closes at once with UNAVAILABLE */
  readonly streamCall?: MeshStreamCall;
  /** the waypoint's own service names (Gateway targets) and namespace */
  readonly gateways: () => readonly string[];
  readonly namespace: string;
  readonly nodeId: string;
  readonly log: Logger;
  /** the waypoint's log level: plugin log lines below it are dropped in the VM */
  readonly logLevel: "debug" | "info" | "warn" | "error";
  /** where the plugin VM worker's entry is (compiled binaries) */
  readonly workerUrl?: string;
}

/** The plugin chain as the waypoint runs it (implemented in plugins/, given by the command line layer). */
export interface WaypointPlugins extends RequestHooks {
  start(ctx: WaypointPluginsContext): Promise<void>;
  metricsText(): string;
  describe(): unknown;
  stop(): Promise<void>;
}

/**
 * One request through the plugins, in Istio's order: AUTHN plugins, AUTHZ plugins, then
 * `authorize` (the built-in AuthorizationPolicy check), then STATS and unspecified-phase plugins.
 * Plugins edit `req` (path, authority, headers) in place; the body that reaches the upstream is
 * the one they release. A plugin answering locally while the body streams makes that body fail
 * with a PluginReplyError.
 */
export interface RequestPlugins {
  /** A value when every plugin answered at once (VMs on this thread), else a promise. */
  request(req: HookRequest, body: BodySource, authorize: () => LocalReply | undefined): PluginOutcome | Promise<PluginOutcome>;
  /** The response through the plugins in reverse order; `headers` edited in place. */
  response(status: number, headers: HeaderPairs, body: BodySource): PluginOutcome | Promise<PluginOutcome>;
  /** The request is over: what the access log says of it. */
  done(completion: RequestCompletion): void;
}

/** A finished request as plugins see it at `on_log` (Envoy's attributes known only at the end). */
export interface RequestCompletion {
  /** Envoy's response code details (`via_upstream`, `upstream_reset_before_response_started`, ...). */
  readonly details: string;
  /** The access log's response flags (`-`, `UF`, `UF,URX`). */
  readonly flags: string;
  /** The endpoint that answered, and its verified identity when it was reached by HBONE. */
  readonly upstream?: { readonly address: string; readonly port: number; readonly principal?: string };
  /** The HTTPRoute rule that routed it (`namespace/name.rule`). */
  readonly routeName?: string;
  /** Istio's name for the waypoint's cluster of the service (`inbound-vip|80|http|<hostname>`). */
  readonly clusterName?: string;
}

/** A body failed because a plugin answered the request locally instead. */
export class PluginReplyError extends Error {
  constructor(readonly reply: LocalReply) {
    super(`a plugin answered ${reply.status}`);
  }
}

export interface HookRequest {
  readonly origin: RequestOrigin;
  method: string;
  path: string;
  authority: string;
  readonly headers: HeaderPairs;
  readonly protocol: string;
}

export interface LocalReply {
  readonly status: number;
  readonly body: string;
  readonly headers?: HeaderPairs;
  readonly details?: string;
}

