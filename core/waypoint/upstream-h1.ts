// HTTP/1.1 upstream: one request at a time per connection, connections kept alive and reused per
// endpoint (each is one HBONE CONNECT stream, or one TCP connection outside the mesh). A kept-alive
// connection that dies before answering is reported as such, so the request can be retried.
import { ErrorCodes, MeshError, asMeshError } from "../errors/index.ts";
import { connectHttp1, resolveHttp1Limits, type Http1ClientConnection } from "../http1/index.ts";
import type { Endpoint } from "./endpoints.ts";
import { headerValue, type BodySource, type HeaderPairs } from "./exchange.ts";
import { H1BodySource, pairsFromHeaderList } from "./h1-streams.ts";
import { connectionPoolKey, type UpstreamCall, type UpstreamDialer, type UpstreamHead } from "./upstream.ts";

/** Fields the codec frames itself, or that name the hop rather than the message. */
const FRAMING = new Set(["content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "upgrade", "te", "host"]);
const LIMITS = resolveHttp1Limits({ headersWithUnderscores: "allow" });

interface IdleConnection {
  readonly conn: Http1ClientConnection;
  readonly peerIdentity: string | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export interface H1PoolOptions {
  /** idle connections kept per endpoint */
  readonly maxIdlePerEndpoint: number;
  readonly idleTimeoutMs: number;
}

export const DEFAULT_H1_POOL: H1PoolOptions = { maxIdlePerEndpoint: 64, idleTimeoutMs: 60_000 };

export class H1UpstreamPool {
  private readonly idle = new Map<string, IdleConnection[]>();

  constructor(
    private readonly dialer: UpstreamDialer,
    private readonly opts: H1PoolOptions = DEFAULT_H1_POOL,
  ) {}

  private take(key: string): IdleConnection | undefined {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const c = list.pop()!;
      if (c.timer) clearTimeout(c.timer);
      if (list.length === 0) this.idle.delete(key);
      if (c.conn.reusable) return c;
      c.conn.destroy();
    }
    return undefined;
  }

  private giveBack(key: string, c: IdleConnection): void {
    if (!c.conn.reusable) return c.conn.destroy();
    const list = this.idle.get(key) ?? [];
    if (list.length >= this.opts.maxIdlePerEndpoint) return c.conn.destroy();
    c.timer = setTimeout(() => {
      const l = this.idle.get(key);
      const i = l ? l.indexOf(c) : -1;
      if (l && i >= 0) {
        l.splice(i, 1);
        if (l.length === 0) this.idle.delete(key);
      }
      c.conn.close();
    }, this.opts.idleTimeoutMs);
    list.push(c);
    this.idle.set(key, list);
  }

  request(ep: Endpoint, head: UpstreamHead, body: BodySource): UpstreamCall {
    let cancelled: MeshError | undefined;
    let abort: ((e: MeshError) => void) | undefined;
    let peer: string | undefined;
    const response = (async () => {
      let c = this.take(connectionPoolKey(ep));
      const reused = c !== undefined;
      if (!c) {
        const { stream, peerIdentity } = await this.dialer.dial(ep);
        c = { conn: connectHttp1(stream, { limits: LIMITS }), peerIdentity, timer: undefined };
      }
      peer = c.peerIdentity;
      const conn = c.conn;
      if (cancelled) {
        conn.destroy();
        throw cancelled;
      }
      const headers: HeaderPairs = [["host", head.authority]];
      for (const p of head.headers) if (!FRAMING.has(p[0])) headers.push(p);
      const cl = headerValue(head.headers, "content-length");
      const bodyLength = body.empty ? undefined : cl !== undefined && /^\d{1,15}$/.test(cl) ? Number(cl) : "chunked";
      let ex;
      try {
        ex = conn.request({ method: head.method, target: head.path, headers, ...(bodyLength !== undefined ? { bodyLength } : {}) });
      } catch (e) {
        conn.destroy();
        throw asMeshError(e, ErrorCodes.UPSTREAM_RESET);
      }
      abort = (e) => ex.abort(e);
      if (!body.empty) {
        body.start({
          data(chunk) {
            if (!ex.write(chunk)) {
              body.pause();
              ex.drained().then(
                () => body.resume(),
                () => {},
              );
            }
          },
          end(trailers) {
            try {
              ex.end(undefined, trailers);
            } catch {
              /* the exchange failed: reported through the response */
            }
          },
          error(e) {
            ex.abort(e);
          },
        });
      }
      let r;
      try {
        r = await ex.response;
      } catch (e) {
        if (cancelled) throw cancelled;
        const err = asMeshError(e, ErrorCodes.UPSTREAM_RESET);
        // A kept-alive connection closed under us before any response byte: the request was not processed.
        if (reused && err.code === ErrorCodes.UPSTREAM_RESET) throw new MeshError(ErrorCodes.UPSTREAM_RESET, `kept-alive connection to ${connectionPoolKey(ep)} closed before answering`, { details: ["reused"], cause: err });
        throw err;
      }
      const idle = c;
      const src = new H1BodySource(r.body, r.head.bodyKind === "none");
      const released: BodySource = {
        empty: src.empty,
        pause: () => src.pause(),
        resume: () => src.resume(),
        start: (sink) =>
          src.start({
            data: (chunk) => sink.data(chunk),
            end: (t) => {
              if (ex.requestComplete) this.giveBack(connectionPoolKey(ep), idle);
              else conn.destroy();
              sink.end(t);
            },
            error: (e) => {
              conn.destroy();
              sink.error(cancelled ?? e);
            },
          }),
      };
      if (src.empty) queueMicrotask(() => (ex.requestComplete ? this.giveBack(connectionPoolKey(ep), idle) : undefined));
      return { status: r.status, headers: pairsFromHeaderList(r.headers), body: released, headerBytes: r.head.headBytes ?? 0, ...(peer ? { peerIdentity: peer } : {}) };
    })();
    return {
      response,
      get peerIdentity() {
        return peer;
      },
      cancel(err: MeshError) {
        if (cancelled) return;
        cancelled = err;
        abort?.(err);
      },
    };
  }

  destroy(): void {
    for (const list of this.idle.values()) for (const c of list) {
      if (c.timer) clearTimeout(c.timer);
      c.conn.destroy();
    }
    this.idle.clear();
  }

  get idleCount(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }
}
