// One HTTP/1.1 request over an already connected stream (a SOCKS connection through a ztunnel, an
// HBONE tunnel), `connection: close`; GET, or POST when a body is given.
import http from "node:http";
import type { Duplex } from "node:stream";

export interface HttpOverReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function httpOver(sock: Duplex, path: string, host: string, headers: Record<string, string> = {}, body?: string): Promise<HttpOverReply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ method: body === undefined ? "GET" : "POST", path, headers: { host, connection: "close", ...headers }, createConnection: () => sock as never }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
