// The redirect rules inside a pod's network namespace, as istio-cni installs them for in-pod mode
// (reference/ztunnel.md §1 "in-pod redirect rules"; istio/istio cni/pkg/iptables): packets with
// the ztunnel mark 0x539 are never captured; outbound TCP goes to 15001, inbound TCP (except to
// 15008) to 15006, DNS over UDP and TCP to 15053; loopback traffic is left alone. Connections
// ztunnel opens towards the app with the client's address as source get connmark 0x111, and the
// app's replies carrying it are routed back into the namespace (table 100: everything is local)
// so they reach ztunnel's transparent socket instead of leaving the pod.
//
// Installed with iptables-restore and ip6tables-restore (--noflush: other rules of the pod are
// kept) into chains of our own, then the ip rules and routes, for IPv4 and IPv6 alike. Any failure removes whatever went in: nothing half-done
// stays behind.
import { ErrorCodes, MeshError } from "../../errors/index.ts";
import { withNetns } from "../../net/index.ts";

export const INPOD_PORTS = { outbound: 15001, inboundPlaintext: 15006, hbone: 15008, dns: 15053 } as const;
/** SO_MARK on every socket ztunnel opens for a pod (istio: InpodMark 1337 = 0x539). */
export const ZTUNNEL_MARK = 0x539;
const MARK = `0x539/0xfff`;
const CONNMARK = `0x111/0xfff`;
const ROUTE_TABLE = "100";
const RULE_PREF = "32764";
/** kubelet probes, SNATed to this address by istio-cni on the node, are never captured */
const PROBE_SNAT = "169.254.7.127";
const PROBE_SNAT_V6 = "fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128";
const CHAIN_PRERT = "MESH_PRERT";
const CHAIN_OUTPUT = "MESH_OUTPUT";

/**
 * The rules as iptables-restore (family 4) or ip6tables-restore (family 6) input. Both families
 * are always installed: a pod with an IPv6 route must not have a way around the mesh.
 */
