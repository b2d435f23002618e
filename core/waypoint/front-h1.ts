// HTTP/1.x inside a tunnel, parsed by the strict codec (core/http1): keep-alive with requests
// answered in order, smuggling inputs refused (400/501/505 and the connection closed), header
// size/count and URI limits, a header timeout (408) and an idle timeout.
import { resolveHttp1Limits, serveHttp1, type Http1Error, type Http1Request, type Http1Response, type Http1ServerConnection } from "../http1/index.ts";
import type { ByteStream } from "../net/index.ts";
import type { Logger } from "../telemetry/index.ts";
import type { HeaderPairs, L7Request, L7Responder } from "./exchange.ts";
import { H1BodySource, pairsFromHeaderList } from "./h1-streams.ts";
import { InspectedStream } from "./inspected-stream.ts";
import type { L7Limits } from "./limits.ts";

export interface H1FrontOptions {
  readonly limits: L7Limits;
  readonly log: Logger;
  onRequest(req: L7Request, res: L7Responder): void;
  onProtocolError?(err: Http1Error): void;
}

const limitsCache = new WeakMap<L7Limits, ReturnType<typeof resolveHttp1Limits>>();

/** The codec's limits for these L7 limits; throws CONFIG_INVALID for a combination it cannot use (call at start). */
export function codecLimits(l: L7Limits): ReturnType<typeof resolveHttp1Limits> {
  let r = limitsCache.get(l);
  if (!r) {
    // Istio allows header names with underscores (headersWithUnderscoresAction: ALLOW); so do we.
    // The request line is part of the head, so it can never be allowed more than the head.
    r = resolveHttp1Limits({
      maxHeadBytes: l.maxHeaderBytes,
      maxHeaderCount: l.maxHeaderCount,
      maxStartLineBytes: Math.min(l.maxUriBytes, l.maxHeaderBytes),
      headersWithUnderscores: "allow",
    });
    limitsCache.set(l, r);
  }
  return r;
}

export function serveH1(stream: ByteStream, prefix: readonly Uint8Array[], o: H1FrontOptions): Http1ServerConnection {
  const transport = new InspectedStream(stream, prefix);
  return serveHttp1(
    transport,
    (req, res) =>
      new Promise<void>((done) => {
        const l7: L7Request = {
          protocol: req.head.version === "1.0" ? "HTTP/1.0" : "HTTP/1.1",
          method: req.method,
          path: req.path,
          authority: req.authority ?? "",
          scheme: "http",
          headers: pairsFromHeaderList(req.headers).filter(([k]) => k !== "host" && k !== "transfer-encoding"),
          body: new H1BodySource(req.body, req.head.bodyKind === "none"),
          headerBytes: req.head.headBytes,
        };
        o.onRequest(l7, new H1Responder(req, res, done));
      }),
    {
      limits: codecLimits(o.limits),
      headerTimeoutMs: o.limits.headerTimeoutMs,
      idleTimeoutMs: o.limits.idleTimeoutMs,
      onProtocolError: (err) => {
        o.log.debug("HTTP/1 request refused", { code: err.code, reason: err.reason, status: err.status });
        o.onProtocolError?.(err);
      },
      onHandlerError: (e) => o.log.error("waypoint HTTP/1 handler failed", { error: String(e) }),
    },
  );
}

class H1Responder implements L7Responder {
  headSent = false;
  private abortCb: (() => void) | undefined;
  private aborted = false;
  private finished = false;

  constructor(
    private readonly req: Http1Request,
    private readonly res: Http1Response,
    private readonly done: () => void,
  ) {
    res.signal.addEventListener("abort", () => {
      if (this.finished) return;
      this.aborted = true;
      this.finished = true;
      this.abortCb?.();
      done();
    });
  }

  head(status: number, headers: HeaderPairs, end: boolean): void {
    this.headSent = true;
    try {
      this.res.writeHead(status, headers);
    } catch (e) {
      // A header value that cannot be written safely (from a route filter or the upstream): 502.
      this.res.destroy(e as Error);
      this.finish();
      return;
    }
    if (end) {
      this.res.end();
      this.finish();
    }
  }

  write(chunk: Uint8Array): boolean {
    if (this.res.write(chunk)) return true;
    this.res.drained().then(
      () => {
        if (!this.finished) this.drainCb?.();
      },
      () => {},
    );
    return false;
  }

  onDrain(cb: () => void): void {
    this.drainCb = cb;
  }
  private drainCb: (() => void) | undefined;

  end(trailers?: HeaderPairs): void {
    this.res.end(undefined, trailers);
    this.finish();
  }

  reset(): void {
    this.res.destroy();
    this.finish();
  }

  onAbort(cb: () => void): void {
    this.abortCb = cb;
    if (this.aborted) cb();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    // An unread request body is discarded by the codec so the connection can go on.
    if (!this.req.body.complete) this.req.body.discard();
    this.done();
  }
}
