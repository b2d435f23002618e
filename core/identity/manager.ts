// The certificate manager: one certificate per workload identity, issued on first use, rotated at
// half-life, retried with backoff on failure while the previous certificate keeps being served
// until it expires (reference/ztunnel.md §3.3).
import { MeshError, ErrorCodes, asMeshError } from "../errors/index.ts";
import type { CertificateAuthority, Svid } from "./ca.ts";
import type { TrustBundle } from "./bundle.ts";
import { parseSpiffeId } from "./spiffe.ts";

export type IdentityLogLevel = "debug" | "info" | "warn" | "error";
export type IdentityLog = (level: IdentityLogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface CertificateManagerOptions {
  /** requested lifetime of each workload certificate */
  readonly lifetimeMs: number;
  readonly log: IdentityLog;
  /** wall clock in ms (tests) */
  readonly now?: () => number;
  /** timer seam (tests) */
  readonly setTimer?: (fn: () => void, ms: number) => unknown;
  readonly clearTimer?: (handle: unknown) => void;
  /** uniform [0,1) source for backoff jitter (tests) */
  readonly random?: () => number;
}

export interface CertificateSnapshot {
  readonly identity: string;
  /** "Available" | "Initializing" | "Unavailable: <err>" as istio/ztunnel's config_dump */
  readonly state: string;
  readonly serialNumber: string | null;
  readonly validFrom: string | null;
  readonly expirationTime: string | null;
  /** the last rotation error while an older certificate is still being served */
  readonly lastError?: string;
}

export type RotateListener = (identity: string, svid: Svid) => void;

export const BACKOFF_INITIAL_MS = 500;
export const BACKOFF_MAX_MS = 150_000;
const BACKOFF_JITTER = 0.2;
/** setTimeout's ceiling; longer waits are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Rotation never fires sooner than this after an issue, so a CA handing out odd lifetimes cannot spin us. */
const MIN_ROTATE_DELAY_MS = 250;

interface Entry {
  readonly identity: string;
  svid: Svid | undefined;
  inFlight: Promise<Svid> | undefined;
  lastError: MeshError | undefined;
  failures: number;
  timer: unknown;
}

/** Entries are keyed by canonical id; the common already-canonical case skips the parser. */
function canonical(identity: string): string {
  if (identity.startsWith("spiffe://")) return identity;
  try {
    return parseSpiffeId(identity).uri;
  } catch {
    return identity; // not an id, so never a key: lookups simply miss
  }
}

/** Rotation time: half way between notBefore and notAfter. */
export function refreshAt(svid: Pick<Svid, "notBefore" | "notAfter">): number {
  const nb = svid.notBefore.getTime();
  return nb + (svid.notAfter.getTime() - nb) / 2;
}

/** Delay before retry number `failures` (1-based): 0.5 s doubling to 150 s, ±20 % jitter. */
export function backoffDelay(failures: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** Math.max(0, failures - 1));
  return Math.min(BACKOFF_MAX_MS, Math.round(base * (1 + BACKOFF_JITTER * (2 * random() - 1))));
}

export class CertificateManager {
  readonly #ca: CertificateAuthority;
  readonly #lifetimeMs: number;
  readonly #log: IdentityLog;
  readonly #now: () => number;
  readonly #setTimer: (fn: () => void, ms: number) => unknown;
  readonly #clearTimer: (handle: unknown) => void;
  readonly #random: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #listeners = new Set<RotateListener>();
  #stopped = false;

