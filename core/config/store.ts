// StateStore: one MeshState per named source (the local file now, Istio xDS later) and the merged
// view the roles read.
//
// Merge rule: the union of all sources. When two sources define the same resource key (workload
// uid, service `namespace/hostname`, policy `namespace/name`) the source with the higher
// precedence supplies it whole; resources are never merged field by field. Precedence: the
// names passed to the constructor, in that order, then any other source in the order it was
// first set. Replacing a source's state keeps its rank. Index conflicts between different keys
// (two uids on one address, two services on one VIP) follow buildMeshState's rules, with the
// higher-precedence source's entries listed first.

import type { AuthorizationPolicy, MeshState, Service, Workload } from "./model.ts";
import { EMPTY_MESH_STATE, buildMeshState } from "./state.ts";

export type StateListener = (next: MeshState, prev: MeshState) => void;

export class StateStore {
  private readonly sources = new Map<string, MeshState>();
  private readonly listeners = new Set<StateListener>();
  private merged: MeshState = EMPTY_MESH_STATE;

  constructor(private readonly precedence: readonly string[] = []) {}

  /** Installs or replaces a source's state and notifies subscribers. */
  setSource(name: string, state: MeshState): void {
    if (this.sources.get(name) === state) return;
    this.sources.set(name, state);
    this.recompute();
  }

  removeSource(name: string): void {
    if (!this.sources.delete(name)) return;
    this.recompute();
  }

  /** Source names, highest precedence first. */
  sourceNames(): readonly string[] {
    return this.ranked().map(([n]) => n);
  }

  /** The state one source supplied, if any (for config_dump). */
  source(name: string): MeshState | undefined {
    return this.sources.get(name);
  }

  current(): MeshState {
    return this.merged;
  }

  /**
   * Calls `fn(next, prev)` after every change of the merged view. All listeners run even if
   * one throws; the first error is rethrown afterwards (the new state is in place either way).
   */
  subscribe(fn: StateListener): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  private ranked(): [string, MeshState][] {
    const rank = (n: string) => {
      const i = this.precedence.indexOf(n);
      return i < 0 ? this.precedence.length : i;
    };
    // Map iteration is insertion order, and sort is stable: unlisted sources keep first-set order.
    return [...this.sources].sort(([a], [b]) => rank(a) - rank(b));
  }

  private recompute(): void {
    const prev = this.merged;
    const ranked = this.ranked();
    let next: MeshState;
    if (ranked.length === 0) next = EMPTY_MESH_STATE;
    else if (ranked.length === 1) next = ranked[0]![1];
    else {
      const workloads = new Map<string, Workload>();
      const services = new Map<string, Service>();
      const policies = new Map<string, AuthorizationPolicy>();
      for (const [, s] of ranked) {
        for (const [k, v] of s.workloads) if (!workloads.has(k)) workloads.set(k, v);
        for (const [k, v] of s.services) if (!services.has(k)) services.set(k, v);
        for (const [k, v] of s.policies) if (!policies.has(k)) policies.set(k, v);
      }
      next = buildMeshState({ workloads: [...workloads.values()], services: [...services.values()], policies: [...policies.values()] });
    }
    this.merged = next;
    if (next === prev) return;
    let firstError: unknown;
    let failed = false;
    for (const fn of [...this.listeners]) {
      try {
        fn(next, prev);
      } catch (e) {
        if (!failed) firstError = e;
        failed = true;
      }
    }
    if (failed) throw firstError;
  }
}
