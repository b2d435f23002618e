// Outbound HBONE: a pool of verified mTLS HTTP/2 connections, keyed like ztunnel's WorkloadKey
// (source identity, expected destination identities, next hop, source IP), each carrying up to
// `poolMaxStreamsPerConnection` CONNECT streams. Only one handshake runs per key at a time, so a
// connection storm costs one TLS handshake, not a thousand (reference/ztunnel.md §2.5).
import type { TLSSocket } from "node:tls";
import { MeshError, ErrorCodes, asMeshError, codeForHboneStatus } from "../errors/index.ts";
import {
  connectHbone,
  h2ByteStream,
  ignoreError,
  type ByteStream,
  type H2ClientSession,
  type H2ClientStream,
  type H2Headers,
  type TlsIdentity,
  type HboneTransport,
} from "../net/index.ts";
import { keepalive } from "./keepalive.ts";
import { clientSettings, type HboneTuning } from "./settings.ts";
import type { HboneLog, PeerIdentity, PeerVerifier } from "./server.ts";

export interface PoolKey {
  readonly sourceIdentity: string;
  /** identities the destination may present; any one is accepted */
  readonly destinationIdentities: readonly string[];
  readonly address: string;
  readonly port: number;
  readonly sourceIp: string;
}

export interface OutboundTunnelRequest {
  readonly key: PoolKey;
  /** the source workload's certificate, presented to the peer */
  readonly identity: TlsIdentity;
  readonly authority: string;
  readonly headers: Readonly<Record<string, string>>;
  /** bind the TCP connection to this local address (loopback mode: the source workload's IP) */
  readonly bindAddress?: string;
  /** dial the TCP connection this way instead (captured mode: inside the source pod's namespace, marked) */
  readonly transport?: () => Promise<HboneTransport>;
}

export interface OutboundTunnel {
  readonly stream: ByteStream;
  readonly peer: PeerIdentity;
  readonly tlsVersion: string;
  readonly responseHeaders: H2Headers;
  readonly connectionId: number;
}

interface PooledConnection {
  readonly id: number;
  readonly keyString: string;
  readonly session: H2ClientSession;
  readonly socket: TLSSocket;
  readonly peer: PeerIdentity;
  streams: number;
  lastUsed: number;
  goingAway: boolean;
  pingOutstanding: boolean;
  lastPingAck: number;
}

interface KeyEntry {
  conns: PooledConnection[];
  dialing: Promise<PooledConnection> | undefined;
}

function keyString(k: PoolKey): string {
  return `${k.sourceIdentity}|${[...k.destinationIdentities].sort().join(",")}|${k.address}|${k.port}|${k.sourceIp}`;
}

export class HbonePool {
  private readonly entries = new Map<string, KeyEntry>();
  private nextId = 1;
  private readonly sweeper: ReturnType<typeof setInterval>;
  private draining = false;
  /** total handshakes performed, for tests and metrics */
  handshakes = 0;

