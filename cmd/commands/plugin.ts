// `mesh plugin check FILE.wasm` and `mesh plugin run FILE.wasm`: a filter author's loop before a
// plugin goes into a waypoint. Exit 0 when the module is loadable / the run completed (a plugin
// that denies is a run that completed), 1 for a refused module, a plugin failure or bad input
// (the message names the flag or field), 2 for a usage error (unknown flag, missing FILE).
import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import { ErrorCodes, MeshError, formatForCli } from "../../core/errors/index.ts";
import type { HeaderChange, LogLine, Message, ModuleInspection, RequestRecord, RunRecord } from "../../plugins/run/index.ts";

/** plugins/run, loaded when a subcommand runs (it pulls in the Wasm host). */
type RunLib = typeof import("../../plugins/run/index.ts");
import { parseFlags } from "../flags.ts";
import { helpFor } from "../help.ts";

const MAX_MODULE_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_PAGES = 256;
const DEFAULT_BUDGET_MS = 5;
const DEFAULT_RESUME_TIMEOUT_MS = 5000;
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "critical"] as const;
const FAIL_STRATEGIES = ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"] as const;
const BODY_PREVIEW = 200;

export async function runPluginCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h") {
    process.stdout.write(helpFor("plugin"));
    return sub === undefined ? 2 : 0;
  }
  if (sub === "check") return check(rest);
  if (sub === "run") return run(rest);
  throw new MeshError(ErrorCodes.FLAG_INVALID, `unknown 'mesh plugin' subcommand ${JSON.stringify(sub)} (expected check or run)`);
}

function oneFile(command: string, positionals: readonly string[]): string {
  if (positionals.length !== 1) {
    throw new MeshError(ErrorCodes.FLAG_INVALID, positionals.length === 0 ? `'${command}' needs a module FILE.wasm (see '${command} --help')` : `'${command}' takes one FILE.wasm, got ${positionals.length} arguments (see '${command} --help')`);
  }
  return positionals[0]!;
}

