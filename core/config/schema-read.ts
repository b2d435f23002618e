// Small readers over the YAML tree that collect every problem (not just the first) with the
// field path it was found at, e.g. `workloads[2].workloadIps[0]`.

import { frozenMap } from "./frozen.ts";
import type { PortMap } from "./model.ts";
import type { YNode } from "./yaml-tree.ts";

export class Issues {
  readonly errors: { path: string; message: string }[] = [];
  readonly warnings: { path: string; message: string }[] = [];
  error(path: string, message: string): void {
    this.errors.push({ path, message });
  }
  warn(path: string, message: string): void {
    this.warnings.push({ path, message });
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function child(path: string, key: string): string {
  if (IDENT.test(key)) return path === "" ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

export function index(path: string, i: number): string {
  return `${path}[${i}]`;
}

/** How a value reads in an error message: `"10.0.0.300"`, `12`, `null`, `a list`, `!Regex "x"`. */
export function describe(n: YNode): string {
  switch (n.kind) {
    case "map":
      return "a map";
    case "seq":
      return "a list";
    case "tagged":
      return `!${n.tag} ${describe(n.value)}`;
    case "scalar":
      if (n.value === null) return "null";
      if (typeof n.value === "string") return JSON.stringify(n.value);
      return n.source || String(n.value);
  }
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

function suggestion(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 4)) ? best : undefined;
}

/** A YAML map whose keys were checked against the allowed set (serde's deny_unknown_fields). */
export class Fields {
  private constructor(
    private readonly values: ReadonlyMap<string, YNode>,
    readonly path: string,
  ) {}

  /**
   * Reads `n` as a map with the given allowed keys; unknown keys are errors. Returns undefined
   * (after recording an error) when `n` is not a map.
   */
  static read(n: YNode, path: string, known: readonly string[], issues: Issues, what: string): Fields | undefined {
    if (n.kind !== "map") {
      issues.error(path, `expected ${what}, got ${describe(n)}`);
      return undefined;
    }
    const values = new Map<string, YNode>();
    for (const e of n.entries) {
      if (e.key === undefined) {
        issues.error(path, `expected ${what} with plain keys, got a collection as a key`);
        continue;
      }
      if (!known.includes(e.key)) {
        const s = suggestion(e.key, known);
        issues.error(
          child(path, e.key),
          s !== undefined ? `unknown field; did you mean "${s}"?` : `unknown field; expected one of: ${known.join(", ")}`,
        );
        continue;
      }
      values.set(e.key, e.value);
    }
    return new Fields(values, path);
  }

  /** The node for `key`; undefined when absent or null (null reads as "not set", like serde's Option). */
  get(key: string): YNode | undefined {
    const v = this.values.get(key);
    if (v === undefined) return undefined;
    if (v.kind === "scalar" && v.value === null && !v.quoted) return undefined;
    return v;
  }

  at(key: string): string {
    return child(this.path, key);
  }

  /** Reports a missing required field and returns undefined, or returns the node. */
  required(key: string, issues: Issues, expected: string): YNode | undefined {
    const v = this.get(key);
    if (v === undefined) issues.error(this.at(key), `required field is missing (expected ${expected})`);
    return v;
  }
}

function unexpectedTag(n: YNode, path: string, expected: string, issues: Issues): boolean {
  if (n.kind !== "tagged") return false;
  issues.error(path, `expected ${expected}, got ${describe(n)} (tags are only valid in policy string matches)`);
  return true;
}

/**
 * A string. Plain scalars of other types read as their source text, as serde_yaml does for
 * String fields (`name: 123` is "123").
 */
export function readString(n: YNode, path: string, issues: Issues, expected = "a string"): string | undefined {
  if (unexpectedTag(n, path, expected, issues)) return undefined;
  if (n.kind !== "scalar" || n.value === null) {
    issues.error(path, `expected ${expected}, got ${describe(n)}`);
    return undefined;
  }
  return typeof n.value === "string" ? n.value : n.source;
}

export function readInt(n: YNode, path: string, issues: Issues, min: number, max: number, what: string): number | undefined {
  if (unexpectedTag(n, path, what, issues)) return undefined;
  if (n.kind === "scalar" && typeof n.value === "number" && Number.isInteger(n.value) && n.value >= min && n.value <= max) {
    return n.value;
  }
  issues.error(path, `expected ${what}, got ${describe(n)}`);
  return undefined;
}

export function readPort(n: YNode, path: string, issues: Issues, allowZero = false): number | undefined {
  return readInt(n, path, issues, allowZero ? 0 : 1, 65535, allowZero ? "a port number 0..65535" : "a port number 1..65535");
}

export function readBool(n: YNode, path: string, issues: Issues): boolean | undefined {
  if (unexpectedTag(n, path, "true or false", issues)) return undefined;
  if (n.kind !== "scalar" || typeof n.value !== "boolean") {
    issues.error(path, `expected true or false, got ${describe(n)}`);
    return undefined;
  }
  return n.value;
}

export function readEnum<T extends string>(n: YNode, path: string, issues: Issues, variants: readonly T[]): T | undefined {
  const expected = `one of ${variants.join(", ")}`;
  if (unexpectedTag(n, path, expected, issues)) return undefined;
  if (n.kind === "scalar" && typeof n.value === "string" && (variants as readonly string[]).includes(n.value)) {
    return n.value as T;
  }
  issues.error(path, `expected ${expected}, got ${describe(n)}`);
  return undefined;
}

/** A list; each item is read by `item`, whose undefined results are dropped (already reported). */
export function readList<T>(
  n: YNode,
  path: string,
  issues: Issues,
  expected: string,
  item: (n: YNode, path: string) => T | undefined,
): T[] | undefined {
  if (unexpectedTag(n, path, `a list of ${expected}`, issues)) return undefined;
  if (n.kind !== "seq") {
    issues.error(path, `expected a list of ${expected}, got ${describe(n)}`);
    return undefined;
  }
  const out: T[] = [];
  n.items.forEach((it, i) => {
    const v = item(it, index(path, i));
    if (v !== undefined) out.push(v);
  });
  return out;
}

/** A map with free-form keys; `entry` reads each (key text, value). */
export function readMap(
  n: YNode,
  path: string,
  issues: Issues,
  expected: string,
  entry: (key: string, value: YNode, path: string) => void,
): boolean {
  if (unexpectedTag(n, path, expected, issues)) return false;
  if (n.kind !== "map") {
    issues.error(path, `expected ${expected}, got ${describe(n)}`);
    return false;
  }
  for (const e of n.entries) {
    if (e.key === undefined) {
      issues.error(path, `expected ${expected} with plain keys, got a collection as a key`);
      continue;
    }
    entry(e.key, e.value, child(path, e.key));
  }
  return true;
}

const PORT_KEY = /^(0|[1-9][0-9]{0,4})$/;

/** `{servicePort: targetPort}`; service ports 1..65535, target ports 0..65535 (0 = named port). */
export function readPortMap(n: YNode, path: string, issues: Issues): PortMap | undefined {
  const out = new Map<number, number>();
  const ok = readMap(n, path, issues, "a map of servicePort: targetPort", (key, value, p) => {
    const k = PORT_KEY.test(key) ? Number(key) : NaN;
    if (!(k >= 1 && k <= 65535)) {
      issues.error(p, `expected a service port number 1..65535 as the key, got ${JSON.stringify(key)}`);
      return;
    }
    const v = readPort(value, p, issues, true);
    if (v !== undefined) out.set(k, v);
  });
  return ok ? frozenMap(out) : undefined;
}

/** Reads an optional field, applying `fallback` when absent. */
export function opt<T>(f: Fields, key: string, fallback: T, read: (n: YNode, path: string) => T | undefined): T {
  const n = f.get(key);
  if (n === undefined) return fallback;
  return read(n, f.at(key)) ?? fallback;
}
