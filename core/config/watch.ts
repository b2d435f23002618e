// Watched files: a file parsed once at start, then reloaded whenever it changes, keeping the
// last good value when a change does not parse. The local config is one; policy files, routes
// and plugin configs use the same mechanism.
//
// The directory is watched, not the file: editors and `kubectl` ConfigMap updates replace the
// file by rename (a new inode), which a watch on the old inode never reports. Any event in the
// directory schedules one debounced reload; a content hash makes no-op writes and unrelated
// files cost one read. A bad change is logged line by line and the last good value stays.

import { createHash } from "node:crypto";
import { existsSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { ErrorCodes, MeshError, asMeshError } from "../errors/index.ts";
import { DEFAULT_MAX_CONFIG_BYTES, decodeConfigText, readConfigBytes, readConfigBytesSync } from "./file.ts";
import type { LoadedConfig } from "./load.ts";
import { parseLocalConfig } from "./load.ts";
import type { StateStore } from "./store.ts";

export type ConfigLog = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

export interface WatchedFileOptions {
  /** Quiet period after the last event before reloading (default 100 ms). */
  readonly debounceMs?: number;
  /** Files larger than this are refused (default 32 MiB). */
  readonly maxBytes?: number;
  /** Delay before re-creating a failed directory watch (default 1000 ms). */
  readonly rewatchMs?: number;
  /** What the file is, in log lines ("config", "policy file", ...). */
  readonly kind?: string;
}

/** Kept for callers of the config source; same options. */
export interface FileConfigSourceOptions extends WatchedFileOptions {
  /** Name of the source in the store (default "file"). */
  readonly sourceName?: string;
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export class WatchedFile<T> {
  readonly path: string;
  private readonly debounceMs: number;
  private readonly maxBytes: number;
  private readonly rewatchMs: number;
  private readonly kind: string;
  private watcher: FSWatcher | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private rewatchTimer: ReturnType<typeof setTimeout> | undefined;
  private lastHash: string | undefined;
  private good: T | undefined;
  private reloading = false;
  private pending = false;
  private stopped = true;
  private missingLogged = false;
  private firstEventAt = 0;
  private readonly counters = { checks: 0, reloads: 0, rejected: 0, unchanged: 0 };

  private parse: (text: string, path: string) => T;
  private decode: (data: Uint8Array, path: string) => string = decodeConfigText;

  constructor(
    path: string,
    parse: (text: string, path: string) => T,
    /** Called with the first value (initial = true) and every later good one. */
    private readonly onValue: (value: T, initial: boolean) => void,
    private readonly log: ConfigLog,
    opts: WatchedFileOptions = {},
  ) {
    this.parse = parse;
    this.path = path;
    this.debounceMs = opts.debounceMs ?? 100;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_CONFIG_BYTES;
    this.rewatchMs = opts.rewatchMs ?? 1000;
    this.kind = opts.kind ?? "config";
  }

  /** A watched binary file (a Wasm module): `parse` gets the bytes, not text. */
  static binary<V>(path: string, parse: (bytes: Uint8Array, path: string) => V, onValue: (value: V, initial: boolean) => void, log: ConfigLog, opts: WatchedFileOptions = {}): WatchedFile<V> {
    let pending: Uint8Array = new Uint8Array(0);
    const f = new WatchedFile<V>(path, (_text, p) => parse(pending, p), onValue, log, opts);
    f.decode = (data) => {
      pending = data;
      return "";
    };
    return f;
  }

  /** The last value that loaded; undefined before start(). */
  lastGood(): T | undefined {
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
   * Loads the file once and hands it over, then starts watching. Throws CONFIG_FILE_MISSING
   * when the file is absent, or the parser's MeshError when it is invalid.
   */
  start(): T {
    if (!this.stopped) throw new MeshError(ErrorCodes.INTERNAL, `watched ${this.kind} file already started`);
    const data = readConfigBytesSync(this.path, this.maxBytes);
    const value = this.parse(this.decode(data, this.path), this.path);
    this.lastHash = sha256(data);
    this.good = value;
    this.onValue(value, true);
    this.stopped = false;
    this.watchDirectory();
    return value;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.rewatchTimer) clearTimeout(this.rewatchTimer);
    this.timer = this.rewatchTimer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private watchDirectory(): void {
    const dir = dirname(resolve(this.path));
    try {
      const name = basename(resolve(this.path));
      this.watcher = watch(dir, { persistent: false }, (_event, file) => {
        // Only our file matters — a log file beside the config must not wake every process on
        // each line. Kubernetes' atomic writer swaps `..data` (the config is a symlink through
        // it), and an event without a name says nothing: both count as ours.
        const f = file == null ? undefined : String(file);
        if (f === undefined || f === name || f.startsWith("..")) this.schedule();
      });
      this.watcher.on("error", (e) => {
        this.log("error", `${this.kind} directory watch failed; retrying`, { file: this.path, error: String(e) });
        this.watcher?.close();
        this.watcher = undefined;
        this.scheduleRewatch();
      });
    } catch (e) {
      this.log("error", `cannot watch the ${this.kind} directory; retrying`, { file: this.path, error: String(e) });
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
    const keep = `keeping the last good ${this.kind}`;
    let data: Uint8Array;
    try {
      data = await readConfigBytes(this.path, this.maxBytes);
    } catch (e) {
      const m = asMeshError(e, ErrorCodes.CONFIG_INVALID);
      if (m.code === ErrorCodes.CONFIG_FILE_MISSING) {
        // Mid-replace, or deleted: either way keep serving the last good value.
        if (!this.missingLogged) this.log("warn", `${this.kind} file is missing; ${keep}`, { file: this.path });
        this.missingLogged = true;
        return;
      }
      this.log("error", `${m.message}; ${keep}`, { file: this.path, code: m.code });
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
    let value: T;
    try {
      value = this.parse(this.decode(data, this.path), this.path);
    } catch (e) {
      const m = asMeshError(e, ErrorCodes.CONFIG_INVALID);
      this.counters.rejected++;
      if (m.code === ErrorCodes.CONFIG_PARSE) {
        // Syntax errors: the details are a source excerpt, which belongs with the message.
        this.log("error", `${m.message}; ${keep}`, { file: this.path, code: m.code, excerpt: m.details });
        return;
      }
      this.log("error", `${m.message}; ${keep}`, { file: this.path, code: m.code });
      for (const d of m.details) this.log("error", d, { file: this.path, code: m.code });
      return;
    }
    this.good = value;
    try {
      this.onValue(value, false);
    } catch (e) {
      // A subscriber failed; the new value is installed regardless (see StateStore.subscribe).
      this.log("error", `a ${this.kind} subscriber failed: ${(e as Error).message}`, { file: this.path });
    }
    this.counters.reloads++;
  }
}

/** The local config file as a StateStore source. */
export class FileConfigSource {
  private readonly file: WatchedFile<LoadedConfig>;
  private readonly sourceName: string;

  constructor(
    path: string,
    private readonly store: StateStore,
    private readonly log: ConfigLog,
    opts: FileConfigSourceOptions = {},
  ) {
    this.sourceName = opts.sourceName ?? "file";
    this.file = new WatchedFile(path, parseLocalConfig, (loaded, initial) => this.apply(loaded, initial), log, { ...opts, kind: opts.kind ?? "config" });
  }

  get path(): string {
    return this.file.path;
  }

  /** The last config that loaded (for config_dump); undefined before start(). */
  lastGood(): LoadedConfig | undefined {
    return this.file.lastGood();
  }

  stats(): Readonly<{ checks: number; reloads: number; rejected: number; unchanged: number }> {
    return this.file.stats();
  }

  start(): LoadedConfig {
    return this.file.start();
  }

  stop(): void {
    this.file.stop();
  }

  private apply(loaded: LoadedConfig, initial: boolean): void {
    for (const w of loaded.warnings) this.log("warn", w, { file: this.path });
    this.store.setSource(this.sourceName, loaded.state);
    if (initial) return;
    const s = loaded.state;
    this.log("info", "config reloaded", { file: this.path, workloads: s.workloads.size, services: s.services.size, policies: s.policies.size });
  }
}
