// Mesh-side helpers for the waypoint L7 suites: a workload moved to another namespace in the
// config YAML, the waypoint's per-request access lines, and Istio's histogram bounds.
import type { LogRecord, ZtunnelProcess } from "./mesh.ts";

/** `localConfig` puts every workload in `default`; this moves one (by name) to `namespace`. */
export function inNamespace(yaml: string, workloadName: string, namespace: string): string {
  const lines = yaml.split("\n");
  const start = lines.indexOf(`- uid: test//${workloadName}`);
  if (start < 0) throw new Error(`no workload ${workloadName} in the config`);
  for (let i = start + 1; i < lines.length && !lines[i]!.startsWith("- ") && !/^\S/.test(lines[i]!); i++) {
    if (lines[i] === "  namespace: default") {
      lines[i] = `  namespace: ${namespace}`;
      return lines.join("\n");
    }
  }
  throw new Error(`workload ${workloadName} has no namespace line`);
}

/** The waypoint's per-request access-log lines (HTTP), oldest first. */
export function requestLines(wp: ZtunnelProcess): LogRecord[] {
  return wp.accessRecords().filter((r) => r.msg === "request complete" || r.msg === "request failed");
}

/** The waypoint's per-connection access-log lines (traffic it proxied as TCP). */
export function connectionLines(wp: ZtunnelProcess): LogRecord[] {
  return wp.accessRecords().filter((r) => r.msg === "connection complete" || r.msg === "connection failed");
}

/**
 * Envoy's default histogram bounds, which Istio's stats use for `istio_request_duration_milliseconds`
 * (written out here, not imported, so the test checks the product against the reference).
 */
export const ISTIO_DURATION_BUCKETS: readonly string[] = [
  "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
];

/** A W3C traceparent with a given trace id (random parent id). */
export function traceparent(traceId: string, parentId = "00f067aa0ba902b7", flags = "01"): string {
  return `00-${traceId}-${parentId}-${flags}`;
}

export const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
