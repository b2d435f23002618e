// Inbound HBONE: an mTLS HTTP/2 listener that turns CONNECT streams into tunnels. It checks the
// peer's identity itself after every handshake (never trusting the TLS flags alone), bounds what a
// peer can make it hold, and hands each valid CONNECT to the role, which answers it.
import type { TLSSocket } from "node:tls";
import { MeshError, ErrorCodes, asMeshError } from "../errors/index.ts";
import {
  listenHbone,
  tlsSocketOf,
  h2constants,
  h2ByteStream,
  resetH2Stream,
  ignoreError,
  type ByteStream,
  type H2Headers,
  type H2ServerSession,
  type H2ServerStream,
  type HboneServerHandle,
  type TlsIdentity,
} from "../net/index.ts";
import { parseAuthority, type HboneTarget } from "./authority.ts";
import { keepalive } from "./keepalive.ts";
import { serverSettings, type HboneTuning } from "./settings.ts";

export interface PeerIdentity {
  /** spiffe://td/ns/NS/sa/SA */
  readonly identity: string;
  readonly trustDomain: string;
  readonly namespace?: string;
  readonly serviceAccount?: string;
}

/** Checks a peer certificate chain; supplied by the role from core/identity. */
export interface PeerVerifier {
  /** inbound: chain to our root, one SPIFFE id, our trust domain */
  verifyClient(socket: TLSSocket): Promise<PeerIdentity>;
  /** outbound: chain to our root, one SPIFFE id, one of `expected` */
  verifyServer(socket: TLSSocket, expected: readonly string[]): Promise<PeerIdentity>;
}

