import { describe, expect, test } from "bun:test";
import { accessLog, createLogger, requestLog, traceIdFromTraceparent, type ConnectionRecord, type LogLevel, type RequestRecord } from "./index.ts";

function capture(level: LogLevel = "info") {
  const lines: string[] = [];
  const logger = createLogger({ format: "json", level, component: "ztunnel", write: (l) => lines.push(l) });
  return { logger, lines, json: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const base: ConnectionRecord = {
  direction: "outbound",
  srcAddr: "10.244.0.24:46238",
  srcWorkload: "shell-5fb9f8f8f7-8qpb6",
  srcNamespace: "default",
  srcIdentity: "spiffe://cluster.local/ns/default/sa/default",
  dstAddr: "10.244.0.42:15008",
  dstHboneAddr: "10.96.108.116:80",
  dstService: "echo.default.svc.cluster.local",
  dstWorkload: "echo-6f7d4d8b4-2kq9p",
  dstNamespace: "default",
  dstIdentity: "spiffe://cluster.local/ns/default/sa/echo",
  clientToServerBytes: 67,
  serverToClientBytes: 490,
  durationMs: 13.7,
  responseFlags: "-",
  tlsVersion: "TLSv1.3",
};

describe("accessLog", () => {
  test("one JSON line with Istio's field names for a completed outbound connection", () => {
    const { logger, lines, json } = capture();
    accessLog(logger, base);
    expect(lines).toHaveLength(1);
    expect(json()[0]).toEqual({
      time: expect.any(String),
      level: "info",
      scope: "access",
      msg: "connection complete",
      "src.addr": "10.244.0.24:46238",
      "src.workload": "shell-5fb9f8f8f7-8qpb6",
      "src.namespace": "default",
      "src.identity": "spiffe://cluster.local/ns/default/sa/default",
      "dst.addr": "10.244.0.42:15008",
      "dst.hbone_addr": "10.96.108.116:80",
      "dst.service": "echo.default.svc.cluster.local",
      "dst.workload": "echo-6f7d4d8b4-2kq9p",
      "dst.namespace": "default",
      "dst.identity": "spiffe://cluster.local/ns/default/sa/echo",
      direction: "outbound",
      bytes_sent: 67,
      bytes_recv: 490,
      duration: "13ms",
      response_flags: "-",
      tls_version: "TLSv1.3",
    });
  });

  test("inbound lines report bytes from the server side (Istio's un-flip applies to the source only)", () => {
    const { logger, json } = capture();
    accessLog(logger, { ...base, direction: "inbound" });
    expect(json()[0]).toMatchObject({ direction: "inbound", bytes_sent: 490, bytes_recv: 67 });
  });

  test("failure: ERROR line `connection failed` with error; absent fields are left out", () => {
    const { logger, json } = capture();
    accessLog(logger, {
      direction: "inbound",
      srcAddr: "10.0.0.1:5000",
      dstAddr: "10.0.0.2:8080",
      clientToServerBytes: 0,
      serverToClientBytes: 0,
      durationMs: 0,
      error: "authorization policy rejected the connection",
      responseFlags: "DENY",
    });
    const rec = json()[0]!;
    expect(rec).toMatchObject({ level: "error", scope: "access", msg: "connection failed", error: "authorization policy rejected the connection", response_flags: "DENY", duration: "0ms" });
    expect(rec).not.toHaveProperty("src.identity");
    expect(rec).not.toHaveProperty("dst.hbone_addr");
  });

  test("honours the logger level: completed connections are INFO, failures still show at error", () => {
    const { logger, json } = capture("error");
    accessLog(logger, base);
    accessLog(logger, { ...base, error: "reset" });
    expect(json().map((r) => r.msg)).toEqual(["connection failed"]);
  });
});

const request: RequestRecord = {
  startTime: Date.UTC(2025, 0, 2, 3, 4, 5, 678),
  method: "GET",
  path: "/reviews/1?x=1",
  protocol: "HTTP/1.1",
  responseCode: 200,
  responseFlags: "-",
  responseCodeDetails: "via_upstream",
  bytesReceived: 0,
  bytesSent: 295,
  durationMs: 7.9,
  upstreamServiceTimeMs: 6.2,
  xForwardedFor: "10.244.0.24",
  userAgent: "curl/8.5.0",
  requestId: "6f1c0c4e-9a57-4a9b-b2a1-3c2bc9e0e7d1",
  authority: "reviews.bookinfo.svc.cluster.local:9080",
  traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  upstreamHost: "10.244.0.42:15008",
  upstreamCluster: "inbound-vip|9080|http|reviews.bookinfo.svc.cluster.local",
  downstreamLocalAddress: "10.96.12.7:9080",
  downstreamRemoteAddress: "10.244.0.24:46238",
  routeName: "bookinfo/reviews-route",
  srcIdentity: "spiffe://cluster.local/ns/default/sa/sleep",
  srcWorkload: "sleep",
  srcNamespace: "default",
  dstIdentity: "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
  dstWorkload: "reviews-v2",
  dstNamespace: "bookinfo",
  dstService: "reviews.bookinfo.svc.cluster.local",
};

describe("requestLog", () => {
  test("one JSON line per request: Istio's JSON access-log keys, trace id, both identities", () => {
    const { logger, lines, json } = capture();
    requestLog(logger, request);
    expect(lines).toHaveLength(1);
    expect(json()[0]).toEqual({
      time: expect.any(String),
      level: "info",
      scope: "access",
      msg: "request complete",
      start_time: "2025-01-02T03:04:05.678Z",
      route_name: "bookinfo/reviews-route",
      method: "GET",
      path: "/reviews/1?x=1",
      protocol: "HTTP/1.1",
      response_code: 200,
      response_flags: "-",
      response_code_details: "via_upstream",
      connection_termination_details: null,
      bytes_received: 0,
      bytes_sent: 295,
      duration: 7,
      upstream_service_time: "6",
      x_forwarded_for: "10.244.0.24",
      user_agent: "curl/8.5.0",
      request_id: "6f1c0c4e-9a57-4a9b-b2a1-3c2bc9e0e7d1",
      authority: "reviews.bookinfo.svc.cluster.local:9080",
      upstream_host: "10.244.0.42:15008",
      upstream_cluster: "inbound-vip|9080|http|reviews.bookinfo.svc.cluster.local",
      upstream_local_address: null,
      downstream_local_address: "10.96.12.7:9080",
      downstream_remote_address: "10.244.0.24:46238",
      requested_server_name: null,
      upstream_transport_failure_reason: null,
      trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
      "src.identity": "spiffe://cluster.local/ns/default/sa/sleep",
      "src.workload": "sleep",
      "src.namespace": "default",
      "dst.identity": "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
      "dst.workload": "reviews-v2",
      "dst.namespace": "bookinfo",
      "dst.service": "reviews.bookinfo.svc.cluster.local",
    });
  });

  test("a minimal record keeps every Istio key (null when unknown) and leaves out the mesh extras", () => {
    const { logger, json } = capture();
    requestLog(logger, { startTime: 0, method: "POST", path: "/", protocol: "HTTP/2", responseCode: 0, bytesReceived: 10, bytesSent: 0, durationMs: -1 });
    const rec = json()[0]!;
    expect(rec).toMatchObject({ response_code: 0, response_flags: "-", duration: 0, user_agent: null, x_forwarded_for: null, request_id: null, route_name: null, upstream_host: null });
    for (const key of ["trace_id", "src.identity", "dst.identity", "dst.service", "error"]) expect(rec).not.toHaveProperty(key);
    expect(Object.keys(rec)).toHaveLength(4 + 24);
  });

  test("proxy-side failure: ERROR `request failed`, shown even at level error; successes are not", () => {
    const { logger, json } = capture("error");
    requestLog(logger, request);
    requestLog(logger, { ...request, responseCode: 503, responseFlags: "UF", error: "upstream connect error", upstreamTransportFailureReason: "connection refused" });
    const recs = json();
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({ level: "error", scope: "access", msg: "request failed", response_code: 503, response_flags: "UF", error: "upstream connect error", upstream_transport_failure_reason: "connection refused" });
  });

  test("client-supplied values cannot break or bloat the line", () => {
    const { logger, lines, json } = capture();
    requestLog(logger, { ...request, userAgent: 'evil"\n{"level":"error"}\n', path: "/" + "a".repeat(100_000) });
    expect(lines).toHaveLength(1);
    const rec = json()[0]!;
    expect(rec.user_agent).toBe('evil"\n{"level":"error"}\n');
    expect(rec.level).toBe("info");
    expect(String(rec.path).length).toBeLessThan(5000);
    expect(String(rec.path)).toEndWith("[truncated]");
  });

  test("the scope stays `access` when the caller's logger has another", () => {
    const { logger, json } = capture();
    requestLog(logger.child({ scope: "waypoint" }), request);
    requestLog(logger.child({ scope: "waypoint" }), request);
    expect(json().map((r) => r.scope)).toEqual(["access", "access"]);
  });
});

describe("traceIdFromTraceparent", () => {
  test("valid headers give the trace id; invalid ones none", () => {
    expect(traceIdFromTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    // A later version may append fields.
    expect(traceIdFromTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    for (const bad of [
      undefined,
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    ]) {
      expect(traceIdFromTraceparent(bad)).toBeUndefined();
    }
  });
});
