// Foreign functions (proxy_call_foreign_function) the host registers, as Envoy does for the ones
// that apply to a waypoint: `compress` / `uncompress` (zlib format, as zlib's compress()/uncompress()),
// and `clear_route_cache` (routes are matched after the request's plugins: nothing left to do).
// Envoy's others (CEL expressions, declare_property, set_envoy_filter_state, sign,
// verify_signature) are not registered here: NOT_FOUND.
import { deflateSync, inflateSync } from "node:zlib";

export type ForeignResult = { readonly ok: true; readonly bytes: Uint8Array } | { readonly ok: false; readonly why: "not_found" | "bad_argument" };

const EMPTY = new Uint8Array(0);

/** Runs foreign function `name`; `maxBytes` bounds what uncompress may produce. */
export function callForeign(name: string, args: Uint8Array, maxBytes: number): ForeignResult {
  switch (name) {
    case "compress":
      return { ok: true, bytes: new Uint8Array(deflateSync(args)) };
    case "uncompress":
      try {
        return { ok: true, bytes: new Uint8Array(inflateSync(args, { maxOutputLength: maxBytes })) };
      } catch {
        return { ok: false, why: "bad_argument" }; // not zlib data, or larger than the buffer bound
      }
    case "clear_route_cache":
      return { ok: true, bytes: EMPTY };
    default:
      return { ok: false, why: "not_found" };
  }
}
