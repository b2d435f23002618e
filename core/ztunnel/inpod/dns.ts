// What the DNS proxy of a captured pod answers from the mesh state (reference/ztunnel.md §1,
// 15053): service hostnames in their Kubernetes search forms relative to the pod's namespace
// (`echo`, `echo.default`, `echo.default.svc`, the FQDN), also when the pod's stub resolver has
// appended a search domain to a short name (`echo.default.default.svc.cluster.local`). Names in
// the cluster domain the mesh does not know are NXDOMAIN; everything else goes upstream.
import type { MeshState, Workload } from "../../config/index.ts";
import type { MeshAnswer } from "../../dns/index.ts";
import { resolveMeshHostname } from "../route.ts";

function serviceAddresses(state: MeshState, source: Workload, name: string, clusterDomain: string): string[] | undefined {
  const svc = resolveMeshHostname(state, source, name, clusterDomain);
  if (!svc) return undefined;
  const vips = svc.vips.filter((v) => v.network === source.network).map((v) => v.ip);
  if (vips.length > 0) return vips;
  // Headless: the endpoints' own addresses.
  return [...new Set(state.endpointsOf(svc.key).flatMap((ep) => ep.workload.workloadIps))];
}

export function meshDnsLookup(state: () => MeshState, source: () => Workload, clusterDomain: string): (name: string) => MeshAnswer {
  const cd = clusterDomain.toLowerCase();
  return (name) => {
    const s = state();
    const w = source();
    const direct = serviceAddresses(s, w, name, cd);
    if (direct) return { kind: "addresses", ips: direct };
    for (const suffix of [`${w.namespace}.svc.${cd}`, `svc.${cd}`, cd]) {
      if (!name.endsWith(`.${suffix}`)) continue;
      const stripped = name.slice(0, -(suffix.length + 1));
      const found = serviceAddresses(s, w, stripped, cd);
      if (found) return { kind: "addresses", ips: found };
    }
    if (name === cd || name.endsWith(`.${cd}`)) return { kind: "nxdomain" };
    return { kind: "forward" };
  };
}