  constructor(ca: CertificateAuthority, opts: CertificateManagerOptions) {
    if (!Number.isFinite(opts.lifetimeMs) || opts.lifetimeMs <= 0) {
      throw new MeshError(ErrorCodes.CONFIG_INVALID, `certificate lifetime must be a positive number of milliseconds, got ${opts.lifetimeMs}`);
    }
    this.#ca = ca;
    this.#lifetimeMs = opts.lifetimeMs;
    this.#log = opts.log;
    this.#now = opts.now ?? Date.now;
    this.#setTimer =
      opts.setTimer ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref?.(); // a pending rotation alone must not keep the process alive
        return t;
      });
    this.#clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.#random = opts.random ?? Math.random;
  }

  /**
   * The certificate for `identity`, issuing it on first use. Concurrent callers share one issue.
   * While the identity has no valid certificate and its last attempt failed, this fails fast with
   * CERT_UNAVAILABLE (a retry is already scheduled) rather than hammering the CA.
   */
  async ensure(identity: string): Promise<Svid> {
    if (this.#stopped) throw new MeshError(ErrorCodes.CERT_UNAVAILABLE, "certificate manager is stopped");
    const id = parseSpiffeId(identity).uri;
    let entry = this.#entries.get(id);
    if (!entry) {
      entry = { identity: id, svid: undefined, inFlight: undefined, lastError: undefined, failures: 0, timer: undefined };
      this.#entries.set(id, entry);
    }
    if (entry.svid && this.#valid(entry.svid)) return entry.svid;
    if (entry.inFlight) return entry.inFlight;
    if (entry.lastError && entry.timer !== undefined) {
      throw new MeshError(ErrorCodes.CERT_UNAVAILABLE, `no certificate for ${id}: ${entry.lastError.message}`, { cause: entry.lastError });
    }
    return this.#issue(entry);
  }

  /** The current, unexpired certificate, if any. */
  get(identity: string): Svid | undefined {
    const svid = this.#entries.get(canonical(identity))?.svid;
    return svid && this.#valid(svid) ? svid : undefined;
  }

  /** Stops managing `identity`; an issue in flight completes but its result is dropped. */
  forget(identity: string): void {
    const entry = this.#entries.get(canonical(identity));
    if (!entry) return;
    this.#cancelTimer(entry);
    this.#entries.delete(entry.identity);
  }

  /** Called after each rotation (not the first issue) with the new certificate. Returns an unsubscribe. */
  onRotate(listener: RotateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  trustBundle(): TrustBundle {
    return this.#ca.trustBundle;
  }

  snapshot(): CertificateSnapshot[] {
    return [...this.#entries.values()]
      .sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0))
      .map((e) => {
        const svid = e.svid;
        const valid = svid !== undefined && this.#valid(svid);
        let state: string;
        if (valid) state = "Available";
        else if (e.lastError) state = `Unavailable: ${e.lastError.message}`;
        else if (svid) state = e.inFlight ? "Initializing" : `Unavailable: certificate expired at ${svid.notAfter.toISOString()}`;
        else state = "Initializing";
        return {
          identity: e.identity,
          state,
          serialNumber: svid?.serial ?? null,
          validFrom: svid?.notBefore.toISOString() ?? null,
          expirationTime: svid?.notAfter.toISOString() ?? null,
          ...(valid && e.lastError ? { lastError: e.lastError.message } : {}),
        };
      });
  }

  /** Cancels every scheduled rotation and retry; later ensure() calls fail. */
  stop(): void {
    this.#stopped = true;
    for (const e of this.#entries.values()) this.#cancelTimer(e);
  }

  #valid(svid: Svid): boolean {
    return this.#now() < svid.notAfter.getTime();
  }

  #current(entry: Entry): boolean {
    return !this.#stopped && this.#entries.get(entry.identity) === entry;
  }

  #cancelTimer(entry: Entry): void {
    if (entry.timer !== undefined) this.#clearTimer(entry.timer);
    entry.timer = undefined;
  }

  #schedule(entry: Entry, at: number): void {
    this.#cancelTimer(entry);
    if (!this.#current(entry)) return;
    const delay = Math.max(0, at - this.#now());
    if (delay > MAX_TIMER_MS) {
      entry.timer = this.#setTimer(() => {
        entry.timer = undefined;
        this.#schedule(entry, at);
      }, MAX_TIMER_MS);
      return;
    }
    entry.timer = this.#setTimer(() => {
      entry.timer = undefined;
      if (!this.#current(entry) || entry.inFlight) return;
      // Background work: failures are recorded on the entry and retried, nobody awaits this.
      this.#issue(entry).catch(() => {});
    }, delay);
  }

  #issue(entry: Entry): Promise<Svid> {
    const started = this.#now();
    const p = this.#ca.issueWorkloadSvid({ identity: entry.identity, lifetimeMs: this.#lifetimeMs, now: new Date(started) }).then(
      (svid) => {
        if (entry.inFlight === p) entry.inFlight = undefined;
        if (!this.#current(entry)) return svid;
        const previous = entry.svid;
        entry.svid = svid;
        entry.failures = 0;
        entry.lastError = undefined;
        this.#schedule(entry, Math.max(refreshAt(svid), this.#now() + MIN_ROTATE_DELAY_MS));
        this.#log("info", previous ? "rotated workload certificate" : "issued workload certificate", {
          identity: entry.identity,
          serial: svid.serial,
          notAfter: svid.notAfter.toISOString(),
        });
        if (previous) {
          for (const l of this.#listeners) {
            try {
              l(entry.identity, svid);
            } catch (e) {
              this.#log("error", "certificate rotation listener failed", { identity: entry.identity, error: String(e) });
            }
          }
        }
        return svid;
      },
      (e: unknown) => {
        if (entry.inFlight === p) entry.inFlight = undefined;
        const err = asMeshError(e, ErrorCodes.CERT_UNAVAILABLE);
        if (this.#current(entry)) {
          entry.failures++;
          entry.lastError = err;
          const delay = backoffDelay(entry.failures, this.#random);
          this.#schedule(entry, this.#now() + delay);
          const serving = entry.svid && this.#valid(entry.svid);
          this.#log(serving ? "warn" : "error", "workload certificate issue failed", {
            identity: entry.identity,
            error: err.message,
            attempt: entry.failures,
            retryInMs: delay,
            servingPrevious: Boolean(serving),
          });
        }
        throw new MeshError(ErrorCodes.CERT_UNAVAILABLE, `cannot issue a certificate for ${entry.identity}: ${err.message}`, { cause: err });
      },
    );
    entry.inFlight = p;
    return p;
  }
}
