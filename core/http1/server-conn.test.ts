// The server connection over real TCP sockets (and an in-memory duplex pair): rejections on the
// wire, pipelining order, keep-alive, HTTP/1.0, 100-continue, timeouts, early responses, and an
// 8 MiB echo with backpressure in both directions.
import { afterEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { duplexPair } from "node:stream";
import { connectHttp1 } from "./client-conn.ts";
import type { Http1Error } from "./errors.ts";
import type { Http1Handler, Http1ServerOptions } from "./server-conn.ts";
import { serveHttp1 } from "./server-conn.ts";
import { bytes, connect, headsOf, parseResponses, rawExchange, startServer, until, type TestServer } from "./test-fixtures.ts";
import { H, rejections } from "./test-rejections.ts";

let servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers) await s.close();
  servers = [];
});

async function server(handler: Http1Handler, options: Http1ServerOptions = {}): Promise<TestServer> {
  const s = await startServer(handler, options);
  servers.push(s);
  return s;
}

const hello: Http1Handler = async (req, res) => {
  await req.body.readAll();
  res.end(`hello ${req.path}`);
};

/** Status codes and bodies of the responses in `text`, given the request methods. */
function responses(text: string, methods = ["GET", "GET", "GET", "GET", "GET", "GET"]): { status: number; body: string; close: boolean }[] {
  const r = parseResponses([bytes(text)], methods, {}, true);
  const out: { status: number; body: string; close: boolean }[] = [];
  for (const e of r.events) {
    if (e.kind === "head") out.push({ status: e.head.status!, body: "", close: !e.head.keepAlive });
    else if (e.kind === "body") out[out.length - 1]!.body += e.data;
  }
  return out;
}

describe("rejections on the wire", () => {
  for (const c of rejections) {
    test(`${c.name} -> ${c.status}, Connection: close, closed`, async () => {
      const errors: Http1Error[] = [];
      let handled = 0;
      const s = await server(
        async (req, res) => {
          handled++;
          try {
            await req.body.readAll();
            res.end("unexpected");
          } catch {
            // the connection answers the body error itself
          }
        },
        { limits: c.limits ?? {}, onProtocolError: (e) => errors.push(e) },
      );
      const r = await rawExchange(s.port, c.input);
      expect(r.ended).toBe(true);
      const got = responses(r.text);
      expect(got).toHaveLength(1);
      expect(got[0]).toEqual({ status: c.status, body: `${c.reason}\n`, close: true });
      expect(errors.map((e) => e.reason)).toEqual([c.reason]);
      expect(handled).toBe(c.afterHead ? 1 : 0);
    });
  }

  test("CL.TE smuggling: the hidden request is never handled", async () => {
    const paths: string[] = [];
    const s = await server((req, res) => {
      paths.push(req.path);
      res.end("ok");
    });
    const smuggle = `POST / HTTP/1.1\r\n${H}Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n${H}X: x`;
    const r = await rawExchange(s.port, smuggle);
    expect(responses(r.text).map((x) => x.status)).toEqual([400]);
    expect(paths).toEqual([]);
  });

  test("a valid request, then garbage: answered, then 400 and close", async () => {
    const s = await server(hello);
    const r = await rawExchange(s.port, `GET /a HTTP/1.1\r\n${H}\r\nGET /b HTTP/1.1\r\nHost : a\r\n\r\nGET /c HTTP/1.1\r\n${H}\r\n`);
    expect(responses(r.text)).toEqual([
      { status: 200, body: "hello /a", close: false },
      { status: 400, body: "whitespace_before_colon\n", close: true },
    ]);
    expect(r.ended).toBe(true);
  });
});

