// The contract between the L7 orchestrator (bench/l7.ts) and one way of carrying HTTP/1.1 from the
// load generator to the app: direct, the mesh's L7 path (ztunnel → waypoint → ztunnel) or nginx.

import type { Entry } from "../entry.ts";
import type { AppEndpoint } from "./types.ts";

/** `plugin1` / `plugin5`: the `l7` path with 1 or 5 Wasm plugins in the waypoint. */
export type L7PathName = "direct" | "l7" | "plugin1" | "plugin5" | "nginx";

/** A process whose CPU the harness samples (`role` names it in the report and the JSON). */
export interface L7Process {
  role: "waypoint" | "ztunnel-client" | "ztunnel-server" | "nginx";
  label: string;
  pid: number;
}

export interface L7Handle {
  /** How the load generator reaches the app through this path. */
  entry: Entry;
  /** Host header the load generator sends. */
  authority: string;
  procs: L7Process[];
  /** Header names the first response on each connection must carry (e.g. added by the waypoint's plugins). */
  expectHeaders?: string[];
  /** Versions, configuration choices the report should mention. */
  notes: string[];
  /**
   * The same waypoint's route to the same app through a service no plugin targets (mesh rows):
   * measured side by side with `entry`, it shows what the plugins add within one process.
   */
  bare?: { entry: Entry; authority: string };
}

export interface L7Path {
  readonly name: L7PathName;
  start(app: AppEndpoint): Promise<L7Handle>;
  /** Warnings and errors the running processes logged (summarised), for a round that went wrong. */
  problems?(): string[];
  stop(): Promise<void>;
}
