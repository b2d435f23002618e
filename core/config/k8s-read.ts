// Reading Kubernetes YAML documents (AuthorizationPolicy, HTTPRoute): the multi-document loop that
// turns a file into checked objects or one MeshError listing every problem, the per-document
// problem collector (file, document index and name on every line), and type checks that report a
// field path.

import { LineCounter, parseAllDocuments } from "yaml";
import { ErrorCodes, MeshError } from "../errors/index.ts";

export type Obj = Record<string, unknown>;

/**
 * How a string value reads in a message: `"x"` (cut at 80 characters) or `the string "x"` (in
 * full). Each module keeps the one its messages have always used.
 */
export type StringStyle = "quoted" | "labelled";

/** Fields every Kubernetes object may have at the top and in `metadata`. */
export const KUBERNETES_TOP_KEYS: readonly string[] = Object.freeze(["apiVersion", "kind", "metadata", "spec", "status"]);
export const KUBERNETES_METADATA_KEYS: readonly string[] = Object.freeze([
  "name",
  "namespace",
  "labels",
  "annotations",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "managedFields",
  "finalizers",
  "ownerReferences",
  "generateName",
  "selfLink",
]);

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** How a value reads in a message: `a list`, `the number 3`, `"x"` or `the string "x"`. */
export function describeValue(v: unknown, strings: StringStyle = "quoted"): string {
  if (v === null || v === undefined) return "nothing (null)";
  if (Array.isArray(v)) return "a list";
  if (v instanceof Date) return `a timestamp ${v.toISOString()}`;
  if (typeof v === "object") return "a map";
  if (typeof v === "string") {
    return strings === "labelled" ? `the string ${JSON.stringify(v)}` : JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);
  }
  return `the ${typeof v} ${String(v)}`;
}

/** The path of field `key` below `path` (`spec.rules`). */
export function fieldPath(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** Problems of one document; each line reads `file: document N (name): field.path: message`. */
export class DocProblems {
  private readonly warningLines: string[] = [];
  constructor(
    private label: string,
    private readonly errors: string[],
    private readonly strings: StringStyle = "quoted",
  ) {}
  name(name: string): void {
    this.label = `${this.label} (${name})`;
  }
  get source(): string {
    return this.label;
  }
  /** Warnings of this document, in the same form as errors. */
  get warnings(): readonly string[] {
    return this.warningLines;
  }
  /** `describeValue(v)` in this document's message style. */
  describe(v: unknown): string {
    return describeValue(v, this.strings);
  }
  error(path: string, message: string): void {
    this.errors.push(this.line(path, message));
  }
  warn(path: string, message: string): void {
    this.warningLines.push(this.line(path, message));
  }
  count(): number {
    return this.errors.length;
  }
  private line(path: string, message: string): string {
    return path === "" ? `${this.label}: ${message}` : `${this.label}: ${path}: ${message}`;
  }
}

export function checkKeys(o: Obj, path: string, allowed: readonly string[], p: DocProblems): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) p.error(fieldPath(path, k), `unknown field (expected one of ${allowed.join(", ")})`);
  }
}

/** A map; `what` names it in the message (`expected a rule (a map)`), else `expected a map`. */
export function readMap(v: unknown, path: string, p: DocProblems, what?: string): Obj | undefined {
  if (isObj(v)) return v;
  p.error(path, `expected ${what === undefined ? "a map" : `${what} (a map)`}, got ${p.describe(v)}`);
  return undefined;
}

export interface ListRule {
  /** What the items are, in messages (`expected a list of rules`); else `a list` and `entries`. */
  readonly what?: string;
  readonly max?: number;
  /** Over `max`: report it and read nothing ("drop", the default) or report it and read on ("read"). */
  readonly overMax?: "drop" | "read";
}

/** A list (absent or null is undefined). */
export function readList(v: unknown, path: string, p: DocProblems, rule: ListRule = {}): readonly unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    p.error(path, `expected ${rule.what === undefined ? "a list" : `a list of ${rule.what}`}, got ${p.describe(v)}`);
    return undefined;
  }
  if (rule.max !== undefined && v.length > rule.max) {
    p.error(path, `at most ${rule.max} ${rule.what ?? "entries"} are allowed, got ${v.length}`);
    if (rule.overMax !== "read") return undefined;
  }
  return v;
}

/** A list of non-empty strings (numbers allowed only where `numbers` says so, e.g. ports). */
export function readStrings(v: unknown, path: string, p: DocProblems, numbers = false): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    p.error(path, `expected a list of strings, got ${p.describe(v)}`);
    return undefined;
  }
  const out: string[] = [];
  v.forEach((item, i) => {
    if (typeof item === "string") {
      if (item === "") p.error(`${path}[${i}]`, "empty value not allowed");
      else out.push(item);
    } else if (numbers && typeof item === "number" && Number.isInteger(item)) {
      out.push(String(item));
    } else {
      p.error(`${path}[${i}]`, `expected a string, got ${p.describe(item)}${quoteHint(item)}`);
    }
  });
  return out;
}

export interface StringRule {
  readonly required?: boolean;
  readonly max?: number;
  readonly min?: number;
  readonly pattern?: RegExp;
  readonly patternText?: string;
  readonly oneOf?: readonly string[];
}