export type HboneLog = (level: "debug" | "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

export interface InboundTunnel {
  readonly peer: PeerIdentity;
  readonly target: HboneTarget;
  readonly authority: string;
  readonly headers: H2Headers;
  /** TCP peer of the HBONE connection */
  readonly sourceAddress: string;
  readonly sourcePort: number;
  /** address the HBONE listener accepted on */
  readonly localAddress: string;
  readonly localPort: number;
  readonly tlsVersion: string;
  /** aborted when the peer resets or closes the stream before it was answered */
  readonly signal: { readonly aborted: boolean };
  /** Answer 200 and hand the stream over for relaying. */
  accept(responseHeaders?: Record<string, string>): ByteStream;
  /** Answer an error status; error responses carry no body. */
  reject(status: number): void;
}

export interface HboneListenerOptions {
  hostname: string;
  port: number;
  /** serve on this already bound listening socket (captured mode: bound inside the pod's namespace) */
  fd?: number;
  identity: TlsIdentity;
  tuning: HboneTuning;
  verifier: PeerVerifier;
  log: HboneLog;
  onTunnel(tunnel: InboundTunnel): void;
  /** a session whose peer failed verification, or a TLS handshake failure */
  onRejectedPeer?(err: MeshError, remoteAddress: string | undefined): void;
}

interface SessionState {
  readonly session: H2ServerSession;
  readonly peer: Promise<PeerIdentity>;
  /** set once verification succeeded, so later streams skip the promise */
  verified?: PeerIdentity;
  openStreams: number;
  resetWindowStart: number;
  resetsInWindow: number;
  pingOutstanding: boolean;
  lastPingAck: number;
}

export class HboneListener {
  private readonly sessions = new Set<SessionState>();
  private handle!: HboneServerHandle;
  private keepalive: ReturnType<typeof setInterval> | undefined;
  private accepting = true;

  private constructor(private readonly opts: HboneListenerOptions) {}

  static async start(opts: HboneListenerOptions): Promise<HboneListener> {
    const l = new HboneListener(opts);
    l.handle = await listenHbone({
      hostname: opts.hostname,
      port: opts.port,
      ...(opts.fd !== undefined ? { fd: opts.fd } : {}),
      identity: opts.identity,
      settings: serverSettings(opts.tuning),
      localWindowSize: opts.tuning.streamWindowSize,
      onSession: (s) => l.onSession(s),
      onStream: (st, h) => l.onStream(st, h),
      onTlsError: (err, addr) =>
        opts.onRejectedPeer?.(new MeshError(ErrorCodes.HBONE_TLS_FAILURE, `TLS handshake failed: ${err.message}`, { cause: err }), addr),
    });
    l.keepalive = setInterval(() => l.pingSessions(), opts.tuning.keepaliveIntervalMs);
    l.keepalive.unref?.();
    return l;
  }

  get port(): number {
    return this.handle.port;
  }

  get hostname(): string {
    return this.handle.hostname;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  setIdentity(id: TlsIdentity): void {
    this.handle.setIdentity(id);
  }

  /** Stop accepting connections; sessions stay up. */
  stopAccepting(): void {
    if (!this.accepting) return;
    this.accepting = false;
    this.handle.close();
  }

  /** GOAWAY every session: open streams finish, new streams are refused. */
  drain(): void {
    this.stopAccepting();
    for (const s of this.sessions) {
      if (!s.session.closed && !s.session.destroyed) s.session.close();
    }
  }

  /** Close everything now. */
  destroy(): void {
    this.stopAccepting();
    clearInterval(this.keepalive);
    for (const s of this.sessions) s.session.destroy();
    this.sessions.clear();
  }

  private onSession(session: H2ServerSession): void {
    const socket = tlsSocketOf(session);
    const state: SessionState = {
      session,
      peer: this.opts.verifier.verifyClient(socket),
      openStreams: 0,
      resetWindowStart: Date.now(),
      resetsInWindow: 0,
      pingOutstanding: false,
      lastPingAck: Date.now(),
    };
    (session as unknown as { meshState?: SessionState }).meshState = state;
    this.sessions.add(state);
    session.once("close", () => this.sessions.delete(state));
    state.peer.then(
      (p) => (state.verified = p),
      () => {},
    );
    state.peer.catch((e) => {
      const err = asMeshError(e, ErrorCodes.SVID_UNTRUSTED_CHAIN);
      if (this.opts.onRejectedPeer) this.opts.onRejectedPeer(err, socket.remoteAddress);
      else this.opts.log("warn", "HBONE peer rejected", { code: err.code, error: err.message, "src.addr": socket.remoteAddress });
      session.destroy();
    });
  }

  private onStream(stream: H2ServerStream, headers: H2Headers): void {
    const state = (stream.session as unknown as { meshState?: SessionState } | undefined)?.meshState;
    if (!state) {
      resetH2Stream(stream, h2constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const t = this.opts.tuning;
    // Our own stream bound: Bun enforces SETTINGS_MAX_CONCURRENT_STREAMS, but never rely on it.
    if (state.openStreams >= t.serverMaxConcurrentStreams) {
      resetH2Stream(stream, h2constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const pending = new PendingStream(this, state, stream, headers);
    let headerBytes = 0;
    for (const k in headers) {
      const v = headers[k];
      headerBytes += k.length + (Array.isArray(v) ? v.reduce((n, x) => n + x.length, 0) : String(v ?? "").length);
    }
    if (headerBytes > t.maxRequestHeaderBytes) return pending.reject(431);
    if (state.verified) return this.dispatch(pending, state.verified);
    // First streams of a session may arrive while its peer is still being verified.
    state.peer.then(
      (peer) => this.dispatch(pending, peer),
      () => pending.refuse(),
    );
  }

  private dispatch(pending: PendingStream, peer: PeerIdentity): void {
    const { stream, headers } = pending;
    if (stream.closed || stream.destroyed) return;
    if (headers[":method"] !== "CONNECT") return pending.reject(400);
    let target: HboneTarget;
    try {
      target = parseAuthority(headers[":authority"]);
    } catch (e) {
      this.opts.log("debug", "bad CONNECT authority", { error: (e as Error).message });
      return pending.reject(400);
    }
    const tunnel = pending.toTunnel(peer, target);
    try {
      this.opts.onTunnel(tunnel);
    } catch (e) {
      this.opts.log("error", "inbound tunnel handler failed", { error: asMeshError(e).message });
      pending.reject(503);
    }
  }

  /** A stream closed before we answered it: counts toward the rapid-reset budget. */
  streamClosed(state: SessionState, answered: boolean): void {
    state.openStreams--;
    if (!answered) this.countPrematureReset(state);
  }

  // Rapid reset (CVE-2023-44487): a peer that opens and resets streams faster than the budget
  // gets GOAWAY(ENHANCE_YOUR_CALM). The budget is a rate, so long-lived sessions are never hit.
  private countPrematureReset(state: SessionState): void {
    const now = Date.now();
    if (now - state.resetWindowStart > 1000) {
      state.resetWindowStart = now;
      state.resetsInWindow = 0;
    }
    if (++state.resetsInWindow > this.opts.tuning.maxPrematureResetsPerSecond) {
      this.opts.log("warn", "HBONE peer exceeded the premature stream reset budget; closing", {});
      if (!state.session.destroyed) {
        state.session.goaway(h2constants.NGHTTP2_ENHANCE_YOUR_CALM);
        state.session.destroy();
      }
    }
  }

  private pingSessions(): void {
    const now = Date.now();
    for (const s of this.sessions) {
      if (s.session.destroyed || s.session.closed) continue;
      if (!keepalive(s, this.opts.tuning.keepaliveTimeoutMs, now)) this.opts.log("info", "HBONE session missed keepalive; closed", {});
    }
  }
}

function stripMapped(ip: string): string {
  return ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
}

const PENDING = Symbol("mesh.pendingStream");

function onPendingClose(this: H2ServerStream & { [PENDING]?: PendingStream }): void {
  const p = this[PENDING];
  if (!p) return;
  this[PENDING] = undefined;
  if (!p.answered) p.aborted = true;
  p.listener.streamClosed(p.state, p.answered);
}

/**
 * One CONNECT stream from arrival until it is answered; also the InboundTunnel handed to the
 * role. A class with prototype methods rather than closures: it lives as long as the tunnel.
 */
class PendingStream implements InboundTunnel {
  answered = false;
  aborted = false;
  peer!: PeerIdentity;
  target!: HboneTarget;
  authority = "";
  sourceAddress = "";
  sourcePort = 0;
  localAddress = "";
  localPort = 0;
  tlsVersion = "unknown";

  constructor(
    readonly listener: HboneListener,
    readonly state: SessionState,
    readonly stream: H2ServerStream,
    readonly headers: H2Headers,
  ) {
    state.openStreams++;
    (stream as H2ServerStream & { [PENDING]?: PendingStream })[PENDING] = this;
    stream.once("close", onPendingClose);
    stream.on("error", ignoreError);
  }

  get signal(): { readonly aborted: boolean } {
    return this;
  }

  toTunnel(peer: PeerIdentity, target: HboneTarget): InboundTunnel {
    const socket = tlsSocketOf(this.state.session);
    this.peer = peer;
    this.target = target;
    this.authority = String(this.headers[":authority"]);
    this.sourceAddress = stripMapped(socket.remoteAddress ?? "");
    this.sourcePort = socket.remotePort ?? 0;
    this.localAddress = stripMapped(socket.localAddress ?? "");
    this.localPort = socket.localPort ?? 0;
    this.tlsVersion = socket.getProtocol() ?? "unknown";
    return this;
  }

  accept(responseHeaders?: Record<string, string>): ByteStream {
    if (this.answered) throw new MeshError(ErrorCodes.INTERNAL, "HBONE stream answered twice");
    this.answered = true;
    const out = h2ByteStream(this.stream);
    this.stream.respond({ ":status": 200, ...responseHeaders });
    return out;
  }

  reject(status: number): void {
    if (this.answered || this.stream.closed || this.stream.destroyed) return;
    this.answered = true;
    this.stream.respond({ ":status": status }, { endStream: true });
  }

  refuse(): void {
    this.answered = true;
    resetH2Stream(this.stream, h2constants.NGHTTP2_REFUSED_STREAM);
  }
}
