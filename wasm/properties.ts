// Properties a plugin reads with proxy_get_property (reference/waypoint.md §A.6). Values are
// serialized as Envoy does: strings raw UTF-8, integers (and timestamps/durations as nanoseconds)
// as 8 little-endian bytes, booleans as one byte, maps as header pairs.
//
// Request/response attributes that live in the header maps (path, method, host, status, ...) are
// derived from the stream's *current* maps, so they reflect edits made by earlier plugins.

import {
  encodeBool,
  encodeInt64,
  encodePairs,
  encodeString,
  type FlatPairs,
  pairValue,
  pairsByteSize,
} from "./serialization.ts";

/** A property value the embedder supplies. Numbers that are integers serialize as int64. */
export type PropertyValue = string | number | bigint | boolean | Uint8Array | Readonly<Record<string, string>>;

export interface PeerProperties {
  /** IP address (without port). `source.address` is served as `ip:port`, as Envoy does. */
  readonly address?: string;
  readonly port?: number;
  /** SPIFFE identity, e.g. `spiffe://cluster.local/ns/default/sa/sleep`. */
  readonly principal?: string;
}

/** What the embedder knows about one HTTP stream (supplied per stream; all optional). */
export interface StreamProperties {
  /** `request.id` (Envoy: the x-request-id header); defaults to that header when absent. */
  readonly requestId?: string;
  /** `request.protocol`: "HTTP/1.0" | "HTTP/1.1" | "HTTP/2" | "HTTP/3". */
  readonly protocol?: string;
  /** `request.time`, milliseconds since the epoch (served as int64 nanoseconds). */
  readonly startTimeMs?: number;
  readonly source?: PeerProperties;
  readonly destination?: PeerProperties;
  readonly connection?: {
    readonly id?: number;
    readonly mtls?: boolean;
    readonly requestedServerName?: string;
    readonly uriSanPeerCertificate?: string;
    readonly uriSanLocalCertificate?: string;
    readonly tlsVersion?: string;
  };
  /** Any other attribute by dotted path, e.g. `xds.cluster_name`, `xds.route_name`. */
  readonly extra?: Readonly<Record<string, PropertyValue>>;
}

/** Attributes known only when the stream ends (given to `done()`, visible to proxy_on_log). */
export interface StreamCompletion {
  readonly responseCodeDetails?: string;
  /**
   * Envoy response flags: the bitmask, or the access log's short form ("-", "UF", "UF,URX"), which
   * `response.flags` turns into the bitmask (Envoy's attribute is a uint64).
   */
  readonly responseFlags?: number | string;
  /**
   * The endpoint that answered: `upstream.address` (ip:port), `upstream.port`,
   * `upstream.uri_san_peer_certificate` (its verified identity), `upstream.tls_version`.
   */
  readonly upstream?: PeerProperties & { readonly tlsVersion?: string };
  /** More attributes known at the end, by dotted path (e.g. `xds.route_name`, `xds.cluster_name`). */
  readonly extra?: Readonly<Record<string, PropertyValue>>;
}

/** Plugin-level attributes, visible from root and stream contexts. */
export interface PluginProperties {
  readonly name: string;
  readonly rootId: string;
  readonly vmId: string;
  readonly node?: { readonly id?: string; readonly cluster?: string; readonly metadata?: Readonly<Record<string, string>> };
  /** Extra plugin-level attributes by dotted path (e.g. `xds.listener_direction`). */
  readonly extra?: Readonly<Record<string, PropertyValue>>;
}

/** The per-stream state property resolution reads (kept by the VM core). */
export interface StreamView {
  readonly props: StreamProperties;
  completion: StreamCompletion | undefined;
  requestHeaders: FlatPairs | undefined;
  requestTrailers: FlatPairs | undefined;
  responseHeaders: FlatPairs | undefined;
  responseTrailers: FlatPairs | undefined;
  requestBodyBytes: number;
  responseBodyBytes: number;
}

export function serializeValue(v: PropertyValue): Uint8Array {
  if (typeof v === "string") return encodeString(v);
  if (typeof v === "boolean") return encodeBool(v);
  if (typeof v === "bigint") return encodeInt64(v);
  if (typeof v === "number") {
    if (Number.isInteger(v)) return encodeInt64(v);
    const out = new Uint8Array(8);
    new DataView(out.buffer).setFloat64(0, v, true);
    return out;
  }
  if (v instanceof Uint8Array) return v;
  const flat: string[] = [];
  for (const [k, val] of Object.entries(v)) flat.push(k, val);
  return encodePairs(flat);
}

