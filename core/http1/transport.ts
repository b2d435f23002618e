// The byte stream an HTTP/1.1 connection runs over: a subset of core/net's ByteStream, so a tunnel
// stream, a TCP connection or any node:stream Duplex (adapted by core/net) fits.
import type { Duplex } from "node:stream";
import { DuplexByteStream, type ByteStream } from "../net/index.ts";

export interface Http1TransportEvents {
  /** Chunks are handed on without copying: the transport must not reuse their memory. */
  data(chunk: Uint8Array): void;
  /** The peer finished sending (half-close). */
  end(): void;
  /** write() may be called again after it returned false. */
  drain(): void;
  close(err?: Error): void;
}

export interface Http1Transport {
  /** false = above the high-water mark; wait for `drain`. The chunk is accepted either way. */
  write(chunk: Uint8Array): boolean;
  /** Half-close our side once queued bytes are flushed. */
  end(): void;
  destroy(err?: Error): void;
  pause(): void;
  resume(): void;
  setEvents(events: Partial<Http1TransportEvents>): void;
}

function isTransport(t: Http1Transport | Duplex): t is Http1Transport {
  return typeof (t as Partial<Http1Transport>).setEvents === "function";
}

/** Uses `t` as is, or adapts a node:stream Duplex (e.g. the tunnel's TunnelDuplex or a net.Socket). */
export function asTransport(t: Http1Transport | Duplex): Http1Transport {
  return isTransport(t) ? t : new DuplexByteStream(t);
}

// core/net's ByteStream (tunnel streams, TCP connections) is an Http1Transport as it is.
const byteStreamFits: ByteStream extends Http1Transport ? true : never = true;
void byteStreamFits;
