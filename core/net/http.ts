// HTTP servers for the admin, readiness and metrics ports. Bun.serve is fine here: none of
// these endpoints needs the client certificate (Bun issue 14097).
import { MeshError, ErrorCodes } from "../errors/index.ts";

export interface HttpListener {
  readonly hostname: string;
  readonly port: number;
  stop(): Promise<void>;
}

export type FetchHandler = (req: Request) => Response | Promise<Response>;

export function serveHttp(fetch: FetchHandler, opts: { hostname: string; port: number }): HttpListener {
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({ hostname: opts.hostname, port: opts.port, fetch, idleTimeout: 30 });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/in use|EADDRINUSE/i.test(msg)) {
      throw new MeshError(ErrorCodes.ADDRESS_IN_USE, `address ${opts.hostname}:${opts.port} is already in use`, { cause: e });
    }
    throw new MeshError(ErrorCodes.LISTEN_FAILED, `cannot listen on ${opts.hostname}:${opts.port}: ${msg}`, { cause: e });
  }
  return {
    hostname: opts.hostname,
    port: server.port ?? opts.port,
    async stop() {
      await server.stop(true);
    },
  };
}
