import { beforeAll, describe, expect, test } from "bun:test";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import {
  backoffDelay,
  BACKOFF_INITIAL_MS,
  BACKOFF_MAX_MS,
  CertificateManager,
  createLocalCa,
  refreshAt,
  type CertificateAuthority,
  type IdentityLogLevel,
  type IssueSvidRequest,
  type LocalCa,
  type Svid,
} from "./index.ts";

const ID = "spiffe://cluster.local/ns/default/sa/app";
const HOUR = 3600_000;

/** A real local CA that can be switched into failing, counting what it was asked. */
class FlakyCa implements CertificateAuthority {
  failing = false;
  calls = 0;
  last: Promise<Svid> | undefined;
  constructor(readonly inner: LocalCa) {}
  get trustDomain() {
    return this.inner.trustDomain;
  }
  get trustBundle() {
    return this.inner.trustBundle;
  }
  issueWorkloadSvid(req: IssueSvidRequest): Promise<Svid> {
    this.calls++;
    this.last = this.failing ? Promise.reject(new Error("CA unreachable")) : this.inner.issueWorkloadSvid(req);
    return this.last;
  }
  /** Resolves once the manager has handled the latest issue's outcome (its handlers run first). */
  async settled(): Promise<void> {
    await this.last?.catch(() => {});
  }
}

/** Timers the test fires by hand. */
class ManualTimers {
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  #next = 1;
  set = (fn: () => void, ms: number): unknown => {
    const id = this.#next++;
    this.pending.set(id, { fn, ms });
    return id;
  };
  clear = (h: unknown): void => {
    this.pending.delete(h as number);
  };
  /** The single pending timer. */
  only(): { id: number; ms: number; fire: () => void } {
    expect(this.pending.size).toBe(1);
    const [id, t] = [...this.pending.entries()][0]!;
    return {
      id,
      ms: t.ms,
      fire: () => {
        this.pending.delete(id);
        t.fn();
      },
    };
  }
}

interface LogLine {
  level: IdentityLogLevel;
  msg: string;
  fields?: Record<string, unknown>;
}

let localCa: LocalCa;
beforeAll(async () => {
  localCa = await createLocalCa();
});

function manual(ca: CertificateAuthority, lifetimeMs = HOUR) {
  let clock = Date.now();
  const timers = new ManualTimers();
  const logs: LogLine[] = [];
  const m = new CertificateManager(ca, {
    lifetimeMs,
    log: (level, msg, fields) => logs.push({ level, msg, ...(fields ? { fields } : {}) }),
    now: () => clock,
    setTimer: timers.set,
    clearTimer: timers.clear,
    random: () => 0.5, // no jitter: delays are exact
  });
  return {
    m,
    timers,
    logs,
    setClock: (t: number) => {
      clock = t;
    },
  };
}

