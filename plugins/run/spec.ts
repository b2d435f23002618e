// What `mesh plugin run` feeds a plugin: requests, the upstream responses to simulate, and the
// answers to the plugin's HTTP callouts. Read from one-line specs on the command line
// (`--request 'GET /a -H x-a:1 -d body'`, `--response '200 content-type:text/plain -d hi'`,
// `--callout 'authz:8080=200 x-auth-user:alice'`) or from a YAML/JSON requests file. Every problem
// names the flag or field and what was expected.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { DocProblems, checkKeys, isObj, readInt, readMap, readString, type Obj } from "../../core/config/index.ts";
import { ErrorCodes, MeshError } from "../../core/errors/index.ts";

export type Pairs = [string, string][];

export interface SimResponse {
  readonly status: number;
  readonly headers: Pairs;
  /** chunks, fed to the plugin one by one */
  readonly body: readonly Uint8Array[];
  readonly trailers?: Pairs;
}

export type CalloutAnswer = { readonly response: SimResponse } | { readonly failure: string };

export interface SimPeer {
  readonly address: string;
  readonly port: number;
  readonly principal?: string;
}

export interface SimRequest {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly scheme: string;
  readonly headers: Pairs;
  readonly body: readonly Uint8Array[];
  readonly trailers?: Pairs;
  readonly response: SimResponse;
  /** answers by upstream name (`host:port`, or `*` for any) */
  readonly callouts: ReadonlyMap<string, CalloutAnswer>;
  readonly source: SimPeer;
  readonly destination: SimPeer;
}

export const DEFAULT_AUTHORITY = "localhost";
export const DEFAULT_RESPONSE: SimResponse = Object.freeze({ status: 200, headers: [], body: [] });
export const DEFAULT_SOURCE: SimPeer = Object.freeze({ address: "127.0.0.1", port: 50000, principal: "spiffe://cluster.local/ns/default/sa/default" });
export const DEFAULT_DESTINATION: SimPeer = Object.freeze({ address: "127.0.0.1", port: 8080 });
const MAX_REQUESTS = 1000;
const MAX_BODY_BYTES = 16 << 20;

const ENC = new TextEncoder();
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const METHOD = /^[A-Z][A-Z0-9_-]*$/;

function bad(where: string, message: string): never {
  throw new MeshError(ErrorCodes.FLAG_INVALID, `${where}: ${message}`);
}

/** Splits a spec the way a shell would: whitespace separates, quotes and backslashes group. */
export function splitWords(text: string, where: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && (text[i + 1] === '"' || text[i + 1] === "\\")) cur += text[++i];
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < text.length) {
      cur += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote !== undefined) bad(where, `unterminated ${quote} quote`);
  if (inWord) out.push(cur);
  return out;
}

/** `name:value` (or `name: value`) as a lower-cased header pair; pseudo-headers are refused. */
export function parseHeader(text: string, where: string): [string, string] {
  const colon = text.indexOf(":", text.startsWith(":") ? 1 : 0);
  if (colon <= 0) bad(where, `expected a header as name:value, got ${JSON.stringify(text)}`);
  const name = text.slice(0, colon).trim().toLowerCase();
  const value = text.slice(colon + 1).trim();
  if (name.startsWith(":")) bad(where, `pseudo-header ${name} cannot be set as a header (give METHOD PATH, --authority, or the status instead)`);
  if (!TOKEN.test(name)) bad(where, `${JSON.stringify(name)} is not a valid header name`);
  if (/[\r\n\0]/.test(value)) bad(where, `the value of header ${name} contains CR, LF or NUL`);
  return [name, value];
}

interface MessageParts {
  headers: Pairs;
  body: Uint8Array[];
  trailers?: Pairs;
  authority?: string;
}

