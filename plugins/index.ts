// plugins/: the waypoint's Wasm filter chain — plugin configuration shaped after Istio's
// WasmPlugin, the chain that runs the configured plugins (wasm/ hosts each VM) on the requests they
// target, and (build/, dev-only) compiling AssemblyScript filters.
export { PluginChain, type LoadedPlugin } from "./chain.ts";
export { parsePluginSection, parseWasmPluginDocuments, orderPlugins, readModule, PLUGIN_DEFAULTS, type PluginSpec, type PluginPhase, type PluginFailStrategy, type PluginTarget } from "./config.ts";
