// summarizeState: the few lines `mesh check FILE` prints for a config that loaded.

import type { GatewayAddress, Service } from "./model.ts";
import type { LoadedConfig } from "./load.ts";

const MAX_NAMES = 5;

function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

function names(list: readonly string[]): string {
  const shown = list.slice(0, MAX_NAMES).join(", ");
  return list.length > MAX_NAMES ? `${shown}, … (+${list.length - MAX_NAMES})` : shown;
}

function gateway(g: GatewayAddress): string {
  const d = g.destination;
  return d.kind === "hostname" ? `${d.namespace}/${d.hostname}` : `${d.network}/${d.ip}:${g.hboneMtlsPort}`;
}

function serviceLine(s: Service, endpoints: number, healthy: number): string {
  const vips = [...s.vips.map((v) => `${v.network}/${v.ip}`), ...s.cidrVips.map((c) => `${c.network}/${c.cidr}`)];
  const ports = [...s.ports].map(([sp, tp]) => (sp === tp ? `${sp}` : `${sp}->${tp}`));
  const parts = [
    `  ${s.key}`,
    `vips ${vips.length > 0 ? vips.join(",") : "none"}`,
    `ports ${ports.length > 0 ? ports.join(",") : "none"}`,
    `endpoints ${endpoints}${healthy !== endpoints ? ` (${healthy} healthy)` : ""}`,
  ];
  if (s.waypoint) parts.push(`waypoint ${gateway(s.waypoint)}`);
  return parts.join("  ");
}

export function summarizeState(loaded: LoadedConfig): string {
  const st = loaded.state;
  const out: string[] = [
    `${loaded.fileName}: ${plural(st.workloads.size, "workload")}, ${plural(st.services.size, "service")}, ${plural(st.policies.size, "policy", "policies")}`,
  ];

  if (st.workloads.size > 0) {
    const byNode = new Map<string, string[]>();
    for (const w of st.workloads.values()) {
      const k = w.node === "" ? "(no node)" : w.node;
      let l = byNode.get(k);
      if (!l) byNode.set(k, (l = []));
      l.push(w.name || w.uid);
    }
    out.push("workloads by node:");
    for (const [node, list] of [...byNode].sort(([a], [b]) => a.localeCompare(b))) {
      out.push(`  ${node}: ${list.length} (${names(list)})`);
    }
  }

  if (st.services.size > 0) {
    out.push("services:");
    for (const s of st.services.values()) {
      const eps = st.endpointsOf(s.key);
      out.push(serviceLine(s, eps.length, eps.filter((e) => e.workload.status === "Healthy").length));
    }
  }
  const staged = new Set<string>();
  for (const w of st.workloads.values()) for (const k of w.services.keys()) if (!st.services.has(k)) staged.add(k);
  if (staged.size > 0) out.push(`staged endpoints for undefined services: ${names([...staged])}`);

  if (st.policies.size > 0) {
    out.push("policies:");
    for (const p of st.policies.values()) {
      out.push(`  ${p.key}  ${p.scope} ${p.action}${p.dryRun ? " (dry run)" : ""}  ${plural(p.rules.length, "rule")}`);
    }
  }

  if (loaded.warnings.length > 0) {
    out.push("warnings:");
    for (const w of loaded.warnings) out.push(`  ${w}`);
  }
  return out.join("\n");
}
