// istio/ztunnel local config (reference/ztunnel.md §4.3) for tests, written as YAML text so a test
// can still patch a line of it. Every workload is HBONE in namespace `default`, uid `test//<name>`.

/** service port -> target port */
export type PortMap = Record<number, number>;

export interface ConfigWorkload {
  name: string;
  ip: string;
  node: string;
  /** default: the workload's name */
  serviceAccount?: string;
  /** "<namespace>/<hostname>" of each service it backs -> its port map */
  services?: Record<string, PortMap>;
  /** name of a waypoint service (in `default`) for traffic addressed to this workload */
  waypoint?: string;
  /** default HBONE; TCP = not in the mesh (plain TCP to it) */
  protocol?: "HBONE" | "TCP";
  capacity?: number;
  status?: "Healthy" | "Unhealthy";
}

/** A service in namespace `default`, hostname `<name>.default.svc.cluster.local`. */
export interface ConfigService {
  name: string;
  vip: string;
  ports: PortMap;
  /** name of a waypoint service (in `default`) for traffic addressed to this service */
  waypoint?: string;
}

/** The key a workload's `services` map uses for a service in namespace `default`. */
export function serviceKey(name: string): string {
  return `default/${name}.default.svc.cluster.local`;
}

function portMap(ports: PortMap): string {
  return `{${Object.entries(ports).map(([from, to]) => `${from}: ${to}`).join(", ")}}`;
}

/** The config YAML: the workloads, then the services (if any), then `extra` verbatim (more top-level keys). */
export function localConfig(opts: { workloads: readonly ConfigWorkload[]; services?: readonly ConfigService[]; extra?: string }): string {
  const lines = ["workloads:"];
  for (const w of opts.workloads) {
    lines.push(
      `- uid: test//${w.name}`,
      `  name: ${w.name}`,
      "  namespace: default",
      `  serviceAccount: ${w.serviceAccount ?? w.name}`,
      `  workloadIps: ["${w.ip}"]`,
      `  protocol: ${w.protocol ?? "HBONE"}`,
      `  node: ${w.node}`,
    );
    if (w.waypoint) lines.push(`  waypoint: {destination: "${serviceKey(w.waypoint)}", hboneMtlsPort: 15008}`);
    if (w.capacity !== undefined) lines.push(`  capacity: ${w.capacity}`);
    if (w.status) lines.push(`  status: ${w.status}`);
    if (w.services) {
      lines.push("  services:");
      for (const [key, ports] of Object.entries(w.services)) lines.push(`    "${key}": ${portMap(ports)}`);
    }
  }
  const services = opts.services ?? [];
  if (services.length > 0) lines.push("services:");
  for (const s of services) {
    lines.push(
      `- name: ${s.name}`,
      "  namespace: default",
      `  hostname: ${s.name}.default.svc.cluster.local`,
      `  vips: ["/${s.vip}"]`,
      `  ports: ${portMap(s.ports)}`,
    );
    if (s.waypoint) lines.push(`  waypoint: {destination: "${serviceKey(s.waypoint)}", hboneMtlsPort: 15008}`);
  }
  return `${lines.join("\n")}\n${opts.extra ?? ""}`;
}

/** The two-node mesh's workloads: client (<subnet>1, node-a) and server (<subnet>2, node-b, backs `server`). */
export function twoNodeWorkloads(subnet: string): { client: ConfigWorkload; server: ConfigWorkload } {
  return {
    client: { name: "client", ip: `${subnet}1`, node: "node-a" },
    server: { name: "server", ip: `${subnet}2`, node: "node-b", services: { [serviceKey("server")]: { 80: 8080 } } },
  };
}

/** The two-node mesh's service: `server` on VIP <subnet>100, port 80 -> 8080. */
export function serverService(subnet: string): ConfigService {
  return { name: "server", vip: `${subnet}100`, ports: { 80: 8080 } };
}

/** A two-workload config: client on node-a, server on node-b (both HBONE); `extra` is appended. */
export function twoNodeConfig(subnet: string, extra = ""): string {
  const { client, server } = twoNodeWorkloads(subnet);
  return localConfig({ workloads: [client, server], services: [serverService(subnet)], extra });
}
