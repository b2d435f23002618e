// The client connection against a scripted upstream on a real TCP socket: response framing
// (HEAD, 1xx, 204, 304, read-until-close), reuse verdicts, and upstream misbehaviour.
import { afterEach, describe, expect, test } from "bun:test";
import net from "node:net";
import { connectHttp1, type Http1ClientConnection } from "./client-conn.ts";
import { Http1Error } from "./errors.ts";
import type { ResponseHead } from "./parser.ts";
import { connect, until } from "./test-fixtures.ts";

interface Upstream {
  readonly port: number;
  /** Request heads received, in order. */
  readonly heads: string[];
  close(): Promise<void>;
}

let upstreams: Upstream[] = [];
afterEach(async () => {
  for (const u of upstreams) await u.close();
  upstreams = [];
});

/** A raw TCP upstream: `respond` is called with each request head (bodies are not expected). */
async function upstream(respond: (head: string, sock: net.Socket, index: number) => void): Promise<Upstream> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.on("error", () => {});
    let buf = "";
    sock.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      for (let i = buf.indexOf("\r\n\r\n"); i !== -1; i = buf.indexOf("\r\n\r\n")) {
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4);
        heads.push(head);
        respond(head, sock, heads.length - 1);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const u: Upstream = {
    port: (server.address() as net.AddressInfo).port,
    heads,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  upstreams.push(u);
  return u;
}

async function client(port: number, onInformational?: (h: ResponseHead) => void): Promise<Http1ClientConnection> {
  return connectHttp1(await connect(port), onInformational ? { onInformational } : {});
}

async function get(c: Http1ClientConnection, method = "GET", target = "/"): Promise<{ status: number; body: string }> {
  const res = await c.request({ method, target, headers: [["host", "up"]] }).response;
  return { status: res.status, body: Buffer.from(await res.body.readAll()).toString() };
}

