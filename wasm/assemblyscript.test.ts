// Filters built with the AssemblyScript SDK from npm (@solo-io/proxy-runtime 0.1.8 with
// assemblyscript 0.14.13, reference/waypoint.md §B.5) run in the worker host unchanged.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCodes, isMeshError } from "../core/errors/index.ts";
import { describeModule, missingImports, WasmPlugin } from "./index.ts";

const SOURCE = `
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context,
  send_local_response, GrpcStatusValues, log, LogLevelValues } from "@solo-io/proxy-runtime";

class AddHeaderRoot extends RootContext {
  createContext(context_id: u32): Context { return new AddHeader(context_id, this); }
}
class AddHeader extends Context {
  constructor(context_id: u32, root_context: AddHeaderRoot) { super(context_id, root_context); }
  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root_context as AddHeaderRoot;
    stream_context.headers.response.add("hello", root.getConfiguration());
    return FilterHeadersStatusValues.Continue;
  }
}

class RemoveHeadersRoot extends RootContext {
  createContext(context_id: u32): Context { return new RemoveHeaders(context_id, this); }
}
class RemoveHeaders extends Context {
  constructor(context_id: u32, root_context: RemoveHeadersRoot) { super(context_id, root_context); }
  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const prefixes = (this.root_context as RemoveHeadersRoot).getConfiguration().split(",");
    const headers = stream_context.headers.response.get_headers();
    for (let i = 0; i < headers.length; i++) {
      const key = String.UTF8.decode(headers[i].key);
      for (let j = 0; j < prefixes.length; j++) {
        if (key.startsWith(prefixes[j])) { stream_context.headers.response.remove(key); break; }
      }
    }
    return FilterHeadersStatusValues.Continue;
  }
}

class DenyRoot extends RootContext {
  createContext(context_id: u32): Context { return new Deny(context_id, this); }
}
class Deny extends Context {
  constructor(context_id: u32, root_context: DenyRoot) { super(context_id, root_context); }
  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    if (stream_context.headers.request.get("x-deny") != "") {
      log(LogLevelValues.info, "denying " + stream_context.headers.request.get(":path"));
      send_local_response(403, "denied by plugin", String.UTF8.encode("forbidden"), [], GrpcStatusValues.PermissionDenied);
      return FilterHeadersStatusValues.StopIteration;
    }
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((id: u32) => { return new AddHeaderRoot(id); }, "add_header");
registerRootContext((id: u32) => { return new RemoveHeadersRoot(id); }, "remove_headers");
registerRootContext((id: u32) => { return new DenyRoot(id); }, "deny");
`;

const REPO = new URL("..", import.meta.url).pathname;
let dir = "";
let wasm: Uint8Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "mesh-wasm-as-"));
  const src = join(dir, "filters.ts");
  const out = join(dir, "filters.wasm");
  writeFileSync(src, SOURCE);
  const proc = Bun.spawn(
    [process.execPath, "node_modules/assemblyscript/bin/asc", src, "-b", out, "--use", "abort=abort_proc_exit", "-O3"],
    { cwd: REPO, stdout: "pipe", stderr: "pipe" },
  );
  const code = await proc.exited;
  if (code !== 0) throw new Error(`asc failed: ${await new Response(proc.stderr).text()}`);
  wasm = new Uint8Array(await Bun.file(out).arrayBuffer());
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function plugin(rootId: string, configuration: string, logs: string[] = []): WasmPlugin {
  return new WasmPlugin({
    name: `as.${rootId}`,
    rootId,
    bytes: wasm,
    configuration,
    logLevel: "info",
    log: (e) => logs.push(`${e.level}: ${e.message}`),
  });
}

const REQ: [string, string][] = [
  [":method", "GET"],
  [":path", "/productpage"],
  [":authority", "bookinfo"],
];

describe("AssemblyScript SDK module", () => {
  test("is ABI 0.2.0 and imports nothing the host lacks", () => {
    const r = describeModule(wasm);
    expect(r.abiVersion).toBe("0.2.0");
    expect(r.allocator).toBe("malloc");
    expect(missingImports(wasm)).toEqual([]);
    const names = r.imports.map((i) => `${i.module}.${i.name}`);
    expect(names).toContain("env.proxy_log");
    expect(names).toContain("wasi_unstable.proc_exit");
  });

  test("add_header adds `hello: <configuration>` to responses", async () => {
    const p = plugin("add_header", "from-wasm");
    await p.start();
    for (let i = 0; i < 3; i++) {
      const s = p.stream();
      expect((await s.requestHeaders(REQ, true)).action).toBe("continue");
      const r = await s.responseHeaders([[":status", "200"]], true);
      expect(r.headers).toEqual([
        [":status", "200"],
        ["hello", "from-wasm"],
      ]);
      s.done();
    }
    await p.stop();
  });

  test("remove_headers strips response headers by configured prefix", async () => {
    const p = plugin("remove_headers", "x-envoy,server");
    await p.start();
    const s = p.stream();
    await s.requestHeaders(REQ, true);
    const r = await s.responseHeaders(
      [
        [":status", "200"],
        ["server", "istio-envoy"],
        ["x-envoy-upstream-service-time", "3"],
        ["content-type", "text/html"],
      ],
      true,
    );
    expect(r.headers).toEqual([
      [":status", "200"],
      ["content-type", "text/html"],
    ]);
    s.done();
    await p.stop();
  });

  test("a filter can answer with a local response", async () => {
    const logs: string[] = [];
    const p = plugin("deny", "-", logs);
    await p.start();
    const denied = await p.stream().requestHeaders([...REQ, ["x-deny", "1"]], true);
    expect(denied.action).toBe("local");
    expect(denied.response!.status).toBe(403);
    expect(new TextDecoder().decode(denied.response!.body)).toBe("forbidden");
    expect(denied.response!.grpcStatus).toBe(7);
    expect(denied.response!.details).toBe("denied_by_plugin");
    expect(logs).toContain("info: denying /productpage");
    expect((await p.stream().requestHeaders(REQ, true)).action).toBe("continue");
    await p.stop();
  });

  test("an unknown root id makes the SDK abort: start fails with WASM_TRAP and says why", async () => {
    const logs: string[] = [];
    const p = plugin("no_such_root", "x", logs);
    const err = await p.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isMeshError(err, ErrorCodes.WASM_TRAP)).toBe(true);
    expect(logs.some((l) => l.startsWith("critical:") && l.includes("no_such_root"))).toBe(true);
  });
});
