// plugins/run: the filter author's tools behind `mesh plugin check` and `mesh plugin run` —
// inspect a module without running it, and run simulated requests through it in a real VM
// (a worker, as in the waypoint), recording what the plugin did.
export { inspectModule, pagesText, type ImportStatus, type ModuleInspection, type Problem } from "./inspect.ts";
export {
  runPlugin,
  type CalloutRecord,
  type FailureRecord,
  type LocalReply,
  type LogLine,
  type Message,
  type PhaseName,
  type PhaseRecord,
  type RequestRecord,
  type RunOptions,
  type RunRecord,
} from "./session.ts";
export {
  DEFAULT_AUTHORITY,
  DEFAULT_DESTINATION,
  DEFAULT_RESPONSE,
  DEFAULT_SOURCE,
  parseCalloutSpec,
  parseHeader,
  parseRequestSpec,
  parseRequestsText,
  parseResponseSpec,
  readPluginConfig,
  readRequestsFile,
  splitWords,
  type CalloutAnswer,
  type Pairs,
  type SimRequest,
  type SimResponse,
} from "./spec.ts";
export { concatBytes, diffHeaders, diffMetrics, sameBytes, type HeaderChange, type MetricChange } from "./diff.ts";
