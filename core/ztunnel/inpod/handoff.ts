// The `mesh pod add|remove` side of the hand-off: install or remove the redirect rules in the
// pod's namespace and tell the ztunnel. Add asks the ztunnel first (so "no ztunnel" and "unknown
// uid" change nothing), then installs the rules, then hands the pod over; if the ztunnel refuses,
// the rules come out again. Rules first, as istio-cni does: until the ztunnel serves the pod, its
// traffic is refused rather than sent around the mesh.
import { existsSync } from "node:fs";
import { ErrorCodes, MeshError } from "../../errors/index.ts";
import { podRequest } from "./protocol.ts";
import { installRedirectRules, removeRedirectRules } from "./rules.ts";

export async function addPod(opts: { socketPath: string; uid: string; netns: string }): Promise<string> {
  if (!existsSync(opts.netns)) throw new MeshError(ErrorCodes.NETNS_FAILED, `network namespace ${opts.netns} does not exist`);
  await podRequest(opts.socketPath, { op: "check", uid: opts.uid });
  const { alreadyInstalled } = await installRedirectRules(opts.netns);
  try {
    const r = await podRequest(opts.socketPath, { op: "add", uid: opts.uid, netns: opts.netns });
    return r.message ?? `serving ${opts.uid}`;
  } catch (e) {
    if (!alreadyInstalled) await removeRedirectRules(opts.netns).catch(() => {});
    throw e;
  }
}

/**
 * Stops the ztunnel serving `uid` and removes the rules from its namespace. With `netns`, also
 * cleans a pod the ztunnel no longer knows (dropped at a restart, or no ztunnel running): the
 * rules are removed from that namespace all the same.
 */
export async function removePod(opts: { socketPath: string; uid: string; netns?: string }): Promise<string> {
  let served: { netns: string } | undefined;
  try {
    const list = await podRequest(opts.socketPath, { op: "list" });
    served = list.pods?.find((p) => p.uid === opts.uid);
  } catch (e) {
    if (!opts.netns) throw e;
  }
  if (!served && !opts.netns) throw new MeshError(ErrorCodes.POD_UNKNOWN_WORKLOAD, `pod ${opts.uid} is not served by the ztunnel on ${opts.socketPath} (give --netns to remove its rules anyway)`);
  if (served) await podRequest(opts.socketPath, { op: "remove", uid: opts.uid });
  const netns = served?.netns ?? opts.netns!;
  // The namespace may be gone already (pod deleted): then so are its rules.
  if (existsSync(netns)) await removeRedirectRules(netns);
  return served ? `${opts.uid} left the mesh; ${netns} has plain networking again` : `${opts.uid} was not served by the ztunnel; redirect rules removed from ${netns}`;
}
