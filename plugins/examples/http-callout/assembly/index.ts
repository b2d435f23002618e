// @ts-nocheck — AssemblyScript 0.14 source (compiled by asc, not by tsc).
//
// # http-callout — example Proxy-Wasm filter (external authorization by HTTP callout)
//
// For every request, asks an authorization service in the mesh before letting the request go on:
//   1. `proxy_on_request_headers`: `proxy_http_call` to the configured service, then pause the
//      request (StopIteration; body and trailers are held too while the callout is pending).
//   2. `proxy_on_http_call_response` (delivered to the root context; the SDK switches to the
//      waiting stream with `proxy_set_effective_context`):
//      - callout answered `:status` 200 → copy the callout response's `x-auth-user` header (name
//        configurable) into the upstream request, then `proxy_continue_stream(HTTP_REQUEST)`;
//      - anything else (non-200, callout failed or timed out = zero headers) → local 403.
//   A client-supplied copy of the identity header is never passed through: on 200 it is replaced
//   by the callout's value, or removed when the callout did not send one.
// The 0.1.8 SDK already has `RootContext.httpCall` and routes `proxy_on_http_call_response` to it
// (switching to the origin stream first), so the callout uses it unchanged.
//
// pluginConfig (JSON object; unknown keys are refused; a configuration is REQUIRED because
// `upstream` has no sensible default — with an empty configuration `proxy_on_configure` returns
// false):
//
//   {
//     "upstream": "authz.default.svc.cluster.local:8080", // REQUIRED, see below
//     "path": "/check",                     // callout :path                    (default "/")
//     "authority": "authz.default",         // callout :authority               (default: upstream)
//     "timeout_ms": 1000,                   // callout timeout, 1..60000        (default 1000)
//     "response_header": "x-auth-user",     // header read from the callout response (default shown)
//     "request_header": "x-auth-user",      // header set on the upstream request (default: response_header)
//     "forward_headers": ["authorization"], // request headers copied into the callout (default shown)
//     "deny_status": 403,                   // status of the local reply on deny, 200..599 (default 403)
//     "deny_body": "forbidden\n"            // body of the local reply on deny  (default below)
//   }
//
// `upstream` is the first argument of `proxy_http_call`. In Envoy it is a *cluster name*; in this
// mesh's waypoint it is a mesh service address `host:port`, where host is a service hostname
// (`authz.default.svc.cluster.local`) or a service VIP (`10.96.0.20`, `[fd00::20]`). The callout
// is sent as `GET <path>` with `:authority`, `x-original-method`, `x-original-path` and the
// forwarded request headers; its body is empty.
//
// SDK use: contexts, root-id registry, header/local-response/metric/callout wrappers come from
// `@solo-io/proxy-runtime` 0.1.8. The module's ABI exports come from ../../common/assembly/proxy.ts
// instead of the SDK's `proxy` module (same routing, without the SDK's per-stream reference leak
// under AssemblyScript 0.14), and the configuration is read by ../../common/assembly (the SDK's
// onConfigure reads it through a bad pointer and traps on an empty one).
//
// Root id: `http-callout` or empty.
//
// Host functions it imports: env.proxy_log, env.proxy_get_property, env.proxy_get_buffer_bytes,
// env.proxy_set_effective_context, env.proxy_get_header_map_value, env.proxy_http_call,
// env.proxy_replace_header_map_value, env.proxy_remove_header_map_value, env.proxy_continue_stream,
// env.proxy_send_local_response, wasi_unstable.proc_exit.

// The ABI exports (malloc + proxy_on_*): the SDK's routing with its reference leaks fixed.
export * from "../../common/assembly/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, FilterDataStatusValues,
  FilterTrailersStatusValues, GrpcStatusValues, HeaderPair, Headers, LogLevelValues, WasmResultValues,
  log, send_local_response, continue_request,
} from "@solo-io/proxy-runtime";
import {
  loadJsonConfiguration, headerValue, replaceHeader, removeHeader, isHeaderName, isHeaderValue,
  REQUEST_HEADERS, HTTP_CALL_RESPONSE_HEADERS, StreamContext,
} from "../../common/assembly";

const DEFAULT_DENY_BODY = "request denied by http-callout\n";

