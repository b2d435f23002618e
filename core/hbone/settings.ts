// HTTP/2 and pool parameters of HBONE (reference/ztunnel.md §2.2, §2.5).
import type { H2Settings } from "../net/index.ts";

export interface HboneTuning {
  /** per-stream window; also the session window, see below */
  readonly streamWindowSize: number;
  readonly frameSize: number;
  readonly serverMaxConcurrentStreams: number;
  readonly serverMaxHeaderListSize: number;
  readonly clientMaxHeaderListSize: number;
  readonly poolMaxStreamsPerConnection: number;
  readonly poolUnusedReleaseTimeoutMs: number;
  readonly keepaliveIntervalMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Sum of header name and value bytes we accept on a CONNECT, checked by our code. */
  readonly maxRequestHeaderBytes: number;
  /** Streams a peer may reset before we answered, per second, before we GOAWAY (rapid reset). */
  readonly maxPrematureResetsPerSecond: number;
}

export const DEFAULT_TUNING: HboneTuning = Object.freeze({
  streamWindowSize: 4 * 1024 * 1024,
  frameSize: 1024 * 1024,
  serverMaxConcurrentStreams: 200,
  serverMaxHeaderListSize: 64 * 1024,
  clientMaxHeaderListSize: 16 * 1024,
  poolMaxStreamsPerConnection: 100,
  poolUnusedReleaseTimeoutMs: 5 * 60_000,
  keepaliveIntervalMs: 10_000,
  keepaliveTimeoutMs: 20_000,
  connectTimeoutMs: 10_000,
  maxRequestHeaderBytes: 16 * 1024,
  maxPrematureResetsPerSecond: 200,
});

// ztunnel uses a 16 MiB session window over 4 MiB stream windows. Bun 1.4.4 stalls streams when
// setLocalWindowSize differs from SETTINGS_INITIAL_WINDOW_SIZE (reference/bun.md §2.3), so the
// session window equals the stream window here (the role passes the larger of the two, 16 MiB);
// the wire stays compatible, as it is only our receive window. Measured: with 4 MiB for both,
// 8 streams on one connection ran ~10 % slower than with 16 MiB.
export function serverSettings(t: HboneTuning): H2Settings {
  return {
    initialWindowSize: t.streamWindowSize,
    maxFrameSize: t.frameSize,
    maxConcurrentStreams: t.serverMaxConcurrentStreams,
    maxHeaderListSize: t.serverMaxHeaderListSize,
    enablePush: false,
  };
}

export function clientSettings(t: HboneTuning): H2Settings {
  return {
    initialWindowSize: t.streamWindowSize,
    maxFrameSize: t.frameSize,
    maxHeaderListSize: t.clientMaxHeaderListSize,
    enablePush: false,
  };
}

/** The role's tuning from the runtime environment (HTTP2_* and POOL_* variables). */
export function hboneTuningFrom(env: {
  readonly streamWindowSize: number;
  readonly connectionWindowSize: number;
  readonly frameSize: number;
  readonly poolMaxStreamsPerConnection: number;
  readonly poolUnusedReleaseTimeoutMs: number;
}): HboneTuning {
  return {
    ...DEFAULT_TUNING,
    // One window for stream and session (see above): the larger of ztunnel's two, 16 MiB by default.
    streamWindowSize: Math.max(env.streamWindowSize, env.connectionWindowSize),
    frameSize: env.frameSize,
    poolMaxStreamsPerConnection: env.poolMaxStreamsPerConnection,
    poolUnusedReleaseTimeoutMs: env.poolUnusedReleaseTimeoutMs,
  };
}
