// Binds the admin, metrics and readiness apps. Admin can shut the process down and dump config,
// so it only ever listens on loopback, as istio/ztunnel's does.
import type { Hono } from "hono";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { serveHttp, type HttpListener } from "../net/index.ts";

export interface ListenAddress {
  hostname: string;
  port: number;
}

export interface AdminServersOptions {
  adminAddress: ListenAddress;
  metricsAddress: ListenAddress;
  readinessAddress: ListenAddress;
  admin: Hono;
  metrics: Hono;
  readiness: Hono;
}

export interface AdminServers {
  admin: HttpListener;
  metrics: HttpListener;
  readiness: HttpListener;
  stop(): Promise<void>;
}

/** `localhost`, 127.0.0.0/8, `::1` (bracketed or not) and IPv4-mapped loopback. */
export function isLoopbackHost(hostname: string): boolean {
  let h = hostname.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  if (h.startsWith("::ffff:")) h = h.slice("::ffff:".length);
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  if (!m) return false;
  const octets = m.slice(1).map(Number);
  return octets.every((o) => o <= 255) && octets[0] === 127;
}

export async function startAdminServers(opts: AdminServersOptions): Promise<AdminServers> {
  if (!isLoopbackHost(opts.adminAddress.hostname)) {
    throw new MeshError(
      ErrorCodes.FLAG_INVALID,
      `admin address must be a loopback address, got "${opts.adminAddress.hostname}"`,
      { details: ["the admin port can shut the proxy down and dump its configuration; bind it to 127.0.0.1 or ::1"] },
    );
  }
  const started: HttpListener[] = [];
  const start = (app: Hono, addr: ListenAddress): HttpListener => {
    const l = serveHttp((req) => app.fetch(req), { hostname: addr.hostname, port: addr.port });
    started.push(l);
    return l;
  };
  try {
    const admin = start(opts.admin, opts.adminAddress);
    const metrics = start(opts.metrics, opts.metricsAddress);
    const readiness = start(opts.readiness, opts.readinessAddress);
    let stopping: Promise<void> | undefined;
    return {
      admin,
      metrics,
      readiness,
      stop() {
        stopping ??= stopAll(started);
        return stopping;
      },
    };
  } catch (e) {
    // Leave nothing half-bound: a failed start releases the ports it already took.
    await stopAll(started).catch(() => undefined);
    throw e;
  }
}

async function stopAll(listeners: readonly HttpListener[]): Promise<void> {
  const results = await Promise.allSettled(listeners.map((l) => l.stop()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}