/** The options common to every spec: headers (`-H h:v` or bare `h:v`), `-d body`, `--trailer h:v`. */
function readParts(words: readonly string[], where: string, allowAuthority: boolean): MessageParts {
  const parts: MessageParts = { headers: [], body: [] };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const value = (): string => {
      const v = words[i + 1];
      if (v === undefined) bad(where, `${w} needs a value`);
      i++;
      return v;
    };
    if (w === "-H" || w === "--header") parts.headers.push(parseHeader(value(), where));
    else if (w === "-d" || w === "--data") parts.body.push(ENC.encode(value()));
    else if (w === "--trailer") (parts.trailers ??= []).push(parseHeader(value(), where));
    else if (w === "--authority" && allowAuthority) parts.authority = value();
    else if (w.startsWith("-")) bad(where, `unknown option ${w} (expected -H name:value, -d BODY, --trailer name:value${allowAuthority ? ", --authority HOST" : ""})`);
    else parts.headers.push(parseHeader(w, where));
  }
  return parts;
}

/** `host` is what HTTP/1.1 calls :authority: it becomes the authority, not a header. */
function takeHost(headers: Pairs): string | undefined {
  const i = headers.findIndex(([k]) => k === "host");
  if (i < 0) return undefined;
  const host = headers[i]![1];
  headers.splice(i, 1);
  return host;
}

function checkPath(path: string, where: string): string {
  if (!(path.startsWith("/") || path === "*") || /[\s\0]/.test(path)) bad(where, `expected a path starting with / (no spaces), got ${JSON.stringify(path)}`);
  return path;
}