class CalloutRoot extends RootContext {
  upstream: string = "";
  path: string = "/";
  authority: string = "";
  timeoutMs: u32 = 1000;
  responseHeader: string = "x-auth-user";
  requestHeader: string = "x-auth-user";
  forwardHeaders: Array<string> = ["authorization"];
  denyStatus: u32 = 403;
  denyBody: string = DEFAULT_DENY_BODY;
  configured: bool = false;
  shuttingDown: bool = false;

  createContext(context_id: u32): Context {
    return new Callout(context_id, this);
  }

  // Replaces the SDK's onConfigure (0.1.8 reads the configuration through a bad pointer).
  onConfigure(configuration_size: u32): bool {
    const c = loadJsonConfiguration(configuration_size);
    if (c === null) return false;
    const upstream = c.string("upstream", "");
    const path = c.string("path", "/");
    const authority = c.string("authority", upstream);
    const timeoutMs = c.integer("timeout_ms", 1000, 1, 60000);
    const responseHeader = c.string("response_header", "x-auth-user");
    const requestHeader = c.string("request_header", responseHeader);
    const forwardHeaders = c.stringArray("forward_headers", ["authorization"]);
    const denyStatus = c.integer("deny_status", 403, 200, 599);
    const denyBody = c.string("deny_body", DEFAULT_DENY_BODY);
    if (!c.has("upstream")) c.invalid("upstream", "is required (mesh service host:port)");
    else if (!isServiceAddress(upstream)) c.invalid("upstream", "must be host:port (hostname or VIP)");
    if (path.length == 0 || path.charCodeAt(0) != 0x2f || !isHeaderValue(path) || path.includes(" ")) {
      c.invalid("path", "must be an absolute path without spaces");
    }
    if (authority.length == 0 || !isHeaderValue(authority)) c.invalid("authority", "must be a host[:port]");
    if (!isHeaderName(responseHeader)) c.invalid("response_header", "must be a lower-case header name");
    if (!isHeaderName(requestHeader)) c.invalid("request_header", "must be a lower-case header name");
    for (let i = 0; i < forwardHeaders.length; i++) {
      if (!isHeaderName(forwardHeaders[i])) c.invalid("forward_headers", "must hold lower-case header names");
    }
    if (!c.finish()) return false;
    this.upstream = upstream;
    this.path = path;
    this.authority = authority;
    this.timeoutMs = timeoutMs;
    this.responseHeader = responseHeader;
    this.requestHeader = requestHeader;
    this.forwardHeaders = forwardHeaders;
    this.denyStatus = denyStatus;
    this.denyBody = denyBody;
    this.configured = true;
    return true;
  }

  onDone(): bool {
    // The SDK's onDone "cancels" pending callouts by invoking their callbacks with zero headers
    // without switching to the waiting stream; the callback must not act on the root context then.
    this.shuttingDown = true;
    return super.onDone();
  }

  deny(details: string): void {
    const headers: Headers = [];
    headers.push(new HeaderPair(String.UTF8.encode("content-type"), String.UTF8.encode("text/plain; charset=utf-8")));
    const result = send_local_response(this.denyStatus, details, String.UTF8.encode(this.denyBody), headers,
      GrpcStatusValues.InvalidCode);
    if (result != WasmResultValues.Ok) {
      log(LogLevelValues.error, "http-callout: proxy_send_local_response failed: " + result.toString());
    }
  }
}

class Callout extends StreamContext {
  root: CalloutRoot;
  pending: bool = false;
  deleted: bool = false;