describe("pipelining and keep-alive", () => {
  test("pipelined requests are handled one at a time and answered in order", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const order: string[] = [];
    const s = await server(async (req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      order.push(req.path);
      const body = Buffer.from(await req.body.readAll()).toString();
      // the first response is slow: the others must still come after it
      if (req.path === "/slow") await new Promise((r) => setTimeout(r, 20));
      res.writeHead(200, [["x-path", req.path]]);
      res.write(`${req.method} ${req.path}`);
      res.end(body ? ` ${body}` : "");
      inFlight--;
    });
    const input =
      `GET /slow HTTP/1.1\r\n${H}\r\n` +
      `POST /post HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello` +
      `POST /chunked HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n` +
      `GET /last HTTP/1.1\r\n${H}Connection: close\r\n\r\n`;
    const r = await rawExchange(s.port, input);
    expect(order).toEqual(["/slow", "/post", "/chunked", "/last"]);
    expect(maxInFlight).toBe(1); // the next request is not even parsed before the previous response is done
    expect(responses(r.text).map((x) => x.body)).toEqual(["GET /slow", "POST /post hello", "POST /chunked abc", "GET /last"]);
    expect(r.ended).toBe(true);
    expect(s.connections[0]!.requestCount).toBe(4);
  });

  test("thousands of pipelined requests with a synchronous handler", async () => {
    let n = 0;
    const s = await server((_req, res) => {
      n++;
      res.end("x");
    });
    const count = 2000;
    const r = await rawExchange(s.port, `GET / HTTP/1.1\r\n${H}\r\n`.repeat(count - 1) + `GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    expect(n).toBe(count);
    expect(responses(r.text, Array<string>(count).fill("GET"))).toHaveLength(count);
  });

  test("pipelined input beyond the limit pauses the transport until the response is done", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = await server(
      async (req, res) => {
        if (req.path === "/hold") await gate;
        res.end("ok");
      },
      { limits: { maxPipelinedBytes: 1024 } },
    );
    const sock = await connect(s.port);
    let text = "";
    sock.on("data", (d: Buffer) => (text += d.toString("latin1")));
    const filler = `GET /f HTTP/1.1\r\n${H}X-Pad: ${"p".repeat(400)}\r\n\r\n`;
    sock.write(`GET /hold HTTP/1.1\r\n${H}\r\n` + filler.repeat(200));
    await until(() => s.transports[0]?.pauses === 1);
    expect(text).toBe("");
    release();
    await until(() => responses(text, Array<string>(201).fill("GET")).length === 201);
    expect(s.transports[0]!.resumes).toBeGreaterThanOrEqual(1);
    sock.destroy();
  });

  test("keep-alive through the client connection: one connection, many requests", async () => {
    const s = await server(hello);
    const sock = await connect(s.port);
    const c = connectHttp1(sock);
    for (let i = 0; i < 5; i++) {
      const ex = c.request({ method: "GET", target: `/${i}`, headers: [["host", "a"]] });
      const res = await ex.response;
      expect(Buffer.from(await res.body.readAll()).toString()).toBe(`hello /${i}`);
      expect(res.headers.get("content-length")).toBe(`${`hello /${i}`.length}`);
      expect(c.reusable).toBe(true);
    }
    expect(s.connections).toHaveLength(1);
    expect(s.connections[0]!.requestCount).toBe(5);
    c.close();
  });

  test("maxRequestsPerConnection closes after the last one", async () => {
    const s = await server(hello, { maxRequestsPerConnection: 2 });
    const r = await rawExchange(s.port, `GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}\r\nGET /3 HTTP/1.1\r\n${H}\r\n`);
    expect(responses(r.text)).toEqual([
      { status: 200, body: "hello /1", close: false },
      { status: 200, body: "hello /2", close: true },
    ]);
    expect(r.ended).toBe(true);
  });

  test("graceful close finishes the response in progress with Connection: close", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = await server(async (_req, res) => {
      await gate;
      res.end("done");
    });
    const pending = rawExchange(s.port, `GET / HTTP/1.1\r\n${H}\r\n`);
    await until(() => s.connections[0]?.requestCount === 1);
    s.connections[0]!.close();
    release();
    const r = await pending;
    expect(responses(r.text)).toEqual([{ status: 200, body: "done", close: true }]);
    expect(r.ended).toBe(true);
  });
});

describe("HTTP/1.0", () => {
  test("closes after the response unless keep-alive was asked for", async () => {
    const s = await server(hello);
    const r = await rawExchange(s.port, `GET /a HTTP/1.0\r\n\r\n`);
    expect(r.text).toBe("HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nhello /a");
    expect(r.ended).toBe(true);
  });

  test("keep-alive: Content-Length and Connection: keep-alive, the connection stays", async () => {
    const s = await server(hello);
    const r = await rawExchange(s.port, `GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n`);
    expect(r.text).toBe(
      "HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: keep-alive\r\n\r\nhello /a" + "HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nhello /b",
    );
  });

  test("a streamed body of unknown length is delimited by closing", async () => {
    const s = await server((_req, res) => {
      res.writeHead(200);
      res.write("part1 ");
      setImmediate(() => res.end("part2"));
    });
    const r = await rawExchange(s.port, `GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`);
    expect(r.text).toBe("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npart1 part2");
    expect(r.ended).toBe(true);
  });
});

describe("responses", () => {
  test("HEAD: head only, the declared length kept", async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, [["content-length", "5"]]);
      res.end("hello");
    });
    const r = await rawExchange(s.port, `HEAD / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    expect(r.text).toBe("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n");
  });

  test("HEAD answered with end(body): the length is declared, no body is sent", async () => {
    const s = await server((_req, res) => res.end("hello"));
    const r = await rawExchange(s.port, `HEAD / HTTP/1.1\r\n${H}\r\nHEAD / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    expect(r.text).toBe("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n");
  });

  test("204 and 304 carry no body", async () => {
    const s = await server((req, res) => {
      res.writeHead(req.path === "/204" ? 204 : 304);
      res.end("ignored");
    });
    const r = await rawExchange(s.port, `GET /204 HTTP/1.1\r\n${H}\r\nGET /304 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    expect(r.text).toBe("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nconnection: close\r\n\r\n");
  });

  test("chunked response with trailers", async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, [["trailer", "x-sum"]]);
      res.write("ab");
      res.write("cd");
      res.end(undefined, [["x-sum", "4"]]);
    });
    const r = await rawExchange(s.port, `GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    expect(r.text).toBe("HTTP/1.1 200 OK\r\ntrailer: x-sum\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\nx-sum: 4\r\n\r\n");
  });

  test("a handler's unsafe header is refused before anything is written", async () => {
    let thrown: unknown;
    const s = await server((_req, res) => {
      try {
        res.writeHead(200, [["x-a", "v\r\nset-cookie: evil=1"]]);
      } catch (e) {
        thrown = e;
      }
      res.end("safe");
    });
    const r = await rawExchange(s.port, `GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    expect((thrown as Http1Error).code).toBe("HTTP1_INVALID_FIELD");
    expect(r.text).toBe("HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nsafe");
  });

  test("a handler that throws gets a 500 and the connection closes", async () => {
    const failures: unknown[] = [];
    const s = await server(
      async () => {
        throw new Error("boom");
      },
      { onHandlerError: (e) => failures.push(e) },
    );
    const r = await rawExchange(s.port, `GET / HTTP/1.1\r\n${H}\r\nGET /next HTTP/1.1\r\n${H}\r\n`);
    expect(responses(r.text)).toEqual([{ status: 500, body: "handler_error\n", close: true }]);
    expect(failures).toHaveLength(1);
  });

  test("a body shorter than its Content-Length drops the connection", async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, [["content-length", "10"]]);
      res.end("short");
    });
    const r = await rawExchange(s.port, `GET / HTTP/1.1\r\n${H}\r\n`);
    expect(r.text).toBe("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort");
  });
});

