// Test support: WasmPlugin instances over WAT modules, with their logs collected.

import { WasmPlugin, type WasmPluginOptions } from "../plugin.ts";
import { type ModuleOptions, pluginModule } from "./wat.ts";

export interface TestPlugin {
  readonly plugin: WasmPlugin;
  /** Messages the plugin logged (proxy_log / WASI), in order. */
  readonly logs: string[];
  /** Messages the host logged about the plugin. */
  readonly hostLogs: string[];
}

export async function testPlugin(
  body: string,
  opts: Partial<WasmPluginOptions> = {},
  moduleOpts: ModuleOptions = {},
): Promise<TestPlugin> {
  const bytes = await pluginModule(body, moduleOpts);
  const logs: string[] = [];
  const hostLogs: string[] = [];
  const plugin = new WasmPlugin({
    name: "test.plugin",
    rootId: "test_root",
    bytes,
    configuration: "{}",
    logLevel: "trace",
    ...opts,
    log: (e) => {
      (e.source === "plugin" ? logs : hostLogs).push(e.message);
      opts.log?.(e);
    },
  });
  return { plugin, logs, hostLogs };
}

/** Waits until `cond` holds (polling), failing with `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

export const REQ: [string, string][] = [
  [":method", "GET"],
  [":path", "/hello?x=1"],
  [":authority", "svc.ns.svc.cluster.local"],
  [":scheme", "http"],
  ["user-agent", "test"],
];
export const RESP: [string, string][] = [
  [":status", "200"],
  ["content-type", "text/plain"],
];

export const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));
export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
