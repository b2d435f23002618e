// Structured logging: one line per event, JSON or human text. Logging must never take the proxy
// down, so serialising odd values (cycles, BigInt, throwing getters) and a failing writer are
// absorbed here rather than thrown at the caller.
import { writeSync } from "node:fs";
import { ErrorCodes, MeshError } from "../errors/index.ts";

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = "json" | "text";
export type LogFields = Record<string, unknown>;

const SEVERITY: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Same sink and level; `fields` are added to every line. A string `scope` field replaces the scope. */
  child(fields: LogFields): Logger;
  /** Whether a line at `level` would be written (to skip building costly fields). */
  enabled(level: LogLevel): boolean;
  /** Shared by a logger and all its children. Setting an unknown level throws FLAG_INVALID. */
  level: LogLevel;
}

export interface LoggerOptions {
  format: LogFormat;
  level: LogLevel;
  component: string;
  /** Receives each line without its trailing newline. Default: process.stderr. */
  write?: (line: string) => void;
}

interface Sink {
  format: LogFormat;
  severity: number;
  level: LogLevel;
  write: (line: string) => void;
}

// Keys the line itself owns; a field with one of these names is written as `fields.<name>`.
const RESERVED = new Set(["time", "level", "msg"]);
const MAX_DEPTH = 8;

export function createLogger(opts: LoggerOptions): Logger {
  if (!isLogLevel(opts.level)) throw badLevel(opts.level);
  const sink: Sink = {
    format: opts.format,
    level: opts.level,
    severity: SEVERITY[opts.level],
    write: opts.write ?? stderrLines,
  };
  return new StructuredLogger(sink, opts.component, {});
}

// Lines logged in one turn of the event loop leave in one write: a busy proxy logs a line per
// request or connection, and a write per line showed up as a cost of its own. Whatever is still
// queued when the process exits is written synchronously, so no line is lost.
let queuedLines: string[] = [];
let flushScheduled = false;
let exitHookInstalled = false;

function flushLines(): void {
  flushScheduled = false;
  if (queuedLines.length === 0) return;
  const text = `${queuedLines.join("\n")}\n`;
  queuedLines = [];
  process.stderr.write(text);
}

function stderrLines(line: string): void {
  queuedLines.push(line);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      if (queuedLines.length === 0) return;
      const text = `${queuedLines.join("\n")}\n`;
      queuedLines = [];
      try {
        writeSync(2, text);
      } catch {
        // stderr is gone: nothing left to tell
      }
    });
  }
  if (queuedLines.length >= 512) flushLines();
  else if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushLines);
  }
}

function badLevel(level: string): MeshError {
  return new MeshError(ErrorCodes.FLAG_INVALID, `unknown log level "${level}"; expected one of ${LOG_LEVELS.join(", ")}`);
}

class StructuredLogger implements Logger {
  constructor(
    private readonly sink: Sink,
    private readonly scope: string,
    private readonly base: LogFields,
  ) {}

  get level(): LogLevel {
    return this.sink.level;
  }

  set level(level: LogLevel) {
    if (!isLogLevel(level)) throw badLevel(level);
    this.sink.level = level;
    this.sink.severity = SEVERITY[level];
  }

  enabled(level: LogLevel): boolean {
    return SEVERITY[level] >= this.sink.severity;
  }

