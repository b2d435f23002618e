// `mesh pod add|remove|list`: hand a pod (its network namespace) to the node's ztunnel in captured
// mode, or take it back. Installs or removes the redirect rules inside the pod's namespace, so it
// runs as root, as istio-cni's node agent does.
import { ErrorCodes, MeshError } from "../../core/errors/index.ts";
import { DEFAULT_POD_SOCKET, addPod, podRequest, removePod } from "../../core/ztunnel/index.ts";
import { noPositionals, parseFlags, requireFlag } from "../flags.ts";
import { helpFor } from "../help.ts";

const SPEC = {
  uid: { type: "string" },
  netns: { type: "string" },
  socket: { type: "string" },
} as const;

export async function runPod(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h") {
    process.stdout.write(helpFor("pod"));
    return sub === undefined ? 2 : 0;
  }
  const cmd = `mesh pod ${sub}`;
  const { flags, positionals } = parseFlags(cmd, rest, SPEC);
  if (flags.help) {
    process.stdout.write(helpFor("pod"));
    return 0;
  }
  noPositionals(cmd, positionals);
  const socketPath = flags.socket ?? DEFAULT_POD_SOCKET;
  switch (sub) {
    case "add": {
      const uid = requireFlag(cmd, "uid", flags.uid);
      const netns = requireFlag(cmd, "netns", flags.netns);
      if (process.getuid?.() !== 0) throw new MeshError(ErrorCodes.FLAG_INVALID, `'${cmd}' installs redirect rules in the pod's network namespace and must run as root`);
      process.stdout.write(`${await addPod({ socketPath, uid, netns })}\n`);
      return 0;
    }
    case "remove": {
      const uid = requireFlag(cmd, "uid", flags.uid);
      if (process.getuid?.() !== 0) throw new MeshError(ErrorCodes.FLAG_INVALID, `'${cmd}' removes redirect rules from the pod's network namespace and must run as root`);
      process.stdout.write(`${await removePod({ socketPath, uid, ...(flags.netns ? { netns: flags.netns } : {}) })}\n`);
      return 0;
    }
    case "list": {
      const r = await podRequest(socketPath, { op: "list" });
      for (const p of r.pods ?? []) process.stdout.write(`${p.uid}\t${p.netns}\t${p.served ? "served" : "not served"}\n`);
      return 0;
    }
    default:
      throw new MeshError(ErrorCodes.FLAG_INVALID, `unknown pod command ${JSON.stringify(sub)}: use add, remove or list (see 'mesh pod --help')`);
  }
}
