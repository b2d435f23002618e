// The pods a ztunnel serves in captured mode (uid -> network namespace path), kept in a small
// state file so a restarted ztunnel re-adopts them without anyone running `mesh pod add` again
// (istio-cni replays its cache for the same reason). Written whole to a temporary file and
// renamed, so a crash never leaves half a file.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export interface PodRecord {
  readonly uid: string;
  readonly netns: string;
  /** when the pod was added (ISO time), for operators */
  readonly addedAt: string;
}

const FILE_VERSION = 1;

export class PodRegistry {
  private readonly pods = new Map<string, PodRecord>();

  constructor(readonly statePath: string) {}

  /** Reads the state file; a missing one is an empty registry, a corrupt one is reported and ignored. */
  load(): { loaded: PodRecord[]; error?: string } {
    if (!existsSync(this.statePath)) return { loaded: [] };
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(this.statePath, "utf8"));
    } catch (e) {
      return { loaded: [], error: `cannot read pod state ${this.statePath}: ${(e as Error).message}` };
    }
    const pods = (parsed as { pods?: unknown }).pods;
    if (!Array.isArray(pods)) return { loaded: [], error: `pod state ${this.statePath} has no "pods" list` };
    for (const p of pods) {
      if (p && typeof p.uid === "string" && typeof p.netns === "string") {
        this.pods.set(p.uid, { uid: p.uid, netns: p.netns, addedAt: typeof p.addedAt === "string" ? p.addedAt : new Date().toISOString() });
      }
    }
    return { loaded: [...this.pods.values()] };
  }

  get(uid: string): PodRecord | undefined {
    return this.pods.get(uid);
  }

  has(uid: string): boolean {
    return this.pods.has(uid);
  }

  list(): PodRecord[] {
    return [...this.pods.values()];
  }

  set(uid: string, netns: string): void {
    this.pods.set(uid, { uid, netns, addedAt: new Date().toISOString() });
    this.save();
  }

  delete(uid: string): boolean {
    const had = this.pods.delete(uid);
    if (had) this.save();
    return had;
  }

  save(): void {
    mkdirSync(dirname(this.statePath), { recursive: true, mode: 0o700 });
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ version: FILE_VERSION, pods: this.list() }, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.statePath);
  }
}
