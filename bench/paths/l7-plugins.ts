// The Wasm plugin rows of the L7 section: the `add-header` example (plugins/examples/add-header)
// configured once (`plugin1`) or five times in a chain (`plugin5`) on the waypoint, each instance
// adding its own response header `x-p<i>` and request header `x-p<i>-req`.
//
// The module is compiled with plugins/build (development tooling; the waypoint itself only loads
// the .wasm). It is imported when the rows run, so `--no-plugins` never loads the compiler.

import type { L7Plugin } from "./l7-mesh.ts";
import type { L7PathName } from "./l7-types.ts";

/** How many add-header instances each plugin row configures. */
export const PLUGIN_ROWS = { plugin1: 1, plugin5: 5 } as const satisfies Partial<Record<L7PathName, number>>;

export interface PluginModule {
  path: string;
  sha256: string;
  fromCache: boolean;
}

/** Compiles the examples into `dir` with `buildExamples` (cached by input hash) and returns add-header. */
export async function buildAddHeader(dir: string): Promise<PluginModule> {
  const { buildExamples } = await import("../../plugins/build/index.ts");
  const built = await buildExamples(dir);
  const m = built.find((b) => b.example.name === "add-header");
  if (!m) throw new Error("plugins/build lists no add-header example");
  return { path: m.outFile, sha256: m.sha256, fromCache: m.fromCache };
}

/** Response header names the chain of `count` instances adds (what the load generator checks). */
export function chainHeaders(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `x-p${i + 1}`);
}

/** `count` add-header instances (`add-header-1` …), one header pair each. */
export function addHeaderChain(count: number, module: PluginModule, isolation?: "auto" | "worker" | "inline"): L7Plugin[] {
  return chainHeaders(count).map((header, i) => ({
    ...(isolation ? { isolation } : {}),
    name: `add-header-${i + 1}`,
    url: module.path,
    sha256: module.sha256,
    pluginName: "add-header",
    pluginConfig: { header, value: String(i + 1), request_header: `${header}-req`, request_value: String(i + 1) },
  }));
}
