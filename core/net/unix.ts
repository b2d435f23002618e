// A line-oriented request/response channel over a unix stream socket: the pod hand-off between
// `mesh pod add|remove` and a ztunnel. Only root may connect (socket file 0600, directory 0700):
// whoever can talk here can make the ztunnel serve a workload identity in a namespace.
import { chmodSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import type { Socket, UnixSocketListener } from "bun";
import { ErrorCodes, MeshError } from "../errors/index.ts";

/** Longest request or response line; anything longer is a protocol error. */
export const MAX_LINE_BYTES = 64 * 1024;

export interface UnixLineServer {
  readonly path: string;
  close(): void;
}

interface LineState {
  buffered: string;
  chain: Promise<void>;
}

/** Whether something accepts connections on the unix socket at `path`. */
export async function unixSocketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  if (!existsSync(path)) return false;
  try {
    const s = await Promise.race([
      Bun.connect({ unix: path, socket: { data() {} } }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("timeout")), timeoutMs)),
    ]);
    s.end();
    return true;
  } catch {
    return false;
  }
}

/**
 * Listens on `path`; `onLine` answers each request line (one response line per request, in
 * order). A stale socket file nobody answers on is replaced; a live one is ADDRESS_IN_USE.
 */
export async function serveUnixLines(path: string, onLine: (line: string) => Promise<string>): Promise<UnixLineServer> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (existsSync(path)) {
    if (await unixSocketAnswers(path)) throw new MeshError(ErrorCodes.ADDRESS_IN_USE, `another process already serves the pod socket ${path}`);
    rmSync(path, { force: true });
  }
  let listener: UnixSocketListener<LineState>;
  try {
    listener = Bun.listen<LineState>({
      unix: path,
      socket: {
        open(s) {
          s.data = { buffered: "", chain: Promise.resolve() };
        },
        data(s, d) {
          s.data.buffered += d.toString("utf8");
          if (s.data.buffered.length > MAX_LINE_BYTES && !s.data.buffered.includes("\n")) {
            s.end(`${JSON.stringify({ ok: false, code: ErrorCodes.FLAG_INVALID, error: `request longer than ${MAX_LINE_BYTES} bytes` })}\n`);
            return;
          }
          let nl: number;
          // One request at a time per connection, answered in order.
          while ((nl = s.data.buffered.indexOf("\n")) >= 0) {
            const line = s.data.buffered.slice(0, nl);
            s.data.buffered = s.data.buffered.slice(nl + 1);
            s.data.chain = s.data.chain.then(() => onLine(line)).then((out) => void s.write(`${out}\n`));
          }
        },
        error() {},
      },
    });
  } catch (e) {
    throw new MeshError(ErrorCodes.LISTEN_FAILED, `cannot listen on unix socket ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  chmodSync(path, 0o600);
  return {
    path,
    close() {
      listener.stop(true);
      rmSync(path, { force: true });
    },
  };
}

/** Sends one request line and resolves with the response line. NO_ZTUNNEL-style failures are UPSTREAM_CONNECT. */
export async function requestUnixLine(path: string, line: string, timeoutMs: number): Promise<string> {
  if (!existsSync(path)) throw new MeshError(ErrorCodes.UPSTREAM_CONNECT, `no ztunnel is listening on ${path} (the socket does not exist)`);
  return new Promise<string>((resolve, reject) => {
    let buffered = "";
    let settled = false;
    let sock: Socket<undefined> | undefined;
    const finish = (err: Error | undefined, value?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock?.end();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(() => finish(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `no answer on ${path} within ${timeoutMs} ms`)), timeoutMs);
    Bun.connect({
      unix: path,
      socket: {
        open(s) {
          sock = s;
          s.write(`${line}\n`);
        },
        data(_s, d) {
          buffered += d.toString("utf8");
          const nl = buffered.indexOf("\n");
          if (nl >= 0) finish(undefined, buffered.slice(0, nl));
          else if (buffered.length > MAX_LINE_BYTES) finish(new MeshError(ErrorCodes.INTERNAL, `answer on ${path} is longer than ${MAX_LINE_BYTES} bytes`));
        },
        close() {
          finish(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `the process on ${path} closed the connection without answering`));
        },
        error(_s, e) {
          finish(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `pod socket ${path}: ${e.message}`, { cause: e }));
        },
      },
    }).catch((e: unknown) =>
      finish(new MeshError(ErrorCodes.UPSTREAM_CONNECT, `no ztunnel is listening on ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e })),
    );
  });
}
