// The policies in force for a role: the local config's `policies` plus any Kubernetes
// AuthorizationPolicy files, compiled into one engine. A set that cannot be built (e.g. the same
// policy key from two sources) is refused and the last good engine stays in force.
import type { AuthorizationPolicy } from "../config/index.ts";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { PolicyEngine } from "./engine.ts";
import { fromLocalConfig } from "./local.ts";
import type { CompiledPolicy } from "./model.ts";

export interface PolicySetLog {
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export class PolicySet {
  private current: PolicyEngine;
  private localKeys = "";
  private local: CompiledPolicy[] = [];
  /** Kubernetes AuthorizationPolicy documents by file (`--policies`) */
  private readonly files = new Map<string, readonly CompiledPolicy[]>();

  constructor(
    private readonly log: PolicySetLog,
    private readonly rootNamespace = "istio-system",
  ) {
    this.current = new PolicyEngine([], { rootNamespace });
  }

  get engine(): PolicyEngine {
    return this.current;
  }

  /** Rebuilds the engine when the local config's policies changed; returns true if they did. */
  setLocal(policies: Iterable<AuthorizationPolicy>): boolean {
    const list = [...policies];
    const keys = list.map((p) => `${p.key}:${JSON.stringify(p)}`).join("\n");
    if (keys === this.localKeys) return false;
    const compiled: CompiledPolicy[] = [];
    for (const p of list) {
      const c = fromLocalConfig(p);
      for (const w of c.warnings) this.log.warn("authorization policy warning", { policy: c.key, warning: w });
      compiled.push(c);
    }
    const err = this.tryBuild(compiled, this.files);
    if (err) {
      // Fail closed would deny everything; instead the last good policy set stays in force.
      this.log.error("authorization policies rejected; keeping the last good set", { error: err });
      return false;
    }
    this.local = compiled;
    this.localKeys = keys;
    return true;
  }

  /**
   * Replaces the policies loaded from one Kubernetes YAML file. Throws CONFIG_INVALID (and keeps
   * the previous set) when they cannot be combined with the rest, e.g. a duplicate policy key.
   */
  setFile(path: string, policies: readonly CompiledPolicy[]): void {
    for (const p of policies) for (const w of p.warnings) this.log.warn("authorization policy warning", { policy: p.key, source: p.source, warning: w });
    const files = new Map(this.files);
    files.set(path, policies);
    const err = this.tryBuild(this.local, files);
    if (err) throw new MeshError(ErrorCodes.CONFIG_INVALID, `${path}: ${err}`);
    this.files.set(path, policies);
  }

  /** Installs the engine over these sources, or returns why it cannot be built (nothing changes then). */
  private tryBuild(local: readonly CompiledPolicy[], files: ReadonlyMap<string, readonly CompiledPolicy[]>): string | undefined {
    try {
      const all = [...local];
      for (const list of files.values()) all.push(...list);
      this.current = new PolicyEngine(all, {
        rootNamespace: this.rootNamespace,
        onWarning: (msg) => this.log.warn("authorization policy warning", { warning: msg }),
      });
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }
}
