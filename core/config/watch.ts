// FileConfigSource: the local config file as a StateStore source, reloaded when it changes.
//
// The directory is watched, not the file: editors and `kubectl` ConfigMap updates replace the
// file by rename (a new inode), which a watch on the old inode never reports. Any event in the
// directory schedules one debounced reload; a content hash makes no-op writes and unrelated
// files cost one read. A bad change is logged line by line and the last good state stays.

import { createHash } from "node:crypto";
import { existsSync, watch, type FSWatcher } from "node:fs";
import { dirname, resolve } from "node:path";
import { ErrorCodes, MeshError, asMeshError } from "../errors/index.ts";
import { DEFAULT_MAX_CONFIG_BYTES, parseConfigBytes, readConfigBytes, readConfigBytesSync } from "./file.ts";
import type { LoadedConfig } from "./load.ts";
import type { StateStore } from "./store.ts";

export type ConfigLog = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

export interface FileConfigSourceOptions {
  /** Name of the source in the store (default "file"). */
  readonly sourceName?: string;
  /** Quiet period after the last event before reloading (default 100 ms). */
  readonly debounceMs?: number;
  /** Files larger than this are refused (default 32 MiB). */
  readonly maxBytes?: number;
  /** Delay before re-creating a failed directory watch (default 1000 ms). */
  readonly rewatchMs?: number;
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export class FileConfigSource {
  readonly path: string;
  private readonly sourceName: string;
  private readonly debounceMs: number;
  private readonly maxBytes: number;
  private readonly rewatchMs: number;
  private watcher: FSWatcher | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private rewatchTimer: ReturnType<typeof setTimeout> | undefined;
  private lastHash: string | undefined;
  private good: LoadedConfig | undefined;
  private reloading = false;
  private pending = false;
  private stopped = true;
  private missingLogged = false;
  private firstEventAt = 0;
  private readonly counters = { checks: 0, reloads: 0, rejected: 0, unchanged: 0 };

  constructor(
    path: string,
    private readonly store: StateStore,
    private readonly log: ConfigLog,
    opts: FileConfigSourceOptions = {},
  ) {
    this.path = path;
    this.sourceName = opts.sourceName ?? "file";
    this.debounceMs = opts.debounceMs ?? 100;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_CONFIG_BYTES;
    this.rewatchMs = opts.rewatchMs ?? 1000;
  }

  /** The last config that loaded (for config_dump); undefined before start(). */
  lastGood(): LoadedConfig | undefined {
    return this.good;
  }

  /**
   * Counters since start(): `checks` (reads after a change event), `reloads` (new versions
   * applied), `rejected` (new versions that failed to load), `unchanged` (same content).
   */
  stats(): Readonly<{ checks: number; reloads: number; rejected: number; unchanged: number }> {
    return { ...this.counters };
  }

  /**
   * Loads the file once and installs it in the store, then starts watching. Throws
   * CONFIG_FILE_MISSING when the file is absent, or the loader's MeshError when it is invalid.
   */
  start(): LoadedConfig {
    if (!this.stopped) throw new MeshError(ErrorCodes.INTERNAL, "FileConfigSource already started");
    const data = readConfigBytesSync(this.path, this.maxBytes);
    const loaded = parseConfigBytes(data, this.path);
    this.lastHash = sha256(data);
    this.apply(loaded);
    this.stopped = false;
    this.watchDirectory();
    return loaded;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.rewatchTimer) clearTimeout(this.rewatchTimer);
    this.timer = this.rewatchTimer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private apply(loaded: LoadedConfig): void {
    this.good = loaded;
    for (const w of loaded.warnings) this.log("warn", w, { file: this.path });
    this.store.setSource(this.sourceName, loaded.state);
  }

  private watchDirectory(): void {
    const dir = dirname(resolve(this.path));
    try {
      this.watcher = watch(dir, { persistent: false }, () => this.schedule());
      this.watcher.on("error", (e) => {
        this.log("error", "config directory watch failed; retrying", { file: this.path, error: String(e) });
        this.watcher?.close();
        this.watcher = undefined;
        this.scheduleRewatch();
      });
    } catch (e) {
      this.log("error", "cannot watch the config directory; retrying", { file: this.path, error: String(e) });
      this.scheduleRewatch();
    }
  }

  private scheduleRewatch(): void {
    if (this.stopped || this.rewatchTimer) return;
    this.rewatchTimer = setTimeout(() => {
      this.rewatchTimer = undefined;
      if (this.stopped) return;
      if (existsSync(dirname(resolve(this.path)))) {
        this.watchDirectory();
        // Changes made while unwatched are picked up now.
        this.schedule();
      } else this.scheduleRewatch();
    }, this.rewatchMs);
  }

  private schedule(): void {
    if (this.stopped) return;
    const now = Date.now();
    if (this.timer) {
      // A directory that never goes quiet (say, a log file beside the config) must not starve
      // the reload: stop extending the debounce after ten quiet periods.
      if (now - this.firstEventAt >= this.debounceMs * 10) return;
      clearTimeout(this.timer);
    } else this.firstEventAt = now;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reload();
    }, this.debounceMs);
  }

  private async reload(): Promise<void> {
    if (this.reloading) {
      this.pending = true;
      return;
    }
    this.reloading = true;
    try {
      do {
        this.pending = false;
        await this.reloadOnce();
      } while (this.pending && !this.stopped);
    } finally {
      this.reloading = false;
    }
  }

  private async reloadOnce(): Promise<void> {
    this.counters.checks++;
    let data: Uint8Array;
    try {
      data = await readConfigBytes(this.path, this.maxBytes);
    } catch (e) {
      const m = asMeshError(e, ErrorCodes.CONFIG_INVALID);
      if (m.code === ErrorCodes.CONFIG_FILE_MISSING) {
        // Mid-replace, or deleted: either way keep serving the last good state.
        if (!this.missingLogged) this.log("warn", "config file is missing; keeping the last good config", { file: this.path });
        this.missingLogged = true;
        return;
      }
      this.log("error", `${m.message}; keeping the last good config`, { file: this.path, code: m.code });
      return;
    }
    if (this.stopped) return;
    this.missingLogged = false;
    const hash = sha256(data);
    if (hash === this.lastHash) {
      this.counters.unchanged++;
      return;
    }
    this.lastHash = hash;
    let loaded: LoadedConfig;
    try {
      loaded = parseConfigBytes(data, this.path);
    } catch (e) {
      const m = asMeshError(e, ErrorCodes.CONFIG_INVALID);
      this.counters.rejected++;
      if (m.code === ErrorCodes.CONFIG_PARSE) {
        // Syntax errors: the details are a source excerpt, which belongs with the message.
        this.log("error", `${m.message}; keeping the last good config`, { file: this.path, code: m.code, excerpt: m.details });
        return;
      }
      this.log("error", `${m.message}; keeping the last good config`, { file: this.path, code: m.code });
      for (const d of m.details) this.log("error", d, { file: this.path, code: m.code });
      return;
    }
    try {
      this.apply(loaded);
    } catch (e) {
      // A subscriber failed; the new state is installed regardless (see StateStore.subscribe).
      this.log("error", `a config subscriber failed: ${(e as Error).message}`, { file: this.path });
    }
    this.counters.reloads++;
    const s = loaded.state;
    this.log("info", "config reloaded", {
      file: this.path,
      workloads: s.workloads.size,
      services: s.services.size,
      policies: s.policies.size,
    });
  }
}
