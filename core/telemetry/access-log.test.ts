import { describe, expect, test } from "bun:test";
import { accessLog, createLogger, type ConnectionRecord, type LogLevel } from "./index.ts";

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
