import { describe, expect, test } from "bun:test";
import { register as globalRegistry } from "prom-client";
import { MeshMetrics, TCP_LABEL_NAMES, labelsFor, type TcpLabels } from "./index.ts";

/** Parses exposition text into samples: name, labels, value. */
function samples(body: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]!] = lm[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

function find(body: string, name: string, match: Record<string, string> = {}) {
  return samples(body).filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

const src = {
  name: "sleep-7d9c8-abcde",
  workloadName: "sleep",
  namespace: "default",
  canonicalName: "sleep",
  canonicalRevision: "v1",
  clusterId: "Kubernetes",
  identity: "spiffe://cluster.local/ns/default/sa/sleep",
};
const dst = {
  name: "echo-55f-xyz",
  workloadName: "echo",
  namespace: "echo-ns",
  canonicalName: "echo",
  canonicalRevision: "v2",
  clusterId: "Kubernetes",
  identity: "spiffe://cluster.local/ns/echo-ns/sa/echo",
};

const outbound: TcpLabels = labelsFor({
  reporter: "source",
  source: src,
  sourcePrincipal: src.identity,
  destination: dst,
  destinationService: { hostname: "echo.echo-ns.svc.cluster.local", namespace: "echo-ns", name: "echo" },
  mtls: true,
});

const COUNTERS = [
  "istio_tcp_connections_opened_total",
  "istio_tcp_connections_closed_total",
  "istio_tcp_sent_bytes_total",
  "istio_tcp_received_bytes_total",
  "istio_tcp_connections_failed_total",
];

describe("MeshMetrics exposition", () => {
  test("counter names carry exactly one _total, with Istio's full label set", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "1.2.3" });
    const c = m.connectionOpened(outbound);
    c.addBytes(10, 20);
    c.closed("CONNECT");
    const { body, contentType } = await m.render();
    expect(contentType).toStartWith("text/plain; version=0.0.4");
    expect(body).not.toContain("_total_total");
    for (const name of COUNTERS) {
      expect(body).toContain(`# TYPE ${name} counter`);
      const s = find(body, name);
      expect(s.length).toBeGreaterThan(0);
      for (const sample of s) expect(Object.keys(sample.labels).sort()).toEqual([...TCP_LABEL_NAMES].sort());
    }
    expect(find(body, "istio_build", { component: "ztunnel", tag: "1.2.3" })[0]?.value).toBe(1);
    expect(body).toContain("# TYPE istio_tcp_sockets_open gauge");
  });

  test("labels derived from workloads match ztunnel's mapping", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "x" });
    m.connectionOpened(outbound);
    const [s] = find((await m.render()).body, "istio_tcp_connections_opened_total");
    expect(s?.value).toBe(1);
    expect(s?.labels).toEqual({
      reporter: "source",
      source_workload: "sleep",
      source_canonical_service: "sleep",
      source_canonical_revision: "v1",
      source_workload_namespace: "default",
      source_principal: "spiffe://cluster.local/ns/default/sa/sleep",
      source_app: "sleep",
      source_version: "v1",
      source_cluster: "Kubernetes",
      destination_service: "echo.echo-ns.svc.cluster.local",
      destination_service_namespace: "echo-ns",
      destination_service_name: "echo",
      destination_workload: "echo",
      destination_canonical_service: "echo",
      destination_canonical_revision: "v2",
      destination_workload_namespace: "echo-ns",
      destination_principal: "spiffe://cluster.local/ns/echo-ns/sa/echo",
      destination_app: "echo",
      destination_version: "v2",
      destination_cluster: "Kubernetes",
      request_protocol: "tcp",
      response_flags: "-",
      connection_security_policy: "mutual_tls",
    });
  });

  test("source_principal comes only from the verified identity, never from the workload", () => {
    const l = labelsFor({ reporter: "destination", source: src, destination: dst, mtls: false });
    expect(l.source_principal).toBeUndefined();
    expect(l.connection_security_policy).toBe("unknown");
    expect(l.destination_principal).toBe(dst.identity);
  });

  test("missing and empty labels render as unknown", async () => {
    const m = new MeshMetrics({ component: "waypoint", version: "x" });
    m.connectionOpened({ reporter: "destination", source_workload: "" });
    const [s] = find((await m.render()).body, "istio_tcp_connections_opened_total");
    expect(s).toBeDefined();
    for (const name of TCP_LABEL_NAMES) {
      if (name === "reporter") expect(s!.labels[name]).toBe("destination");
      else if (name === "request_protocol") expect(s!.labels[name]).toBe("tcp");
      else if (name === "response_flags") expect(s!.labels[name]).toBe("-");
      else expect(s!.labels[name]).toBe("unknown");
    }
  });

  test("byte direction: client→server is received, server→client is sent, for both reporters", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "x" });
    const out = m.connectionOpened({ ...outbound, reporter: "source" });
    const inb = m.connectionOpened({ ...outbound, reporter: "destination" });
    out.addBytes(100, 7);
    inb.addBytes(300, 9);
    out.closed();
    inb.closed();
    const body = (await m.render()).body;
    expect(find(body, "istio_tcp_received_bytes_total", { reporter: "source" })[0]?.value).toBe(100);
    expect(find(body, "istio_tcp_sent_bytes_total", { reporter: "source" })[0]?.value).toBe(7);
    expect(find(body, "istio_tcp_received_bytes_total", { reporter: "destination" })[0]?.value).toBe(300);
    expect(find(body, "istio_tcp_sent_bytes_total", { reporter: "destination" })[0]?.value).toBe(9);
  });

  test("bytes of a live connection are flushed lazily and show up at each render", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "x" });
    const c = m.connectionOpened(outbound);
    // Before any bytes: Istio shows the series at 0.
    let body = (await m.render()).body;
    expect(find(body, "istio_tcp_received_bytes_total")[0]?.value).toBe(0);
    for (let i = 0; i < 1000; i++) c.addBytes(3, 1);
    body = (await m.render()).body;
    expect(find(body, "istio_tcp_received_bytes_total")[0]?.value).toBe(3000);
    expect(find(body, "istio_tcp_sent_bytes_total")[0]?.value).toBe(1000);
    expect(find(body, "istio_tcp_sockets_open", { reporter: "source" })[0]?.value).toBe(1);
    // A second render without new bytes must not double count the flushed part.
    body = (await m.render()).body;
    expect(find(body, "istio_tcp_received_bytes_total")[0]?.value).toBe(3000);
    c.addBytes(5, 0);
    c.closed();
    c.addBytes(1000, 1000); // after close: no longer counted
    body = (await m.render()).body;
    expect(find(body, "istio_tcp_received_bytes_total")[0]?.value).toBe(3005);
    expect(find(body, "istio_tcp_sockets_open", { reporter: "source" })[0]?.value).toBe(0);
    expect(c.clientToServerBytes).toBe(4005);
  });

  test("the prom-client registry sees flushed bytes too (collect hook)", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "x" });
    const c = m.connectionOpened(outbound);
    c.addBytes(42, 0);
    const text = await m.registry.metrics();
    expect(find(text, "istio_tcp_received_bytes_total")[0]?.value).toBe(42);
  });

  test("close records flags: closed carries the final flag, failed counts only failures", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "x" });
    m.connectionOpened(outbound).closed();
    const denied = m.connectionOpened(outbound);
    denied.closed("DENY");
    denied.closed("CONNECT"); // ignored: closed once
    const body = (await m.render()).body;
    expect(find(body, "istio_tcp_connections_opened_total", { response_flags: "-" })[0]?.value).toBe(2);
    expect(find(body, "istio_tcp_connections_closed_total", { response_flags: "-" })[0]?.value).toBe(1);
    expect(find(body, "istio_tcp_connections_closed_total", { response_flags: "DENY" })[0]?.value).toBe(1);
    expect(find(body, "istio_tcp_connections_closed_total", { response_flags: "CONNECT" })).toEqual([]);
    const failed = find(body, "istio_tcp_connections_failed_total");
    expect(failed.map((s) => [s.labels.response_flags, s.value])).toEqual([["DENY", 1]]);
    expect(m.openConnections).toBe(0);
  });

  test("bad byte counts never break a scrape", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "x" });
    const c = m.connectionOpened(outbound);
    c.addBytes(-5, Number.NaN);
    const { body } = await m.render();
    expect(find(body, "istio_tcp_received_bytes_total")[0]?.value).toBe(0);
  });

  test("OpenMetrics on request, still exactly one _total, and text stays intact afterwards", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "x" });
    m.connectionOpened(outbound).addBytes(1, 2);
    const accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const [om, text] = await Promise.all([m.render(accept), m.render("text/plain")]);
    expect(om.contentType).toStartWith("application/openmetrics-text");
    expect(om.body).toEndWith("# EOF\n");
    expect(om.body).toContain("# TYPE istio_tcp_connections_opened counter");
    expect(om.body).toContain("istio_tcp_connections_opened_total{");
    expect(om.body).not.toContain("_total_total");
    expect(text.contentType).toStartWith("text/plain");
    expect(text.body).toContain("# TYPE istio_tcp_connections_opened_total counter");
    const again = await m.render();
    expect(again.body).toContain("# TYPE istio_tcp_sent_bytes_total counter");
    expect(find(again.body, "istio_tcp_sent_bytes_total")[0]?.value).toBe(2);
    // The registry's own default stays the text format.
    expect(await m.registry.metrics()).toContain("istio_tcp_connections_opened_total{");
    expect(m.registry.contentType).toStartWith("text/plain");
  });

  test("an Accept that refuses OpenMetrics gets text", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "x" });
    expect((await m.render("application/openmetrics-text;q=0, text/plain")).contentType).toStartWith("text/plain");
  });

  test("two instances do not share a registry (no global default registry)", async () => {
    const a = new MeshMetrics({ component: "ztunnel", version: "a" });
    const b = new MeshMetrics({ component: "waypoint", version: "b" });
    a.connectionOpened(outbound);
    expect(a.registry).not.toBe(b.registry);
    expect(find((await b.render()).body, "istio_tcp_connections_opened_total")).toEqual([]);
    expect(await globalRegistry.metrics()).not.toContain("istio_");
  });

  test("label values with quotes and backslashes are escaped", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "x" });
    m.connectionOpened({ reporter: "source", destination_service: 'a"b\\c' });
    const body = (await m.render()).body;
    expect(body).toContain('destination_service="a\\"b\\\\c"');
  });
});
