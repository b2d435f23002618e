// HTTP/2 with prior knowledge carried inside a tunnel (the waypoint): a server session on the
// downstream tunnel and client sessions on upstream tunnels. Plain h2c over any Duplex, so TLS
// stays the tunnel's business. The only place such sessions are created.
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import type { H2ClientSession, H2Headers, H2ServerSession, H2ServerStream, H2Settings } from "./h2.ts";

export interface InnerH2ServerOptions {
  settings: H2Settings;
  /** bound on memory node:http2 may use for this session (MB) */
  maxSessionMemoryMb: number;
  onSession(session: H2ServerSession): void;
  onStream(stream: H2ServerStream, headers: H2Headers, flags: number, rawHeaders: string[]): void;
}

/** One server for any number of tunnels; serve() attaches a tunnel (its bytes start with the preface). */
export function createInnerH2Server(opts: InnerH2ServerOptions): { serve(transport: Duplex): void; close(): void } {
  const server = http2.createServer({ settings: opts.settings, maxSessionMemory: opts.maxSessionMemoryMb, maxHeaderListPairs: 256 } as http2.ServerOptions);
  server.on("session", (s: H2ServerSession) => opts.onSession(s));
  server.on("stream", (stream: H2ServerStream, headers: H2Headers, flags: number, raw: string[]) => opts.onStream(stream, headers, flags, raw));
  return {
    serve(transport) {
      server.emit("connection", transport);
    },
    close() {
      server.close();
    },
  };
}

/** An h2c client session over `transport` (an upstream tunnel). */
export function connectInnerH2(transport: Duplex, settings: H2Settings, maxSessionMemoryMb: number): H2ClientSession {
  return http2.connect("http://upstream.invalid", {
    createConnection: () => transport as never,
    settings,
    maxSessionMemory: maxSessionMemoryMb,
  });
}
