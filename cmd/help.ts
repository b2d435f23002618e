// Help texts: `mesh --help` and `mesh <command> --help`.
export const HELP = `mesh: a sidecar-less service mesh data plane (ztunnel and waypoint roles, HBONE)

Usage:
  mesh --role ztunnel --config FILE --node NAME --ca-dir DIR [--admin-port N] [--metrics-port N] [--readiness-port N]
  mesh --role waypoint ...            (not implemented yet)
  mesh ca init --dir DIR [--trust-domain TD]
  mesh check FILE
  mesh quickstart [--once]
  mesh version

Run 'mesh <command> --help' (or 'mesh --role ztunnel --help') for the flags of one command.
`;

const COMMANDS: Record<string, string> = {
  ztunnel: `mesh --role ztunnel: run the node-local L4 proxy (loopback mode)

Usage:
  mesh --role ztunnel --config FILE --node NAME --ca-dir DIR [flags]

Flags:
  --config FILE          istio/ztunnel local config (workloads, services, policies); watched for changes
  --node NAME            serve the workloads whose 'node' is NAME
  --ca-dir DIR           local CA directory (see 'mesh ca init')
  --admin-port N         admin API on 127.0.0.1 (default 15000)
  --metrics-port N       Prometheus /metrics (default 15020)
  --readiness-port N     /healthz/ready (default 15021)
  --hbone-port N         port of each local workload's inbound HBONE listener (default 15008; peers
                         always dial 15008, so change it only behind a relay, e.g. in tests)
  --socks5-port N        port of each local workload's SOCKS5 listener (default 15080)
  --policies FILE        Kubernetes AuthorizationPolicy YAML (security.istio.io/v1), one or many
                         documents; repeat the flag for more files; watched for changes

Each local workload gets HBONE on <ip>:15008 and SOCKS5 on <ip>:15080.
SIGTERM or POST /quitquitquit drains (deadline CONNECTION_TERMINATION_DEADLINE, default 5s); a second SIGTERM exits at once.
`,
  waypoint: `mesh --role waypoint: the L7 proxy. Not implemented yet.
`,
  ca: `mesh ca init: create a local root CA with Istio's plug-in CA file names

Usage:
  mesh ca init --dir DIR [--trust-domain TD]

Writes root-cert.pem, ca-cert.pem, ca-key.pem, cert-chain.pem into DIR (created if missing).
Refuses to overwrite an existing CA. Trust domain defaults to cluster.local.
`,
  check: `mesh check: validate a config file

Usage:
  mesh check FILE

Exit 0 and a summary when valid; exit 1 and every error (file, field path, what was expected) otherwise.
`,
  quickstart: `mesh quickstart: a two-node mesh on this machine, no root needed

Usage:
  mesh quickstart [--once]

Creates a CA under .mesh/ if missing, starts ztunnels for node-a and node-b from examples/quickstart.yaml,
an echo app on node-b, sends traffic from a client workload on node-a through the mesh and prints what
crossed. Stays up until Ctrl-C (which drains everything); --once exits after the check, 0 only if the
traffic crossed mTLS end to end.
`,
  version: `mesh version: print the version of mesh and of the Bun runtime
`,
};

export function helpFor(command: string): string {
  return COMMANDS[command] ?? HELP;
}
