// `mesh plugin check` and `mesh plugin run` as a filter author runs them: the real CLI in a child
// process against the three AssemblyScript examples (compiled with the pinned npm toolchain,
// cached) and WAT test modules.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildExamples, compileWat, loadTestdataPlugin } from "../../plugins/build/index.ts";
import { runMesh, stackFrames, type CliResult } from "../../test/harness/index.ts";
import { grpcAskPlugin } from "../../wasm/testdata/plugins.ts";
import { pluginModule } from "../../wasm/testdata/wat.ts";

let dir: string;
const wasm = (name: string) => join(dir, `${name}.wasm`);

/**
 * A well-formed ABI 0.2.1 plugin that imports `imports` (WAT lines), declares `pages` of memory and
 * answers request headers with `headersStatus` (0 Continue, 1 StopIteration).
 */
function watPlugin(imports: string, pages = 1, headersStatus = 0): string {
  return `(module
  ${imports}
  (memory (export "memory") ${pages})
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const ${headersStatus})))`;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "mesh-plugin-cli-"));
  await buildExamples(dir);
  for (const name of ["trap", "no-abi", "loop"] as const) writeFileSync(wasm(name), (await loadTestdataPlugin(name)).wasm);
  writeFileSync(wasm("lacking"), compileWat(watPlugin(`(import "env" "proxy_does_not_exist" (func (param i32) (result i32)))`), "lacking.wat"));
  writeFileSync(wasm("partial"), compileWat(watPlugin(`(import "env" "proxy_continue_stream" (func (param i32) (result i32)))`), "partial.wat"));
  writeFileSync(wasm("big"), compileWat(watPlugin("", 4), "big.wat"));
  writeFileSync(wasm("holder"), compileWat(watPlugin("", 1, 1), "holder.wat"));
  // writes a line to stdout (WASI) and resets the stream from its request headers
  writeFileSync(
    wasm("resetter"),
    compileWat(
      `(module
  (import "env" "proxy_close_stream" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\\10\\00\\00\\00\\10\\00\\00\\00")
  (data (i32.const 16) "hello from wasi\\n")
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (drop (call $close (i32.const 0)))
    (i32.const 0)))`,
      "resetter.wat",
    ),
  );
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const mesh = (...args: string[]) => runMesh(["plugin", ...args]);

function json(r: CliResult): any {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

function noStack(r: CliResult): void {
  expect(stackFrames(r.stderr)).toEqual([]);
  expect(stackFrames(r.stdout)).toEqual([]);
}

describe("mesh plugin check", () => {
  test("an example filter: ABI, callbacks, imports all provided, memory against the limit; exit 0", async () => {
    const r = await mesh("check", wasm("add-header"));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("0.2.0 (exports proxy_abi_version_0_2_0)");
    expect(r.stdout).toMatch(/callbacks\s+proxy_on_vm_start, proxy_on_configure/);
    expect(r.stdout).toMatch(/env\.proxy_add_header_map_value\s+ok\s+\(i32,i32,i32,i32,i32\)->\(i32\)/);
    expect(r.stdout).toContain("limit 256 pages (16 MiB)");
    expect(r.stdout).toContain("result      ok");
    expect(r.stderr).toBe("");
  });

  test("--json: the module facts as data", async () => {
    const r = await mesh("check", wasm("http-callout"), "--json");
    expect(r.code).toBe(0);
    const j = json(r);
    expect(j).toMatchObject({ abiVersion: "0.2.0", abiMarker: "proxy_abi_version_0_2_0", allocator: "malloc", loadable: true, problems: [], maxMemoryPages: 256 });
    expect(j.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(j.memory).toEqual({ minPages: 1, imported: false });
    expect(j.callbacks).toContain("proxy_on_http_call_response");
    expect(j.callbacksNotCalled).toEqual(["proxy_on_request_metadata", "proxy_on_response_metadata"]);
    expect(j.imports).toContainEqual({ module: "env", name: "proxy_http_call", kind: "func", signature: "(i32,i32,i32,i32,i32,i32,i32,i32,i32,i32)->(i32)", status: "ok" });
    // works for HTTP streams, not for TCP ones: a note, not a warning
    expect(j.imports.find((i: { name: string }) => i.name === "proxy_continue_stream").status).toBe("partial");
    expect(j.warnings).toEqual([]);
  });

  test("no ABI marker: refused with the accepted markers named; exit 1", async () => {
    const r = await mesh("check", wasm("no-abi"));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("ABI         none");
    expect(r.stderr).toMatch(/^error\[WASM_ABI_UNSUPPORTED\]: .*no-abi\.wasm: module exports no Proxy-Wasm ABI marker; expected one of proxy_abi_version_0_2_1, proxy_abi_version_0_2_0, proxy_abi_version_0_1_0/);
    noStack(r);
  });

  test("an import this host lacks is named; exit 1", async () => {
    const r = await mesh("check", wasm("lacking"));
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/env\.proxy_does_not_exist\s+MISSING/);
    expect(r.stdout).toContain("1 this host lacks");
    expect(r.stderr).toContain("error[WASM_MODULE_INVALID]");
    expect(r.stderr).toContain("env.proxy_does_not_exist, which this host does not provide");
    const j = json(await mesh("check", wasm("lacking"), "--json"));
    expect(j.loadable).toBe(false);
    expect(j.imports).toContainEqual({ module: "env", name: "proxy_does_not_exist", kind: "func", signature: "(i32)->(i32)", status: "missing", note: "not provided by this host" });
  });

  test("an import the host serves only in part (TCP-filter streams) is a note, not a refusal", async () => {
    const r = await mesh("check", wasm("partial"));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/env\.proxy_continue_stream\s+ok, partly \(see notes\)/);
    expect(r.stdout).toMatch(/notes\n {2}env\.proxy_continue_stream: DOWNSTREAM\/UPSTREAM need network \(TCP\) filters/);
  });

  test("declared memory above --max-memory-pages: refused; the default limit takes it", async () => {
    const over = await mesh("check", wasm("big"), "--max-memory-pages", "2");
    expect(over.code).toBe(1);
    expect(over.stderr).toContain("error[WASM_MEMORY_LIMIT]");
    expect(over.stdout).toContain("initial 4 pages (256 KiB)");
    expect(over.stdout).toContain("over the limit");
    expect((await mesh("check", wasm("big"))).code).toBe(0);
  });
});

