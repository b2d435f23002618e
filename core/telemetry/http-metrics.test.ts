import { describe, expect, test } from "bun:test";
import { HTTP_LABEL_NAMES, ISTIO_HISTOGRAM_BUCKETS, MeshMetrics, TCP_LABEL_NAMES, httpLabelsFor, labelsFor, type HttpLabels } from "./index.ts";

type ParsedSample = { name: string; labels: Record<string, string>; value: number };

/** Parses exposition text (either format) into samples. */
function samples(body: string): ParsedSample[] {
  const out: ParsedSample[] = [];
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

function find(body: string, name: string, match: Record<string, string> = {}): ParsedSample[] {
  return samples(body).filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

function value(body: string, name: string, match: Record<string, string> = {}): number | undefined {
  const found = find(body, name, match);
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(match)}`);
  return found[0]?.value;
}

const client = {
  name: "sleep-7d9c8-abcde",
  workloadName: "sleep",
  namespace: "default",
  canonicalName: "sleep",
  canonicalRevision: "v1",
  clusterId: "Kubernetes",
  identity: "spiffe://cluster.local/ns/default/sa/sleep",
};
const server = {
  name: "reviews-v2-55f-xyz",
  workloadName: "reviews-v2",
  namespace: "bookinfo",
  canonicalName: "reviews",
  canonicalRevision: "v2",
  clusterId: "Kubernetes",
  identity: "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
};
const reviews = { hostname: "reviews.bookinfo.svc.cluster.local", namespace: "bookinfo", name: "reviews" };

function waypointLabels(responseCode: number, extra: { responseFlags?: string } = {}): HttpLabels {
  return httpLabelsFor({
    reporter: "waypoint",
    source: client,
    sourcePrincipal: client.identity,
    destination: server,
    destinationService: reviews,
    mtls: true,
    requestProtocol: "http",
    responseCode,
    ...extra,
  });
}

const HISTOGRAMS = ["istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"];

describe("httpLabelsFor", () => {
  test("a waypoint request carries Istio's standard labels, workload labels as the TCP ones derive them", async () => {
    const m = new MeshMetrics({ component: "waypoint", version: "x" });
    m.requestCompleted(waypointLabels(200), { durationMs: 3, requestBytes: 100, responseBytes: 1200 });
    const [s] = find((await m.render()).body, "istio_requests_total");
    expect(s?.value).toBe(1);
    expect(s?.labels).toEqual({
      reporter: "waypoint",
      source_workload: "sleep",
      source_canonical_service: "sleep",
      source_canonical_revision: "v1",
      source_workload_namespace: "default",
      source_principal: "spiffe://cluster.local/ns/default/sa/sleep",
      source_app: "sleep",
      source_version: "v1",
      source_cluster: "Kubernetes",
      destination_service: "reviews.bookinfo.svc.cluster.local",
      destination_service_namespace: "bookinfo",
      destination_service_name: "reviews",
      destination_workload: "reviews-v2",
      destination_canonical_service: "reviews",
      destination_canonical_revision: "v2",
      destination_workload_namespace: "bookinfo",
      destination_principal: "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
      destination_app: "reviews",
      destination_version: "v2",
      destination_cluster: "Kubernetes",
      request_protocol: "http",
      response_code: "200",
      grpc_response_status: "",
      response_flags: "-",
      connection_security_policy: "mutual_tls",
    });
  });

  test("the peer labels equal the TCP derivation for the same ends", () => {
    const peers = { source: client, sourcePrincipal: client.identity, destination: server, destinationService: reviews };
    const tcp = labelsFor({ reporter: "destination", mtls: true, ...peers });
    const http = httpLabelsFor({ reporter: "destination", mtls: true, requestProtocol: "http", responseCode: 204, ...peers });
    for (const name of TCP_LABEL_NAMES) {
      if (name === "request_protocol") continue;
      expect([name, http[name]]).toEqual([name, tcp[name]]);
    }
  });

  test("source_principal only from the verified identity; no mTLS reads unknown", () => {
    const l = httpLabelsFor({ reporter: "waypoint", source: client, destination: server, mtls: false, requestProtocol: "http", responseCode: 200 });
    expect(l.source_principal).toBeUndefined();
    expect(l.destination_principal).toBe(server.identity);
    expect(l.connection_security_policy).toBe("unknown");
  });

  test("gRPC: the status as given, else derived from the HTTP status; a bare 200 stays unknown", async () => {
    const m = new MeshMetrics({ component: "waypoint", version: "x" });
    const grpc = (responseCode: number, grpcStatus?: number) =>
      httpLabelsFor({ reporter: "waypoint", mtls: true, requestProtocol: "grpc", responseCode, ...(grpcStatus === undefined ? {} : { grpcStatus }) });
    expect(grpc(200, 5).grpc_response_status).toBe(5);
    expect(grpc(503).grpc_response_status).toBe(14);
    expect(grpc(403).grpc_response_status).toBe(7);
    m.requestCompleted(grpc(200, 0), { durationMs: 1, requestBytes: 1, responseBytes: 1 });
    m.requestCompleted(grpc(200), { durationMs: 1, requestBytes: 1, responseBytes: 1 });
    const body = (await m.render()).body;
    expect(value(body, "istio_requests_total", { request_protocol: "grpc", grpc_response_status: "0" })).toBe(1);
    expect(value(body, "istio_requests_total", { request_protocol: "grpc", grpc_response_status: "unknown" })).toBe(1);
  });
});

describe("MeshMetrics.requestCompleted", () => {
  test("four families with exact names and types; every sample has exactly Istio's HTTP label names", async () => {
    const m = new MeshMetrics({ component: "waypoint", version: "x" });
    m.requestCompleted(waypointLabels(200), { durationMs: 3, requestBytes: 100, responseBytes: 1200 });
    const { body, contentType } = await m.render();
    expect(contentType).toStartWith("text/plain; version=0.0.4");
    expect(body).toContain("# TYPE istio_requests_total counter");
    for (const h of HISTOGRAMS) expect(body).toContain(`# TYPE ${h} histogram`);
    expect(body).not.toContain("_total_total");
    const want = [...HTTP_LABEL_NAMES].sort();
    expect(want).toHaveLength(25);
    for (const s of find(body, "istio_requests_total")) expect(Object.keys(s.labels).sort()).toEqual(want);
    for (const h of HISTOGRAMS) {
      const buckets = find(body, `${h}_bucket`);
      expect(buckets).toHaveLength(ISTIO_HISTOGRAM_BUCKETS.length + 1);
      for (const s of buckets) expect(Object.keys(s.labels).sort()).toEqual([...want, "le"].sort());
      for (const suffix of ["_sum", "_count"]) {
        const [s] = find(body, `${h}${suffix}`);
        expect(Object.keys(s!.labels).sort()).toEqual(want);
      }
    }
  });

  test("bucket bounds are Envoy's defaults, upper bounds inclusive, beyond the last only in +Inf", async () => {
    expect([...ISTIO_HISTOGRAM_BUCKETS]).toEqual([
      0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
    ]);
    const m = new MeshMetrics({ component: "waypoint", version: "x" });
    const L = waypointLabels(200);
    for (const d of [0.4, 1, 5, 7, 3_600_000, 3_600_001]) m.requestCompleted(L, { durationMs: d, requestBytes: 0, responseBytes: 0 });
    const body = (await m.render()).body;
    const buckets = find(body, "istio_request_duration_milliseconds_bucket");
    expect(buckets.map((s) => s.labels.le)).toEqual([...ISTIO_HISTOGRAM_BUCKETS.map(String), "+Inf"]);
    const at = (le: string) => buckets.find((s) => s.labels.le === le)?.value;
    expect(at("0.5")).toBe(1);
    expect(at("1")).toBe(2);
    expect(at("5")).toBe(3);
    expect(at("10")).toBe(4);
    expect(at("1800000")).toBe(4);
    expect(at("3600000")).toBe(5);
    expect(at("+Inf")).toBe(6);
    expect(value(body, "istio_request_duration_milliseconds_count")).toBe(6);
    expect(value(body, "istio_request_duration_milliseconds_sum")).toBeCloseTo(0.4 + 1 + 5 + 7 + 3_600_000 + 3_600_001, 6);
    // The size histograms saw six zero-byte requests.
    expect(value(body, "istio_request_bytes_bucket", { le: "0.5" })).toBe(6);
    expect(value(body, "istio_response_bytes_sum")).toBe(0);
  });

  test("counts and sums per label set after a few requests", async () => {
    const m = new MeshMetrics({ component: "waypoint", version: "x" });
    const ok = waypointLabels(200);
    const fail = waypointLabels(503, { responseFlags: "UF" });
    m.requestCompleted(ok, { durationMs: 2, requestBytes: 120, responseBytes: 1100 });
    m.requestCompleted(waypointLabels(200), { durationMs: 40, requestBytes: 80, responseBytes: 2000 });
    m.requestCompleted(ok, { durationMs: 700, requestBytes: 0, responseBytes: 50_000 });
    m.requestCompleted(fail, { durationMs: 1.5, requestBytes: 90, responseBytes: 91 });
    const body = (await m.render()).body;
    const okSel = { response_code: "200", response_flags: "-" };
    const failSel = { response_code: "503", response_flags: "UF" };
    expect(value(body, "istio_requests_total", okSel)).toBe(3);
    expect(value(body, "istio_requests_total", failSel)).toBe(1);
    expect(find(body, "istio_requests_total")).toHaveLength(2);
    expect(value(body, "istio_request_duration_milliseconds_sum", okSel)).toBe(742);
    expect(value(body, "istio_request_duration_milliseconds_count", okSel)).toBe(3);
    expect(value(body, "istio_request_duration_milliseconds_bucket", { ...okSel, le: "5" })).toBe(1);
    expect(value(body, "istio_request_duration_milliseconds_bucket", { ...okSel, le: "50" })).toBe(2);
    expect(value(body, "istio_request_duration_milliseconds_bucket", { ...okSel, le: "1000" })).toBe(3);
    expect(value(body, "istio_request_bytes_sum", okSel)).toBe(200);
    expect(value(body, "istio_request_bytes_bucket", { ...okSel, le: "100" })).toBe(2);
    expect(value(body, "istio_response_bytes_sum", okSel)).toBe(53_100);
    expect(value(body, "istio_response_bytes_bucket", { ...okSel, le: "1000" })).toBe(0);
    expect(value(body, "istio_response_bytes_bucket", { ...okSel, le: "2500" })).toBe(2);
    expect(value(body, "istio_response_bytes_bucket", { ...okSel, le: "60000" })).toBe(3);
    expect(value(body, "istio_response_bytes_count", failSel)).toBe(1);
    expect(value(body, "istio_request_duration_milliseconds_bucket", { ...failSel, le: "1" })).toBe(0);
    expect(value(body, "istio_request_duration_milliseconds_bucket", { ...failSel, le: "5" })).toBe(1);
    // Scraping again does not change anything.
    expect((await m.render()).body).toBe(body);
  });

  test("label sets that render alike share one series (absent vs `-`, absent vs `unknown`)", async () => {
    const m = new MeshMetrics({ component: "waypoint", version: "x" });
    const sample = { durationMs: 1, requestBytes: 1, responseBytes: 1 };
    m.requestCompleted({ reporter: "waypoint", response_code: 200 }, sample);
    m.requestCompleted({ reporter: "waypoint", response_code: "200", response_flags: "-", request_protocol: "http" }, sample);
    m.requestCompleted({ reporter: "waypoint", response_code: 200, source_workload: "unknown", grpc_response_status: "" }, sample);
    m.requestCompleted({ reporter: "waypoint", response_code: 200 }, sample);
    const body = (await m.render()).body;
    expect(find(body, "istio_requests_total")).toHaveLength(1);
    expect(value(body, "istio_requests_total")).toBe(4);
    expect(find(body, "istio_request_bytes_count")).toHaveLength(1);
    expect(value(body, "istio_request_bytes_count")).toBe(4);
  });

  test("bad measurements count as 0 and never throw", async () => {
    const m = new MeshMetrics({ component: "waypoint", version: "x" });
    m.requestCompleted(waypointLabels(200), { durationMs: Number.NaN, requestBytes: -5, responseBytes: Number.POSITIVE_INFINITY });
    const body = (await m.render()).body;
    expect(value(body, "istio_requests_total")).toBe(1);
    expect(value(body, "istio_request_duration_milliseconds_sum")).toBe(0);
    expect(value(body, "istio_request_bytes_bucket", { le: "0.5" })).toBe(1);
    expect(value(body, "istio_response_bytes_sum")).toBe(0);
  });

  test("a proxy that never saw a request exposes no HTTP families", async () => {
    const m = new MeshMetrics({ component: "ztunnel", version: "x" });
    m.connectionOpened({ reporter: "source" });
    const body = (await m.render()).body;
    expect(body).not.toContain("istio_requests");
    expect(body).not.toContain("istio_request_");
    expect(body).not.toContain("istio_response_bytes");
  });

  test("OpenMetrics: requests counter named once with _total, histograms intact, TCP counters unchanged", async () => {
    const m = new MeshMetrics({ component: "waypoint", version: "x" });
    m.connectionOpened(labelsFor({ reporter: "destination", mtls: true })).addBytes(5, 6);
    m.requestCompleted(waypointLabels(200), { durationMs: 12, requestBytes: 10, responseBytes: 20 });
    const accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    const [om, text] = await Promise.all([m.render(accept), m.render()]);
    expect(om.contentType).toStartWith("application/openmetrics-text");
    expect(om.body).toEndWith("# EOF\n");
    expect(om.body).not.toContain("_total_total");
    expect(om.body).toContain("# TYPE istio_requests counter");
    expect(value(om.body, "istio_requests_total")).toBe(1);
    expect(om.body).toContain("# TYPE istio_tcp_connections_opened counter");
    expect(value(om.body, "istio_tcp_connections_opened_total")).toBe(1);
    expect(value(om.body, "istio_tcp_sent_bytes_total")).toBe(6);
    for (const h of HISTOGRAMS) expect(om.body).toContain(`# TYPE ${h} histogram`);
    expect(value(om.body, "istio_request_duration_milliseconds_bucket", { le: "10" })).toBe(0);
    expect(value(om.body, "istio_request_duration_milliseconds_bucket", { le: "25" })).toBe(1);
    expect(value(om.body, "istio_response_bytes_sum")).toBe(20);
    expect(text.contentType).toStartWith("text/plain");
    expect(text.body).toContain("# TYPE istio_requests_total counter");
    // Afterwards the registry's names are the text ones again.
    const again = await m.render();
    expect(again.body).toContain("# TYPE istio_requests_total counter");
    expect(again.body).toContain("# TYPE istio_tcp_received_bytes_total counter");
    for (const s of find(again.body, "istio_tcp_connections_opened_total")) expect(Object.keys(s.labels).sort()).toEqual([...TCP_LABEL_NAMES].sort());
  });

  test("prom-client's JSON view sees the same values (get() path)", async () => {
    const m = new MeshMetrics({ component: "waypoint", version: "x" });
    m.requestCompleted(waypointLabels(404), { durationMs: 30, requestBytes: 1, responseBytes: 2 });
    m.requestCompleted(waypointLabels(404), { durationMs: 30, requestBytes: 1, responseBytes: 2 });
    const json = await m.registry.getMetricsAsJSON();
    const requests = json.find((f) => f.name === "istio_requests_total");
    expect(requests?.values.map((v) => [v.labels.response_code, v.value])).toEqual([["404", 2]]);
    const duration = json.find((f) => f.name === "istio_request_duration_milliseconds");
    const sum = duration?.values.find((v) => (v as { metricName?: string }).metricName === "istio_request_duration_milliseconds_sum");
    expect(sum?.value).toBe(60);
    expect(sum?.labels.reporter).toBe("waypoint");
    // Reading JSON does not disturb the next text render.
    expect(value((await m.render()).body, "istio_request_duration_milliseconds_bucket", { le: "50" })).toBe(2);
  });
});
