// Unary gRPC calls for proxy_grpc_call, carried as HTTP calls: the request an embedder sends as an
// HTTP/2 POST, and what the answer means to the plugin (initial metadata, messages, trailing
// metadata, status), as Envoy's async gRPC client reports them. gRPC over HTTP/2:
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md
import type { FlatPairs } from "./serialization.ts";

/** gRPC status codes the host produces itself. */
export const GrpcStatus = { OK: 0, UNKNOWN: 2, PERMISSION_DENIED: 7, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/** The HTTP/2 request of a unary call: headers (pseudo-headers first) and the framed message. */
export function grpcRequest(upstream: string, service: string, method: string, metadata: FlatPairs, message: Uint8Array, timeoutMs: number): { headers: FlatPairs; body: Uint8Array } {
  const headers: string[] = [":method", "POST", ":path", `/${service}/${method}`, ":authority", upstream, "content-type", "application/grpc", "te", "trailers"];
  if (timeoutMs > 0) headers.push("grpc-timeout", `${timeoutMs}m`);
  for (let i = 0; i + 1 < metadata.length; i += 2) {
    const k = metadata[i]!;
    // the call's own framing is the host's: the plugin's metadata cannot replace it
    if (k.startsWith(":") || k === "content-type" || k === "te" || k === "grpc-timeout") continue;
    headers.push(k, metadata[i + 1]!);
  }
  return { headers, body: grpcFrame(message) };
}

/** One length-prefixed gRPC message, uncompressed. */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** What the plugin is told of a finished call, in callback order. */
export interface GrpcOutcome {
  /** undefined for a trailers-only answer or a failed call: on_grpc_receive_initial_metadata is not called */
  readonly initial: FlatPairs | undefined;
  readonly messages: readonly Uint8Array[];
  /** undefined for a failed call */
  readonly trailing: FlatPairs | undefined;
  readonly status: number;
  readonly message: string;
}

const HTTP_TO_GRPC: Readonly<Record<number, number>> = {
  400: GrpcStatus.INTERNAL,
  401: GrpcStatus.UNAUTHENTICATED,
  403: GrpcStatus.PERMISSION_DENIED,
  404: GrpcStatus.UNIMPLEMENTED,
  429: GrpcStatus.UNAVAILABLE,
  502: GrpcStatus.UNAVAILABLE,
  503: GrpcStatus.UNAVAILABLE,
  504: GrpcStatus.UNAVAILABLE,
};

function value(pairs: FlatPairs, name: string): string | undefined {
  for (let i = 0; i + 1 < pairs.length; i += 2) if (pairs[i] === name) return pairs[i + 1];
  return undefined;
}

function withoutPseudo(pairs: FlatPairs): FlatPairs {
  const out: string[] = [];
  for (let i = 0; i + 1 < pairs.length; i += 2) if (!pairs[i]!.startsWith(":")) out.push(pairs[i]!, pairs[i + 1]!);
  return out;
}

function percentDecoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The answer to a call (`response` undefined: it failed with `failure`). */
export function grpcOutcome(response: { readonly headers: FlatPairs; readonly body: Uint8Array; readonly trailers: FlatPairs } | undefined, failure?: string): GrpcOutcome {
  if (response === undefined) return { initial: undefined, messages: [], trailing: undefined, status: GrpcStatus.UNAVAILABLE, message: failure ?? "call failed" };
  const httpStatus = Number(value(response.headers, ":status"));
  // trailers-only: the status arrives in the only header block
  const trailersOnly = response.trailers.length === 0 && value(response.headers, "grpc-status") !== undefined;
  const initial = trailersOnly ? undefined : withoutPseudo(response.headers);
  const trailing = trailersOnly ? withoutPseudo(response.headers) : response.trailers;
  const messages: Uint8Array[] = [];
  const b = response.body;
  let bad: string | undefined;
  for (let at = 0; at < b.length; ) {
    if (at + 5 > b.length) {
      bad = "truncated gRPC message frame";
      break;
    }
    const len = new DataView(b.buffer, b.byteOffset + at + 1, 4).getUint32(0);
    if (b[at] !== 0) {
      bad = "compressed gRPC message (no compression was offered)";
      break;
    }
    if (at + 5 + len > b.length) {
      bad = "truncated gRPC message";
      break;
    }
    messages.push(b.subarray(at + 5, at + 5 + len));
    at += 5 + len;
  }
  if (bad !== undefined) return { initial, messages: [], trailing, status: GrpcStatus.INTERNAL, message: bad };
  const code = value(trailing, "grpc-status");
  if (code !== undefined && /^\d{1,2}$/.test(code)) {
    return { initial, messages, trailing, status: Number(code), message: percentDecoded(value(trailing, "grpc-message") ?? "") };
  }
  if (httpStatus !== 200) {
    return { initial, messages, trailing, status: HTTP_TO_GRPC[httpStatus] ?? GrpcStatus.UNKNOWN, message: `HTTP status ${Number.isFinite(httpStatus) ? httpStatus : "missing"}` };
  }
  return { initial, messages, trailing, status: GrpcStatus.UNKNOWN, message: "no grpc-status in the answer" };
}
