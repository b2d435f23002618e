// HTTP/1.1 inside tunnels (the waypoint): node:http parses and frames requests over any Duplex,
// here a TunnelDuplex around an HBONE stream (reference/bun.md §3.4). The only place node:http is used.
import http from "node:http";
import type { Duplex } from "node:stream";

export type Http1Request = http.IncomingMessage;
export type Http1Response = http.ServerResponse;
export type Http1Headers = http.OutgoingHttpHeaders;
export type Http1ClientRequest = http.ClientRequest;

export interface Http1Server {
  /** Serve HTTP/1.1 (keep-alive) on one transport. */
  serve(transport: Duplex): void;
  close(): void;
}

export function createHttp1Server(handler: (req: Http1Request, res: Http1Response) => void): Http1Server {
  const server = http.createServer({ keepAlive: true }, handler);
  return {
    serve(transport) {
      server.emit("connection", transport);
    },
    close() {
      server.close();
    },
  };
}

/** One HTTP/1.1 request written on `transport` (an upstream tunnel). */
export function http1Request(opts: { method: string; path: string; headers: Http1Headers }, transport: Duplex): Http1ClientRequest {
  return http.request({ method: opts.method, path: opts.path, headers: opts.headers, createConnection: () => transport as never });
}
