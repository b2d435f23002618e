// Telemetry for a connection that failed before any byte was relayed: one failed connection in
// the metrics and one access-log line, the same for both directions.
import { responseFlagFor, type MeshError } from "../errors/index.ts";
import { accessLog, type ConnectionRecord, type TcpLabels } from "../telemetry/index.ts";
import type { ZtunnelContext } from "./context.ts";

export type FailedRecord = Omit<ConnectionRecord, "clientToServerBytes" | "serverToClientBytes" | "durationMs" | "error" | "responseFlags">;

export function reportFailure(ctx: ZtunnelContext, labels: TcpLabels, record: FailedRecord, err: MeshError, startedAt: number): void {
  const flag = responseFlagFor(err.code);
  ctx.metrics.connectionOpened(labels).closed(flag);
  accessLog(ctx.accessLog, {
    ...record,
    clientToServerBytes: 0,
    serverToClientBytes: 0,
    durationMs: Date.now() - startedAt,
    error: `${err.code}: ${err.message}`,
    responseFlags: flag,
  });
}