function intFlag(name: string, value: string | undefined, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^[0-9]{1,9}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new MeshError(ErrorCodes.FLAG_INVALID, `--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new MeshError(ErrorCodes.FLAG_INVALID, `--${name} must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
  return value as T;
}

function readModuleFile(file: string): Uint8Array {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw new MeshError(ErrorCodes.CONFIG_FILE_MISSING, `module ${file}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (size > MAX_MODULE_BYTES) throw new MeshError(ErrorCodes.WASM_MODULE_INVALID, `module ${file} is ${size} bytes, more than ${MAX_MODULE_BYTES}`);
  return new Uint8Array(readFileSync(file));
}

/** Runs `body`; a problem with the input or the module is one `error[CODE]` line and exit 1. */
async function reported(body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    process.stderr.write(`${formatForCli(e)}\n`);
    return 1;
  }
}

// ---- check ------------------------------------------------------------------------------------

async function check(args: string[]): Promise<number> {
  const { flags, positionals } = parseFlags("mesh plugin check", args, { "max-memory-pages": { type: "string" }, json: { type: "boolean" } });
  if (flags.help) {
    process.stdout.write(helpFor("plugin"));
    return 0;
  }
  const file = oneFile("mesh plugin check", positionals);
  return reported(async () => {
    const maxPages = intFlag("max-memory-pages", flags["max-memory-pages"], 1, 65536, DEFAULT_MAX_PAGES);
    const bytes = readModuleFile(file);
    const { inspectModule, pagesText } = await import("../../plugins/run/index.ts");
    const r = inspectModule(bytes, maxPages);
    process.stdout.write(flags.json ? `${JSON.stringify({ file, ...r }, null, 2)}\n` : checkText(file, r, pagesText));
    const [first, ...more] = r.problems;
    if (first === undefined) return 0;
    process.stderr.write(`${formatForCli(new MeshError(first.code, `${file}: ${first.message}`, { details: more.map((p) => `${p.code}: ${p.message}`) }))}\n`);
    return 1;
  });
}

function row(label: string, text: string): string {
  return `${label.padEnd(12)}${text}\n`;
}

/** A comma-separated list wrapped under a 12-column label. */
function listRow(label: string, items: readonly string[]): string {
  const lines: string[] = [];
  let cur = "";
  for (const item of items) {
    const next = cur === "" ? item : `${cur}, ${item}`;
    if (next.length > 88 && cur !== "") {
      lines.push(`${cur},`);
      cur = item;
    } else cur = next;
  }
  lines.push(cur);
  return lines.map((l, i) => (i === 0 ? row(label, l) : row("", l))).join("");
}

const IMPORT_MARK: Record<ModuleInspection["imports"][number]["status"], string> = {
  ok: "ok",
  memory: "ok (the host supplies it)",
  partial: "ok, partly (see notes)",
  missing: "MISSING",
  signature: "WRONG SIGNATURE",
  refused: "REFUSED",
};

function checkText(file: string, r: ModuleInspection, pagesText: (pages: number) => string): string {
  let out = row("module", `${file} (${r.sizeBytes} bytes, sha256 ${r.sha256})`);
  if (!r.wasm) {
    out += row("result", `refused: ${r.problems[0]!.message}`);
    return out;
  }
  out += row("ABI", r.abiVersion ? `${r.abiVersion} (exports ${r.abiMarker})` : "none: no proxy_abi_version_* export");
  out += row("allocator", r.allocator ?? "none (neither malloc nor proxy_on_memory_allocate)");
  if (r.memory) {
    out += row(
      "memory",
      `${r.memory.imported ? "imported" : "declared"}: initial ${pagesText(r.memory.minPages)}, maximum ${r.memory.maxPages === undefined ? "none" : pagesText(r.memory.maxPages)}; limit ${pagesText(r.maxMemoryPages)}${
        r.memory.minPages > r.maxMemoryPages ? " — over the limit" : ", growth is capped there"
      }`,
    );
  } else out += row("memory", "none");
  out += r.callbacks.length > 0 ? listRow("callbacks", r.callbacks) : row("callbacks", "none");
  if (r.callbacksNotCalled.length > 0) out += listRow("not called", r.callbacksNotCalled);
  out += r.exports.length > 0 ? listRow("exports", r.exports.map((e) => (e.kind === "func" ? e.name : `${e.name} (${e.kind})`))) : row("exports", "none");
  const missing = r.imports.filter((i) => i.status === "missing" || i.status === "signature" || i.status === "refused").length;
  out += row("imports", r.imports.length === 0 ? "none" : `${r.imports.length}${missing > 0 ? `, ${missing} this host lacks` : ", all provided"}`);
  const width = Math.max(0, ...r.imports.map((i) => i.module.length + i.name.length + 1));
  const markWidth = Math.max(0, ...r.imports.map((i) => IMPORT_MARK[i.status].length));
  for (const i of r.imports) {
    const mark = IMPORT_MARK[i.status].padEnd(markWidth);
    out += `  ${`${i.module}.${i.name}`.padEnd(width)}  ${mark}  ${i.signature ?? i.kind}${i.status === "signature" ? ` (${i.note})` : ""}\n`;
  }
  if (r.notes.length > 0) {
    out += "notes\n";
    for (const n of r.notes) out += `  ${n}\n`;
  }
  if (r.warnings.length > 0) {
    out += "warnings\n";
    for (const w of r.warnings) out += `  ${w}\n`;
  }
  if (r.problems.length > 0) {
    out += "problems\n";
    for (const p of r.problems) out += `  ${p.code}: ${p.message}\n`;
    out += row("result", `refused: ${r.problems.length} problem${r.problems.length === 1 ? "" : "s"} (the waypoint would not load it)`);
  } else out += row("result", "ok: this host can load the module (try it: mesh plugin run FILE.wasm)");
  return out;
}

// ---- run --------------------------------------------------------------------------------------

const RUN_FLAGS = {
  config: { type: "string" },
  "config-file": { type: "string" },
  "root-id": { type: "string" },
  request: { type: "string", multiple: true },
  "requests-file": { type: "string" },
  response: { type: "string" },
  callout: { type: "string", multiple: true },
  env: { type: "string", multiple: true },
  "log-level": { type: "string" },
  "budget-ms": { type: "string" },
  "max-memory-pages": { type: "string" },
  "fail-strategy": { type: "string" },
  "resume-timeout-ms": { type: "string" },
  json: { type: "boolean" },
} as const;

async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseFlags("mesh plugin run", args, RUN_FLAGS);
  if (flags.help) {
    process.stdout.write(helpFor("plugin"));
    return 0;
  }
  const file = oneFile("mesh plugin run", positionals);
  return reported(async () => {
    const lib = await import("../../plugins/run/index.ts");
    const logLevel = oneOf("log-level", flags["log-level"], LOG_LEVELS, "info");
    const failStrategy = oneOf("fail-strategy", flags["fail-strategy"], FAIL_STRATEGIES, "FAIL_CLOSE");
    const callbackBudgetMs = intFlag("budget-ms", flags["budget-ms"], 1, 10_000, DEFAULT_BUDGET_MS);
    const maxMemoryPages = intFlag("max-memory-pages", flags["max-memory-pages"], 1, 65536, DEFAULT_MAX_PAGES);
    const stallMs = intFlag("resume-timeout-ms", flags["resume-timeout-ms"], 1, 600_000, DEFAULT_RESUME_TIMEOUT_MS);
    const env: Record<string, string> = {};
    for (const e of flags.env ?? []) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(e);
      if (!m) throw new MeshError(ErrorCodes.FLAG_INVALID, `--env expects NAME=VALUE (NAME an environment variable name), got ${JSON.stringify(e)}`);
      env[m[1]!] = m[2]!;
    }
    const configuration = lib.readPluginConfig(flags.config, flags["config-file"]);
    const callouts = new Map((flags.callout ?? []).map((c) => lib.parseCalloutSpec(c)));
    const response = flags.response === undefined ? undefined : lib.parseResponseSpec(flags.response);
    const requests = flags["requests-file"] === undefined ? [] : lib.readRequestsFile(flags["requests-file"], { response, callouts });
    const lineDefaults = { response: response ?? lib.DEFAULT_RESPONSE, callouts };
    for (const spec of flags.request ?? []) requests.push(lib.parseRequestSpec(spec, requests.length, lineDefaults));
    if (requests.length === 0) requests.push(lib.parseRequestSpec("GET /", 0, lineDefaults));
    const bytes = readModuleFile(file);
    const rec = await lib.runPlugin(
      {
        name: `default.${basename(file).replace(/\.wasm$/, "")}`,
        rootId: flags["root-id"] ?? "",
        bytes,
        configuration,
        env,
        logLevel,
        callbackBudgetMs,
        maxMemoryPages,
        failStrategy,
        stallMs,
        callouts,
      },
      requests,
    );
    const { renderPrometheus } = await import("../../wasm/index.ts");
    if (flags.json) process.stdout.write(`${JSON.stringify(runJson(file, rec, lib), null, 2)}\n`);
    else process.stdout.write(runText(file, rec, lib, renderPrometheus([{ plugin: rec.plugin.name, metrics: rec.metrics }])));
    if (!rec.start.ok) {
      const e = rec.start.error!;
      process.stderr.write(`${formatForCli(new MeshError(e.code, `${file}: the plugin did not start: ${e.message}`, { details: e.details }))}\n`);
      return 1;
    }
    const failures = rec.requests.filter((r) => r.failure || r.outcome === "stalled");
    if (failures.length > 0) {
      const f = failures[0]!;
      const what = f.failure ? `${f.failure.message} (fail strategy ${f.failure.failStrategy}: ${f.failure.result})` : "the plugin held a message and never resumed it";
      process.stderr.write(`${formatForCli(new MeshError(f.failure?.code ?? ErrorCodes.WASM_TIMEOUT, `${file}: plugin failed in ${failures.length} of ${rec.requests.length} request${rec.requests.length === 1 ? "" : "s"}; first (${f.name}): ${what}`))}\n`);
      return 1;
    }
    return 0;
  });
}

const DEC = new TextDecoder();

function bodyText(b: Uint8Array): string {
  const t = DEC.decode(b.length > BODY_PREVIEW ? b.subarray(0, BODY_PREVIEW) : b);
  return `${JSON.stringify(t)}${b.length > BODY_PREVIEW ? ` … (${b.length} bytes)` : ""}`;
}

function pseudo(h: Message["headers"], name: string): string | undefined {
  return h.find(([k]) => k === name)?.[1];
}

function changeLines(changes: readonly HeaderChange[], indent: string): string {
  return changes
    .map((c) => (c.kind === "added" ? `${indent}+ ${c.name}: ${c.value}\n` : c.kind === "removed" ? `${indent}- ${c.name}: ${c.value}\n` : `${indent}~ ${c.name}: ${c.from} -> ${c.to}\n`))
    .join("");
}

/** Header, body and trailer changes between what the plugin got and what it released. */
function messageChanges(before: Message, after: Message, lib: RunLib, indent: string): string {
  let out = changeLines(lib.diffHeaders(before.headers, after.headers), indent);
  if (!lib.sameBytes(before.body, after.body)) out += `${indent}~ body: ${before.body.length} bytes -> ${after.body.length} bytes: ${bodyText(after.body)}\n`;
  if (before.trailers || after.trailers) out += changeLines(lib.diffHeaders(before.trailers ?? [], after.trailers ?? []).map((c) => ({ ...c, name: `trailer ${c.name}` })), indent);
  return out || `${indent}(unchanged)\n`;
}

function logLines(logs: readonly LogLine[], indent: string): string {
  return logs.map((l) => `${indent}[${l.level}] ${l.source === "host" ? "host: " : ""}${l.message}\n`).join("");
}

function runText(file: string, rec: RunRecord, lib: RunLib, metricsText: string): string {
  const p = rec.plugin;
  let out = row("plugin", `${file} (ABI ${p.abiVersion ?? "none"}, root id ${JSON.stringify(p.rootId)}, ${p.failStrategy}, budget ${p.callbackBudgetMs} ms, memory limit ${p.maxMemoryPages} pages, log level ${p.logLevel})`);
  out += row("config", p.configuration === "" ? "none (the VM gets \"{}\", as in the waypoint)" : p.configuration);
  if (!rec.start.ok) {
    out += row("start", `FAILED after ${rec.start.ms} ms: [${rec.start.error!.code}] ${rec.start.error!.message}`);
    for (const d of rec.start.error!.details) out += `              ${d}\n`;
    if (rec.start.logs.length > 0) out += `  logs\n${logLines(rec.start.logs, "    ")}`;
    if (rec.start.logs.some((l) => /root context factory for root id/.test(l.message))) {
      out += row("hint", "--root-id must be a name the module registers (registerRootContext; Istio: spec.pluginName)");
    }
    if (rec.start.error!.code === ErrorCodes.WASM_CONFIG_REJECTED) out += row("hint", "the plugin refused its configuration (--config); its log lines above should say why");
    return out;
  }
  out += row("start", `ok in ${rec.start.ms} ms`);
  if (rec.start.metrics.length > 0) out += row("metrics", `defined: ${rec.start.metrics.map((m) => `${m.promName} (${m.type})`).join(", ")}`);
  if (rec.start.logs.length > 0) out += `  logs\n${logLines(rec.start.logs, "    ")}`;
  for (const r of rec.requests) out += requestText(r, lib);
  if (rec.stopLogs.length > 0) out += `\nstop\n  logs\n${logLines(rec.stopLogs, "    ")}`;
  const count = (o: RequestRecord["outcome"]) => rec.requests.filter((r) => r.outcome === o).length;
  const failed = rec.requests.filter((r) => r.failure).length;
  out += `\nsummary     ${rec.requests.length} request${rec.requests.length === 1 ? "" : "s"}: ${count("forwarded")} forwarded, ${count("local")} answered locally, ${count("reset")} reset${count("stalled") > 0 ? `, ${count("stalled")} stalled` : ""}; ${failed} plugin failure${failed === 1 ? "" : "s"}\n`;
  if (metricsText) out += `metrics     as the waypoint's /metrics shows them:\n${metricsText.replace(/^/gm, "  ").trimEnd()}\n`;
  return out;
}

function requestText(r: RequestRecord, lib: RunLib): string {
  const h = r.request.headers;
  let out = `\n${r.name}: ${pseudo(h, ":method")} ${pseudo(h, ":path")} (authority ${pseudo(h, ":authority")}${r.request.body.length > 0 ? `, ${r.request.body.length}-byte body` : ""})\n`;
  const given = h.filter(([k]) => !k.startsWith(":"));
  if (given.length > 0) out += listRow("  headers", given.map(([k, v]) => `${k}: ${v}`));
  out += row("  phases", r.phases.map((ph) => `${ph.phase} ${ph.action}`).join(", "));
  for (const c of r.callouts) {
    const status = c.outcome === "answered" ? `answered ${pseudo(c.response!.headers, ":status")}` : c.outcome === "failed" ? `failed: ${c.failure}` : "NOT ANSWERED (the plugin got a failed callout)";
    out += row("  callout", `${c.upstream} ${pseudo(c.headers, ":method") ?? ""} ${pseudo(c.headers, ":path") ?? ""} (timeout ${c.timeoutMs} ms) -> ${status}`);
    for (const [k, v] of c.headers.filter(([k]) => !k.startsWith(":"))) out += `              > ${k}: ${v}\n`;
    for (const [k, v] of c.response?.headers.filter(([k]) => !k.startsWith(":")) ?? []) out += `              < ${k}: ${v}\n`;
  }
  if (r.failure) {
    out += row("  FAILURE", `[${r.failure.code}] ${r.failure.message}`);
    out += row("", `fail strategy ${r.failure.failStrategy}: ${r.failure.result}`);
  }
  if (r.upstreamRequest) {
    const u = r.upstreamRequest;
    out += row("  upstream", `${pseudo(u.headers, ":method")} ${pseudo(u.headers, ":path")} (authority ${pseudo(u.headers, ":authority")}); request changes:`);
    out += messageChanges(r.request, u, lib, "              ");
  }
  if (r.outcome === "local" && r.local) {
    const l = r.local;
    out += row("  local", `${l.status} (details ${l.details}${l.grpcStatus !== undefined ? `, grpc-status ${l.grpcStatus}` : ""}), sent in the ${r.endedIn} phase${r.endedIn === "request" ? "; the upstream was not called" : ""}`);
    for (const [k, v] of l.headers) out += `              ${k}: ${v}\n`;
    if (l.body.length > 0) out += `              body: ${bodyText(l.body)}\n`;
  } else if (r.outcome === "reset") {
    out += row("  reset", `the plugin reset the stream in the ${r.endedIn} phase`);
  } else if (r.outcome === "stalled") {
    out += row("  stalled", `the plugin held the ${r.endedIn} and did not resume it`);
  }
  if (r.upstreamResponse && r.clientResponse) {
    out += row("  response", `${pseudo(r.upstreamResponse.headers, ":status")} from the upstream (simulated) -> client got ${pseudo(r.clientResponse.headers, ":status")}; response changes:`);
    out += messageChanges(r.upstreamResponse, r.clientResponse, lib, "              ");
  }
  if (r.vmStarts > 0) out += row("  vm", r.vmStarts === 1 ? "a fresh VM was started for this request (the previous one failed)" : `${r.vmStarts} VM starts during this request`);
  for (const m of r.metrics) out += row("  metric", `${m.promName} (${m.type}) ${m.from === undefined ? "defined, now" : `${m.from} ->`} ${m.to}`);
  if (r.logs.length > 0) out += `  logs\n${logLines(r.logs, "    ")}`;
  return out;
}

// ---- JSON -------------------------------------------------------------------------------------

function bodyJson(b: Uint8Array): { body: string; bodyBase64?: string } {
  try {
    return { body: new TextDecoder("utf-8", { fatal: true }).decode(b) };
  } catch {
    return { body: DEC.decode(b), bodyBase64: Buffer.from(b).toString("base64") };
  }
}

function requestJson(m: Message): unknown {
  return {
    method: pseudo(m.headers, ":method"),
    path: pseudo(m.headers, ":path"),
    authority: pseudo(m.headers, ":authority"),
    headers: m.headers.filter(([k]) => !k.startsWith(":")),
    ...bodyJson(m.body),
    ...(m.trailers ? { trailers: m.trailers } : {}),
  };
}

function responseJson(m: Message): unknown {
  return { status: Number(pseudo(m.headers, ":status")), headers: m.headers.filter(([k]) => !k.startsWith(":")), ...bodyJson(m.body), ...(m.trailers ? { trailers: m.trailers } : {}) };
}

function changesJson(before: Message, after: Message, lib: RunLib): unknown {
  return {
    headers: lib.diffHeaders(before.headers, after.headers),
    body: { changed: !lib.sameBytes(before.body, after.body), fromBytes: before.body.length, toBytes: after.body.length },
    trailers: lib.diffHeaders(before.trailers ?? [], after.trailers ?? []),
  };
}

function metricJson(m: RequestRecord["metrics"][number]): unknown {
  return { ...m, from: m.from ?? null };
}

function runJson(file: string, rec: RunRecord, lib: RunLib): unknown {
  return {
    file,
    plugin: rec.plugin,
    start: { ...rec.start, metrics: rec.start.metrics.map(metricJson) },
    requests: rec.requests.map((r) => ({
      name: r.name,
      outcome: r.outcome,
      ...(r.endedIn ? { endedIn: r.endedIn } : {}),
      request: requestJson(r.request),
      phases: r.phases,
      upstreamRequest: r.upstreamRequest ? requestJson(r.upstreamRequest) : null,
      requestChanges: r.upstreamRequest ? changesJson(r.request, r.upstreamRequest, lib) : null,
      upstreamResponse: r.upstreamResponse ? responseJson(r.upstreamResponse) : null,
      clientResponse: r.clientResponse ? responseJson(r.clientResponse) : null,
      responseChanges: r.upstreamResponse && r.clientResponse ? changesJson(r.upstreamResponse, r.clientResponse, lib) : null,
      localResponse: r.local ? { status: r.local.status, headers: r.local.headers, ...bodyJson(r.local.body), details: r.local.details, grpcStatus: r.local.grpcStatus ?? null } : null,
      failure: r.failure ?? null,
      callouts: r.callouts.map((c) => ({
        upstream: c.upstream,
        headers: c.headers,
        ...bodyJson(c.body),
        timeoutMs: c.timeoutMs,
        outcome: c.outcome,
        ...(c.response ? { response: responseJson(c.response) } : {}),
        ...(c.failure ? { failure: c.failure } : {}),
      })),
      logs: r.logs,
      metrics: r.metrics.map(metricJson),
      vmStarts: r.vmStarts,
    })),
    stopLogs: rec.stopLogs,
    metrics: rec.metrics,
    failed: rec.failed,
  };
}

