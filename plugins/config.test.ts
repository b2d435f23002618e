import { describe, expect, test } from "bun:test";
import { MeshError } from "../core/errors/index.ts";
import { orderPlugins, parsePluginSection, parseWasmPluginDocuments, type PluginSpec } from "./config.ts";

function problems(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return [(e as MeshError).message, ...(e as MeshError).details].join("\n");
  }
  return "";
}

describe("plugin configuration (Istio WasmPlugin shape)", () => {
  test("a config section entry: defaults, pluginConfig as JSON text, module path relative to the config", () => {
    const [p] = parsePluginSection([{ name: "add-header", url: "plugins/add.wasm", pluginConfig: { header: "x-a", value: "1" }, pluginName: "add-header" }], "/etc/mesh/config.yaml");
    expect(p).toMatchObject({ key: "default/add-header", modulePath: "/etc/mesh/plugins/add.wasm", configuration: '{"header":"x-a","value":"1"}', rootId: "add-header", phase: "UNSPECIFIED_PHASE", priority: 0, failStrategy: "FAIL_CLOSE", maxMemoryPages: 256, callbackBudgetMs: 5, isolation: "auto" });
    expect(p!.targets).toEqual([]);
  });

  test("a WasmPlugin document with targetRefs, phase, priority, match ports, env and limits", () => {
    const [p] = parseWasmPluginDocuments(
      `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: auth, namespace: shop}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  - {kind: Service, group: "", name: reviews}
  url: file:///opt/plugins/auth.wasm
  sha256: ${"AB".repeat(32)}
  phase: AUTHZ
  priority: 10
  failStrategy: FAIL_RELOAD
  match: [{mode: CLIENT_AND_SERVER, ports: [{number: 9080}]}]
  vmConfig: {env: [{name: MODE, value: strict}]}
  limits: {maxMemoryPages: 64, callbackBudgetMs: 3, isolation: inline}
`,
      "/k8s/plugins.yaml",
    );
    expect(p).toMatchObject({ key: "shop/auth", modulePath: "/opt/plugins/auth.wasm", sha256: "ab".repeat(32), phase: "AUTHZ", priority: 10, failStrategy: "FAIL_RELOAD", ports: [9080], env: { MODE: "strict" }, maxMemoryPages: 64, callbackBudgetMs: 3, isolation: "inline" });
    expect(p!.targets).toEqual([
      { kind: "Gateway", name: "waypoint", namespace: "shop" },
      { kind: "Service", name: "reviews", namespace: "shop" },
    ]);
  });

  test("what cannot be honoured is refused with the field named", () => {
    const msg = problems(() =>
      parsePluginSection(
        [
          { name: "a", url: "oci://ghcr.io/x/y:1" },
          { name: "b", url: "b.wasm", phase: "AUTHN", failStrategy: "FAIL_OPEN" },
          { name: "c", url: "c.wasm", selector: { matchLabels: { app: "x" } } },
          { name: "d", url: "d.wasm", sha256: "xyz" },
          { name: "e", url: "e.wasm", vmConfig: { env: [{ name: "SECRET", valueFrom: "HOST" }] } },
          { name: "f", url: "f.wasm", bogus: 1 },
          { name: "g", url: "g.wasm", pluginConfig: "not a map" },
          { name: "h" },
        ],
        "c.yaml",
      ),
    );
    expect(msg).toContain("plugins[0] (a): url: only local modules");
    expect(msg).toContain("plugins[1] (b): failStrategy: FAIL_OPEN is not allowed for a plugin in phase AUTHN");
    expect(msg).toContain("plugins[2] (c): selector");
    expect(msg).toContain("plugins[3] (d): sha256");
    expect(msg).toContain("HOST is not supported");
    expect(msg).toContain("bogus");
    expect(msg).toContain("pluginConfig: expected a map");
    expect(msg).toContain("plugins[7] (h): url: required");
  });

  test("duplicates are refused", () => {
    expect(problems(() => parsePluginSection([{ name: "a", url: "a.wasm" }, { name: "a", url: "b.wasm" }], "c.yaml"))).toContain("defined more than once");
  });

  test("chain order: phase, then higher priority first, then name", () => {
    const mk = (name: string, phase: PluginSpec["phase"], priority: number) => ({ spec: parsePluginSection([{ name, url: "x.wasm", phase, priority }], "c.yaml")[0]! });
    const order = orderPlugins([mk("s", "STATS", 0), mk("u", "UNSPECIFIED_PHASE", 9), mk("z1", "AUTHZ", 1), mk("n", "AUTHN", -5), mk("z2", "AUTHZ", 7)]).map((p) => p.spec.name);
    expect(order).toEqual(["n", "z2", "z1", "s", "u"]);
  });
});