  constructor(context_id: u32, root: CalloutRoot) {
    super(context_id, root);
    this.root = root;
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root;
    if (!root.configured) {
      root.deny("http_callout_not_configured");
      return FilterHeadersStatusValues.StopIteration;
    }
    const callout: Headers = [];
    addPair(callout, ":method", "GET");
    addPair(callout, ":path", root.path);
    addPair(callout, ":authority", root.authority);
    const method = headerValue(REQUEST_HEADERS, ":method");
    if (method !== null) addPair(callout, "x-original-method", method);
    const path = headerValue(REQUEST_HEADERS, ":path");
    if (path !== null) addPair(callout, "x-original-path", path);
    for (let i = 0; i < root.forwardHeaders.length; i++) {
      const name = root.forwardHeaders[i];
      const value = headerValue(REQUEST_HEADERS, name);
      if (value !== null) addPair(callout, name, value);
    }
    const result = root.httpCall(root.upstream, callout, new ArrayBuffer(0), [], root.timeoutMs, this, onCalloutResponse);
    if (result != WasmResultValues.Ok) {
      log(LogLevelValues.error, "http-callout: proxy_http_call to " + root.upstream + " failed: " + result.toString());
      root.deny("http_callout_failed");
      return FilterHeadersStatusValues.StopIteration;
    }
    this.pending = true;
    return FilterHeadersStatusValues.StopIteration;
  }

  onRequestBody(_body_buffer_length: usize, _end_of_stream: bool): FilterDataStatusValues {
    return this.pending ? FilterDataStatusValues.StopIterationAndWatermark : FilterDataStatusValues.Continue;
  }

  onRequestTrailers(_trailers: u32): FilterTrailersStatusValues {
    return this.pending ? FilterTrailersStatusValues.StopIteration : FilterTrailersStatusValues.Continue;
  }

  onDelete(): void {
    this.deleted = true;
    super.onDelete();
  }
}

// AssemblyScript 0.14 has no closures: the callback is a plain function that gets the stream
// context back from the SDK (which already made it the effective context).
function onCalloutResponse(origin: Context, headers: u32, _body_size: usize, _trailers: u32): void {
  const ctx = changetype<Callout>(origin);
  const root = ctx.root;
  ctx.pending = false;
  if (root.shuttingDown || ctx.deleted) return;
  if (headers == 0) {
    log(LogLevelValues.warn, "http-callout: callout to " + root.upstream + " failed or timed out");
    root.deny("http_callout_failed");
    return;
  }
  const status = headerValue(HTTP_CALL_RESPONSE_HEADERS, ":status");
  if (status === null || status != "200") {
    root.deny("http_callout_denied");
    return;
  }
  const identity = headerValue(HTTP_CALL_RESPONSE_HEADERS, root.responseHeader);
  const set = identity !== null && identity.length > 0 && isHeaderValue(identity)
    ? replaceHeader(REQUEST_HEADERS, root.requestHeader, identity)
    : removeHeader(REQUEST_HEADERS, root.requestHeader);
  if (set != WasmResultValues.Ok) {
    // Never forward a request whose identity header could not be set (it may be client-supplied).
    log(LogLevelValues.error, "http-callout: cannot set " + root.requestHeader + ": " + set.toString());
    root.deny("http_callout_header_failed");
    return;
  }
  const resumed = continue_request();
  if (resumed != WasmResultValues.Ok) {
    log(LogLevelValues.error, "http-callout: proxy_continue_stream failed: " + resumed.toString());
  }
}

function addPair(headers: Headers, name: string, value: string): void {
  headers.push(new HeaderPair(String.UTF8.encode(name), String.UTF8.encode(value)));
}

/** `host:port` with a DNS name, an IPv4 address or a bracketed IPv6 address, port 1..65535. */
function isServiceAddress(s: string): bool {
  const colon = s.lastIndexOf(":");
  if (colon <= 0 || colon == s.length - 1 || s.length - colon - 1 > 5) return false;
  let port: u32 = 0;
  for (let i = colon + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
    port = port * 10 + <u32>(c - 0x30);
  }
  if (port == 0 || port > 65535) return false;
  const host = s.substring(0, colon);
  if (host.charCodeAt(0) == 0x5b) { // [v6]
    if (host.charCodeAt(host.length - 1) != 0x5d || host.length < 4) return false;
    for (let i = 1; i < host.length - 1; i++) {
      const c = host.charCodeAt(i);
      const hex = (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
      if (!hex && c != 0x3a && c != 0x2e) return false;
    }
    return true;
  }
  if (host.length > 253) return false;
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2e;
    if (!ok) return false;
  }
  return true;
}

registerRootContext((context_id: u32): RootContext => new CalloutRoot(context_id), "http-callout");
registerRootContext((context_id: u32): RootContext => new CalloutRoot(context_id), "");