describe("mesh plugin run", () => {
  test("add-header: the request and the response each get their header; exit 0", async () => {
    const r = await mesh("run", wasm("add-header"), "--root-id", "add-header", "--config", '{"header":"x-hello","value":"cli"}', "--request", "GET /a x-a:1", "--response", "200 content-type:text/plain -d hello");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("start       ok");
    expect(r.stdout).toMatch(/upstream {2}GET \/a \(authority localhost\); request changes:\n\s+\+ x-wasm-filter: add-header\n/);
    expect(r.stdout).toMatch(/response {2}200 from the upstream \(simulated\) -> client got 200; response changes:\n\s+\+ x-hello: cli\n/);
    expect(r.stdout).toContain("1 request: 1 forwarded, 0 answered locally, 0 reset; 0 plugin failures");
    expect(r.stderr).toBe("");
  });

  test("--json: phases, what went upstream, what the client got, and the changes", async () => {
    const r = await mesh("run", wasm("add-header"), "--request", "POST /p x-a:1 -d body", "--json");
    expect(r.code).toBe(0);
    const j = json(r);
    expect(j.plugin).toMatchObject({ name: "default.add-header", rootId: "", abiVersion: "0.2.0", failStrategy: "FAIL_CLOSE", callbackBudgetMs: 5, maxMemoryPages: 256 });
    expect(j.start.ok).toBe(true);
    const q = j.requests[0];
    expect(q.outcome).toBe("forwarded");
    expect(q.request).toEqual({ method: "POST", path: "/p", authority: "localhost", headers: [["x-a", "1"]], body: "body" });
    expect(q.phases.map((p: { phase: string; action: string }) => `${p.phase}:${p.action}`)).toEqual(["request_headers:continue", "request_body:continue", "response_headers:continue"]);
    expect(q.upstreamRequest).toEqual({ method: "POST", path: "/p", authority: "localhost", headers: [["x-a", "1"], ["x-wasm-filter", "add-header"]], body: "body" });
    expect(q.requestChanges).toEqual({ headers: [{ kind: "added", name: "x-wasm-filter", value: "add-header" }], body: { changed: false, fromBytes: 4, toBytes: 4 }, trailers: [] });
    expect(q.clientResponse).toEqual({ status: 200, headers: [["x-hello", "world"]], body: "" });
    expect(q).toMatchObject({ localResponse: null, failure: null, callouts: [], vmStarts: 0 });
    expect(j.failed).toBe(false);
  });

  test("deny-by-header: a local 403 that never reaches the upstream, its counter, and a request it lets through", async () => {
    const r = await mesh("run", wasm("deny-by-header"), "--root-id", "deny-by-header", "--config", '{"header":"x-deny","body":"denied\\n"}', "--request", "GET /blocked x-deny:yes", "--request", "GET /fine", "--json");
    expect(r.code).toBe(0);
    const j = json(r);
    expect(j.start.metrics).toEqual([{ name: "deny_by_header_denied_total", promName: "wasm_deny_by_header_denied_total", type: "counter", from: null, to: 0 }]);
    const [blocked, fine] = j.requests;
    expect(blocked.outcome).toBe("local");
    expect(blocked.endedIn).toBe("request");
    expect(blocked.upstreamRequest).toBeNull();
    expect(blocked.localResponse).toEqual({ status: 403, headers: [["content-type", "text/plain; charset=utf-8"]], body: "denied\n", details: "deny_by_header", grpcStatus: null });
    expect(blocked.metrics).toEqual([{ name: "deny_by_header_denied_total", promName: "wasm_deny_by_header_denied_total", type: "counter", from: 0, to: 1 }]);
    expect(fine.outcome).toBe("forwarded");
    expect(fine.metrics).toEqual([]);
    expect(j.metrics).toEqual([{ name: "deny_by_header_denied_total", promName: "wasm_deny_by_header_denied_total", type: "counter", value: 1 }]);

    const text = await mesh("run", wasm("deny-by-header"), "--request", "GET /x x-deny:1");
    expect(text.stdout).toContain("local     403 (details deny_by_header), sent in the request phase; the upstream was not called");
    expect(text.stdout).toContain('wasm_deny_by_header_denied_total{plugin="default.deny-by-header"} 1');
  });

  const calloutConfig = '{"upstream":"authz.default.svc.cluster.local:8080","path":"/check"}';

  test("http-callout, answered: the callout's identity replaces the client's and the request goes on", async () => {
    const r = await mesh("run", wasm("http-callout"), "--root-id", "http-callout", "--config", calloutConfig, "--request", "GET /profile authorization:'Bearer good' x-auth-user:mallory", "--callout", "authz.default.svc.cluster.local:8080=200 x-auth-user:alice", "--json");
    expect(r.code).toBe(0);
    const q = json(r).requests[0];
    expect(q.outcome).toBe("forwarded");
    expect(q.requestChanges.headers).toEqual([{ kind: "changed", name: "x-auth-user", from: "mallory", to: "alice" }]);
    expect(q.callouts).toHaveLength(1);
    expect(q.callouts[0]).toMatchObject({ upstream: "authz.default.svc.cluster.local:8080", outcome: "answered", timeoutMs: 1000, response: { status: 200, headers: [["x-auth-user", "alice"]] } });
    expect(q.callouts[0].headers).toContainEqual(["authorization", "Bearer good"]);
    expect(q.callouts[0].headers).toContainEqual([":path", "/check"]);
  });

  test("a gRPC callout: the answer's body is the reply message; grpc-status in the answer is the call's status", async () => {
    writeFileSync(wasm("grpc-ask"), await pluginModule(grpcAskPlugin("grpcauthz:80", "x-verdict")));
    const ok = json(await mesh("run", wasm("grpc-ask"), "--request", "GET /a x-ask:please", "--callout", "grpcauthz:80=200 -d granted", "--json")).requests[0];
    expect(ok.outcome).toBe("forwarded");
    expect(ok.requestChanges.headers).toEqual([{ kind: "added", name: "x-verdict", value: "granted" }]);
    expect(ok.callouts[0].headers).toContainEqual([":path", "/mesh.test.Authz/Check"]);
    expect(ok.callouts[0].headers).toContainEqual(["content-type", "application/grpc"]);
    const denied = json(await mesh("run", wasm("grpc-ask"), "--request", "GET /a", "--callout", "grpcauthz:80=200 grpc-status:7", "--json")).requests[0];
    expect(denied.outcome).toBe("local");
    expect(denied.localResponse).toMatchObject({ status: 403, grpcStatus: 7 });
    const unanswered = await mesh("run", wasm("grpc-ask"), "--request", "GET /a");
    expect(unanswered.stdout).toContain(`[warn] host: grpc_call to "grpcauthz:80" has no answer`);
  });

  test("http-callout, unanswered: a clear log line, the plugin denies with 403; still exit 0 (the plugin ran)", async () => {
    const r = await mesh("run", wasm("http-callout"), "--root-id", "http-callout", "--config", calloutConfig, "--request", "GET /profile");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("-> NOT ANSWERED (the plugin got a failed callout)");
    expect(r.stdout).toContain(`[warn] host: http_call to "authz.default.svc.cluster.local:8080" has no answer (give one with --callout`);
    expect(r.stdout).toContain("local     403 (details http_callout_failed)");
  });

  test("a requests file: per-request callouts and responses, file-wide answers", async () => {
    const file = join(dir, "requests.yaml");
    writeFileSync(
      file,
      `callouts:
  "authz.default.svc.cluster.local:8080": {status: 200, headers: {x-auth-user: alice}}
requests:
- name: allowed
  method: POST
  path: /profile
  headers: {authorization: Bearer good}
  body: payload
  response: {status: 201, headers: {content-type: text/plain}, body: created}
- name: denied
  path: /admin
  callouts:
    "authz.default.svc.cluster.local:8080": {status: 401}
- name: authz down
  path: /down
  callouts:
    "authz.default.svc.cluster.local:8080": {fail: connection refused}
`,
    );
    const r = await mesh("run", wasm("http-callout"), "--root-id", "http-callout", "--config", calloutConfig, "--requests-file", file, "--json");
    expect(r.code).toBe(0);
    const [allowed, denied, down] = json(r).requests;
    expect(allowed).toMatchObject({ name: "allowed", outcome: "forwarded", upstreamRequest: { method: "POST", body: "payload" }, clientResponse: { status: 201, body: "created" } });
    expect(allowed.upstreamRequest.headers).toContainEqual(["x-auth-user", "alice"]);
    expect(denied).toMatchObject({ name: "denied", outcome: "local", localResponse: { status: 403, details: "http_callout_denied" } });
    expect(down).toMatchObject({ name: "authz down", outcome: "local", localResponse: { status: 403, details: "http_callout_failed" }, callouts: [{ outcome: "failed", failure: "connection refused" }] });
  });

  test("a reset, and WASI output as the plugin's log", async () => {
    const r = await mesh("run", wasm("resetter"), "--json");
    expect(r.code).toBe(0);
    const q = json(r).requests[0];
    expect(q).toMatchObject({ outcome: "reset", endedIn: "request", upstreamRequest: null, localResponse: null, failure: null });
    expect(q.logs).toContainEqual({ level: "info", source: "plugin", message: "hello from wasi" });
    expect((await mesh("run", wasm("resetter"))).stdout).toContain("reset     the plugin reset the stream in the request phase");
  });

  test("a plugin that holds a request and never resumes it: stalled, exit 1", async () => {
    const r = await mesh("run", wasm("holder"), "--resume-timeout-ms", "200");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("phases    request_headers stalled");
    expect(r.stdout).toContain("did not resume it within 200 ms");
    expect(r.stderr).toContain("the plugin held a message and never resumed it");
  });

  test("a trapping plugin: the failure and the fail strategy's result are reported; exit 1", async () => {
    const r = await mesh("run", wasm("trap"), "--request", "/a", "--request", "/b");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("FAILURE   [WASM_TRAP] trap: Unreachable code should not be executed");
    expect(r.stdout).toContain("fail strategy FAIL_CLOSE: local 503 wasm_fail_stream");
    expect(r.stdout).toContain("a fresh VM was started for this request (the previous one failed)");
    expect(r.stderr).toMatch(/^error\[WASM_TRAP\]: .*trap\.wasm: plugin failed in 2 of 2 requests/);
    noStack(r);

    const open = json(await mesh("run", wasm("trap"), "--fail-strategy", "FAIL_OPEN", "--json"));
    expect(open.failed).toBe(true);
    expect(open.requests[0]).toMatchObject({ outcome: "forwarded", failure: { code: "WASM_TRAP", failStrategy: "FAIL_OPEN", result: "continue without the plugin, data unmodified" } });
  });

  test("a looping plugin is stopped at its budget: WASM_TIMEOUT, exit 1", async () => {
    const r = await mesh("run", wasm("loop"), "--budget-ms", "20", "--json");
    expect(r.code).toBe(1);
    const q = json(r).requests[0];
    expect(q).toMatchObject({ outcome: "local", failure: { code: "WASM_TIMEOUT", failStrategy: "FAIL_CLOSE" }, localResponse: { status: 503, details: "wasm_fail_stream", grpcStatus: 14 } });
    // the budget check inside the module, or (a starved worker) the main thread's deadline for it
    expect(q.failure.message).toMatch(/exceeded its 20 ms CPU-time budget|did not answer within \d+ ms/);
  });

  test("a plugin that does not start: the reason, its log lines, exit 1", async () => {
    const noAbi = await mesh("run", wasm("no-abi"));
    expect(noAbi.code).toBe(1);
    expect(noAbi.stderr).toMatch(/^error\[WASM_ABI_UNSUPPORTED\]: .*the plugin did not start: module exports no Proxy-Wasm ABI marker/);
    const rejected = await mesh("run", wasm("http-callout"));
    expect(rejected.code).toBe(1);
    expect(rejected.stdout).toContain('[error] invalid plugin configuration: "upstream" is required');
    expect(rejected.stderr).toContain("error[WASM_CONFIG_REJECTED]");
    const wrongRoot = await mesh("run", wasm("add-header"), "--root-id", "nope");
    expect(wrongRoot.code).toBe(1);
    expect(wrongRoot.stdout).toContain("Missing root context factory for root id: nope");
    expect(wrongRoot.stdout).toContain("--root-id must be a name the module registers");
  });
});