describe("CertificateManager", () => {
  test("rotates at half-life with a real timer: new serial, onRotate fires", async () => {
    const m = new CertificateManager(localCa, { lifetimeMs: 2000, log: () => {} });
    try {
      const first = await m.ensure(ID);
      const rotated = new Promise<[string, Svid]>((resolve) => m.onRotate((id, svid) => resolve([id, svid])));
      const [id, second] = await rotated;
      expect(id).toBe(ID);
      expect(second.serial).not.toBe(first.serial);
      expect(m.get(ID)).toBe(second);
      expect(m.snapshot()).toEqual([
        { identity: ID, state: "Available", serialNumber: second.serial, validFrom: second.notBefore.toISOString(), expirationTime: second.notAfter.toISOString() },
      ]);
    } finally {
      m.stop();
    }
  });

  test("concurrent ensure() calls share one issue", async () => {
    const ca = new FlakyCa(localCa);
    const { m } = manual(ca);
    const all = await Promise.all(Array.from({ length: 5 }, () => m.ensure(ID)));
    expect(ca.calls).toBe(1);
    for (const s of all) expect(s).toBe(all[0]!);
    expect(await m.ensure(ID)).toBe(all[0]!);
    expect(ca.calls).toBe(1);
    m.stop();
  });

  test("schedules rotation at notBefore + (notAfter - notBefore) / 2", async () => {
    const ca = new FlakyCa(localCa);
    const { m, timers } = manual(ca);
    const svid = await m.ensure(ID);
    const t = timers.only();
    expect(Math.abs(t.ms - (refreshAt(svid) - Date.now()))).toBeLessThan(5_000);
    expect(t.ms).toBeGreaterThan(HOUR / 2 - 2 * 60_000);
    expect(t.ms).toBeLessThan(HOUR / 2);
    m.stop();
    expect(timers.pending.size).toBe(0);
  });

  test("a failing rotation backs off exponentially while the old certificate is served", async () => {
    const ca = new FlakyCa(localCa);
    const { m, timers, logs, setClock } = manual(ca);
    const rotations: Svid[] = [];
    m.onRotate((_, s) => rotations.push(s));
    const old = await m.ensure(ID);
    setClock(refreshAt(old));
    ca.failing = true;

    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      timers.only().fire();
      await ca.settled();
      delays.push(timers.only().ms);
      // still serving the previous certificate
      expect(m.get(ID)).toBe(old);
      expect(await m.ensure(ID)).toBe(old);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 150000, 150000, 150000]);
    expect(ca.calls).toBe(13);
    const snap = m.snapshot()[0]!;
    expect(snap.state).toBe("Available");
    expect(snap.serialNumber).toBe(old.serial);
    expect(snap.lastError).toContain("CA unreachable");
    expect(logs.filter((l) => l.msg === "workload certificate issue failed").every((l) => l.level === "warn" && l.fields?.servingPrevious === true)).toBe(true);
    expect(rotations).toEqual([]);

    ca.failing = false;
    timers.only().fire();
    await ca.settled();
    const fresh = m.get(ID)!;
    expect(fresh.serial).not.toBe(old.serial);
    expect(rotations).toEqual([fresh]);
    expect(m.snapshot()[0]).not.toHaveProperty("lastError");
    // back to a half-life schedule
    expect(timers.only().ms).toBeGreaterThan(HOUR / 4);
    m.stop();
  });

  test("once the old certificate expires it is no longer served, and ensure() fails fast", async () => {
    const ca = new FlakyCa(localCa);
    const { m, timers, setClock } = manual(ca);
    const old = await m.ensure(ID);
    ca.failing = true;
    setClock(refreshAt(old));
    timers.only().fire();
    await ca.settled();

    setClock(old.notAfter.getTime() + 1);
    expect(m.get(ID)).toBeUndefined();
    expect(m.snapshot()[0]!.state).toBe("Unavailable: CA unreachable");
    const callsBefore = ca.calls;
    const e = await m.ensure(ID).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(MeshError);
    expect((e as MeshError).code).toBe(ErrorCodes.CERT_UNAVAILABLE);
    expect(ca.calls).toBe(callsBefore); // the scheduled retry does the asking
    m.stop();
  });

  test("a failed first issue is Unavailable, retried in the background, then Available", async () => {
    const ca = new FlakyCa(localCa);
    ca.failing = true;
    const { m, timers, logs } = manual(ca);
    const e = await m.ensure(ID).catch((err: unknown) => err);
    expect((e as MeshError).code).toBe(ErrorCodes.CERT_UNAVAILABLE);
    expect(m.snapshot()).toEqual([{ identity: ID, state: "Unavailable: CA unreachable", serialNumber: null, validFrom: null, expirationTime: null }]);
    expect(logs.at(-1)?.level).toBe("error");
    await expect(m.ensure(ID)).rejects.toThrow(/CA unreachable/);
    expect(ca.calls).toBe(1);

    ca.failing = false;
    const retry = timers.only();
    expect(retry.ms).toBe(BACKOFF_INITIAL_MS);
    retry.fire();
    const inFlight = m.ensure(ID); // joins the retry in flight
    expect(m.snapshot()[0]!.state).toBe("Unavailable: CA unreachable");
    const svid = await inFlight;
    expect(ca.calls).toBe(2);
    expect(m.get(ID)).toBe(svid);
    expect(m.snapshot()[0]!.state).toBe("Available");
    m.stop();
  });

  test("snapshot shows Initializing while the first issue is in flight, and never key material", async () => {
    const ca = new FlakyCa(localCa);
    const { m } = manual(ca);
    const p = m.ensure(ID);
    expect(m.snapshot()[0]!.state).toBe("Initializing");
    await p;
    const text = JSON.stringify(m.snapshot());
    expect(text).not.toContain("PRIVATE KEY");
    expect(text).not.toContain("BEGIN");
    expect(Object.keys(m.snapshot()[0]!).sort()).toEqual(["expirationTime", "identity", "serialNumber", "state", "validFrom"]);
    m.stop();
  });

  test("forget() cancels the rotation and drops a result still in flight", async () => {
    const ca = new FlakyCa(localCa);
    const { m, timers } = manual(ca);
    await m.ensure(ID);
    expect(timers.pending.size).toBe(1);
    m.forget(ID);
    expect(timers.pending.size).toBe(0);
    expect(m.get(ID)).toBeUndefined();
    expect(m.snapshot()).toEqual([]);

    const p = m.ensure(ID);
    m.forget(ID);
    await p; // the caller still gets its certificate
    expect(m.snapshot()).toEqual([]);
    expect(timers.pending.size).toBe(0);
  });

  test("stop() clears timers and refuses further work; bad input is refused", async () => {
    const ca = new FlakyCa(localCa);
    const { m, timers } = manual(ca);
    await m.ensure(ID);
    await m.ensure("spiffe://cluster.local/ns/default/sa/other");
    expect(timers.pending.size).toBe(2);
    m.stop();
    expect(timers.pending.size).toBe(0);
    await expect(m.ensure(ID)).rejects.toThrow(/stopped/);

    const { m: m2 } = manual(ca);
    await expect(m2.ensure("spiffe://cluster.local/a/../b")).rejects.toThrow(MeshError);
    await expect(m2.ensure("spiffe://other.domain/ns/a/sa/b")).rejects.toThrow(/trust domain/);
    expect(() => new CertificateManager(ca, { lifetimeMs: 0, log: () => {} })).toThrow(MeshError);
    m2.stop();
  });

  test("trustBundle() is the CA's", () => {
    const { m } = manual(localCa);
    expect(m.trustBundle()).toBe(localCa.trustBundle);
  });
});

describe("backoffDelay", () => {
  test("doubles from 0.5 s to a 150 s cap, jitter within ±20 %", () => {
    expect(backoffDelay(1, () => 0.5)).toBe(500);
    expect(backoffDelay(2, () => 0.5)).toBe(1000);
    expect(backoffDelay(1, () => 0)).toBe(400);
    expect(backoffDelay(1, () => 0.999999)).toBe(600);
    expect(backoffDelay(40, () => 0.999999)).toBe(BACKOFF_MAX_MS);
    expect(backoffDelay(40, () => 0)).toBe(BACKOFF_MAX_MS * 0.8);
  });
});
