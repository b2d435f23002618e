// The local config file's top level: istio/ztunnel's `LocalConfig` (src/xds.rs) — `workloads`,
// `services`, `policies`, all optional — read into model values, every problem collected. The
// mesh adds `routeFiles`: Gateway API HTTPRoute YAML files the waypoint loads (relative paths are
// relative to the config file) and `plugins` (Wasm plugins, shaped after Istio's WasmPlugin; only
// checked to be a list here — plugins/ validates the entries, it owns their meaning).

import type { AuthorizationPolicy } from "./model.ts";
import { readPolicy } from "./schema-policy.ts";
import { Fields, Issues, describe, index, readString } from "./schema-read.ts";
import { readService, type ServiceDraft } from "./schema-service.ts";
import { readWorkload, type WorkloadDraft } from "./schema-workload.ts";
import type { YNode } from "./yaml-tree.ts";

export const ROOT_KEYS = ["workloads", "services", "policies", "routeFiles", "plugins"] as const;

/** An entry that parsed, with the position it had in the file (for cross-check messages). */
export interface At<T> {
  readonly at: number;
  readonly value: T;
}

export interface ConfigDraft {
  readonly workloads: At<WorkloadDraft>[];
  readonly services: At<ServiceDraft>[];
  readonly policies: At<AuthorizationPolicy>[];
  readonly routeFiles: string[];
}

function readEntries<T>(
  f: Fields,
  key: string,
  issues: Issues,
  what: string,
  read: (n: YNode, path: string, issues: Issues) => T | undefined,
): At<T>[] {
  const n = f.get(key);
  if (n === undefined) return [];
  const path = f.at(key);
  if (n.kind !== "seq") {
    issues.error(path, `expected a list of ${what}, got ${describe(n)}`);
    return [];
  }
  const out: At<T>[] = [];
  n.items.forEach((item, i) => {
    const v = read(item, index(path, i), issues);
    if (v !== undefined) out.push({ at: i, value: v });
  });
  return out;
}

export function readLocalConfigTree(root: YNode | undefined, issues: Issues): ConfigDraft {
  if (root === undefined) return { workloads: [], services: [], policies: [], routeFiles: [] };
  const f = Fields.read(root, "", ROOT_KEYS, issues, "a map with keys workloads, services, policies, routeFiles, plugins");
  if (!f) return { workloads: [], services: [], policies: [], routeFiles: [] };
  return {
    workloads: readEntries(f, "workloads", issues, "workloads", readWorkload),
    services: readEntries(f, "services", issues, "services", readService),
    policies: readEntries(f, "policies", issues, "policies", readPolicy),
    ...checkPluginList(f, issues),
    routeFiles: readEntries(f, "routeFiles", issues, "file paths", (n, path, iss) => {
      const v = readString(n, path, iss, "a file path");
      if (v === "") iss.error(path, "expected a file path, got an empty string");
      return v || undefined;
    }).map((e) => e.value),
  };
}

function checkPluginList(f: Fields, issues: Issues): Record<string, never> {
  const n = f.get("plugins");
  if (n !== undefined && n.kind !== "seq") issues.error(f.at("plugins"), `expected a list of plugins, got ${describe(n)}`);
  return {};
}
