// What a plugin changed: header maps compared by name (repeated headers as multisets), bodies by
// bytes, metrics by value.
import type { PluginMetric } from "../../wasm/index.ts";

type PairList = readonly (readonly [string, string])[];

export type HeaderChange =
  | { readonly kind: "added"; readonly name: string; readonly value: string }
  | { readonly kind: "removed"; readonly name: string; readonly value: string }
  | { readonly kind: "changed"; readonly name: string; readonly from: string; readonly to: string };

function byName(pairs: PairList): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [k, v] of pairs) {
    const list = m.get(k);
    if (list) list.push(v);
    else m.set(k, [v]);
  }
  return m;
}

/** Changes from `before` to `after`, in the order the names first appear (before's, then new ones). */
export function diffHeaders(before: PairList, after: PairList): HeaderChange[] {
  const b = byName(before);
  const a = byName(after);
  const names = [...new Set([...b.keys(), ...a.keys()])];
  const out: HeaderChange[] = [];
  for (const name of names) {
    const was = b.get(name) ?? [];
    const now = a.get(name) ?? [];
    if (was.length === now.length && was.every((v, i) => v === now[i])) continue;
    if (was.length === 1 && now.length === 1) {
      out.push({ kind: "changed", name, from: was[0]!, to: now[0]! });
      continue;
    }
    const left = [...now];
    for (const v of was) {
      const i = left.indexOf(v);
      if (i >= 0) left.splice(i, 1);
      else out.push({ kind: "removed", name, value: v });
    }
    for (const v of left) out.push({ kind: "added", name, value: v });
  }
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export interface MetricChange {
  readonly name: string;
  /** as /metrics shows it (`wasm_<name>`, label plugin="<plugin name>") */
  readonly promName: string;
  readonly type: PluginMetric["type"];
  /** undefined: defined during this step; for histograms the sample count */
  readonly from: number | undefined;
  readonly to: number;
}

export function diffMetrics(before: readonly PluginMetric[], after: readonly PluginMetric[]): MetricChange[] {
  const prev = new Map(before.map((m) => [`${m.type}:${m.name}`, m.value]));
  const out: MetricChange[] = [];
  for (const m of after) {
    const from = prev.get(`${m.type}:${m.name}`);
    if (from === m.value && prev.has(`${m.type}:${m.name}`)) continue;
    out.push({ name: m.name, promName: m.promName, type: m.type, from, to: m.value });
  }
  return out;
}
