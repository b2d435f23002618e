// Plugin-defined metrics (proxy_define_metric & co.). The VM keeps a table it can answer
// proxy_get_metric from; after each batch it reports what changed, and the main side keeps the
// authoritative store that survives VM restarts and renders Prometheus text.
//
// Prometheus names: `wasm_` + the plugin-provided name with every character outside
// [a-zA-Z0-9_:] replaced by `_` (Envoy stores the same metric as `wasmcustom.<name>`), labelled
// `plugin="<plugin name>"`. Histograms use Envoy's default bucket bounds.

import { MetricType, type MetricTypeValue, Status, type StatusCode } from "./abi.ts";
import type { MetricUpdate } from "./protocol.ts";

/** Envoy's default histogram bucket bounds (stats/histogram_impl.h). */
export const HISTOGRAM_BUCKETS: readonly number[] = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];

export const MAX_METRICS_PER_PLUGIN = 1024;
const MAX_NAME_BYTES = 256;

interface VmMetric {
  readonly name: string;
  readonly type: MetricTypeValue;
  value: number;
  /** A counter's value at the last drain (its updates are the growth since). */
  reported: number;
  samples: number[];
  dirty: boolean;
}

/** The VM-side table. Metric ids encode the type in the low two bits, as Envoy's do. */
export class VmMetricTable {
  private readonly byId: VmMetric[] = [];
  private readonly byName = new Map<string, number>();
  private readonly seed: Map<string, number>;

  constructor(seed: readonly { name: string; type: MetricTypeValue; value: number }[]) {
    this.seed = new Map(seed.map((s) => [`${s.type}:${s.name}`, s.value]));
  }

  define(type: number, name: string): { status: StatusCode; id?: number } {
    if (type !== MetricType.COUNTER && type !== MetricType.GAUGE && type !== MetricType.HISTOGRAM) {
      return { status: Status.BAD_ARGUMENT };
    }
    if (name.length === 0 || name.length > MAX_NAME_BYTES) return { status: Status.BAD_ARGUMENT };
    const existing = this.byName.get(name);
    if (existing !== undefined) {
      const m = this.byId[existing]!;
      return m.type === type ? { status: Status.OK, id: (existing << 2) | type } : { status: Status.BAD_ARGUMENT };
    }
    if (this.byId.length >= MAX_METRICS_PER_PLUGIN) return { status: Status.INTERNAL_FAILURE };
    const index = this.byId.length;
    const t = type as MetricTypeValue;
    const value = this.seed.get(`${t}:${name}`) ?? 0;
    this.byId.push({ name, type: t, value, reported: value, samples: [], dirty: true });
    this.byName.set(name, index);
    return { status: Status.OK, id: (index << 2) | type };
  }

  private get(id: number): VmMetric | undefined {
    const m = this.byId[id >>> 2];
    return m !== undefined && m.type === (id & 3) ? m : undefined;
  }

  increment(id: number, delta: number): StatusCode {
    const m = this.get(id);
    if (m === undefined) return Status.NOT_FOUND;
    if (m.type === MetricType.HISTOGRAM) return Status.BAD_ARGUMENT;
    if (m.type === MetricType.COUNTER && delta < 0) return Status.BAD_ARGUMENT;
    m.value += delta;
    m.dirty = true;
    return Status.OK;
  }

  record(id: number, value: number): StatusCode {
    const m = this.get(id);
    if (m === undefined) return Status.NOT_FOUND;
    if (m.type === MetricType.COUNTER) {
      // Envoy adds the value to a counter
      if (value < 0) return Status.BAD_ARGUMENT;
      m.value += value;
    } else if (m.type === MetricType.GAUGE) m.value = value;
    else if (m.samples.length < 65536) m.samples.push(value);
    m.dirty = true;
    return Status.OK;
  }

  value(id: number): { status: StatusCode; value?: number } {
    const m = this.get(id);
    if (m === undefined) return { status: Status.NOT_FOUND };
    if (m.type === MetricType.HISTOGRAM) return { status: Status.BAD_ARGUMENT };
    return { status: Status.OK, value: m.value };
  }

  /** The changes since the last call, appended to `out` (a new list when `out` is frozen-empty). */
  drain(out: MetricUpdate[]): MetricUpdate[] {
    let list = out;
    for (const m of this.byId) {
      if (!m.dirty) continue;
      const value = m.type === MetricType.COUNTER ? m.value - m.reported : m.value;
      m.reported = m.value;
      if (Object.isFrozen(list)) list = [];
      list.push({ name: m.name, type: m.type, value, samples: m.samples });
      m.samples = [];
      m.dirty = false;
    }
    return list;
  }
}

