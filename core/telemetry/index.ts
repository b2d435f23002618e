// Public entry of core/telemetry: Istio-compatible TCP and HTTP metrics, structured logging, access log.
export { MeshMetrics, type MeshComponent, type TcpConnectionMetrics } from "./metrics.ts";
export {
  TCP_LABEL_NAMES,
  NO_RESPONSE_FLAGS,
  labelsFor,
  resolveTcpLabels,
  type ConnectionSecurityPolicy,
  type LabelsForInput,
  type Reporter,
  type ResolvedTcpLabels,
  type ServiceLike,
  type TcpLabelName,
  type TcpLabels,
  type WorkloadLike,
} from "./labels.ts";
export {
  LOG_LEVELS,
  createLogger,
  isLogLevel,
  toJsonSafe,
  type LogFields,
  type LogFormat,
  type LogLevel,
  type Logger,
  type LoggerOptions,
} from "./logger.ts";
export { accessLog, accessLogFields, type ConnectionRecord } from "./access-log.ts";
export { ISTIO_HISTOGRAM_BUCKETS, type RequestSample } from "./http-metrics.ts";
export {
  HTTP_LABEL_NAMES,
  httpLabelsFor,
  resolveHttpLabels,
  type HttpLabelName,
  type HttpLabels,
  type HttpLabelsInput,
  type HttpReporter,
  type PeerLabelsInput,
  type RequestProtocol,
  type ResolvedHttpLabels,
} from "./labels.ts";
export { requestLog, requestLogFields, traceIdFromTraceparent, type RequestRecord } from "./access-log.ts";
