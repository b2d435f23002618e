// HTTP/2 with prior knowledge inside a tunnel: an h2c server session per tunnel, each stream a
// request for the pipeline. The frame guard runs ahead of node:http2; stream count, header size
// and idle time are bounded here.
import { TunnelDuplex, createInnerH2Server, h2constants, ignoreError, resetH2Stream, type ByteStream, type H2Headers, type H2ServerSession, type H2ServerStream } from "../net/index.ts";
import type { Logger } from "../telemetry/index.ts";
import type { HeaderPairs, L7Request, L7Responder } from "./exchange.ts";
import { H2FrameGuard, type H2GuardLimits } from "./h2-guard.ts";
import { H2StreamBody, h2FromPairs, h2HeaderBytes, pairsFromH2, sendTrailers } from "./h2-streams.ts";
import { InspectedStream } from "./inspected-stream.ts";
import type { L7Limits } from "./limits.ts";

/** Connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2); dropped from responses. */
const H2_FORBIDDEN = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);

export interface H2FrontOptions {
  readonly limits: L7Limits;
  readonly guard: H2GuardLimits;
  readonly log: Logger;
  onRequest(req: L7Request, res: L7Responder): void;
  /** a request that must be answered without the pipeline (malformed, over limits) */
  onRejected?(status: number, why: string): void;
}

/** One tunnel's HTTP/2 session: close() sends GOAWAY and lets open streams finish. */
export interface H2Tunnel {
  close(): void;
  destroy(): void;
  readonly closed: Promise<void>;
}

export function serveH2(tunnel: ByteStream, prefix: readonly Uint8Array[], o: H2FrontOptions): H2Tunnel {
  const guard = new H2FrameGuard(o.guard);
  let session: H2ServerSession | undefined;
  const guarded = new InspectedStream(tunnel, prefix, (c) => guard.inspect(c), () => {
    o.log.warn("HTTP/2 client closed for abuse", { reason: guard.violation });
    try {
      session?.goaway(h2constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } catch {
      /* already closing */
    }
  });
  const transport = new TunnelDuplex(guarded);
  transport.on("error", ignoreError);
  let open = 0;
  let idle: ReturnType<typeof setTimeout> | undefined;
  const armIdle = (): void => {
    if (idle) clearTimeout(idle);
    idle = open === 0 ? setTimeout(() => session?.close(), o.limits.idleTimeoutMs) : undefined;
  };
  const server = createInnerH2Server({
    settings: {
      maxConcurrentStreams: o.limits.maxConcurrentStreams,
      maxHeaderListSize: o.limits.maxHeaderBytes,
      initialWindowSize: 1 << 20,
      enablePush: false,
    },
    maxSessionMemoryMb: 32,
    onSession(s) {
      session = s;
      s.on("error", ignoreError);
      try {
        s.setLocalWindowSize(1 << 20);
      } catch {
        /* not connected yet */
      }
      s.once("close", () => {
        if (idle) clearTimeout(idle);
        transport.destroy();
      });
      armIdle();
    },
    onStream(stream, headers) {
      stream.on("error", ignoreError);
      // Concurrency is bounded by our SETTINGS_MAX_CONCURRENT_STREAMS, which node:http2 enforces with
      // RST_STREAM(REFUSED_STREAM); `open` only tracks idleness.
      open++;
      armIdle();
      stream.once("close", () => {
        open--;
        armIdle();
      });
      const problem = checkRequestHead(headers, o.limits);
      if (problem) {
        o.onRejected?.(problem.status, problem.why);
        try {
          stream.respond({ ":status": problem.status, "content-type": "text/plain" });
          stream.end(problem.why);
        } catch {
          /* reset meanwhile */
        }
        return;
      }
      const endStream = stream.readableEnded || (stream as unknown as { endAfterHeaders?: boolean }).endAfterHeaders === true;
      const req: L7Request = {
        protocol: "HTTP/2",
        method: String(headers[":method"]),
        path: String(headers[":path"]),
        authority: String(headers[":authority"] ?? headers.host ?? ""),
        scheme: String(headers[":scheme"] ?? "http"),
        headers: pairsFromH2(headers).filter(([k]) => k !== "host"),
        body: new H2StreamBody(stream, endStream),
        headerBytes: h2HeaderBytes(headers),
      };
      o.onRequest(req, new H2Responder(stream));
    },
  });
  server.serve(transport);
  const closed = new Promise<void>((r) => transport.once("close", () => r()));
  return {
    closed,
    close: () => {
      try {
        session?.close();
      } catch {
        transport.destroy();
      }
    },
    destroy: () => {
      session?.destroy();
      transport.destroy();
    },
  };
}

function checkRequestHead(h: H2Headers, limits: L7Limits): { status: number; why: string } | undefined {
  const method = h[":method"];
  const path = h[":path"];
  if (typeof method !== "string" || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) return { status: 400, why: "invalid :method" };
  if (method === "CONNECT") return { status: 405, why: "CONNECT is not proxied by the waypoint" };
  if (typeof path !== "string" || path.length === 0 || (path[0] !== "/" && !(path === "*" && method === "OPTIONS"))) return { status: 400, why: "invalid :path" };
  if (path.length > limits.maxUriBytes) return { status: 414, why: "URI too long" };
  if (!h[":authority"] && !h.host) return { status: 400, why: "missing :authority" };
  let count = 0;
  for (const [k, v] of Object.entries(h)) {
    count += Array.isArray(v) ? v.length : 1;
    if (H2_FORBIDDEN.has(k)) return { status: 400, why: `connection-specific header ${k}` };
  }
  if (count > limits.maxHeaderCount) return { status: 431, why: "too many header fields" };
  if (h2HeaderBytes(h) > limits.maxHeaderBytes) return { status: 431, why: "request header fields too large" };
  return undefined;
}

class H2Responder implements L7Responder {
  private trailers: HeaderPairs | undefined;
  headSent = false;
  private finished = false;
  private abortCb: (() => void) | undefined;
  private aborted = false;

  constructor(private readonly stream: H2ServerStream) {
    stream.once("close", () => {
      if (!this.finished && !this.aborted) {
        this.aborted = true;
        this.abortCb?.();
      }
    });
    stream.once("wantTrailers", () => sendTrailers(stream, this.trailers));
  }

  head(status: number, headers: HeaderPairs, end: boolean): void {
    this.headSent = true;
    const out = h2FromPairs(
      headers.filter(([k]) => !H2_FORBIDDEN.has(k)),
      { ":status": String(status) },
    );
    if (end) this.finished = true;
    try {
      this.stream.respond(out, { endStream: end, waitForTrailers: !end });
    } catch {
      /* stream reset by the client meanwhile */
    }
  }

  write(chunk: Uint8Array): boolean {
    return this.stream.write(chunk);
  }

  onDrain(cb: () => void): void {
    this.stream.on("drain", cb);
  }

  end(trailers?: HeaderPairs): void {
    this.trailers = trailers;
    this.finished = true;
    this.stream.end();
  }

  reset(): void {
    this.finished = true;
    resetH2Stream(this.stream, h2constants.NGHTTP2_INTERNAL_ERROR);
  }

  onAbort(cb: () => void): void {
    this.abortCb = cb;
    if (this.aborted) cb();
  }
}