describe("request bodies", () => {
  test("an unread small body is discarded and the connection stays usable", async () => {
    const s = await server((req, res) => {
      res.writeHead(req.path === "/deny" ? 403 : 200);
      res.end(req.path);
    });
    const r = await rawExchange(s.port, [`POST /deny HTTP/1.1\r\n${H}Content-Length: 11\r\n\r\nhello`, ` world`, `GET /next HTTP/1.1\r\n${H}Connection: close\r\n\r\n`]);
    expect(responses(r.text, ["POST", "GET"])).toEqual([
      { status: 403, body: "/deny", close: false },
      { status: 200, body: "/next", close: true },
    ]);
  });

  test("an unread body beyond maxDiscardBytes closes the connection after the response", async () => {
    const s = await server(
      (_req, res) => {
        res.end("no");
      },
      { maxDiscardBytes: 1024 },
    );
    const r = await rawExchange(s.port, [`POST / HTTP/1.1\r\n${H}Content-Length: 100000\r\n\r\n`, "x".repeat(4096), "x".repeat(4096)]);
    expect(responses(r.text, ["POST"])).toEqual([{ status: 200, body: "no", close: false }]);
    expect(r.ended).toBe(true);
  });

  test("Expect: 100-continue: 100 is sent when the handler reads", async () => {
    const s = await server(async (req, res) => {
      res.end(Buffer.from(await req.body.readAll()).toString());
    });
    const sock = await connect(s.port);
    let text = "";
    sock.on("data", (d: Buffer) => (text += d.toString("latin1")));
    sock.write(`POST / HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 4\r\n\r\n`);
    await until(() => text.includes("\r\n\r\n"));
    expect(text).toBe("HTTP/1.1 100 Continue\r\n\r\n");
    sock.write("data");
    await until(() => text.endsWith("data"));
    expect(text).toBe("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndata");
    sock.destroy();
  });

  test("Expect: 100-continue answered without reading: no 100, Connection: close", async () => {
    const s = await server((_req, res) => res.end("nope"));
    const r = await rawExchange(s.port, `POST / HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 4\r\n\r\n`);
    expect(r.text).toBe("HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope");
    expect(r.ended).toBe(true);
  });

  test("the client going away mid-body fails the body for the handler", async () => {
    let failure: unknown;
    const s = await server(async (req, res) => {
      try {
        await req.body.readAll();
      } catch (e) {
        failure = e;
      }
      res.end();
    });
    const sock = await connect(s.port);
    sock.write(`POST / HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\npartial`);
    await until(() => s.connections[0]?.requestCount === 1);
    sock.destroy();
    await until(() => failure !== undefined);
    expect((failure as Http1Error).code).toBe("DOWNSTREAM_CLOSED");
    expect(["eof_in_body", "downstream_closed"]).toContain((failure as Http1Error).reason);
  });
});

