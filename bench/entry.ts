// How a load generator reaches the server app through a path, and a dialer for it
// (plain TCP, or a SOCKS5 CONNECT through the mesh's loopback-mode listener).

import type { Socket } from "bun";

export type Entry =
  | { kind: "tcp"; host: string; port: number }
  /** SOCKS5 (RFC 1928, no auth, CONNECT, IPv4) via proxyHost:proxyPort to host:port. */
  | { kind: "socks5"; proxyHost: string; proxyPort: number; host: string; port: number };

export function describeEntry(e: Entry): string {
  return e.kind === "tcp" ? `tcp ${e.host}:${e.port}` : `socks5 ${e.proxyHost}:${e.proxyPort} -> ${e.host}:${e.port}`;
}

export function parseEntry(json: string): Entry {
  const v = JSON.parse(json) as Partial<Record<string, unknown>>;
  const str = (k: string): string => {
    if (typeof v[k] !== "string") throw new Error(`entry.${k} must be a string`);
    return v[k] as string;
  };
  const num = (k: string): number => {
    if (typeof v[k] !== "number" || !Number.isInteger(v[k])) throw new Error(`entry.${k} must be an integer`);
    return v[k] as number;
  };
  if (v.kind === "tcp") return { kind: "tcp", host: str("host"), port: num("port") };
  if (v.kind === "socks5") {
    return { kind: "socks5", proxyHost: str("proxyHost"), proxyPort: num("proxyPort"), host: str("host"), port: num("port") };
  }
  throw new Error(`unknown entry kind ${String(v.kind)}`);
}

/** Callbacks of an established stream (after any SOCKS5 exchange). */
export interface StreamHandlers {
  data(chunk: Buffer): void;
  drain(): void;
  close(error?: Error): void;
}

export type BenchSocket = Socket<undefined>;

const SOCKS_REPLY_MAX = 4 + 1 + 255 + 2;

function socksRequest(host: string, port: number): Uint8Array {
  const octets = host.split(".").map((o) => Number(o));
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    throw new Error(`SOCKS5 target must be an IPv4 address, got ${host}`);
  }
  return Uint8Array.from([5, 1, 0, 1, ...octets, port >> 8, port & 0xff]);
}

/** Length of a complete SOCKS5 reply at the start of buf, 0 if more bytes are needed. */
function socksReplyLength(buf: Uint8Array): number {
  if (buf.length < 5) return 0;
  const atyp = buf[3];
  const len = atyp === 1 ? 10 : atyp === 4 ? 22 : atyp === 3 ? 7 + (buf[4] as number) : -1;
  if (len < 0) throw new Error(`SOCKS5 reply with unknown address type ${atyp}`);
  return buf.length >= len ? len : 0;
}

const SOCKS_ERRORS: Record<number, string> = {
  1: "general failure",
  2: "connection not allowed by ruleset",
  3: "network unreachable",
  4: "host unreachable",
  5: "connection refused",
  6: "TTL expired",
  7: "command not supported",
  8: "address type not supported",
};

/**
 * Open a stream to the server app through `entry`. Resolves once bytes written go to the app
 * (for SOCKS5: after a success reply). Rejects on connect failure, SOCKS5 error or timeout;
 * the socket is closed in every failure case.
 */
export function dial(entry: Entry, handlers: StreamHandlers, timeoutMs: number): Promise<BenchSocket> {
  return new Promise<BenchSocket>((resolve, reject) => {
    let state: "connecting" | "greeting" | "request" | "open" | "failed" = "connecting";
    let pending = new Uint8Array(0);
    let sock: BenchSocket | undefined;
    const fail = (err: Error) => {
      if (state === "open" || state === "failed") return;
      state = "failed";
      clearTimeout(timer);
      sock?.terminate();
      reject(err);
    };
    const established = (s: BenchSocket) => {
      state = "open";
      clearTimeout(timer);
      resolve(s);
    };
    const timer = setTimeout(() => fail(new Error(`dial ${describeEntry(entry)}: timed out after ${timeoutMs} ms`)), timeoutMs);
    const target = entry.kind === "tcp" ? entry : { host: entry.proxyHost, port: entry.proxyPort };
    Bun.connect({
      hostname: target.host,
      port: target.port,
      socket: {
        open(s) {
          sock = s;
          s.setNoDelay(true);
          if (state === "failed") {
            s.terminate();
            return;
          }
          if (entry.kind === "tcp") {
            established(s);
            return;
          }
          state = "greeting";
          // One method offered: 0 = no authentication.
          if (s.write(Uint8Array.from([5, 1, 0])) !== 3) fail(new Error("SOCKS5 greeting: short write"));
        },
        data(s, chunk) {
          if (state === "open") {
            handlers.data(chunk);
            return;
          }
          if (state === "failed" || entry.kind !== "socks5") return;
          const merged = new Uint8Array(pending.length + chunk.length);
          merged.set(pending);
          merged.set(chunk, pending.length);
          pending = merged;
          if (pending.length > SOCKS_REPLY_MAX) return fail(new Error("SOCKS5: oversized reply"));
          if (state === "greeting") {
            if (pending.length < 2) return;
            if (pending[0] !== 5 || pending[1] !== 0) {
              return fail(new Error(`SOCKS5: server refused no-auth method (reply ${pending[0]},${pending[1]})`));
            }
            pending = pending.subarray(2);
            state = "request";
            let req: Uint8Array;
            try {
              req = socksRequest(entry.host, entry.port);
            } catch (e) {
              return fail(e as Error);
            }
            if (s.write(req) !== req.length) return fail(new Error("SOCKS5 request: short write"));
          }
          if (state === "request") {
            let len: number;
            try {
              len = socksReplyLength(pending);
            } catch (e) {
              return fail(e as Error);
            }
            if (len === 0) return;
            if (pending[0] !== 5 || pending[1] !== 0) {
              const code = pending[1] as number;
              return fail(new Error(`SOCKS5 CONNECT ${entry.host}:${entry.port}: ${SOCKS_ERRORS[code] ?? `error ${code}`}`));
            }
            const rest = pending.subarray(len);
            pending = new Uint8Array(0);
            established(s);
            if (rest.length > 0) handlers.data(Buffer.from(rest));
          }
        },
        drain() {
          if (state === "open") handlers.drain();
        },
        end(s) {
          s.end();
        },
        close(_s, err) {
          if (state === "open") handlers.close(err);
          else fail(err ?? new Error(`dial ${describeEntry(entry)}: closed during setup`));
        },
        error(_s, err) {
          if (state !== "open") fail(err);
        },
        connectError(_s, err) {
          fail(err);
        },
      },
    }).catch((err: unknown) => fail(err instanceof Error ? err : new Error(String(err))));
  });
}