function str(v: string | undefined): Uint8Array | undefined {
  return v === undefined ? undefined : encodeString(v);
}

function int(v: number | undefined): Uint8Array | undefined {
  return v === undefined ? undefined : encodeInt64(v);
}

function peer(p: PeerProperties | undefined, field: string): Uint8Array | undefined {
  if (p === undefined) return undefined;
  switch (field) {
    case "address":
      if (p.address === undefined) return undefined;
      if (p.port === undefined) return encodeString(p.address);
      return encodeString(p.address.includes(":") ? `[${p.address}]:${p.port}` : `${p.address}:${p.port}`);
    case "port":
      return int(p.port);
    case "principal":
      return str(p.principal);
    default:
      return undefined;
  }
}

function streamAttribute(path: string, s: StreamView): Uint8Array | undefined {
  const dot = path.indexOf(".");
  const head = dot < 0 ? path : path.slice(0, dot);
  const rest = dot < 0 ? "" : path.slice(dot + 1);
  switch (head) {
    case "request": {
      if (rest.startsWith("headers.")) return str(pairValue(s.requestHeaders, rest.slice(8).toLowerCase()));
      switch (rest) {
        case "path":
          return str(pairValue(s.requestHeaders, ":path"));
        case "url_path": {
          const p = pairValue(s.requestHeaders, ":path");
          if (p === undefined) return undefined;
          const q = p.indexOf("?");
          return encodeString(q < 0 ? p : p.slice(0, q));
        }
        case "query": {
          const p = pairValue(s.requestHeaders, ":path");
          if (p === undefined) return undefined;
          const q = p.indexOf("?");
          return encodeString(q < 0 ? "" : p.slice(q + 1));
        }
        case "host":
          return str(pairValue(s.requestHeaders, ":authority"));
        case "scheme":
          return str(pairValue(s.requestHeaders, ":scheme"));
        case "method":
          return str(pairValue(s.requestHeaders, ":method"));
        case "referer":
          return str(pairValue(s.requestHeaders, "referer"));
        case "useragent":
          return str(pairValue(s.requestHeaders, "user-agent"));
        case "headers":
          return s.requestHeaders === undefined ? undefined : encodePairs(s.requestHeaders);
        case "id":
          return str(s.props.requestId ?? pairValue(s.requestHeaders, "x-request-id"));
        case "protocol":
          return str(s.props.protocol);
        case "time":
          return s.props.startTimeMs === undefined ? undefined : encodeInt64(BigInt(Math.round(s.props.startTimeMs * 1e6)));
        case "duration":
          return s.props.startTimeMs === undefined
            ? undefined
            : encodeInt64(BigInt(Math.max(0, Math.round((Date.now() - s.props.startTimeMs) * 1e6))));
        case "size":
          return encodeInt64(s.requestBodyBytes);
        case "total_size":
          return encodeInt64(
            s.requestBodyBytes +
              (s.requestHeaders ? pairsByteSize(s.requestHeaders) : 0) +
              (s.requestTrailers ? pairsByteSize(s.requestTrailers) : 0),
          );
        default:
          return undefined;
      }
    }
    case "response": {
      if (rest.startsWith("headers.")) return str(pairValue(s.responseHeaders, rest.slice(8).toLowerCase()));
      if (rest.startsWith("trailers.")) return str(pairValue(s.responseTrailers, rest.slice(9).toLowerCase()));
      switch (rest) {
        case "code": {
          const st = pairValue(s.responseHeaders, ":status");
          const n = st === undefined ? NaN : Number.parseInt(st, 10);
          return Number.isFinite(n) ? encodeInt64(n) : undefined;
        }
        case "code_details":
          return str(s.completion?.responseCodeDetails);
        case "flags": {
          const f = s.completion?.responseFlags;
          return f === undefined ? undefined : encodeInt64(typeof f === "number" ? f : responseFlagBits(f));
        }
        case "headers":
          return s.responseHeaders === undefined ? undefined : encodePairs(s.responseHeaders);
        case "trailers":
          return s.responseTrailers === undefined ? undefined : encodePairs(s.responseTrailers);
        case "size":
          return encodeInt64(s.responseBodyBytes);
        case "total_size":
          return encodeInt64(
            s.responseBodyBytes +
              (s.responseHeaders ? pairsByteSize(s.responseHeaders) : 0) +
              (s.responseTrailers ? pairsByteSize(s.responseTrailers) : 0),
          );
        default:
          return undefined;
      }
    }
    case "source":
      return peer(s.props.source, rest);
    case "destination":
      return peer(s.props.destination, rest);
    case "upstream": {
      const u = s.completion?.upstream;
      if (rest === "uri_san_peer_certificate") return str(u?.principal);
      if (rest === "tls_version") return str(u?.tlsVersion);
      return rest === "principal" ? undefined : peer(u, rest);
    }
    case "connection": {
      const c = s.props.connection;
      if (c === undefined) return undefined;
      switch (rest) {
        case "id":
          return int(c.id);
        case "mtls":
          return c.mtls === undefined ? undefined : encodeBool(c.mtls);
        case "requested_server_name":
          return str(c.requestedServerName);
        case "uri_san_peer_certificate":
          return str(c.uriSanPeerCertificate);
        case "uri_san_local_certificate":
          return str(c.uriSanLocalCertificate);
        case "tls_version":
          return str(c.tlsVersion);
        default:
          return undefined;
      }
    }
    default:
      return undefined;
  }
}

