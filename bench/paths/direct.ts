// Baseline: the load generator talks to the server app with no proxy in between.

import { randomOctet } from "../proc.ts";
import type { AppEndpoint, BenchPath, PathHandle } from "./types.ts";

export function createDirectPath(): BenchPath {
  const appHost = `127.79.${randomOctet()}.2`;
  return {
    name: "direct",
    appHost,
    async start(app: AppEndpoint): Promise<PathHandle> {
      return { entry: { kind: "tcp", host: app.host, port: app.port }, proxyPids: [], proxies: [], notes: [] };
    },
    async stop(): Promise<void> {},
  };
}
