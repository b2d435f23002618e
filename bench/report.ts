// Report pieces shared by the harness's sections (run.ts, l7.ts): target verdicts, the notes list
// under a table, and the plain-text table printed on the terminal.

export type Verdict = "pass" | "FAIL" | "n/a" | "";

/** A target's verdict on the value it checks: "n/a" when the value is missing (a skipped column). */
export function judge(value: number | undefined, pass: (v: number) => boolean): Verdict {
  return value === undefined || !Number.isFinite(value) ? "n/a" : pass(value) ? "pass" : "FAIL";
}

/** Counts of the rows that carry a target. */
export function tallyVerdicts(verdicts: readonly Verdict[]): { passed: number; failed: number; na: number } {
  const judged = verdicts.filter((v) => v !== "");
  const passed = judged.filter((v) => v === "pass").length;
  const failed = judged.filter((v) => v === "FAIL").length;
  return { passed, failed, na: judged.length - passed - failed };
}

/** What a section knows about one path besides its figures. */
export interface NotedPath<N extends string> {
  name: N;
  status: "ok" | "skipped" | "failed";
  reason?: string;
  entry?: string;
  notes: string[];
  errors: string[];
}

/** Markdown bullet lines: why a path was skipped or failed, its errors, notes and entry. */
export function noteLines<N extends string>(paths: Iterable<NotedPath<N>>, title: (name: N) => string = (n) => n): string[] {
  return [...paths].flatMap((r) => [
    ...(r.status !== "ok" ? [`- **${title(r.name)}** ${r.status}: ${(r.reason ?? "").split("\n")[0]}`] : []),
    ...r.errors.map((e) => `- **${title(r.name)}** error: ${e.split("\n")[0]}`),
    ...r.notes.map((n) => `- **${title(r.name)}**: ${n}`),
    ...(r.entry ? [`- **${title(r.name)}** entry: ${r.entry}`] : []),
  ]);
}

/** A plain-text table: column 0 and the columns from `leftFrom` on are left-aligned, the rest right-aligned. */
export function textTable(cols: readonly string[], data: readonly string[][], leftFrom: number): string {
  const widths = cols.map((c, i) => Math.max(c.length, ...data.map((d) => (d[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 || i >= leftFrom ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ").trimEnd();
  return [line(cols), widths.map((w) => "-".repeat(w)).join("  "), ...data.map(line)].join("\n");
}

/** JSON for results files: NaN and Infinity (missing figures) as null. */
export function reportJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === "number" && !Number.isFinite(x) ? null : x), 2);
}