export interface HistogramSnapshot {
  /** Cumulative counts per bound of HISTOGRAM_BUCKETS (Prometheus `le` semantics). */
  readonly buckets: readonly number[];
  readonly sum: number;
  readonly count: number;
}

export interface PluginMetric {
  readonly name: string;
  /** The Prometheus metric name (`wasm_<sanitized name>`). */
  readonly promName: string;
  readonly type: "counter" | "gauge" | "histogram";
  readonly value: number;
  readonly histogram?: HistogramSnapshot;
}

interface StoredMetric {
  readonly name: string;
  readonly type: MetricTypeValue;
  value: number;
  counts: number[];
  sum: number;
  count: number;
}

export function prometheusName(name: string): string {
  return `wasm_${name.replace(/[^a-zA-Z0-9_:]/g, "_")}`;
}

/**
 * Main-side store for one plugin: survives VM restarts, and an embedder that keeps it across
 * versions of the plugin (WasmPluginOptions.metricStore) keeps its counters across reloads.
 */
export class PluginMetricStore {
  private readonly metrics = new Map<string, StoredMetric>();

  apply(updates: readonly MetricUpdate[]): void {
    for (const u of updates) {
      const key = `${u.type}:${u.name}`;
      let m = this.metrics.get(key);
      if (m === undefined) {
        m = { name: u.name, type: u.type, value: 0, counts: new Array(HISTOGRAM_BUCKETS.length).fill(0), sum: 0, count: 0 };
        this.metrics.set(key, m);
      }
      if (u.type === MetricType.HISTOGRAM) {
        for (const s of u.samples) {
          for (let i = 0; i < HISTOGRAM_BUCKETS.length; i++) if (s <= HISTOGRAM_BUCKETS[i]!) m.counts[i]!++;
          m.sum += s;
          m.count++;
        }
      } else if (u.type === MetricType.COUNTER) m.value += u.value;
      else m.value = u.value;
    }
  }

  /** Counter and gauge values to seed a fresh VM with. */
  seed(): { name: string; type: MetricTypeValue; value: number }[] {
    const out: { name: string; type: MetricTypeValue; value: number }[] = [];
    for (const m of this.metrics.values()) if (m.type !== MetricType.HISTOGRAM) out.push({ name: m.name, type: m.type, value: m.value });
    return out;
  }

  snapshot(): PluginMetric[] {
    const out: PluginMetric[] = [];
    for (const m of this.metrics.values()) {
      const type = m.type === MetricType.COUNTER ? "counter" : m.type === MetricType.GAUGE ? "gauge" : "histogram";
      out.push(
        m.type === MetricType.HISTOGRAM
          ? {
              name: m.name,
              promName: prometheusName(m.name),
              type,
              value: m.count,
              histogram: { buckets: [...m.counts], sum: m.sum, count: m.count },
            }
          : { name: m.name, promName: prometheusName(m.name), type, value: m.value },
      );
    }
    return out;
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/**
 * Prometheus text exposition for the metrics of several plugins. Metrics of the same name from
 * different plugins share one TYPE line and differ by the `plugin` label.
 */
export function renderPrometheus(plugins: readonly { readonly plugin: string; readonly metrics: readonly PluginMetric[] }[]): string {
  const byName = new Map<string, { type: string; lines: string[] }>();
  for (const p of plugins) {
    const label = `plugin="${escapeLabel(p.plugin)}"`;
    for (const m of p.metrics) {
      let entry = byName.get(m.promName);
      if (entry === undefined) {
        entry = { type: m.type, lines: [] };
        byName.set(m.promName, entry);
      }
      if (entry.type !== m.type) continue; // same sanitized name, different type: first one wins
      if (m.histogram === undefined) {
        entry.lines.push(`${m.promName}{${label}} ${m.value}`);
        continue;
      }
      for (let i = 0; i < HISTOGRAM_BUCKETS.length; i++) {
        entry.lines.push(`${m.promName}_bucket{${label},le="${HISTOGRAM_BUCKETS[i]}"} ${m.histogram.buckets[i]}`);
      }
      entry.lines.push(`${m.promName}_bucket{${label},le="+Inf"} ${m.histogram.count}`);
      entry.lines.push(`${m.promName}_sum{${label}} ${m.histogram.sum}`);
      entry.lines.push(`${m.promName}_count{${label}} ${m.histogram.count}`);
    }
  }
  let out = "";
  for (const [name, e] of byName) out += `# TYPE ${name} ${e.type}\n${e.lines.join("\n")}\n`;
  return out;
}