export function redirectRules(family: 4 | 6 = 4): string {
  const P = INPOD_PORTS;
  const lo = family === 4 ? "127.0.0.1/32" : "::1/128";
  const probe = family === 4 ? `${PROBE_SNAT}/32` : PROBE_SNAT_V6;
  return [
    "*mangle",
    `:${CHAIN_PRERT} - [0:0]`,
    `:${CHAIN_OUTPUT} - [0:0]`,
    `-A PREROUTING -j ${CHAIN_PRERT}`,
    `-A OUTPUT -j ${CHAIN_OUTPUT}`,
    `-A ${CHAIN_PRERT} -m mark --mark ${MARK} -j CONNMARK --set-xmark ${CONNMARK}`,
    `-A ${CHAIN_OUTPUT} -m connmark --mark ${CONNMARK} -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff`,
    "COMMIT",
    "*nat",
    `:${CHAIN_PRERT} - [0:0]`,
    `:${CHAIN_OUTPUT} - [0:0]`,
    `-A PREROUTING -j ${CHAIN_PRERT}`,
    `-A OUTPUT -j ${CHAIN_OUTPUT}`,
    `-A ${CHAIN_PRERT} -s ${probe} -p tcp -m tcp -j ACCEPT`,
    `-A ${CHAIN_PRERT} ! -d ${lo} -p tcp -m tcp ! --dport ${P.hbone} -m mark ! --mark ${MARK} -j REDIRECT --to-ports ${P.inboundPlaintext}`,
    `-A ${CHAIN_OUTPUT} -d ${probe} -p tcp -m tcp -j ACCEPT`,
    `-A ${CHAIN_OUTPUT} ! -o lo -p udp -m mark ! --mark ${MARK} -m udp --dport 53 -j REDIRECT --to-ports ${P.dns}`,
    `-A ${CHAIN_OUTPUT} ! -d ${lo} -p tcp -m tcp --dport 53 -m mark ! --mark ${MARK} -j REDIRECT --to-ports ${P.dns}`,
    `-A ${CHAIN_OUTPUT} -p tcp -m mark --mark ${CONNMARK} -j ACCEPT`,
    // The app calling its own pod address stays inside the pod, uncaptured (istio does the same).
    `-A ${CHAIN_OUTPUT} ! -d ${lo} -o lo -j ACCEPT`,
    `-A ${CHAIN_OUTPUT} ! -d ${lo} -p tcp -m mark ! --mark ${MARK} -j REDIRECT --to-ports ${P.outbound}`,
    "COMMIT",
    "",
  ].join("\n");
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command inside the namespace: the child is forked while this thread is in it. */
async function runIn(netnsPath: string, argv: string[], stdin?: string): Promise<RunResult> {
  const proc = withNetns(netnsPath, () =>
    Bun.spawn(argv, {
      stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
      stdout: "pipe",
      stderr: "pipe",
      timeout: 20_000,
      killSignal: "SIGKILL",
    }),
  );
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

function ruleFailure(netnsPath: string, step: string, r: RunResult | Error): MeshError {
  const why = r instanceof Error ? r.message : r.stderr.trim() || `exit ${r.code}`;
  return new MeshError(ErrorCodes.CAPTURE_RULES_FAILED, `cannot install the redirect rules in ${netnsPath}: ${step} failed: ${why}`);
}

/** Whether our chains exist in the namespace. */
export async function redirectRulesInstalled(netnsPath: string): Promise<boolean> {
  const r = await runIn(netnsPath, ["iptables", "-w", "5", "-t", "nat", "-S", CHAIN_OUTPUT]);
  if (r.code === 0) return true;
  return (await runIn(netnsPath, ["ip6tables", "-w", "5", "-t", "nat", "-S", CHAIN_OUTPUT])).code === 0;
}

/**
 * Installs the rules in the namespace at `netnsPath` (idempotent: already present means done).
 * On any failure, removes what it installed and throws CAPTURE_RULES_FAILED.
 */
export async function installRedirectRules(netnsPath: string): Promise<{ alreadyInstalled: boolean }> {
  let installed: boolean;
  try {
    installed = await redirectRulesInstalled(netnsPath);
  } catch (e) {
    throw ruleFailure(netnsPath, "entering the namespace", e as Error);
  }
  if (installed) return { alreadyInstalled: true };
  const steps: [string, string[], string?][] = [
    ["iptables-restore", ["iptables-restore", "-w", "5", "--noflush"], redirectRules(4)],
    ["ip6tables-restore", ["ip6tables-restore", "-w", "5", "--noflush"], redirectRules(6)],
    ["ip route (table 100)", ["ip", "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", ROUTE_TABLE]],
    ["ip rule (fwmark 0x111)", ["ip", "rule", "add", "fwmark", CONNMARK, "pref", RULE_PREF, "lookup", ROUTE_TABLE]],
    ["ip -6 route (table 100)", ["ip", "-6", "route", "replace", "local", "::/0", "dev", "lo", "table", ROUTE_TABLE]],
    ["ip -6 rule (fwmark 0x111)", ["ip", "-6", "rule", "add", "fwmark", CONNMARK, "pref", RULE_PREF, "lookup", ROUTE_TABLE]],
  ];
  for (const [what, argv, stdin] of steps) {
    let r: RunResult;
    try {
      r = await runIn(netnsPath, argv, stdin);
    } catch (e) {
      await removeRedirectRules(netnsPath).catch(() => {});
      throw ruleFailure(netnsPath, what, e as Error);
    }
    if (r.code !== 0) {
      await removeRedirectRules(netnsPath).catch(() => {});
      throw ruleFailure(netnsPath, what, r);
    }
  }
  return { alreadyInstalled: false };
}

/** Removes every rule, chain, ip rule and route of ours; absent pieces are fine. Returns whether our chains were there. */
export async function removeRedirectRules(netnsPath: string): Promise<{ wasInstalled: boolean }> {
  const wasInstalled = await redirectRulesInstalled(netnsPath);
  for (const bin of ["iptables", "ip6tables"]) {
    const ipt = (args: string[]) => runIn(netnsPath, [bin, "-w", "5", ...args]);
    for (const [table, chain, builtin] of [
      ["mangle", CHAIN_PRERT, "PREROUTING"],
      ["mangle", CHAIN_OUTPUT, "OUTPUT"],
      ["nat", CHAIN_PRERT, "PREROUTING"],
      ["nat", CHAIN_OUTPUT, "OUTPUT"],
    ] as const) {
      // A jump may have been added twice by hand; delete until none is left.
      for (let i = 0; i < 8; i++) if ((await ipt(["-t", table, "-D", builtin, "-j", chain])).code !== 0) break;
      await ipt(["-t", table, "-F", chain]);
      await ipt(["-t", table, "-X", chain]);
    }
  }
  for (const [fam, any] of [["-4", "0.0.0.0/0"], ["-6", "::/0"]] as const) {
    for (let i = 0; i < 8; i++) {
      if ((await runIn(netnsPath, ["ip", fam, "rule", "del", "fwmark", CONNMARK, "pref", RULE_PREF, "lookup", ROUTE_TABLE])).code !== 0) break;
    }
    await runIn(netnsPath, ["ip", fam, "route", "del", "local", any, "dev", "lo", "table", ROUTE_TABLE]);
  }
  return { wasInstalled };
}