describe("reuse", () => {
  test("keep-alive responses leave the connection reusable", async () => {
    const u = await upstream((_h, s) => s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    const c = await client(u.port);
    for (let i = 0; i < 3; i++) {
      expect(await get(c)).toEqual({ status: 200, body: "ok" });
      expect(c.reusable).toBe(true);
    }
    expect(u.heads).toHaveLength(3);
    expect(u.heads[0]).toBe("GET / HTTP/1.1\r\nhost: up");
  });

  test("Connection: close, HTTP/1.0 and read-until-close end reuse", async () => {
    const answers = [
      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na",
      "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb",
      "HTTP/1.1 200 OK\r\n\r\nuntil close",
    ];
    for (const answer of answers) {
      const u = await upstream((_h, s) => {
        s.write(answer);
        if (answer.includes("until close")) s.end();
      });
      const c = await client(u.port);
      const r = await get(c);
      expect(r.status).toBe(200);
      expect(c.reusable).toBe(false);
      expect(() => c.request({ method: "GET", target: "/", headers: [] })).toThrow(Http1Error);
    }
  });

  test("HTTP/1.0 keep-alive is honoured", async () => {
    const u = await upstream((_h, s) => s.write("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nk"));
    const c = await client(u.port);
    expect(await get(c)).toEqual({ status: 200, body: "k" });
    expect(c.reusable).toBe(true);
  });

  test("Connection: close on our request ends reuse", async () => {
    const u = await upstream((_h, s) => s.write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    const c = await client(u.port);
    const res = await c.request({ method: "GET", target: "/", headers: [["host", "up"]], close: true }).response;
    await res.body.readAll();
    expect(u.heads[0]).toBe("GET / HTTP/1.1\r\nhost: up\r\nconnection: close");
    expect(c.reusable).toBe(false);
  });

  test("unsolicited bytes after a response break the connection", async () => {
    const u = await upstream((_h, s) => s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"));
    const c = await client(u.port);
    const res = await c.request({ method: "GET", target: "/", headers: [] }).response;
    await res.body.readAll();
    await until(() => !c.reusable);
    expect(c.reusable).toBe(false);
  });
});

describe("response framing", () => {
  test("HEAD, 204 and 304 have no body; the connection carries on", async () => {
    const u = await upstream((head, s) => {
      if (head.startsWith("HEAD")) s.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
      else if (head.includes("/204")) s.write("HTTP/1.1 204 No Content\r\n\r\n");
      else if (head.includes("/304")) s.write("HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n");
      else s.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody");
    });
    const c = await client(u.port);
    expect(await get(c, "HEAD")).toEqual({ status: 200, body: "" });
    expect(await get(c, "GET", "/204")).toEqual({ status: 204, body: "" });
    expect(await get(c, "GET", "/304")).toEqual({ status: 304, body: "" });
    expect(await get(c)).toEqual({ status: 200, body: "body" });
    expect(c.reusable).toBe(true);
  });

  test("1xx responses are skipped and reported", async () => {
    const info: number[] = [];
    const u = await upstream((_h, s) => s.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi"));
    const c = await client(u.port, (h) => info.push(h.status));
    expect(await get(c)).toEqual({ status: 201, body: "hi" });
    expect(info).toEqual([100, 103]);
    expect(c.reusable).toBe(true);
  });

  test("chunked response with trailers", async () => {
    const u = await upstream((_h, s) => s.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nGrpc-Status: 0\r\n\r\n"));
    const c = await client(u.port);
    const res = await c.request({ method: "GET", target: "/", headers: [] }).response;
    expect(Buffer.from(await res.body.readAll()).toString()).toBe("abc");
    expect(res.body.trailers?.get("grpc-status")).toBe("0");
  });
});

describe("upstream misbehaviour", () => {
  async function failure(answer: (s: net.Socket) => void): Promise<Http1Error> {
    const u = await upstream((_h, s) => answer(s));
    const c = await client(u.port);
    try {
      const res = await c.request({ method: "GET", target: "/", headers: [] }).response;
      await res.body.readAll();
    } catch (e) {
      expect(c.reusable).toBe(false);
      return e as Http1Error;
    }
    throw new Error("expected a failure");
  }

  test("ambiguous framing -> 502 HTTP1_UPSTREAM_PROTOCOL", async () => {
    const e = await failure((s) => s.write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"));
    expect({ code: e.code, status: e.status, reason: e.reason }).toEqual({ code: "HTTP1_UPSTREAM_PROTOCOL", status: 502, reason: "content_length_and_transfer_encoding" });
  });

  test("closed before responding -> 503 UPSTREAM_RESET", async () => {
    const e = await failure((s) => s.end());
    expect({ code: e.code, status: e.status }).toEqual({ code: "UPSTREAM_RESET", status: 503 });
  });

  test("closed mid-body -> the body fails with UPSTREAM_RESET", async () => {
    const e = await failure((s) => {
      s.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
      s.end();
    });
    expect({ code: e.code, reason: e.reason }).toEqual({ code: "UPSTREAM_RESET", reason: "eof_in_body" });
  });

  test("an early response leaves the connection unusable", async () => {
    const u = await upstream((_h, s) => s.write("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n"));
    const c = await client(u.port);
    const ex = c.request({ method: "POST", target: "/", headers: [], bodyLength: 10 });
    ex.write("01234");
    const res = await ex.response;
    await res.body.readAll();
    expect(res.status).toBe(413);
    ex.end("56789");
    expect(c.reusable).toBe(false);
  });
});

describe("request validation", () => {
  test("unsafe fields are refused before anything is sent; the connection stays usable", async () => {
    const u = await upstream((_h, s) => s.write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    const c = await client(u.port);
    expect(() => c.request({ method: "GET", target: "/", headers: [["x-a", "1\r\nx-injected: 1"]] })).toThrow(Http1Error);
    expect(() => c.request({ method: "GET", target: "/a b", headers: [] })).toThrow(Http1Error);
    expect(c.reusable).toBe(true);
    expect((await get(c)).status).toBe(200);
    expect(u.heads).toEqual(["GET / HTTP/1.1\r\nhost: up"]);
  });

  test("a body longer than declared is refused and the connection dropped", async () => {
    const u = await upstream(() => {});
    const c = await client(u.port);
    const ex = c.request({ method: "POST", target: "/", headers: [], bodyLength: 3 });
    expect(() => ex.write("toolong")).toThrow(Http1Error);
    await until(() => !c.reusable);
    await ex.response.catch((e: unknown) => expect((e as Http1Error).code).toBe("UPSTREAM_RESET"));
  });
});
