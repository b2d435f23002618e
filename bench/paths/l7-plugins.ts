// The Wasm plugin rows of the L7 section: the `add-header` example (plugins/examples/add-header)
// configured once (`plugin1`) or five times in a chain (`plugin5`) on the waypoint, each instance
// adding its own response header `x-p<i>` and request header `x-p<i>-req`.
//
// The module is compiled with plugins/build (development tooling; the waypoint itself only loads
// the .wasm). It is imported when the rows run, so `--no-plugins` never loads the compiler.
// `--plugin-module wat|no-vm` swaps the module for a minimal one or none (PluginModuleKind).

import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { L7Plugin } from "./l7-mesh.ts";
import type { L7PathName } from "./l7-types.ts";

/** How many add-header instances each plugin row configures. */
export const PLUGIN_ROWS = { plugin1: 1, plugin5: 5 } as const satisfies Partial<Record<L7PathName, number>>;

/**
 * What the plugin rows load (`--plugin-module`):
 * - `example`: the add-header example, AssemblyScript with the SDK (what the target is about);
 * - `wat`: a hand-written module adding the same headers, with no SDK, allocator or runtime: the
 *   host's own cost per plugin;
 * - `no-vm`: a module that does not exist, under FAIL_OPEN: the chain and the plugin flow with no VM.
 * Their differences split a plugin's cost between its module, the host and the flow.
 */
export type PluginModuleKind = "example" | "wat" | "no-vm";
export const PLUGIN_MODULE_KINDS: readonly PluginModuleKind[] = ["example", "wat", "no-vm"];

export interface PluginModule {
  kind: PluginModuleKind;
  /** The module of instance i (one shared by all for `example`); none for `no-vm`. */
  files: { path: string; sha256: string }[];
  fromCache: boolean;
}

/** Builds the plugin rows' module(s) into `dir`: up to `instances` of them for `wat`. */
export async function buildPluginModule(kind: PluginModuleKind, dir: string, instances: number): Promise<PluginModule> {
  if (kind === "no-vm") return { kind, files: [], fromCache: true };
  if (kind === "wat") {
    const { pluginModule } = await import("../../wasm/testdata/wat.ts");
    const files = [];
    for (const header of chainHeaders(instances)) {
      const value = header.slice("x-p".length);
      const bytes = await pluginModule(`
(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
  (drop (call $proxy_add_header_map_value (i32.const 0) {{"${header}-req"}} {{"${value}"}})) (i32.const 0))
(func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
  (drop (call $proxy_add_header_map_value (i32.const 2) {{"${header}"}} {{"${value}"}})) (i32.const 0))`);
      const path = join(dir, `${header}.wasm`);
      writeFileSync(path, bytes);
      files.push({ path, sha256: createHash("sha256").update(bytes).digest("hex") });
    }
    return { kind, files, fromCache: false };
  }
  const { buildExamples } = await import("../../plugins/build/index.ts");
  const built = await buildExamples(dir);
  const m = built.find((b) => b.example.name === "add-header");
  if (!m) throw new Error("plugins/build lists no add-header example");
  return { kind, files: [{ path: m.outFile, sha256: m.sha256 }], fromCache: m.fromCache };
}

/** Response header names the chain of `count` instances adds (what the load generator checks). */
export function chainHeaders(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `x-p${i + 1}`);
}

/** Headers the load generator can expect from `count` instances of `module`. */
export function expectedHeaders(count: number, module: PluginModule): string[] {
  return module.kind === "no-vm" ? [] : chainHeaders(count);
}

/** `count` add-header instances (`add-header-1` …), one header pair each. */
export function addHeaderChain(count: number, module: PluginModule, isolation?: "auto" | "worker" | "inline"): L7Plugin[] {
  return chainHeaders(count).map((header, i): L7Plugin => {
    const config: Record<string, string> =
      module.kind === "example" ? { header, value: String(i + 1), request_header: `${header}-req`, request_value: String(i + 1) } : {};
    const file = module.files[module.kind === "wat" ? i : 0];
    return {
      ...(isolation ? { isolation } : {}),
      name: `add-header-${i + 1}`,
      ...(file ? { url: file.path, sha256: file.sha256 } : { url: "/nonexistent/add-header.wasm", failStrategy: "FAIL_OPEN" as const }),
      pluginName: "add-header",
      pluginConfig: config,
    };
  });
}
