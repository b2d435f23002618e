// Istio's TCP metrics (reference/ztunnel.md §7.1) on a private prom-client registry; the HTTP
// request families (http-metrics.ts) join the same registry and render.
//
// The data path calls addBytes once per chunk, so a connection keeps plain running totals and
// the prom-client counters (whose inc() hashes the 23 labels) are only touched when the
// connection opens, closes, or a scrape flushes the live connections.
import { Counter, Gauge, Registry, type RegistryContentType } from "prom-client";
import { HttpRequestMetrics, type RequestSample } from "./http-metrics.ts";
import { NO_RESPONSE_FLAGS, TCP_LABEL_NAMES, resolveTcpLabels, type HttpLabels, type ResolvedTcpLabels, type TcpLabelName, type TcpLabels } from "./labels.ts";

/** Per-connection metrics handle; owned by whoever copies the connection's bytes. */
export interface TcpConnectionMetrics {
  /** Bytes moved since the last call. Istio direction: client→server counts as received, server→client as sent. */
  addBytes(clientToServer: number, serverToClient: number): void;
  /** Records the close; `responseFlags` as Istio's (`-`, `DENY`, `CONNECT`, ...). Later calls are ignored. */
  closed(responseFlags?: string): void;
  readonly clientToServerBytes: number;
  readonly serverToClientBytes: number;
}

export type MeshComponent = "ztunnel" | "waypoint";

const HELP = {
  opened: "The total number of TCP connections opened",
  closed: "The total number of TCP connections closed",
  failed: "The total number of TCP connections that failed to establish (unstable)",
  received: "The size of total bytes received during request in case of a TCP connection",
  sent: "The size of total bytes sent during response in case of a TCP connection",
  socketsOpen: "The number of currently open sockets (unstable)",
  build: "Istio component build info",
} as const;

/**
 * One label set. Connections that share labels share it, so a connection holds no label object
 * of its own, and opens and closes are counted here and handed to prom-client (which hashes all
 * 23 labels on every inc) only when a scrape collects.
 */
class Series {
  opened = 0;
  /** response_flags -> closes not yet flushed */
  readonly closed = new Map<string, number>();
  pendingUp = 0;
  pendingDown = 0;
  constructor(readonly labels: ResolvedTcpLabels) {}
}

class ConnectionHandle implements TcpConnectionMetrics {
  clientToServerBytes = 0;
  serverToClientBytes = 0;
  /** bytes already handed to the series by a scrape while the connection was live */
  flushedUp = 0;
  flushedDown = 0;
  done = false;
  constructor(
    readonly series: Series,
    private readonly onClose: (h: ConnectionHandle, responseFlags: string | undefined) => void,
  ) {}

  addBytes(clientToServer: number, serverToClient: number): void {
    this.clientToServerBytes += clientToServer;
    this.serverToClientBytes += serverToClient;
  }

  closed(responseFlags?: string): void {
    if (this.done) return;
    this.done = true;
    this.onClose(this, responseFlags);
  }
}

/** Label sets kept before the cache starts over (bounded memory under label churn). */
const MAX_SERIES = 10_000;

function wantsOpenMetrics(accept: string | undefined): boolean {
  if (!accept) return false;
  for (const range of accept.split(",")) {
    const [type, ...params] = range.split(";").map((p) => p.trim().toLowerCase());
    if (type !== "application/openmetrics-text") continue;
    const q = params.find((p) => p.startsWith("q="));
    if (q === undefined || Number(q.slice(2)) > 0) return true;
  }
  return false;
}

export class MeshMetrics {
  readonly registry: Registry<RegistryContentType>;
  private readonly opened: Counter<TcpLabelName>;
  private readonly closedTotal: Counter<TcpLabelName>;
  private readonly failed: Counter<TcpLabelName>;
  private readonly received: Counter<TcpLabelName>;
  private readonly sent: Counter<TcpLabelName>;
  private readonly socketsOpen: Gauge<"reporter">;
  private readonly counters: { metric: { name: string }; name: string }[] = [];
  private readonly live = new Set<ConnectionHandle>();
  private readonly series = new Map<string, Series>();
  private readonly openByReporter = new Map<string, number>();
  private renderChain: Promise<unknown> = Promise.resolve();
  /** Created by the first request, so a proxy that only relays TCP exposes no empty HTTP families. */
  private http: HttpRequestMetrics | undefined;

  constructor(opts: { component: MeshComponent; version: string }) {
    this.registry = new Registry<RegistryContentType>();
    const registers = [this.registry];
    const counter = (name: string, help: string, collect?: () => void): Counter<TcpLabelName> => {
      const c = new Counter<TcpLabelName>({ name, help, labelNames: TCP_LABEL_NAMES, registers, ...(collect ? { collect } : {}) });
      this.counters.push({ metric: c as unknown as { name: string }, name });
      return c;
    };
    // The text format prints a counter's name as registered, so the names carry `_total`;
    // prom-client's OpenMetrics path strips it and adds it back per sample.
    const flush = () => this.flushAll();
    this.opened = counter("istio_tcp_connections_opened_total", HELP.opened, flush);
    this.closedTotal = counter("istio_tcp_connections_closed_total", HELP.closed);
    this.failed = counter("istio_tcp_connections_failed_total", HELP.failed);
    this.received = counter("istio_tcp_received_bytes_total", HELP.received);
    this.sent = counter("istio_tcp_sent_bytes_total", HELP.sent);
    this.socketsOpen = new Gauge({ name: "istio_tcp_sockets_open", help: HELP.socketsOpen, labelNames: ["reporter"], registers, collect: flush });
    const build = new Gauge({ name: "istio_build", help: HELP.build, labelNames: ["component", "tag"], registers });
    build.set({ component: opts.component, tag: opts.version }, 1);
  }