  constructor(
    private readonly opts: {
      tuning: HboneTuning;
      verifier: PeerVerifier;
      log: HboneLog;
    },
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(opts.tuning.keepaliveIntervalMs, 30_000));
    this.sweeper.unref?.();
  }

  /** Live connections across all keys. */
  get connectionCount(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.conns.length;
    return n;
  }

  get streamCount(): number {
    let n = 0;
    for (const e of this.entries.values()) for (const c of e.conns) n += c.streams;
    return n;
  }

  async open(req: OutboundTunnelRequest): Promise<OutboundTunnel> {
    if (this.draining) throw new MeshError(ErrorCodes.HBONE_DRAINING, "the HBONE pool is draining");
    const conn = await this.checkout(req);
    try {
      return await this.connect(conn, req);
    } catch (e) {
      throw asMeshError(e, ErrorCodes.HBONE_H2_FAILURE);
    }
  }

  /** Stop handing out connections; GOAWAY idle ones, let busy ones finish their streams. */
  drain(): void {
    this.draining = true;
    for (const e of this.entries.values()) {
      for (const c of e.conns) {
        c.goingAway = true;
        if (c.streams === 0) c.session.close();
      }
    }
  }

  destroy(): void {
    this.draining = true;
    clearInterval(this.sweeper);
    for (const e of this.entries.values()) for (const c of e.conns) c.session.destroy();
    this.entries.clear();
  }

  private maxStreams(c: PooledConnection): number {
    const peerMax = c.session.remoteSettings?.maxConcurrentStreams;
    const limit = this.opts.tuning.poolMaxStreamsPerConnection;
    return typeof peerMax === "number" && peerMax > 0 ? Math.min(limit, peerMax) : limit;
  }

  private usable(c: PooledConnection): boolean {
    return !c.goingAway && !c.session.closed && !c.session.destroyed && c.streams < this.maxStreams(c);
  }

  private async checkout(req: OutboundTunnelRequest): Promise<PooledConnection> {
    const ks = keyString(req.key);
    for (;;) {
      let entry = this.entries.get(ks);
      if (!entry) {
        entry = { conns: [], dialing: undefined };
        this.entries.set(ks, entry);
      }
      const found = entry.conns.find((c) => this.usable(c));
      if (found) {
        found.streams++;
        found.lastUsed = Date.now();
        return found;
      }
      if (entry.dialing) {
        // Single flight: wait for the handshake in progress, then try again. Its failure is ours.
        await entry.dialing;
        continue;
      }
      const dialing = this.dial(req, ks);
      entry.dialing = dialing;
      try {
        const conn = await dialing;
        entry.conns.push(conn);
      } finally {
        entry.dialing = undefined;
      }
    }
  }

  private async dial(req: OutboundTunnelRequest, ks: string): Promise<PooledConnection> {
    const t = this.opts.tuning;
    const { session, socket } = await connectHbone({
      address: req.key.address,
      port: req.key.port,
      identity: req.identity,
      ...(req.bindAddress ? { localAddress: req.bindAddress } : {}),
      ...(req.transport ? { transport: await req.transport() } : {}),
      settings: clientSettings(t),
      localWindowSize: t.streamWindowSize,
      timeoutMs: t.connectTimeoutMs,
      expectedIdentities: req.key.destinationIdentities,
    });
    this.handshakes++;
    let peer: PeerIdentity;
    try {
      // Nothing is sent on this connection until the peer proved it is who we expect.
      peer = await this.opts.verifier.verifyServer(socket, req.key.destinationIdentities);
    } catch (e) {
      session.destroy();
      throw asMeshError(e, ErrorCodes.SVID_IDENTITY_MISMATCH);
    }
    const conn: PooledConnection = {
      id: this.nextId++,
      keyString: ks,
      session,
      socket,
      peer,
      streams: 0,
      lastUsed: Date.now(),
      goingAway: false,
      pingOutstanding: false,
      lastPingAck: Date.now(),
    };
    session.on("goaway", () => {
      conn.goingAway = true;
    });
    session.once("close", () => this.remove(conn));
    this.opts.log("debug", "HBONE connection established", { id: conn.id, "dst.addr": `${req.key.address}:${req.key.port}`, "dst.identity": peer.identity });
    return conn;
  }

  private remove(conn: PooledConnection): void {
    const entry = this.entries.get(conn.keyString);
    if (!entry) return;
    entry.conns = entry.conns.filter((c) => c !== conn);
    if (entry.conns.length === 0 && !entry.dialing) this.entries.delete(conn.keyString);
  }

  private release(conn: PooledConnection): void {
    conn.streams--;
    conn.lastUsed = Date.now();
    if (conn.streams === 0 && conn.goingAway && !conn.session.closed) conn.session.close();
  }

  private connect(conn: PooledConnection, req: OutboundTunnelRequest): Promise<OutboundTunnel> {
    let stream: H2ClientStream;
    try {
      stream = conn.session.request({ ":method": "CONNECT", ":authority": req.authority, ...req.headers }, { endStream: false });
    } catch (e) {
      this.release(conn);
      conn.goingAway = true;
      return Promise.reject(new MeshError(ErrorCodes.HBONE_H2_FAILURE, `cannot open a CONNECT stream: ${(e as Error).message}`, { cause: e }));
    }
    return new Promise((resolve, reject) => new PendingConnect(this, conn, stream, req.authority, resolve, reject));
  }

  /** A CONNECT stream ended: its slot on the connection is free again. */
  streamDone(conn: PooledConnection): void {
    this.release(conn);
  }

  private sweep(): void {
    const now = Date.now();
    const t = this.opts.tuning;
    for (const e of this.entries.values()) {
      for (const c of e.conns) {
        if (c.session.closed || c.session.destroyed) continue;
        if (c.streams === 0 && now - c.lastUsed > t.poolUnusedReleaseTimeoutMs) {
          c.goingAway = true;
          c.session.close();
          continue;
        }
        if (!keepalive(c, t.keepaliveTimeoutMs, now)) this.opts.log("info", "HBONE connection missed keepalive; closed", { id: c.id });
      }
    }
  }
}

const CONNECT = Symbol("mesh.pendingConnect");
type ConnectStream = H2ClientStream & { [CONNECT]?: PendingConnect };

function onConnectResponse(this: ConnectStream, headers: H2Headers): void {
  this[CONNECT]?.response(headers);
}
function onConnectClose(this: ConnectStream): void {
  const p = this[CONNECT];
  this[CONNECT] = undefined;
  p?.closed();
}

/**
 * One outbound CONNECT from request to close. Listeners are shared functions and the state is
 * this small object, so a long-lived tunnel holds no closures over the request.
 */
class PendingConnect {
  private settled = false;
  constructor(
    private readonly pool: HbonePool,
    private readonly conn: PooledConnection,
    private readonly stream: H2ClientStream,
    private readonly authority: string,
    private resolve: ((t: OutboundTunnel) => void) | undefined,
    private reject: ((e: MeshError) => void) | undefined,
  ) {
    (stream as ConnectStream)[CONNECT] = this;
    stream.once("close", onConnectClose);
    stream.once("response", onConnectResponse);
    stream.on("error", ignoreError);
  }

  response(headers: H2Headers): void {
    if (this.settled) return;
    this.settled = true;
    const status = Number(headers[":status"]);
    const { resolve, reject } = this;
    this.resolve = this.reject = undefined;
    if (status !== 200) {
      this.stream.close();
      reject?.(new MeshError(codeForHboneStatus(status), `HBONE CONNECT to ${this.authority} was answered ${status}`, { details: [`status=${status}`] }));
      return;
    }
    resolve?.({
      stream: h2ByteStream(this.stream),
      peer: this.conn.peer,
      tlsVersion: this.conn.socket.getProtocol() ?? "unknown",
      responseHeaders: headers,
      connectionId: this.conn.id,
    });
  }

  closed(): void {
    this.pool.streamDone(this.conn);
    if (this.settled) return;
    this.settled = true;
    const code = this.stream.rstCode;
    this.reject?.(new MeshError(ErrorCodes.HBONE_H2_FAILURE, `CONNECT stream to ${this.authority} closed before a response (reset code ${code ?? "none"})`));
    this.resolve = this.reject = undefined;
  }
}
