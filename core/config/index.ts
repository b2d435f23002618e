// core/config: the mesh state model, its loaders and indexes, change notification, and the one
// place environment variables are read.

export * from "./model.ts";
export { parseLocalConfig, type LoadedConfig } from "./load.ts";
export { buildMeshState, EMPTY_MESH_STATE, type MeshStateInput } from "./state.ts";
export { StateStore, type StateListener } from "./store.ts";
export { FileConfigSource, WatchedFile, type ConfigLog, type FileConfigSourceOptions, type WatchedFileOptions } from "./watch.ts";
export { summarizeState } from "./summary.ts";
export { readRuntimeEnv, parseDuration, ENV_DEFAULTS, type RuntimeEnv, type LogFormat, type LogLevel } from "./env.ts";
export { canonicalIp, parseIp, parseCidr, cidrContains, parseNetworkAddress, addressKey, type ParsedIp, type ParsedCidr } from "./addresses.ts";
export { DEFAULT_TRUST_DOMAIN, DEFAULT_SERVICE_ACCOUNT, DEFAULT_CLUSTER_ID } from "./schema-workload.ts";
export { TaggedMatch } from "./yaml-tags.ts";
export { loadConfigFile, DEFAULT_MAX_CONFIG_BYTES } from "./file.ts";
export {
  readKubernetesDocuments,
  DocProblems,
  KUBERNETES_TOP_KEYS,
  KUBERNETES_METADATA_KEYS,
  isObj,
  describeValue,
  fieldPath,
  checkKeys,
  readMap,
  readList,
  readStrings,
  readString,
  checkString,
  readInt,
  type Obj,
  type StringStyle,
  type ListRule,
  type StringRule,
  type KubernetesDocumentsOptions,
} from "./k8s-read.ts";
