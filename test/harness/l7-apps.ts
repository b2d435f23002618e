// Apps behind the waypoint in end-to-end tests: real node:http and node:http2 (h2c) servers on a
// workload's address that record what reached them (method, target, every header value, body hash,
// TCP connections) and answer with JSON unless a test hands them its own behaviour.
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import { sha256 } from "./l7-client.ts";

export interface SeenRequest {
  readonly app: string;
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  /** lower-case names, every value in order (from the raw header list) */
  readonly headers: Record<string, string[]>;
  readonly bodyBytes: number;
  readonly bodySha256: string;
  readonly trailers: Record<string, string>;
}

export interface HttpApp {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** TCP connections accepted so far */
  readonly connections: number;
  readonly requests: SeenRequest[];
  close(): Promise<void>;
}

/** Decides the response; `body` is the whole request body. Return nothing to get the JSON echo. */
export type HttpBehaviour = (seen: SeenRequest, body: Buffer, res: http.ServerResponse) => boolean | void | Promise<boolean | void>;

function rawHeaderList(raw: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) (out[raw[i]!.toLowerCase()] ??= []).push(raw[i + 1]!);
  return out;
}

/**
 * The JSON echo: the request as the app saw it. Also sets three headers a ResponseHeaderModifier
 * can act on (`x-app-set`, `x-app-add`, `x-app-remove`).
 */
export function echoResponse(seen: SeenRequest, res: http.ServerResponse, status = 200): void {
  const body = JSON.stringify(seen);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
    "x-app-set": "app",
    "x-app-add": "app",
    "x-app-remove": "app",
  });
  res.end(body);
}

/** An HTTP/1.1 app on `host:port` (a workload address and its fixed app port). */
export function startHttpApp(name: string, host: string, port: number, behaviour?: HttpBehaviour): Promise<HttpApp> {
  const requests: SeenRequest[] = [];
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const seen: SeenRequest = {
        app: name,
        method: req.method ?? "",
        url: req.url ?? "",
        httpVersion: req.httpVersion,
        headers: rawHeaderList(req.rawHeaders),
        bodyBytes: body.length,
        bodySha256: sha256(body),
        trailers: { ...(req.trailers as Record<string, string>) },
      };
      requests.push(seen);
      void (async () => {
        try {
          const handled = behaviour ? await behaviour(seen, body, res) : undefined;
          if (handled !== true && !res.headersSent) echoResponse(seen, res);
        } catch {
          res.destroy();
        }
      })();
    });
  });
  server.on("connection", (s: net.Socket) => {
    connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () =>
      resolve({
        name,
        host,
        port,
        get connections() {
          return connections;
        },
        requests,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    );
  });
}

export interface H2Seen {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: http2.IncomingHttpHeaders;
  readonly bodyBytes: number;
  readonly bodySha256: string;
  readonly trailers: http2.IncomingHttpHeaders | undefined;
}

export interface H2App {
  readonly host: string;
  readonly port: number;
  readonly connections: number;
  readonly requests: H2Seen[];
  close(): Promise<void>;
}

/** Answers one stream; `body` is the whole request body (and its trailers, if any). */
export type H2Behaviour = (stream: http2.ServerHttp2Stream, seen: H2Seen, body: Buffer) => void;

/** An h2c app (HTTP/2 with prior knowledge, no TLS) on `host:port`. */
export function startH2App(host: string, port: number, behaviour: H2Behaviour): Promise<H2App> {
  const requests: H2Seen[] = [];
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = http2.createServer();
  server.on("connection", (s: net.Socket) => {
    connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.on("error", () => {});
    const chunks: Buffer[] = [];
    let trailers: http2.IncomingHttpHeaders | undefined;
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const body = Buffer.concat(chunks);
      const seen: H2Seen = {
        method: String(headers[":method"]),
        path: String(headers[":path"]),
        authority: String(headers[":authority"]),
        headers,
        bodyBytes: body.length,
        bodySha256: sha256(body),
        trailers,
      };
      requests.push(seen);
      behaviour(stream, seen, body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () =>
      resolve({
        host,
        port,
        get connections() {
          return connections;
        },
        requests,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    );
  });
}