  debug(msg: string, fields?: LogFields): void {
    if (SEVERITY.debug >= this.sink.severity) this.emit("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    if (SEVERITY.info >= this.sink.severity) this.emit("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    if (SEVERITY.warn >= this.sink.severity) this.emit("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    if (SEVERITY.error >= this.sink.severity) this.emit("error", msg, fields);
  }

  child(fields: LogFields): Logger {
    const { scope, ...rest } = fields;
    return new StructuredLogger(this.sink, typeof scope === "string" ? scope : this.scope, { ...this.base, ...rest });
  }

  private emit(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    let line: string;
    try {
      line = formatLine(this.sink.format, new Date().toISOString(), level, this.scope, msg, this.base, fields);
    } catch (e) {
      // Only reachable through something like a Proxy that throws on key enumeration.
      line = formatLine(this.sink.format, new Date().toISOString(), level, this.scope, msg, {}, { log_error: String(e) });
    }
    try {
      this.sink.write(line);
    } catch {
      // Nowhere left to report it; dropping one line beats failing the connection that logged it.
    }
  }
}

function formatLine(
  format: LogFormat,
  time: string,
  level: LogLevel,
  scope: string,
  msg: string,
  base: LogFields,
  fields: LogFields | undefined,
): string {
  const record: Record<string, unknown> = { time, level, scope, msg };
  const add = (src: LogFields) => {
    for (const key of Object.keys(src)) {
      let v: unknown;
      try {
        v = src[key];
      } catch {
        v = "[unreadable]";
      }
      if (v === undefined) continue;
      if (key === "scope") {
        if (typeof v === "string") record.scope = v;
        continue;
      }
      record[RESERVED.has(key) ? `fields.${key}` : key] = toJsonSafe(v, 0, []);
    }
  };
  add(base);
  if (fields) add(fields);
  if (format === "json") return JSON.stringify(record);
  let out = `${time} ${level.toUpperCase().padEnd(5)} ${String(record.scope)}: ${msg}`;
  for (const key of Object.keys(record)) {
    if (key === "time" || key === "level" || key === "scope" || key === "msg") continue;
    out += ` ${key}=${textValue(record[key])}`;
  }
  return out;
}

function textValue(v: unknown): string {
  if (typeof v === "number" || typeof v === "boolean" || v === null) return String(v);
  return JSON.stringify(v);
}

/** A value JSON.stringify can always serialise, keeping as much meaning as is cheap. */
export function toJsonSafe(v: unknown, depth: number, stack: object[]): unknown {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      return Number.isFinite(v) ? v : String(v);
    case "bigint":
      return v.toString();
    case "undefined":
      return null;
    case "symbol":
      return v.toString();
    case "function":
      return `[function ${v.name || "anonymous"}]`;
  }
  if (v === null) return null;
  const obj = v as object;
  if (stack.includes(obj)) return "[circular]";
  if (depth >= MAX_DEPTH) return "[too deep]";
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? "Invalid Date" : obj.toISOString();
  if (obj instanceof Error) {
    const out: Record<string, unknown> = { name: obj.name, message: obj.message };
    if (obj instanceof MeshError) out.code = obj.code;
    if (obj.cause !== undefined) {
      stack.push(obj);
      out.cause = toJsonSafe(obj.cause, depth + 1, stack);
      stack.pop();
    }
    return out;
  }
  if (ArrayBuffer.isView(obj)) return `[${obj.byteLength} bytes]`;
  if (obj instanceof ArrayBuffer) return `[${obj.byteLength} bytes]`;
  stack.push(obj);
  try {
    if (Array.isArray(obj)) return obj.map((x) => toJsonSafe(x, depth + 1, stack));
    if (obj instanceof Map) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of obj) out[String(k)] = toJsonSafe(x, depth + 1, stack);
      return out;
    }
    if (obj instanceof Set) return [...obj].map((x) => toJsonSafe(x, depth + 1, stack));
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") {
      try {
        return toJsonSafe(toJSON.call(obj), depth + 1, stack);
      } catch (e) {
        return `[toJSON failed: ${e instanceof Error ? e.message : String(e)}]`;
      }
    }
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(obj)) {
      let x: unknown;
      try {
        x = (obj as Record<string, unknown>)[key];
      } catch {
        x = "[unreadable]";
      }
      if (x !== undefined) out[key] = toJsonSafe(x, depth + 1, stack);
    }
    return out;
  } finally {
    stack.pop();
  }
}
