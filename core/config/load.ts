// parseLocalConfig: text of an istio/ztunnel local config file -> validated, indexed MeshState.

import { dirname, resolve } from "node:path";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import type { MeshState, PortMap, Workload } from "./model.ts";
import { addressKey } from "./addresses.ts";
import { frozenMap } from "./frozen.ts";
import { child, index, Issues } from "./schema-read.ts";
import { readLocalConfigTree, type ConfigDraft } from "./schema.ts";
import { buildMeshState } from "./state.ts";
import { parseYamlTree } from "./yaml-tree.ts";

export interface LoadedConfig {
  readonly state: MeshState;
  /** The parsed YAML as plain JS, for config_dump (`staticConfig`). */
  readonly raw: unknown;
  readonly fileName: string;
  /** Things that load but are probably mistakes, one line each, prefixed like errors. */
  readonly warnings: readonly string[];
  /** `routeFiles`, resolved against the config file's directory */
  readonly routeFiles: readonly string[];
  /** `plugins` entries as plain values, validated by plugins/ */
  readonly plugins: readonly unknown[];
}

/** Checks between entries: unique keys and addresses, references. */
function crossCheck(d: ConfigDraft, issues: Issues): void {
  const uids = new Map<string, number>();
  const addresses = new Map<string, { at: number; uid: string }>();
  for (const { at, value: w } of d.workloads) {
    const path = index("workloads", at);
    const prevUid = uids.get(w.uid);
    if (prevUid !== undefined) issues.error(`${path}.uid`, `duplicate uid ${JSON.stringify(w.uid)} (also workloads[${prevUid}])`);
    else uids.set(w.uid, at);
    if (w.networkMode === "HostNetwork") continue;
    w.workloadIps.forEach((ip, i) => {
      const key = addressKey(w.network, ip);
      const prev = addresses.get(key);
      if (prev !== undefined && prev.uid !== w.uid) {
        issues.error(
          `${path}.workloadIps[${i}]`,
          `address ${JSON.stringify(key)} is already used by workloads[${prev.at}] (${JSON.stringify(prev.uid)})`,
        );
      } else if (prev === undefined) addresses.set(key, { at, uid: w.uid });
    });
  }

  const serviceKeys = new Map<string, number>();
  const vips = new Map<string, { at: number; key: string }>();
  for (const { at, value: { service: s } } of d.services) {
    const path = index("services", at);
    const prev = serviceKeys.get(s.key);
    if (prev !== undefined) issues.error(`${path}.hostname`, `duplicate service ${JSON.stringify(s.key)} (also services[${prev}])`);
    else serviceKeys.set(s.key, at);
    const claim = (key: string, p: string, what: string) => {
      const other = vips.get(key);
      if (other !== undefined && other.key !== s.key) {
        issues.error(p, `${what} ${JSON.stringify(key)} is already used by services[${other.at}] (${JSON.stringify(other.key)})`);
      } else if (other === undefined) vips.set(key, { at, key: s.key });
    };
    s.vips.forEach((v, i) => claim(addressKey(v.network, v.ip), `${path}.vips[${i}]`, "VIP"));
    s.cidrVips.forEach((c, i) => claim(`${c.network}/${c.cidr}`, `${path}.cidrVips[${i}]`, "CIDR VIP"));
  }

  const policyKeys = new Map<string, number>();
  for (const { at, value: p } of d.policies) {
    const prev = policyKeys.get(p.key);
    if (prev !== undefined) {
      issues.error(`${index("policies", at)}.name`, `duplicate policy ${JSON.stringify(p.key)} (also policies[${prev}])`);
    } else policyKeys.set(p.key, at);
  }

  // Endpoints written inside a service join their workload's `services` map (the workload's own
  // entry wins). ztunnel keeps endpoints of unknown workloads around; they can never be picked.
  const byUid = new Map(d.workloads.map((w) => [w.value.uid, w.value] as const));
  for (const { value: { service: s, endpoints } } of d.services) {
    for (const ep of endpoints) {
      const w = byUid.get(ep.workloadUid);
      if (!w) {
        issues.warn(`${ep.path}.workloadUid`, `workload ${JSON.stringify(ep.workloadUid)} is not defined; endpoint ignored`);
      } else if (!w.services.has(s.key)) w.services.set(s.key, ep.ports);
    }
  }

  for (const { at, value: w } of d.workloads) {
    const path = index("workloads", at);
    for (const key of w.services.keys()) {
      if (!serviceKeys.has(key)) {
        issues.warn(child(`${path}.services`, key), `service ${JSON.stringify(key)} is not defined; kept as a staged endpoint`);
      }
    }
    w.authorizationPolicies.forEach((key, i) => {
      if (!policyKeys.has(key)) {
        issues.warn(`${path}.authorizationPolicies[${i}]`, `policy ${JSON.stringify(key)} is not defined; it will be skipped`);
      }
    });
    const wp = w.waypoint?.destination;
    if (wp?.kind === "hostname" && !serviceKeys.has(`${wp.namespace}/${wp.hostname}`)) {
      issues.warn(`${path}.waypoint.destination`, `waypoint service "${wp.namespace}/${wp.hostname}" is not defined`);
    }
  }
  for (const { at, value: { service: s } } of d.services) {
    const wp = s.waypoint?.destination;
    if (wp?.kind === "hostname" && !serviceKeys.has(`${wp.namespace}/${wp.hostname}`)) {
      issues.warn(`${index("services", at)}.waypoint.destination`, `waypoint service "${wp.namespace}/${wp.hostname}" is not defined`);
    }
  }
}

function line(fileName: string, e: { path: string; message: string }): string {
  return e.path === "" ? `${fileName}: ${e.message}` : `${fileName}: ${e.path}: ${e.message}`;
}

/**
 * Parses and validates a local config file's text. Throws MeshError CONFIG_PARSE for YAML
 * syntax errors, CONFIG_INVALID listing every problem (one `details` line each) otherwise.
 */
export function parseLocalConfig(text: string, fileName: string): LoadedConfig {
  const { root, raw } = parseYamlTree(text, fileName);
  const issues = new Issues();
  const draft = readLocalConfigTree(root, issues);
  crossCheck(draft, issues);
  if (issues.errors.length > 0) {
    const n = issues.errors.length;
    throw new MeshError(ErrorCodes.CONFIG_INVALID, `${fileName}: ${n} error${n === 1 ? "" : "s"}`, {
      details: issues.errors.map((e) => line(fileName, e)),
    });
  }
  const workloads: Workload[] = draft.workloads.map(({ value: w }) =>
    Object.freeze({ ...w, services: frozenMap<string, PortMap>(w.services), labels: frozenMap(w.labels) }),
  );
  const state = buildMeshState({
    workloads,
    services: draft.services.map((s) => s.value.service),
    policies: draft.policies.map((p) => p.value),
  });
  return Object.freeze({
    state,
    raw,
    fileName,
    warnings: Object.freeze(issues.warnings.map((w) => line(fileName, w))),
    routeFiles: Object.freeze(draft.routeFiles.map((f) => resolve(dirname(fileName), f))),
    plugins: Object.freeze(Array.isArray((raw as { plugins?: unknown } | null)?.plugins) ? [...((raw as { plugins: unknown[] }).plugins)] : []),
  });
}
