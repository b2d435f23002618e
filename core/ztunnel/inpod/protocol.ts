// The pod hand-off protocol on the ztunnel's unix socket (our stand-in for istio-cni's ZDS,
// reference/ztunnel.md §8): one JSON object per line each way, one answer per request.
import { ErrorCodes, MeshError, isMeshError, type ErrorCode } from "../../errors/index.ts";
import { requestUnixLine } from "../../net/index.ts";

export const DEFAULT_POD_SOCKET = "/var/run/mesh/ztunnel.sock";

export type PodRequest =
  | { readonly op: "add"; readonly uid: string; readonly netns: string }
  | { readonly op: "remove"; readonly uid: string }
  /** is `uid` a workload this ztunnel could serve? (asked before rules are installed) */
  | { readonly op: "check"; readonly uid: string }
  | { readonly op: "list" };

export type PodResponse =
  | { readonly ok: true; readonly message?: string; readonly pods?: readonly { uid: string; netns: string; served: boolean }[] }
  | { readonly ok: false; readonly code: ErrorCode; readonly error: string };

const CODES = new Set<string>(Object.values(ErrorCodes));

/** Parses one request line; throws FLAG_INVALID naming what is wrong. */
export function parsePodRequest(line: string): PodRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new MeshError(ErrorCodes.FLAG_INVALID, "pod request is not JSON");
  }
  const o = v as Record<string, unknown>;
  if (!o || typeof o !== "object") throw new MeshError(ErrorCodes.FLAG_INVALID, "pod request must be a JSON object");
  const uid = o.uid;
  const needUid = () => {
    if (typeof uid !== "string" || uid === "" || uid.length > 1024) throw new MeshError(ErrorCodes.FLAG_INVALID, "pod request needs a non-empty \"uid\"");
    return uid;
  };
  switch (o.op) {
    case "add": {
      const netns = o.netns;
      if (typeof netns !== "string" || !netns.startsWith("/") || netns.length > 4096) throw new MeshError(ErrorCodes.FLAG_INVALID, "pod add needs \"netns\", an absolute path");
      return { op: "add", uid: needUid(), netns };
    }
    case "remove":
      return { op: "remove", uid: needUid() };
    case "check":
      return { op: "check", uid: needUid() };
    case "list":
      return { op: "list" };
    default:
      throw new MeshError(ErrorCodes.FLAG_INVALID, `unknown pod request op ${JSON.stringify(o.op)}`);
  }
}

export function errorResponse(e: unknown): PodResponse {
  if (isMeshError(e)) return { ok: false, code: e.code, error: e.message };
  return { ok: false, code: ErrorCodes.INTERNAL, error: e instanceof Error ? e.message : String(e) };
}

/** Sends one request to the ztunnel at `socketPath`; a failure answer becomes a thrown MeshError. */
export async function podRequest(socketPath: string, req: PodRequest, timeoutMs = 30_000): Promise<PodResponse & { ok: true }> {
  let line: string;
  try {
    line = await requestUnixLine(socketPath, JSON.stringify(req), timeoutMs);
  } catch (e) {
    throw new MeshError(ErrorCodes.POD_SOCKET_UNAVAILABLE, `no ztunnel answers on ${socketPath}: ${(e as Error).message}`, { cause: e });
  }
  let resp: PodResponse;
  try {
    resp = JSON.parse(line) as PodResponse;
  } catch {
    throw new MeshError(ErrorCodes.INTERNAL, `the ztunnel on ${socketPath} answered something that is not JSON`);
  }
  if (!resp.ok) {
    const code = CODES.has(resp.code) ? resp.code : ErrorCodes.INTERNAL;
    throw new MeshError(code, resp.error);
  }
  return resp;
}