/** A string field of `o`; `undefined` when absent (an error if required) or invalid. */
export function readString(o: Obj, key: string, path: string, p: DocProblems, rule: StringRule = {}): string | undefined {
  return checkString(o[key], fieldPath(path, key), p, rule);
}

/** A string value at `at` (a list item, a field); `undefined` when absent or invalid. */
export function checkString(v: unknown, at: string, p: DocProblems, rule: StringRule = {}): string | undefined {
  if (v === undefined || v === null) {
    if (rule.required) p.error(at, "required");
    return undefined;
  }
  if (typeof v !== "string") {
    p.error(at, `expected a string, got ${p.describe(v)}${quoteHint(v)}`);
    return undefined;
  }
  if (rule.oneOf && !rule.oneOf.includes(v)) {
    p.error(at, `expected one of ${rule.oneOf.join(", ")}, got ${p.describe(v)}`);
    return undefined;
  }
  if (rule.min !== undefined && v.length < rule.min) {
    p.error(at, rule.min === 1 ? "must not be empty" : `must be at least ${rule.min} characters`);
    return undefined;
  }
  if (rule.max !== undefined && v.length > rule.max) {
    p.error(at, `must be at most ${rule.max} characters, got ${v.length}`);
    return undefined;
  }
  if (rule.pattern && !rule.pattern.test(v)) {
    p.error(at, `expected ${rule.patternText ?? `a value matching ${rule.pattern.source}`}, got ${p.describe(v)}`);
    return undefined;
  }
  return v;
}

/** An integer field of `o` within [min, max]. */
export function readInt(o: Obj, key: string, path: string, p: DocProblems, min: number, max: number, required = false): number | undefined {
  const v = o[key];
  const at = fieldPath(path, key);
  if (v === undefined || v === null) {
    if (required) p.error(at, "required");
    return undefined;
  }
  if (typeof v !== "number" || !Number.isInteger(v)) {
    p.error(at, `expected an integer, got ${p.describe(v)}`);
    return undefined;
  }
  if (v < min || v > max) {
    p.error(at, `expected an integer from ${min} to ${max}, got ${v}`);
    return undefined;
  }
  return v;
}

/** YAML turns `80` and `true` into a number and a boolean; a string field wants them quoted. */
function quoteHint(v: unknown): string {
  return typeof v === "number" || typeof v === "boolean" ? " (quote it)" : "";
}

export interface KubernetesDocumentsOptions {
  /** The kind read, as the summary names it: `file: 2 problems in HTTPRoute documents`. */
  readonly kind: string;
  /** How a repeated object is named: `duplicate policy ns/name (also defined by ...)`; `kind` if unset. */
  readonly duplicateName?: string;
  /** More documents than this is one error, and nothing is read. */
  readonly maxDocuments?: number;
  /** How the documents' messages describe string values. */
  readonly strings?: StringStyle;
}

/**
 * Reads every document of a YAML stream with `readDocument`, which reports problems on the
 * collector it is given and returns `undefined` for a document that yields nothing (invalid, or
 * another kind it skips). Empty documents are passed over; objects are unique by `key`. Throws one
 * MeshError listing every problem: CONFIG_PARSE when any is YAML syntax (with line and column),
 * CONFIG_INVALID otherwise.
 */
export function readKubernetesDocuments<T extends { readonly key: string; readonly source: string }>(
  text: string,
  fileName: string,
  options: KubernetesDocumentsOptions,
  readDocument: (value: unknown, p: DocProblems) => T | undefined,
): T[] {
  const errors: string[] = [];
  let syntaxErrors = 0;
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false, lineCounter: lines });
  const list = Array.isArray(docs) ? docs : [];
  if (options.maxDocuments !== undefined && list.length > options.maxDocuments) {
    throw new MeshError(ErrorCodes.CONFIG_INVALID, `${fileName}: at most ${options.maxDocuments} documents per file, got ${list.length}`);
  }
  const out: T[] = [];
  const keys = new Map<string, string>();
  list.forEach((doc, i) => {
    const label = `${fileName}: document ${i + 1}`;
    if (doc.errors.length > 0) {
      syntaxErrors += doc.errors.length;
      for (const e of doc.errors) {
        const pos = lines.linePos(e.pos[0]);
        errors.push(`${label}: line ${pos.line}, column ${pos.col}: ${e.message.split("\n")[0]}`);
      }
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      syntaxErrors++;
      errors.push(`${label}: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (value === null || value === undefined) return; // an empty document (e.g. a trailing ---)
    const item = readDocument(value, new DocProblems(label, errors, options.strings));
    if (item === undefined) return;
    const seen = keys.get(item.key);
    if (seen !== undefined) {
      errors.push(`${item.source}: duplicate ${options.duplicateName ?? options.kind} ${item.key} (also defined by ${seen})`);
      return;
    }
    keys.set(item.key, item.source);
    out.push(item);
  });
  if (errors.length > 0) {
    throw new MeshError(
      syntaxErrors > 0 ? ErrorCodes.CONFIG_PARSE : ErrorCodes.CONFIG_INVALID,
      `${fileName}: ${errors.length} problem${errors.length === 1 ? "" : "s"} in ${options.kind} documents`,
      { details: errors },
    );
  }
  return out;
}