describe("timeouts", () => {
  test("a head that does not complete in time gets 408 and the connection closes", async () => {
    const errors: string[] = [];
    const s = await server(hello, { headerTimeoutMs: 50, onProtocolError: (e) => errors.push(e.reason) });
    const r = await rawExchange(s.port, `GET / HTTP/1.1\r\nHost: a\r\n`);
    expect(responses(r.text)).toEqual([{ status: 408, body: "header_timeout\n", close: true }]);
    expect(r.ended).toBe(true);
    expect(errors).toEqual(["header_timeout"]);
  });

  test("an idle connection closes silently, before and between requests", async () => {
    const s = await server(hello, { idleTimeoutMs: 50, headerTimeoutMs: 10_000 });
    const silent = await rawExchange(s.port, []);
    expect(silent).toEqual({ text: "", ended: true });
    const after = await rawExchange(s.port, `GET /a HTTP/1.1\r\n${H}\r\n`);
    expect(responses(after.text)).toEqual([{ status: 200, body: "hello /a", close: false }]);
    expect(after.ended).toBe(true);
  });

  test("the header timer does not run while a handler works", async () => {
    const s = await server(
      async (_req, res) => {
        await new Promise((r) => setTimeout(r, 120));
        res.end("slow but fine");
      },
      { headerTimeoutMs: 30, idleTimeoutMs: 30 },
    );
    const r = await rawExchange(s.port, `GET / HTTP/1.1\r\n${H}\r\n`);
    expect(responses(r.text)).toEqual([{ status: 200, body: "slow but fine", close: false }]);
  });
});

