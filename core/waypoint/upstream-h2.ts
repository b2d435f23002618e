// HTTP/2 upstream: requests from HTTP/2 clients go to the endpoint as HTTP/2 (the downstream's
// protocol, as Envoy's USE_DOWNSTREAM_PROTOCOL), multiplexed over one h2c session per upstream
// tunnel; a session takes at most MAX_STREAMS_PER_SESSION requests at once, then another opens.
import { ErrorCodes, MeshError, asMeshError } from "../errors/index.ts";
import { TunnelDuplex, connectInnerH2, h2constants, ignoreError, resetH2Stream, type H2ClientSession, type H2ClientStream, type H2Headers } from "../net/index.ts";
import type { Endpoint } from "./endpoints.ts";
import type { BodySource, HeaderPairs } from "./exchange.ts";
import { H2StreamBody, h2FromPairs, h2HeaderBytes, pairsFromH2, writeBodyToH2 } from "./h2-streams.ts";
import { connectionPoolKey, type UpstreamCall, type UpstreamDialer, type UpstreamHead } from "./upstream.ts";

const MAX_STREAMS_PER_SESSION = 100;
const SESSION_SETTINGS = { enablePush: false, initialWindowSize: 1 << 20, maxHeaderListSize: 64 * 1024 };

interface PooledSession {
  readonly session: H2ClientSession;
  readonly peerIdentity: string | undefined;
  streams: number;
  closed: boolean;
}

export class H2UpstreamPool {
  private readonly sessions = new Map<string, PooledSession[]>();
  private readonly opening = new Map<string, Promise<PooledSession>>();

  constructor(private readonly dialer: UpstreamDialer) {}

  private async acquire(ep: Endpoint): Promise<PooledSession> {
    const list = this.sessions.get(connectionPoolKey(ep));
    if (list) for (const s of list) if (!s.closed && s.streams < MAX_STREAMS_PER_SESSION) return s;
    let p = this.opening.get(connectionPoolKey(ep));
    if (!p) {
      p = this.open(ep).finally(() => this.opening.delete(connectionPoolKey(ep)));
      this.opening.set(connectionPoolKey(ep), p);
    }
    const s = await p;
    if (s.streams >= MAX_STREAMS_PER_SESSION) return this.open(ep);
    return s;
  }

  private async open(ep: Endpoint): Promise<PooledSession> {
    const { stream, peerIdentity } = await this.dialer.dial(ep);
    const transport = new TunnelDuplex(stream);
    transport.on("error", ignoreError);
    const session = connectInnerH2(transport, SESSION_SETTINGS, 16);
    const pooled: PooledSession = { session, peerIdentity, streams: 0, closed: false };
    const forget = (): void => {
      if (pooled.closed) return;
      pooled.closed = true;
      const l = this.sessions.get(connectionPoolKey(ep));
      if (l) {
        const i = l.indexOf(pooled);
        if (i >= 0) l.splice(i, 1);
        if (l.length === 0) this.sessions.delete(connectionPoolKey(ep));
      }
    };
    session.on("error", ignoreError);
    session.once("close", forget);
    session.once("goaway", forget);
    const l = this.sessions.get(connectionPoolKey(ep)) ?? [];
    l.push(pooled);
    this.sessions.set(connectionPoolKey(ep), l);
    return pooled;
  }

  request(ep: Endpoint, head: UpstreamHead, body: BodySource): UpstreamCall {
    let stream: H2ClientStream | undefined;
    let cancelled: MeshError | undefined;
    let peer: string | undefined;
    const response = (async () => {
      let pooled: PooledSession;
      try {
        pooled = await this.acquire(ep);
      } catch (e) {
        throw asMeshError(e, ErrorCodes.UPSTREAM_CONNECT);
      }
      if (cancelled) throw cancelled;
      peer = pooled.peerIdentity;
      pooled.streams++;
      const headers = h2FromPairs(head.headers, { ":method": head.method, ":path": head.path, ":authority": head.authority, ":scheme": head.scheme });
      const st = pooled.session.request(headers, { endStream: body.empty, waitForTrailers: !body.empty });
      stream = st;
      st.once("close", () => pooled.streams--);
      return await new Promise<{ status: number; headers: HeaderPairs; body: BodySource; headerBytes: number; peerIdentity?: string }>((resolve, reject) => {
        let answered = false;
        st.once("response", (h: H2Headers) => {
          answered = true;
          const status = Number(h[":status"]);
          const endStream = st.readableEnded || (st as unknown as { endAfterHeaders?: boolean }).endAfterHeaders === true;
          resolve({ status, headers: pairsFromH2(h), body: new H2StreamBody(st, endStream), headerBytes: h2HeaderBytes(h), ...(peer ? { peerIdentity: peer } : {}) });
        });
        st.once("close", () => {
          if (answered) return;
          if (cancelled) return reject(cancelled);
          const refused = st.rstCode === h2constants.NGHTTP2_REFUSED_STREAM;
          reject(new MeshError(ErrorCodes.UPSTREAM_RESET, refused ? "upstream refused the stream" : `upstream reset the stream (code ${st.rstCode})`, { details: refused ? ["refused-stream"] : ["reset"] }));
        });
        st.on("error", ignoreError);
        if (!body.empty) writeBodyToH2(body, st, () => {});
      });
    })();
    return {
      response,
      get peerIdentity() {
        return peer;
      },
      cancel(err: MeshError) {
        cancelled = err;
        if (stream) resetH2Stream(stream, h2constants.NGHTTP2_CANCEL);
      },
    };
  }

  destroy(): void {
    for (const l of this.sessions.values()) for (const s of l) s.session.destroy();
    this.sessions.clear();
  }

  get sessionCount(): number {
    let n = 0;
    for (const l of this.sessions.values()) n += l.length;
    return n;
  }
}