function checkStatus(text: string, where: string): number {
  if (!/^[1-5][0-9][0-9]$/.test(text)) bad(where, `expected a status code 100-599, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** `[METHOD] PATH [-H name:value | name:value]... [-d BODY]... [--trailer name:value]... [--authority HOST]` */
export function parseRequestSpec(spec: string, index: number, defaults: { response: SimResponse; callouts: ReadonlyMap<string, CalloutAnswer> }): SimRequest {
  const where = `--request ${JSON.stringify(spec)}`;
  const words = splitWords(spec, where);
  if (words.length === 0) bad(where, "expected [METHOD] PATH [-H name:value]... [-d BODY]");
  let method = "GET";
  if (!words[0]!.startsWith("/") && words[0] !== "*") {
    method = words.shift()!;
    if (!METHOD.test(method)) bad(where, `expected an upper-case method (GET, POST, ...) or a path, got ${JSON.stringify(method)}`);
  }
  const path = words.shift();
  if (path === undefined) bad(where, `a path is needed after ${method}`);
  checkPath(path, where);
  const parts = readParts(words, where, true);
  const host = takeHost(parts.headers);
  return {
    name: `request ${index + 1}`,
    method,
    path,
    authority: parts.authority ?? host ?? DEFAULT_AUTHORITY,
    scheme: "http",
    headers: parts.headers,
    body: parts.body,
    ...(parts.trailers ? { trailers: parts.trailers } : {}),
    response: defaults.response,
    callouts: defaults.callouts,
    source: DEFAULT_SOURCE,
    destination: DEFAULT_DESTINATION,
  };
}

/** `STATUS [-H name:value | name:value]... [-d BODY]... [--trailer name:value]...` */
export function parseResponseSpec(spec: string): SimResponse {
  const where = `--response ${JSON.stringify(spec)}`;
  return responseFrom(splitWords(spec, where), where);
}

function responseFrom(words: string[], where: string): SimResponse {
  const status = words.shift();
  if (status === undefined) bad(where, "expected STATUS [-H name:value]... [-d BODY]");
  const parts = readParts(words, where, false);
  return { status: checkStatus(status, where), headers: parts.headers, body: parts.body, ...(parts.trailers ? { trailers: parts.trailers } : {}) };
}

/** `UPSTREAM=STATUS [headers] [-d BODY]` or `UPSTREAM=fail [reason...]`; UPSTREAM `*` answers any. */
export function parseCalloutSpec(spec: string): [string, CalloutAnswer] {
  const where = `--callout ${JSON.stringify(spec)}`;
  const eq = spec.indexOf("=");
  if (eq <= 0) bad(where, "expected UPSTREAM=STATUS [name:value]... [-d BODY] or UPSTREAM=fail (UPSTREAM is the plugin's host:port, or * for any)");
  const upstream = spec.slice(0, eq).trim();
  if (/\s/.test(upstream)) bad(where, `the upstream ${JSON.stringify(upstream)} contains spaces (expected host:port or *)`);
  const words = splitWords(spec.slice(eq + 1), where);
  if (words[0] === "fail") return [upstream, { failure: words.slice(1).join(" ") || "callout failed (simulated)" }];
  return [upstream, { response: responseFrom(words, where) }];
}

// ---- requests file ----------------------------------------------------------------------------

const FILE_KEYS = ["requests", "response", "callouts"];
const REQUEST_KEYS = ["name", "method", "path", "authority", "scheme", "headers", "body", "trailers", "response", "callouts", "source", "destination"];
const RESPONSE_KEYS = ["status", "headers", "body", "trailers"];
const CALLOUT_KEYS = [...RESPONSE_KEYS, "fail"];
const PEER_KEYS = ["address", "port", "principal"];

/** `{name: value}` (a value may be a list for a repeated header) or a list of `[name, value]` / `"name: value"`. */
function readHeaders(v: unknown, path: string, p: DocProblems): Pairs | undefined {
  if (v === undefined || v === null) return undefined;
  const out: Pairs = [];
  const add = (name: string, value: unknown, at: string): void => {
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
      p.error(at, `expected a string value, got ${p.describe(value)}`);
      return;
    }
    try {
      out.push(parseHeader(`${name}:${String(value)}`, at));
    } catch (e) {
      p.error(at, (e as Error).message.replace(`${at}: `, ""));
    }
  };
  if (isObj(v)) {
    for (const [name, value] of Object.entries(v)) {
      if (Array.isArray(value)) value.forEach((x, i) => add(name, x, `${path}.${name}[${i}]`));
      else add(name, value, `${path}.${name}`);
    }
    return out;
  }
  if (Array.isArray(v)) {
    v.forEach((item, i) => {
      const at = `${path}[${i}]`;
      if (Array.isArray(item) && item.length === 2 && typeof item[0] === "string") add(item[0], item[1], at);
      else if (typeof item === "string") {
        try {
          out.push(parseHeader(item, at));
        } catch (e) {
          p.error(at, (e as Error).message.replace(`${at}: `, ""));
        }
      } else p.error(at, `expected [name, value] or "name: value", got ${p.describe(item)}`);
    });
    return out;
  }
  p.error(path, `expected a map of headers (name: value) or a list of [name, value], got ${p.describe(v)}`);
  return undefined;
}

/** A string, or a list of strings fed to the plugin as separate chunks. */
function readBody(v: unknown, path: string, p: DocProblems): Uint8Array[] {
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return v === "" ? [] : [ENC.encode(v)];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.map((x) => ENC.encode(x as string));
  p.error(path, `expected a string (or a list of strings, one per chunk), got ${p.describe(v)}`);
  return [];
}

function at(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function readResponse(v: unknown, path: string, p: DocProblems, keys = RESPONSE_KEYS): SimResponse | undefined {
  const o = readMap(v, path, p, "a response");
  if (!o) return undefined;
  checkKeys(o, path, keys, p);
  const status = readInt(o, "status", path, p, 100, 599) ?? 200;
  const headers = readHeaders(o["headers"], at(path, "headers"), p) ?? [];
  const trailers = readHeaders(o["trailers"], at(path, "trailers"), p);
  return { status, headers, body: readBody(o["body"], at(path, "body"), p), ...(trailers ? { trailers } : {}) };
}

function readCallouts(v: unknown, path: string, p: DocProblems): Map<string, CalloutAnswer> {
  const out = new Map<string, CalloutAnswer>();
  if (v === undefined || v === null) return out;
  const o = readMap(v, path, p, "callout answers by upstream (host:port or *)");
  if (!o) return out;
  for (const [upstream, answer] of Object.entries(o)) {
    const ap = `${path}.${JSON.stringify(upstream)}`;
    if (isObj(answer) && answer["fail"] !== undefined) {
      checkKeys(answer, ap, ["fail"], p);
      const reason = answer["fail"];
      if (typeof reason !== "string" && reason !== true) p.error(`${ap}.fail`, `expected a reason (a string) or true, got ${p.describe(reason)}`);
      out.set(upstream, { failure: typeof reason === "string" && reason !== "" ? reason : "callout failed (simulated)" });
      continue;
    }
    const r = readResponse(answer, ap, p, CALLOUT_KEYS);
    if (r) out.set(upstream, { response: r });
  }
  return out;
}

function readPeer(v: unknown, path: string, p: DocProblems, fallback: SimPeer): SimPeer {
  if (v === undefined || v === null) return fallback;
  const o = readMap(v, path, p);
  if (!o) return fallback;
  checkKeys(o, path, PEER_KEYS, p);
  const principal = readString(o, "principal", path, p, { min: 1 }) ?? fallback.principal;
  return {
    address: readString(o, "address", path, p, { min: 1 }) ?? fallback.address,
    port: readInt(o, "port", path, p, 0, 65535) ?? fallback.port,
    ...(principal !== undefined ? { principal } : {}),
  };
}

function readRequest(v: unknown, i: number, path: string, p: DocProblems, defaults: { response: SimResponse; callouts: ReadonlyMap<string, CalloutAnswer> }): SimRequest | undefined {
  const o: Obj | undefined = readMap(v, path, p, "a request");
  if (!o) return undefined;
  const before = p.count();
  checkKeys(o, path, REQUEST_KEYS, p);
  const method = readString(o, "method", path, p, { pattern: METHOD, patternText: "an upper-case method (GET, POST, ...)" }) ?? "GET";
  const reqPath = readString(o, "path", path, p, { pattern: /^(\/[^\s\0]*|\*)$/, patternText: "a path starting with / (no spaces)" }) ?? "/";
  const headers = readHeaders(o["headers"], at(path, "headers"), p) ?? [];
  const host = takeHost(headers);
  const trailers = readHeaders(o["trailers"], at(path, "trailers"), p);
  const response = o["response"] === undefined ? defaults.response : readResponse(o["response"], at(path, "response"), p);
  const callouts = new Map([...defaults.callouts, ...readCallouts(o["callouts"], at(path, "callouts"), p)]);
  const req: SimRequest = {
    name: readString(o, "name", path, p, { min: 1, max: 200 }) ?? `request ${i + 1}`,
    method,
    path: reqPath,
    authority: readString(o, "authority", path, p, { min: 1 }) ?? host ?? DEFAULT_AUTHORITY,
    scheme: readString(o, "scheme", path, p, { oneOf: ["http", "https"] }) ?? "http",
    headers,
    body: readBody(o["body"], at(path, "body"), p),
    ...(trailers ? { trailers } : {}),
    response: response ?? DEFAULT_RESPONSE,
    callouts,
    source: readPeer(o["source"], at(path, "source"), p, DEFAULT_SOURCE),
    destination: readPeer(o["destination"], at(path, "destination"), p, DEFAULT_DESTINATION),
  };
  return p.count() > before ? undefined : req;
}

/**
 * A requests file (YAML or JSON): a list of requests, or a map with `requests` and optional
 * file-wide `response` and `callouts`. `flagDefaults` are the --response/--callout values; a
 * request's own fields win over them, and they win over the file-wide ones.
 */
export function parseRequestsText(
  text: string,
  fileName: string,
  flagDefaults: { response: SimResponse | undefined; callouts: ReadonlyMap<string, CalloutAnswer> },
): SimRequest[] {
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true, prettyErrors: false });
  } catch (e) {
    throw new MeshError(ErrorCodes.CONFIG_PARSE, `${fileName}: not valid YAML or JSON: ${(e as Error).message.split("\n")[0]}`);
  }
  const errors: string[] = [];
  const p = new DocProblems(fileName, errors);
  let list: unknown = doc;
  let fileResponse: SimResponse | undefined;
  let fileCallouts = new Map<string, CalloutAnswer>();
  if (isObj(doc)) {
    checkKeys(doc, "", FILE_KEYS, p);
    list = doc["requests"];
    if (doc["response"] !== undefined) fileResponse = readResponse(doc["response"], "response", p);
    fileCallouts = readCallouts(doc["callouts"], "callouts", p);
  }
  if (!Array.isArray(list)) {
    p.error(isObj(doc) ? "requests" : "", `expected a list of requests (or a map with requests, response, callouts), got ${p.describe(list)}`);
    throw new MeshError(ErrorCodes.CONFIG_INVALID, errors[0]!, { details: errors.slice(1) });
  }
  if (list.length > MAX_REQUESTS) p.error(isObj(doc) ? "requests" : "", `at most ${MAX_REQUESTS} requests, got ${list.length}`);
  const defaults = {
    response: flagDefaults.response ?? fileResponse ?? DEFAULT_RESPONSE,
    callouts: new Map([...fileCallouts, ...flagDefaults.callouts]),
  };
  const out: SimRequest[] = [];
  list.slice(0, MAX_REQUESTS).forEach((v, i) => {
    const r = readRequest(v, i, `${isObj(doc) ? "requests" : ""}[${i}]`, p, defaults);
    if (r) out.push(r);
  });
  if (errors.length > 0) {
    throw new MeshError(ErrorCodes.CONFIG_INVALID, `${fileName}: ${errors.length} problem${errors.length === 1 ? "" : "s"} in the requests file`, { details: errors });
  }
  return out;
}

export function readRequestsFile(path: string, flagDefaults: { response: SimResponse | undefined; callouts: ReadonlyMap<string, CalloutAnswer> }): SimRequest[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new MeshError(ErrorCodes.CONFIG_FILE_MISSING, `--requests-file ${path}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (text.length > MAX_BODY_BYTES) throw new MeshError(ErrorCodes.CONFIG_INVALID, `--requests-file ${path}: larger than ${MAX_BODY_BYTES} bytes`);
  return parseRequestsText(text, path, flagDefaults);
}

/**
 * The plugin configuration as the waypoint passes it: Istio's `pluginConfig` map as JSON text.
 * `--config` takes JSON; `--config-file` JSON or YAML. Returns "" when neither is given.
 */
export function readPluginConfig(json: string | undefined, file: string | undefined): string {
  if (json !== undefined && file !== undefined) bad("--config and --config-file", "give one of them, not both");
  if (json !== undefined) {
    let v: unknown;
    try {
      v = JSON.parse(json);
    } catch (e) {
      bad("--config", `expected a JSON object (the WasmPlugin's pluginConfig), got invalid JSON: ${(e as Error).message}`);
    }
    if (!isObj(v)) bad("--config", `expected a JSON object (the WasmPlugin's pluginConfig), got ${describeJson(v)}`);
    return JSON.stringify(v);
  }
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new MeshError(ErrorCodes.CONFIG_FILE_MISSING, `--config-file ${file}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let v: unknown;
    try {
      v = parseYaml(text, { uniqueKeys: true, prettyErrors: false });
    } catch (e) {
      throw new MeshError(ErrorCodes.CONFIG_PARSE, `--config-file ${file}: not valid JSON or YAML: ${(e as Error).message.split("\n")[0]}`);
    }
    if (!isObj(v)) throw new MeshError(ErrorCodes.CONFIG_INVALID, `--config-file ${file}: expected a map (the WasmPlugin's pluginConfig), got ${describeJson(v)}`);
    return JSON.stringify(v);
  }
  return "";
}

function describeJson(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  return `a ${typeof v}`;
}