function pluginAttribute(path: string, p: PluginProperties): Uint8Array | undefined {
  switch (path) {
    case "plugin_name":
      return encodeString(p.name);
    case "plugin_root_id":
      return encodeString(p.rootId);
    case "plugin_vm_id":
      return encodeString(p.vmId);
    case "node.id":
      return str(p.node?.id);
    case "node.cluster":
      return str(p.node?.cluster);
    case "node.metadata":
      return p.node?.metadata === undefined ? undefined : serializeValue(p.node.metadata);
  }
  if (path.startsWith("node.metadata.")) {
    const v = p.node?.metadata?.[path.slice(14)];
    return v === undefined ? undefined : encodeString(v);
  }
  return undefined;
}

/**
 * Resolves a property path (already split into segments) for a context: values the plugin set
 * itself first, then stream attributes (stream contexts only), then plugin/node attributes, then
 * the embedder's extras. Undefined means NOT_FOUND.
 */
export function resolveProperty(
  segments: readonly string[],
  plugin: PluginProperties,
  stream: StreamView | undefined,
  own: ReadonlyMap<string, Uint8Array> | undefined,
): Uint8Array | undefined {
  const path = segments.join(".");
  const mine = own?.get(path);
  if (mine !== undefined) return mine;
  if (stream !== undefined) {
    const v = streamAttribute(path, stream);
    if (v !== undefined) return v;
    const extra = stream.props.extra?.[path] ?? stream.completion?.extra?.[path];
    if (extra !== undefined) return serializeValue(extra);
  }
  const pv = pluginAttribute(path, plugin);
  if (pv !== undefined) return pv;
  const extra = plugin.extra?.[path];
  return extra === undefined ? undefined : serializeValue(extra);
}

/** Envoy's ResponseFlag bits (stream_info.h) by the access log's short names. */
const RESPONSE_FLAG_BITS: Readonly<Record<string, number>> = {
  LH: 0x1, UH: 0x2, UT: 0x4, LR: 0x8, UR: 0x10, UF: 0x20, UC: 0x40, UO: 0x80, NR: 0x100, DI: 0x200,
  FI: 0x400, RL: 0x800, UAEX: 0x1000, RLSE: 0x2000, DC: 0x4000, URX: 0x8000, SI: 0x10000, IH: 0x20000,
  DPE: 0x40000, UMSDR: 0x80000, RFCF: 0x100000, NFCF: 0x200000, DT: 0x400000, UPE: 0x800000,
  NC: 0x1000000, OM: 0x2000000, DF: 0x4000000,
};

/** "UF,URX" → 0x8020; "-" and names Envoy has no bit for count as none. */
export function responseFlagBits(short: string): number {
  let bits = 0;
  for (const name of short.split(",")) bits |= RESPONSE_FLAG_BITS[name.trim()] ?? 0;
  return bits;
}
