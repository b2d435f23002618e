// Bounds on what one client may make the waypoint hold: header sizes and counts, URI length,
// concurrent streams, and how long a connection may sit idle or take to send a request head.
// Defaults follow Envoy's (60 KiB of headers, 100 fields).
export interface L7Limits {
  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
  readonly maxUriBytes: number;
  /** HTTP/2 streams open at once on one tunnel */
  readonly maxConcurrentStreams: number;
  /** a connection with no request in flight is closed after this long */
  readonly idleTimeoutMs: number;
  /** a request head must arrive completely within this long (HTTP/1.x; 408 otherwise) */
  readonly headerTimeoutMs: number;
  /** how long protocol detection waits for the first bytes before treating the tunnel as TCP */
  readonly sniffTimeoutMs: number;
}

export const DEFAULT_L7_LIMITS: L7Limits = {
  maxHeaderBytes: 60 * 1024,
  maxHeaderCount: 100,
  maxUriBytes: 16 * 1024,
  maxConcurrentStreams: 100,
  idleTimeoutMs: 300_000,
  headerTimeoutMs: 10_000,
  sniffTimeoutMs: 1_000,
};
