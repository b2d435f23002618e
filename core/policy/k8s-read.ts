// Reading helpers for Kubernetes YAML documents: type checks that report a field path, and the
// per-document problem collector (file, document index and name on every line).

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

export function describe(v: unknown): string {
  if (v === null || v === undefined) return "nothing (null)";
  if (Array.isArray(v)) return "a list";
  if (v instanceof Date) return `a timestamp ${v.toISOString()}`;
  if (typeof v === "object") return "a map";
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  return `the ${typeof v} ${String(v)}`;
}

export function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** Problems of one document; each line names the file, the document and the field path. */
export class DocProblems {
  constructor(
    private label: string,
    private readonly errors: string[],
    private readonly warnings: string[],
  ) {}
  name(name: string): void {
    this.label = `${this.label} (${name})`;
  }
  get source(): string {
    return this.label;
  }
  error(path: string, message: string): void {
    this.errors.push(path === "" ? `${this.label}: ${message}` : `${this.label}: ${path}: ${message}`);
  }
  count(): number {
    return this.errors.length;
  }
  warn(path: string, message: string): void {
    this.warnings.push(path === "" ? `${this.label}: ${message}` : `${this.label}: ${path}: ${message}`);
  }
}

export function checkKeys(o: Obj, path: string, allowed: readonly string[], p: DocProblems): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) p.error(join(path, k), `unknown field (expected one of ${allowed.join(", ")})`);
  }
}

export function readMap(v: unknown, path: string, p: DocProblems, what: string): Obj | undefined {
  if (isObj(v)) return v;
  p.error(path, `expected ${what} (a map), got ${describe(v)}`);
  return undefined;
}

/** A list of non-empty strings (numbers allowed only where `numbers` says so, e.g. ports). */
export function readStrings(v: unknown, path: string, p: DocProblems, numbers = false): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    p.error(path, `expected a list of strings, got ${describe(v)}`);
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
      p.error(`${path}[${i}]`, `expected a string, got ${describe(item)}${typeof item === "number" || typeof item === "boolean" ? " (quote it)" : ""}`);
    }
  });
  return out;
}


export function readList(v: unknown, path: string, p: DocProblems, what: string, max?: number): unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    p.error(path, `expected a list of ${what}, got ${describe(v)}`);
    return undefined;
  }
  if (max !== undefined && v.length > max) p.error(path, `at most ${max} ${what} are allowed, got ${v.length}`);
  return v;
}