describe("bad input", () => {
  test.each([
    [["run", "MODULE", "--budget-ms", "0"], "--budget-ms must be an integer from 1 to 10000"],
    [["run", "MODULE", "--request", "get /x"], '--request "get /x": expected an upper-case method'],
    [["run", "MODULE", "--request", "GET /x -H nocolon"], 'expected a header as name:value, got "nocolon"'],
    [["run", "MODULE", "--request", "GET /x :path:/y"], "pseudo-header :path cannot be set as a header"],
    [["run", "MODULE", "--response", "9000"], '--response "9000": expected a status code 100-599'],
    [["run", "MODULE", "--callout", "authz:80"], "--callout \"authz:80\": expected UPSTREAM=STATUS"],
    [["run", "MODULE", "--config", "[1]"], "--config: expected a JSON object (the WasmPlugin's pluginConfig), got a list"],
    [["run", "MODULE", "--config", "{}", "--config-file", "x.json"], "give one of them, not both"],
    [["run", "MODULE", "--log-level", "loud"], "--log-level must be one of trace, debug, info, warn, error, critical"],
    [["run", "MODULE", "--env", "1X=y"], "--env expects NAME=VALUE"],
    [["check", "MISSING"], "cannot read it: ENOENT"],
  ])("%j: exit 1 naming the flag", async (args, message) => {
    const r = await mesh(...args.map((a) => (a === "MODULE" ? wasm("add-header") : a === "MISSING" ? join(dir, "none.wasm") : a)));
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith("error[");
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe("");
    noStack(r);
  });

  test("a requests file with a bad field names the file and the field", async () => {
    const file = join(dir, "bad-requests.yaml");
    writeFileSync(file, "- {method: get, path: /x}\n- {path: /y, headers: {x-a: [1, {}]}, colour: red}\n");
    const r = await mesh("run", wasm("add-header"), "--requests-file", file);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error[CONFIG_INVALID]: ${file}: 3 problems in the requests file`);
    expect(r.stderr).toContain(`${file}: [0].method: expected an upper-case method (GET, POST, ...), got "get"`);
    expect(r.stderr).toContain(`${file}: [1].headers.x-a[1]: expected a string value, got a map`);
    expect(r.stderr).toContain(`${file}: [1].colour: unknown field`);
  });

  test("usage errors exit 2; help exits 0", async () => {
    expect((await mesh("run", wasm("add-header"), "--bogus")).code).toBe(2);
    expect((await mesh("run")).stderr).toContain("'mesh plugin run' needs a module FILE.wasm");
    expect((await mesh("frob")).code).toBe(2);
    const bare = await mesh();
    expect(bare.code).toBe(2);
    expect(bare.stdout).toContain("mesh plugin check FILE.wasm");
    const help = await mesh("run", "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--callout SPEC");
    expect((await runMesh(["--help"])).stdout).toContain("mesh plugin run FILE.wasm");
  });
});
