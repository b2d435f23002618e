// The chain as the waypoint drives it, without sockets: a request's end reaches every plugin with
// what the access log says of it (Envoy's response code details and flags), as properties.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BodySink, BodySource, HookRequest, RequestOrigin } from "../core/waypoint/index.ts";
import { createLogger } from "../core/telemetry/index.ts";
import { pluginModule } from "../wasm/testdata/wat.ts";
import { PluginChain } from "./index.ts";

const dir = mkdtempSync(join(tmpdir(), "mesh-chain-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Logs response.code_details from on_log, and whether response.flags is the bitmask of UF and URX.
const LOGS_COMPLETION = `
(func $prop (param i32 i32)
  (if (i32.eqz (call $proxy_get_property (local.get 0) (local.get 1) (i32.const 256) (i32.const 260)))
    (then (drop (call $proxy_log (i32.const 2) (i32.load (i32.const 256)) (i32.load (i32.const 260)))))))
(func (export "proxy_on_log") (param i32)
  (call $prop {{"response\\00code_details"}})
  (if (i32.eqz (call $proxy_get_property {{"response\\00flags"}} (i32.const 256) (i32.const 260)))
    (then (if (i64.eq (i64.load (i32.load (i32.const 256))) (i64.const 0x8020))
      (then (drop (call $proxy_log (i32.const 2) {{"flags UF|URX"}})))
      (else (drop (call $proxy_log (i32.const 2) {{"flags other"}})))))))`;

const origin = { sourceIp: "10.0.0.1", sourcePort: 40000, targetIp: "10.0.0.2", targetPort: 8080, principal: "spiffe://cluster.local/ns/default/sa/client" } as unknown as RequestOrigin;
const noBody: BodySource = { empty: true, start: (s: BodySink) => s.end(), pause() {}, resume() {} };

describe("PluginChain", () => {
  test("done: the plugins see the request's response code details and flags", async () => {
    writeFileSync(join(dir, "completion.wasm"), await pluginModule(LOGS_COMPLETION));
    writeFileSync(join(dir, "mesh.yaml"), `plugins:\n  - name: completion\n    url: ${join(dir, "completion.wasm")}\n`);
    const lines: string[] = [];
    const log = createLogger({ format: "json", level: "info", component: "test", write: (l) => lines.push(l) });
    const chain = new PluginChain();
    await chain.start({ configPath: join(dir, "mesh.yaml"), documentFiles: [], httpCall: (async () => ({ failure: "none" })) as never, gateways: () => [], namespace: "default", nodeId: "test", log, logLevel: "info" });
    const run = chain.forRequest(origin, undefined)!;
    const req: HookRequest = { origin, method: "GET", path: "/", authority: "app", protocol: "HTTP/1.1", headers: [] };
    expect((await run.request(req, noBody, () => undefined)).kind).toBe("forward");
    expect((await run.response(503, [], noBody)).kind).toBe("forward");
    run.done({ details: "upstream_reset_before_response_started", flags: "UF,URX" });
    await chain.stop();
    const messages = lines.map((l) => JSON.parse(l) as { msg: string; message?: string }).filter((r) => r.msg === "plugin log").map((r) => r.message);
    expect(messages).toEqual(["upstream_reset_before_response_started", "flags UF|URX"]);
  });
});