  connectionOpened(labels: TcpLabels): TcpConnectionMetrics {
    const series = this.seriesFor(labels);
    series.opened++;
    const handle = new ConnectionHandle(series, this.recordClose);
    this.live.add(handle);
    this.openByReporter.set(series.labels.reporter, (this.openByReporter.get(series.labels.reporter) ?? 0) + 1);
    return handle;
  }

  /** Counts one finished HTTP/gRPC request (Istio's istio_requests_total and its three histograms). */
  requestCompleted(labels: HttpLabels, sample: RequestSample): void {
    this.http ??= new HttpRequestMetrics(this.registry, (metric, name) => this.counters.push({ metric, name }));
    this.http.requestCompleted(labels, sample);
  }

  /** Number of connections opened and not yet closed. */
  get openConnections(): number {
    return this.live.size;
  }

  private seriesFor(labels: TcpLabels): Series {
    // Keyed on the raw values (absent and "" both resolve to the same label, so both key as ""):
    // a connection whose label set is known allocates nothing else here.
    let key = "";
    for (const name of TCP_LABEL_NAMES) key += `${labels[name] ?? ""}\u001f`;
    let series = this.series.get(key);
    if (!series) {
      if (this.series.size >= MAX_SERIES) {
        this.flushAll();
        this.series.clear();
      }
      series = new Series(resolveTcpLabels(labels));
      this.series.set(key, series);
    }
    return series;
  }

  private readonly recordClose = (handle: ConnectionHandle, responseFlags: string | undefined): void => {
    const s = handle.series;
    s.pendingUp += handle.clientToServerBytes - handle.flushedUp;
    s.pendingDown += handle.serverToClientBytes - handle.flushedDown;
    this.live.delete(handle);
    const flags = responseFlags === undefined || responseFlags === "" ? NO_RESPONSE_FLAGS : responseFlags;
    s.closed.set(flags, (s.closed.get(flags) ?? 0) + 1);
    const r = s.labels.reporter;
    this.openByReporter.set(r, (this.openByReporter.get(r) ?? 1) - 1);
  };

  /** Hands everything pending to prom-client; runs as the counters' collect hook. */
  private flushAll(): void {
    for (const h of this.live) {
      h.series.pendingUp += h.clientToServerBytes - h.flushedUp;
      h.series.pendingDown += h.serverToClientBytes - h.flushedDown;
      h.flushedUp = h.clientToServerBytes;
      h.flushedDown = h.serverToClientBytes;
    }
    for (const s of this.series.values()) {
      const L = s.labels;
      if (s.opened > 0) {
        this.opened.inc(L, s.opened);
        // Istio creates the byte series at open, so a connection that moved nothing still shows 0.
        this.received.inc(L, 0);
        this.sent.inc(L, 0);
        s.opened = 0;
      }
      // Only positive finite deltas reach prom-client, whose inc() throws on anything else.
      if (s.pendingUp > 0 && Number.isFinite(s.pendingUp)) this.received.inc(L, s.pendingUp);
      if (s.pendingDown > 0 && Number.isFinite(s.pendingDown)) this.sent.inc(L, s.pendingDown);
      s.pendingUp = 0;
      s.pendingDown = 0;
      for (const [flags, n] of s.closed) {
        const labels = flags === L.response_flags ? L : { ...L, response_flags: flags };
        this.closedTotal.inc(labels, n);
        if (flags !== NO_RESPONSE_FLAGS) this.failed.inc(labels, n);
      }
      s.closed.clear();
    }
    for (const [reporter, n] of this.openByReporter) this.socketsOpen.set({ reporter }, n);
  }

  /** Prometheus text, or OpenMetrics when the scraper's Accept asks for it. */
  render(accept?: string): Promise<{ body: string; contentType: string }> {
    const run = this.renderChain.then(() => this.renderNow(wantsOpenMetrics(accept)));
    this.renderChain = run.catch(() => undefined);
    return run;
  }

  // Renders are serialised because prom-client's OpenMetrics path renames counters in place
  // (drops `_total`); the names are put back before anything else can read them.
  private async renderNow(openMetrics: boolean): Promise<{ body: string; contentType: string }> {
    const contentType = openMetrics ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE;
    this.restoreCounterNames();
    this.registry.setContentType(contentType);
    try {
      const body = await this.registry.metrics();
      return { body, contentType };
    } finally {
      this.registry.setContentType(Registry.PROMETHEUS_CONTENT_TYPE);
      this.restoreCounterNames();
    }
  }

  private restoreCounterNames(): void {
    for (const c of this.counters) c.metric.name = c.name;
  }
}
