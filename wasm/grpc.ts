// gRPC callouts (proxy_grpc_call, proxy_grpc_stream) as HTTP/2 requests the embedder sends: the
// request's shape and framing, and what the answer means to the plugin (initial metadata,
// messages, trailing metadata, status) as Envoy's async gRPC client reports it. gRPC over HTTP/2:
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md
import { GrpcEvent, type GrpcEventValue } from "./protocol.ts";
import { type FlatPairs, pairValue } from "./serialization.ts";

/** gRPC status codes the host produces itself. */
export const GrpcStatus = { OK: 0, UNKNOWN: 2, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/** A service or method name as it goes into the :path (no separators, no spaces). */
export function grpcName(s: string): boolean {
  return s !== "" && !/[\s/]/.test(s);
}

/** The HTTP/2 request of a call or stream: headers (pseudo-headers first) and `message` framed. */
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

/**
 * A unary call's answer (`response` undefined: it failed with `failure`) as the events the plugin
 * gets, in order — the same reading as a stream's (GrpcStreamReader).
 */
export function grpcAnswerEvents(response: { readonly headers: FlatPairs; readonly body: Uint8Array; readonly trailers: FlatPairs } | undefined, failure?: string): GrpcStreamEventData[] {
  const out: GrpcStreamEventData[] = [];
  const reader = new GrpcStreamReader((e) => out.push(e), () => {});
  if (response === undefined) reader.error(failure ?? "call failed");
  else {
    reader.headers(response.headers);
    reader.data(response.body);
    reader.end(response.trailers.length > 0 ? response.trailers : undefined);
  }
  return out;
}

/** One event of a gRPC stream, as the VM takes it (protocol.ts GRPC_STREAM_EVENT). */
export interface GrpcStreamEventData {
  readonly event: GrpcEventValue;
  readonly pairs?: FlatPairs;
  readonly message?: Uint8Array;
  readonly status?: number;
  readonly statusMessage?: string;
}

/**
 * Turns the HTTP/2 answer of a gRPC stream, as it arrives (head, DATA chunks, trailers), into
 * the events the plugin gets: initial metadata (not for a trailers-only answer), each message as
 * soon as it is whole, trailing metadata, close with the status. After close it ignores the rest.
 */
export class GrpcStreamReader {
  private pending = new Uint8Array(0);
  private httpStatus = 0;
  private closed = false;

  constructor(
    private readonly emit: (e: GrpcStreamEventData) => void,
    /** called when the answer is malformed or too large: the embedder cancels the HTTP/2 stream */
    private readonly abort: () => void,
    /** a longer message fails the stream (RESOURCE_EXHAUSTED) instead of being buffered */
    private readonly maxMessageBytes = 4 * 1024 * 1024,
  ) {}

  headers(h: FlatPairs): void {
    if (this.closed) return;
    this.httpStatus = Number(pairValue(h, ":status"));
    if (pairValue(h, "grpc-status") !== undefined) {
      // trailers-only: the status is here, nothing else will come
      this.end(h);
      return;
    }
    this.emit({ event: GrpcEvent.INITIAL, pairs: withoutPseudo(h) });
  }

  data(chunk: Uint8Array): void {
    if (this.closed) return;
    let b = this.pending.length === 0 ? chunk : concatBytes(this.pending, chunk);
    while (b.length >= 5) {
      if (b[0] !== 0) return this.fail("compressed gRPC message (no compression was offered)");
      const len = new DataView(b.buffer, b.byteOffset + 1, 4).getUint32(0);
      if (len > this.maxMessageBytes) return this.fail(`gRPC message of ${len} bytes, over the ${this.maxMessageBytes}-byte bound`, GrpcStatus.RESOURCE_EXHAUSTED);
      if (b.length < 5 + len) break;
      this.emit({ event: GrpcEvent.MESSAGE, message: b.slice(5, 5 + len) });
      b = b.subarray(5 + len);
    }
    this.pending = b.slice();
  }

  end(trailers: FlatPairs | undefined): void {
    if (this.closed) return;
    if (this.pending.length > 0) return this.fail("truncated gRPC message");
    const t = trailers ?? [];
    this.emit({ event: GrpcEvent.TRAILING, pairs: withoutPseudo(t) });
    const code = pairValue(t, "grpc-status");
    if (code !== undefined && /^\d{1,2}$/.test(code)) this.close(Number(code), percentDecoded(pairValue(t, "grpc-message") ?? ""));
    else if (this.httpStatus !== 200) this.close(HTTP_TO_GRPC[this.httpStatus] ?? GrpcStatus.UNKNOWN, `HTTP status ${this.httpStatus || "missing"}`);
    else this.close(GrpcStatus.UNKNOWN, "no grpc-status in the answer");
  }

  error(reason: string): void {
    this.close(GrpcStatus.UNAVAILABLE, reason);
  }

  private fail(why: string, status: number = GrpcStatus.INTERNAL): void {
    this.abort();
    this.close(status, why);
  }

  private close(status: number, message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.emit({ event: GrpcEvent.CLOSE, status, statusMessage: message });
  }
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
