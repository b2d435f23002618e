// Istio's HTTP/gRPC request metrics (reference/waypoint.md §C.5) on the MeshMetrics registry.
//
// A prom-client histogram observe() validates and hashes all 25 labels per call (about 1.5µs
// each, four per request). Here a request costs one key build and a map lookup: each label set
// keeps its own counts and bucket tallies, and the four families render straight from them at
// scrape time, so nothing is copied into prom-client and nothing needs flushing.
import { Counter, Histogram, type Registry, type RegistryContentType } from "prom-client";
import { HTTP_LABEL_NAMES, resolveHttpLabels, type HttpLabels, type ResolvedHttpLabels } from "./labels.ts";

/**
 * Envoy's default histogram bounds, which Istio's stats filter uses for all three distributions
 * (milliseconds for the duration, bytes for the sizes; reference/waypoint.md §C.5).
 */
export const ISTIO_HISTOGRAM_BUCKETS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000, 3_600_000,
]);

/** What one completed request measured. */
export interface RequestSample {
  /** From the first request byte to the last response byte (Envoy's request duration). */
  durationMs: number;
  /** Request size as received, headers and body (Istio's `request.total_size`). */
  requestBytes: number;
  /** Response size as sent, headers and body (`response.total_size`). */
  responseBytes: number;
}

const HELP = {
  requests: "Total number of requests handled by the proxy",
  duration: "Request duration in milliseconds",
  requestBytes: "Request size in bytes (headers and body)",
  responseBytes: "Response size in bytes (headers and body)",
} as const;

const BOUNDS = ISTIO_HISTOGRAM_BUCKETS;

/** One distribution of one label set. */
class Distribution {
  /** Observations per bucket, not cumulative; the extra last slot holds those above every bound. */
  readonly counts = new Float64Array(BOUNDS.length + 1);
  sum = 0;

