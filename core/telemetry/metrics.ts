// Istio's TCP metrics (reference/ztunnel.md §7.1) on a private prom-client registry.
//
// The data path calls addBytes once per chunk, so a connection keeps plain running totals and
// the prom-client counters (whose inc() hashes the 23 labels) are only touched when the
// connection opens, closes, or a scrape flushes the live connections.
import { Counter, Gauge, Registry, type RegistryContentType } from "prom-client";
import { NO_RESPONSE_FLAGS, TCP_LABEL_NAMES, resolveTcpLabels, type ResolvedTcpLabels, type TcpLabelName, type TcpLabels } from "./labels.ts";

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

class ConnectionHandle implements TcpConnectionMetrics {
  clientToServerBytes = 0;
  serverToClientBytes = 0;
  flushedClientToServer = 0;
  flushedServerToClient = 0;
  done = false;
  constructor(
    readonly labels: ResolvedTcpLabels,
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
  private renderChain: Promise<unknown> = Promise.resolve();

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
    this.opened = counter("istio_tcp_connections_opened_total", HELP.opened);
    this.closedTotal = counter("istio_tcp_connections_closed_total", HELP.closed);
    this.failed = counter("istio_tcp_connections_failed_total", HELP.failed);
    const flush = () => this.flushLive();
    this.received = counter("istio_tcp_received_bytes_total", HELP.received, flush);
    this.sent = counter("istio_tcp_sent_bytes_total", HELP.sent, flush);
    this.socketsOpen = new Gauge({ name: "istio_tcp_sockets_open", help: HELP.socketsOpen, labelNames: ["reporter"], registers });
    const build = new Gauge({ name: "istio_build", help: HELP.build, labelNames: ["component", "tag"], registers });
    build.set({ component: opts.component, tag: opts.version }, 1);
  }

  connectionOpened(labels: TcpLabels): TcpConnectionMetrics {
    const resolved = resolveTcpLabels(labels);
    const handle = new ConnectionHandle(resolved, this.recordClose);
    this.opened.inc(resolved, 1);
    // Istio creates the byte series at open, so a connection that moved nothing still shows 0.
    this.received.inc(resolved, 0);
    this.sent.inc(resolved, 0);
    this.socketsOpen.inc({ reporter: resolved.reporter }, 1);
    this.live.add(handle);
    return handle;
  }

  /** Number of connections opened and not yet closed. */
  get openConnections(): number {
    return this.live.size;
  }

  private readonly recordClose = (handle: ConnectionHandle, responseFlags: string | undefined): void => {
    this.flushHandle(handle);
    this.live.delete(handle);
    const flags = responseFlags === undefined || responseFlags === "" ? NO_RESPONSE_FLAGS : responseFlags;
    const labels = flags === handle.labels.response_flags ? handle.labels : { ...handle.labels, response_flags: flags };
    this.closedTotal.inc(labels, 1);
    if (flags !== NO_RESPONSE_FLAGS) this.failed.inc(labels, 1);
    this.socketsOpen.dec({ reporter: handle.labels.reporter }, 1);
  };

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

  private flushLive(): void {
    for (const h of this.live) this.flushHandle(h);
  }

  private flushHandle(h: ConnectionHandle): void {
    // Only positive finite deltas reach prom-client, whose inc() throws on anything else; a scrape
    // must never fail because of one connection's bad count.
    const up = h.clientToServerBytes - h.flushedClientToServer;
    if (up > 0 && Number.isFinite(up)) {
      this.received.inc(h.labels, up);
      h.flushedClientToServer = h.clientToServerBytes;
    }
    const down = h.serverToClientBytes - h.flushedServerToClient;
    if (down > 0 && Number.isFinite(down)) {
      this.sent.inc(h.labels, down);
      h.flushedServerToClient = h.serverToClientBytes;
    }
  }
}
