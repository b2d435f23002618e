// The contract between the orchestrator (bench/run.ts) and one way of carrying traffic from the
// load generator to the server app.

import type { Entry } from "../entry.ts";

export type PathName = "direct" | "stunnel" | "mesh";

/** Where the server app listens (started by the orchestrator before the path). */
export interface AppEndpoint {
  host: string;
  port: number;
}

/** A proxy process whose CPU and memory the harness samples. */
export interface ProxyProcess {
  /** e.g. "client" (the hop next to the load generator) or "server" (the hop next to the app). */
  role: "client" | "server";
  label: string;
  pid: number;
}

export interface PathHandle {
  /** How the load generator reaches the server app through this path. */
  entry: Entry;
  /** Pids whose /proc utime+stime count as "proxy CPU". Empty for direct. */
  proxyPids: number[];
  proxies: ProxyProcess[];
  /** Things the report should mention (versions, caps applied). */
  notes: string[];
}

export interface BenchPath {
  readonly name: PathName;
  /** Loopback address the server app must listen on for this path. */
  readonly appHost: string;
  /** Most idle tunnelled connections this path can hold given the fd limit (undefined = no extra cap). */
  idleConnCap?(nofile: number): number;
  start(app: AppEndpoint): Promise<PathHandle>;
  stop(): Promise<void>;
}

/** Thrown by start() when a path cannot run on this machine; the report shows the reason and moves on. */
export class PathUnavailable extends Error {
  override readonly name = "PathUnavailable";
}