  observe(value: number): void {
    // prom-client would throw on NaN; a bad measurement must not fail the request that made it.
    const v = Number.isFinite(value) && value > 0 ? value : 0;
    let i = 0;
    while (i < BOUNDS.length && v > BOUNDS[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
  }
}

class RequestSeries {
  requests = 0;
  readonly duration = new Distribution();
  readonly requestBytes = new Distribution();
  readonly responseBytes = new Distribution();
  constructor(readonly labels: ResolvedHttpLabels) {}
}

/** Label sets kept before the store starts over (bounded memory under label churn; a scraper sees a counter reset). */
const MAX_SERIES = 10_000;

type Sample = { labels: Record<string, string | number>; sharedLabels: ResolvedHttpLabels; value: number; metricName: string };

/** A histogram family whose data lives in the series store; prom-client only formats it. */
class SeriesHistogram extends Histogram<string> {
  private readonly store: () => Iterable<RequestSeries>;
  private readonly pick: (s: RequestSeries) => Distribution;
  private readonly family: { name: string; help: string };

  constructor(
    registry: Registry<RegistryContentType>,
    family: { name: string; help: string },
    store: () => Iterable<RequestSeries>,
    pick: (s: RequestSeries) => Distribution,
  ) {
    super({ ...family, labelNames: HTTP_LABEL_NAMES, buckets: [...BOUNDS], registers: [registry] });
    this.family = family;
    this.store = store;
    this.pick = pick;
  }

  // Registry.metrics() reads this for both text formats, and prom-client's get() builds on it.
  // Each sample gets its own `labels` object because get() merges the shared labels into it.
  getForPromString(): Promise<{ name: string; help: string; type: "histogram"; values: Sample[]; aggregator: "sum" }> {
    const { name, help } = this.family;
    const bucket = `${name}_bucket`;
    const values: Sample[] = [];
    for (const s of this.store()) {
      const d = this.pick(s);
      const L = s.labels;
      let cumulative = 0;
      for (let i = 0; i < BOUNDS.length; i++) {
        cumulative += d.counts[i]!;
        values.push({ labels: { le: BOUNDS[i]! }, sharedLabels: L, value: cumulative, metricName: bucket });
      }
      values.push({ labels: { le: "+Inf" }, sharedLabels: L, value: s.requests, metricName: bucket });
      values.push({ labels: {}, sharedLabels: L, value: d.sum, metricName: `${name}_sum` });
      values.push({ labels: {}, sharedLabels: L, value: s.requests, metricName: `${name}_count` });
    }
    return Promise.resolve({ name, help, type: "histogram", values, aggregator: "sum" });
  }
}

/** `istio_requests_total`, read from the series store at scrape time. */
class SeriesCounter extends Counter<string> {
  private readonly store: () => Iterable<RequestSeries>;

  constructor(registry: Registry<RegistryContentType>, name: string, help: string, store: () => Iterable<RequestSeries>) {
    super({ name, help, labelNames: HTTP_LABEL_NAMES, registers: [registry] });
    this.store = store;
  }

  // super.get() supplies the family header as the registry currently names it (OpenMetrics
  // strips `_total` in place); only the values come from the store.
  override async get(): ReturnType<Counter<string>["get"]> {
    const base = await super.get();
    const values = [];
    for (const s of this.store()) values.push({ labels: s.labels, value: s.requests });
    return { ...base, values };
  }
}

/**
 * The four request families, registered on a MeshMetrics registry. `onCounter` receives the
 * counter so MeshMetrics can restore its `_total` name after an OpenMetrics render.
 */
export class HttpRequestMetrics {
  /** resolved label values -> series; what the exposition renders */
  private readonly series = new Map<string, RequestSeries>();
  /** caller's raw label values -> series, so a known label set resolves nothing */
  private readonly byRawKey = new Map<string, RequestSeries>();

  constructor(registry: Registry<RegistryContentType>, onCounter: (metric: { name: string }, name: string) => void) {
    const store = () => this.series.values();
    const requestsName = "istio_requests_total";
    const requests = new SeriesCounter(registry, requestsName, HELP.requests, store);
    onCounter(requests as unknown as { name: string }, requestsName);
    // Registering on the registry is all the histograms need; they read the store when scraped.
    new SeriesHistogram(registry, { name: "istio_request_duration_milliseconds", help: HELP.duration }, store, (s) => s.duration);
    new SeriesHistogram(registry, { name: "istio_request_bytes", help: HELP.requestBytes }, store, (s) => s.requestBytes);
    new SeriesHistogram(registry, { name: "istio_response_bytes", help: HELP.responseBytes }, store, (s) => s.responseBytes);
  }

  requestCompleted(labels: HttpLabels, sample: RequestSample): void {
    const s = this.seriesFor(labels);
    s.requests++;
    s.duration.observe(sample.durationMs);
    s.requestBytes.observe(sample.requestBytes);
    s.responseBytes.observe(sample.responseBytes);
  }

  private seriesFor(labels: HttpLabels): RequestSeries {
    // Keyed on the raw values, as the TCP series are: a known label set allocates only the key.
    let key = "";
    for (const name of HTTP_LABEL_NAMES) key += `${labels[name] ?? ""}\u001f`;
    let s = this.byRawKey.get(key);
    if (s) return s;
    // Raw sets that resolve alike (absent vs "unknown", absent vs "-") must share one series,
    // or the exposition would carry the same sample twice.
    const resolved = resolveHttpLabels(labels);
    let resolvedKey = "";
    for (const name of HTTP_LABEL_NAMES) resolvedKey += `${resolved[name]}\u001f`;
    s = this.series.get(resolvedKey);
    if (!s) {
      if (this.series.size >= MAX_SERIES) {
        this.series.clear();
        this.byRawKey.clear();
      }
      s = new RequestSeries(resolved);
      this.series.set(resolvedKey, s);
    }
    if (this.byRawKey.size >= 4 * MAX_SERIES) this.byRawKey.clear();
    this.byRawKey.set(key, s);
    return s;
  }
}
