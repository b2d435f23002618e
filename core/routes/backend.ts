// Weighted backend choice (Gateway API backendRefs[].weight): a backend is chosen with probability
// weight / sum(weights); weight 0 is never chosen.

import type { BackendRef, RouteRule } from "./model.ts";

/**
 * Picks a backend of the rule. `rand` returns a number in [0, 1) (Math.random, or a seeded
 * generator in tests). Undefined when there is no backend with a positive weight: the caller
 * answers 500, as the spec says for a rule with no usable backend.
 */
export function pickBackend(rule: Pick<RouteRule, "backendRefs">, rand: () => number): BackendRef | undefined {
  let total = 0;
  for (const b of rule.backendRefs) total += b.weight;
  if (total <= 0) return undefined;
  let x = rand() * total;
  let last: BackendRef | undefined;
  for (const b of rule.backendRefs) {
    if (b.weight === 0) continue;
    if (x < b.weight) return b;
    x -= b.weight;
    last = b;
  }
  // Only reached through floating-point rounding at the top of the range.
  return last;
}
