// Small pieces of the request pipeline that need no request state: which headers clients may not
// send on, Envoy's retry conditions, W3C trace context, header edits over pairs.
import { randomBytes } from "node:crypto";
import type { MeshState, Service } from "../config/index.ts";
import { ErrorCodes, type MeshError } from "../errors/index.ts";
import { applyHeaderEdits, type HeaderOp, type RetryPolicy } from "../routes/index.ts";
import { headerValues, type HeaderPairs } from "./exchange.ts";

/** Identity a client could claim in a header; only the mesh may state these. */
export const UNTRUSTED_PREFIXES = ["x-mesh-", "x-envoy-"];
export const UNTRUSTED = new Set(["x-forwarded-client-cert"]);
export const RESPONSE_HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

/** Retry conditions that apply to failures before any response (Envoy retry_on names). */
export function retriableFailure(err: MeshError, policy: RetryPolicy): boolean {
  const on = policy.retryOn;
  if (err.code === ErrorCodes.UPSTREAM_CONNECT) return on.includes("connect-failure") || on.includes("gateway-error") || on.includes("5xx") || on.includes("reset");
  if (err.code === ErrorCodes.UPSTREAM_RESET) {
    if (err.details.includes("refused-stream") && on.includes("refused-stream")) return true;
    // A kept-alive connection the server closed as we wrote: no byte was processed (Envoy retries these).
    if (err.details.includes("reused")) return true;
    return on.includes("reset") || on.includes("5xx") || on.includes("gateway-error");
  }
  return false;
}

export function retriableStatus(status: number, policy: RetryPolicy): boolean {
  if (policy.codes.includes(status)) return true;
  const on = policy.retryOn;
  if (status >= 500 && on.includes("5xx")) return true;
  if ((status === 502 || status === 503 || status === 504) && on.includes("gateway-error")) return true;
  if (status === 503 && on.includes("unavailable-503")) return true;
  return false;
}

/** W3C trace context: keep the caller's trace, make the waypoint's hop a new span. */
export function nextTraceparent(incoming: string | undefined): string {
  const span = randomBytes(8).toString("hex");
  const m = incoming ? /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(incoming.trim()) : null;
  if (m && !/^0+$/.test(m[1]!) && !/^0+$/.test(m[2]!)) return `00-${m[1]}-${span}-${m[3]}`;
  return `00-${randomBytes(16).toString("hex")}-${span}-01`;
}

export function findService(state: MeshState, namespace: string, name: string): Service | undefined {
  for (const s of state.services.values()) if (s.namespace === namespace && s.name === name) return s;
  return undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Header edits over pairs (names are lower-case). */
export function editPairs(pairs: HeaderPairs, ops: readonly HeaderOp[]): void {
  applyHeaderEdits(
    {
      set(n, v) {
        const k = n.toLowerCase();
        for (let i = pairs.length - 1; i >= 0; i--) if (pairs[i]![0] === k) pairs.splice(i, 1);
        pairs.push([k, v]);
      },
      append(n, v) {
        pairs.push([n.toLowerCase(), v]);
      },
      delete(n) {
        const k = n.toLowerCase();
        for (let i = pairs.length - 1; i >= 0; i--) if (pairs[i]![0] === k) pairs.splice(i, 1);
      },
    },
    ops,
  );
}

export class HeaderMap {
  constructor(private readonly pairs: HeaderPairs) {}
  get(name: string): string | undefined {
    return headerValues(this.pairs, name.toLowerCase());
  }
}