describe("large bodies with backpressure", () => {
  const SIZE = 8 * 1024 * 1024;

  function payload(): Uint8Array {
    const b = Buffer.allocUnsafe(SIZE);
    for (let i = 0; i < SIZE; i += 4) b.writeUInt32LE((i * 2654435761) >>> 0, i);
    return b;
  }
  const sha = (b: Uint8Array | Uint8Array[]): string => {
    const h = createHash("sha256");
    for (const p of Array.isArray(b) ? b : [b]) h.update(p);
    return h.digest("hex");
  };

  test("8 MiB echoed through a server connection over TCP, hash-checked", async () => {
    const data = payload();
    let s!: TestServer;
    s = await server(async (req, res) => {
      // hold off reading until the connection has pushed back on the client
      await until(() => s.transports[0]!.pauses > 0);
      res.writeHead(200);
      for await (const c of req.body) if (!res.write(c)) await res.drained();
      res.end(undefined, [["x-bytes", String(req.body.bytesReceived)]]);
    });
    const sock = await connect(s.port);
    const c = connectHttp1(sock);
    const ex = c.request({ method: "POST", target: "/echo", headers: [["host", "a"]], bodyLength: SIZE });
    const sending = (async () => {
      for (let off = 0; off < SIZE; off += 64 * 1024) if (!ex.write(data.subarray(off, off + 64 * 1024))) await ex.drained();
      ex.end();
    })();
    const res = await ex.response;
    const parts: Uint8Array[] = [];
    let n = 0;
    let first = true;
    for await (const chunk of res.body) {
      if (first) {
        // a slow reader: let the server's writes back up
        first = false;
        await new Promise((r) => setTimeout(r, 20));
      }
      parts.push(chunk);
      n += chunk.length;
    }
    await sending;
    expect(n).toBe(SIZE);
    expect(sha(parts)).toBe(sha(data));
    expect(res.body.trailers?.get("x-bytes")).toBe(String(SIZE));
    expect(s.transports[0]!.pauses).toBeGreaterThan(0);
    expect(c.reusable).toBe(true);
    c.close();
  });

  test("chunked round trip with trailers over an in-memory duplex pair", async () => {
    const [serverSide, clientSide] = duplexPair();
    const conn = serveHttp1(serverSide, async (req, res) => {
      res.writeHead(200, [["content-type", "application/octet-stream"]]);
      for await (const c of req.body) if (!res.write(c)) await res.drained();
      res.end(undefined, [["x-echo-trailer", req.body.trailers?.get("x-checksum") ?? "missing"]]);
    });
    const c = connectHttp1(clientSide);
    const data = payload().subarray(0, 1024 * 1024);
    for (let round = 0; round < 2; round++) {
      const ex = c.request({ method: "PUT", target: "/r", headers: [["host", "a"]], bodyLength: "chunked" });
      const sending = (async () => {
        for (let off = 0; off < data.length; off += 10_000) if (!ex.write(data.subarray(off, off + 10_000))) await ex.drained();
        ex.end(undefined, [["x-checksum", sha(data).slice(0, 16)]]);
      })();
      const res = await ex.response;
      const got = await res.body.readAll();
      await sending;
      expect(sha(got)).toBe(sha(data));
      expect(res.body.trailers?.get("x-echo-trailer")).toBe(sha(data).slice(0, 16));
      expect(c.reusable).toBe(true);
    }
    expect(conn.requestCount).toBe(2);
    c.close();
    await conn.closed;
  });
});

test("headsOf helper sanity", () => {
  expect(headsOf({ events: [], error: undefined, heads: 0, completes: 0, maxBuffered: 0 })).toEqual([]);
});
