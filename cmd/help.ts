// Help texts: `mesh --help` and `mesh <command> --help`.
export const HELP = `mesh: a sidecar-less service mesh data plane (ztunnel and waypoint roles, HBONE)

Usage:
  mesh --role ztunnel --config FILE --node NAME --ca-dir DIR [--admin-port N] [--metrics-port N] [--readiness-port N]
  mesh --role waypoint --config FILE --workload UID --ca-dir DIR [--routes FILE]... [--policies FILE]...
  mesh ca init --dir DIR [--trust-domain TD]
  mesh check FILE
  mesh plugin check FILE.wasm [--max-memory-pages N] [--json]
  mesh plugin run FILE.wasm [--config JSON] [--request SPEC]... [--requests-file FILE] [flags]
  mesh pod add --uid UID --netns PATH [--socket PATH]     (captured mode, Linux, root)
  mesh pod remove --uid UID [--socket PATH]
  mesh quickstart [--once] [--captured]
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
  --captured             captured mode (Linux, root): serve local workloads inside their pods' network
                         namespaces, handed over with 'mesh pod add' on the pod socket
  --pod-socket PATH      the pod socket (default /var/run/mesh/ztunnel.sock; implies --captured)
  --pod-state PATH       where served pods are kept across restarts (default <pod-socket>.pods.json)
  --resolv-conf PATH     upstream resolvers of the pods' DNS proxy (default /etc/resolv.conf)

Loopback mode: each local workload gets HBONE on <ip>:15008 and SOCKS5 on <ip>:15080.
Captured mode: each added pod gets, inside its namespace, 15001 (outbound capture), 15006 (inbound
plaintext), HBONE on <pod ip>:15008 and DNS on 127.0.0.1:15053; restarts re-adopt the pods.
SIGTERM or POST /quitquitquit drains (deadline CONNECTION_TERMINATION_DEADLINE, default 5s); a second SIGTERM exits at once.
`,
  waypoint: `mesh --role waypoint: run one replica of a waypoint (the L7 proxy)

Usage:
  mesh --role waypoint --config FILE --workload UID --ca-dir DIR [--routes FILE]... [--policies FILE]...
                       [--admin-port N] [--metrics-port N] [--readiness-port N] [--hbone-port N]

  --config FILE        istio/ztunnel local config (watched); the workload UID gives the replica's
                       identity and address
  --workload UID       the waypoint workload this process serves
  --ca-dir DIR         local CA (mesh ca init) issuing the replica's certificate
  --routes FILE        Gateway API HTTPRoute YAML whose parentRefs name Services (repeatable, watched)
  --policies FILE      Kubernetes AuthorizationPolicy YAML (repeatable, watched); L7 fields apply here
  --admin-port N       admin on 127.0.0.1 (default 15000)
  --metrics-port N     Prometheus metrics (default 15020)
  --readiness-port N   /healthz/ready (default 15021)
  --hbone-port N       HBONE inbound on <workload ip> (default 15008)

Inside each HBONE tunnel the waypoint serves HTTP/1.1: L7 AuthorizationPolicy (principal = the
verified HBONE peer; denial is 403 "RBAC: access denied"), HTTPRoute matching and filters (no route:
the original service), then HBONE as the waypoint's identity to an endpoint's port 15008.
SIGTERM or POST /quitquitquit drains; a second SIGTERM exits at once.
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

  mesh quickstart --captured [--once]     (Linux, root; needs ip, iptables, ip6tables, curl)

The same demo with real traffic capture: builds network namespaces (mqs-net, mqs-node-a, mqs-node-b,
mqs-sleep, mqs-echo), runs a ztunnel per node in captured mode, hands both pods over as 'mesh pod add'
does, and sends plain curl http://echo/ from inside the sleep pod. Ctrl-C removes every namespace.
`,
  pod: `mesh pod: hand a pod to the node's ztunnel in captured mode, or take it back (Linux, root)

Usage:
  mesh pod add --uid UID --netns PATH [--socket PATH]
  mesh pod remove --uid UID [--netns PATH] [--socket PATH]
  mesh pod list [--socket PATH]

add      installs the redirect rules inside the network namespace at PATH (e.g. /var/run/netns/NAME or
         /proc/PID/ns/net) and tells the ztunnel to serve the workload whose uid is UID there. The
         workload must be in the mesh config with this ztunnel's node. On any failure nothing stays installed.
remove   tells the ztunnel to stop serving UID and removes the rules: the pod has plain networking again.
         With --netns, the rules are removed from PATH even when the ztunnel does not serve UID (a pod
         dropped at a restart, or no ztunnel running).
--socket the ztunnel's pod socket (default /var/run/mesh/ztunnel.sock; see 'mesh --role ztunnel --help').
`,
  plugin: `mesh plugin: check a Proxy-Wasm plugin module, or run requests through it

Usage:
  mesh plugin check FILE.wasm [--max-memory-pages N] [--json]
  mesh plugin run FILE.wasm [--config JSON | --config-file FILE] [--root-id ID]
                  [--request SPEC]... [--requests-file FILE] [--response SPEC] [--callout SPEC]...
                  [--env NAME=VALUE]... [--log-level L] [--budget-ms N] [--max-memory-pages N]
                  [--fail-strategy S] [--resume-timeout-ms N] [--json]

check    reads the module without running it: ABI version, callbacks, exports, imports (and which
         this host lacks or provides only partly), memory against the limit. Exit 1 if the
         waypoint would refuse it.
run      starts the plugin in a VM of its own (a worker, as in the waypoint) and drives each request
         through request headers/body/trailers, then (if the plugin let it through) a simulated
         upstream response, then the end of the stream; prints what the plugin changed, local
         responses, resets, callouts, logs, metrics and failures with the fail strategy's result.
         Exit 0 when it ran (also when the plugin denied), 1 on a plugin failure or bad input.

  --config JSON          the WasmPlugin's pluginConfig as a JSON object (default none: the VM gets "{}")
  --config-file FILE     the same from a JSON or YAML file
  --root-id ID           the WasmPlugin's pluginName (the root id the module registers; default "")
  --request SPEC         [METHOD] PATH [name:value | -H name:value]... [-d BODY]... [--trailer name:value]...
                         [--authority HOST]; repeatable; default one 'GET /'. A host header sets the authority.
  --requests-file FILE   YAML/JSON: a list of requests, or {requests, response, callouts}; each request
                         {name, method, path, authority, headers, body, trailers, response, callouts,
                         source, destination} (see plugins/README.md)
  --response SPEC        the simulated upstream response: STATUS [name:value]... [-d BODY] (default 200)
  --callout SPEC         answer the plugin's http_call to UPSTREAM: 'UPSTREAM=STATUS [name:value]... [-d BODY]'
                         or 'UPSTREAM=fail [reason]'; UPSTREAM is host:port as the plugin names it, or *
                         for any; repeatable. Unanswered callouts fail (and say so in the log).
  --env NAME=VALUE       the VM's environment (vmConfig.env); repeatable
  --log-level L          trace, debug, info (default), warn, error, critical
  --budget-ms N          time one callback may run (limits.callbackBudgetMs; default 5)
  --max-memory-pages N   memory limit in 64 KiB pages (limits.maxMemoryPages; default 256)
  --fail-strategy S      FAIL_CLOSE (default), FAIL_OPEN, FAIL_RELOAD
  --resume-timeout-ms N  how long to wait for the plugin to resume a request or response it holds
                         (default 5000)
  --json                 machine-readable output

Exit status: 0 ok, 1 refused module / plugin failure / bad input, 2 usage error. See plugins/README.md.
`,
  version: `mesh version: print the version of mesh and of the Bun runtime
`,
};

export function helpFor(command: string): string {
  return COMMANDS[command] ?? HELP;
}
