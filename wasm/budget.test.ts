// The callback budget is the VM thread's CPU time: waiting (preempted, blocked) does not use it,
// working does; without a CPU clock it falls back to wall time.
import { describe, expect, test } from "bun:test";
import { cpuClock } from "../core/os/index.ts";
import { CallbackBudget } from "./budget.ts";
import { BudgetExceeded } from "./traps.ts";

const threadCpu = cpuClock("thread")!;
/** Works until this thread has used `ms` more of CPU (however long that takes on a busy machine). */
const spin = (ms: number) => {
  const end = threadCpu() + ms * 1e6;
  while (threadCpu() < end);
};
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

describe("CallbackBudget on this thread's real clocks", () => {
  test("20 ms blocked (no CPU) leaves a 5 ms budget intact; 6 ms of work then exhausts it", () => {
    const b = new CallbackBudget();
    b.begin(5);
    b.check();
    sleep(20);
    expect(() => b.check()).not.toThrow();
    spin(6);
    expect(() => b.check()).toThrow(BudgetExceeded);
  });

  test("moduleCpuNs: what the budget counted, 0 for a callback that never took a baseline", () => {
    const b = new CallbackBudget();
    b.begin(100);
    b.check();
    expect(b.moduleCpuNs()).toBe(0); // a short callback: no clock read at all
    for (let i = 0; i < 30; i++) {
      spin(0.1); // a module reaches a check every FUEL_PER_CHECK iterations
      b.check();
    }
    const ns = b.moduleCpuNs();
    expect(ns).toBeGreaterThan(2.5e6);
    expect(ns).toBeLessThan(50e6);
  });
});

describe("CallbackBudget on given clocks", () => {
  const clocks = () => {
    const c = { wall: 0, cpu: 0, reads: 0 };
    const b = new CallbackBudget(
      () => (c.reads++, c.cpu),
      () => c.wall,
    );
    return { c, b };
  };

  test("checks in the first 250 µs read no CPU clock", () => {
    const { c, b } = clocks();
    b.begin(5);
    for (let i = 0; i < 10; i++) {
      c.wall += 20_000;
      b.check();
    }
    expect(c.reads).toBe(0);
    expect(b.moduleCpuNs()).toBe(0);
  });

  test("a preemption before the baseline costs at most 250 µs; after it only CPU counts", () => {
    const { c, b } = clocks();
    b.begin(10);
    c.wall = 30e6; // preempted for 30 ms before the first check
    c.cpu = 0.1e6;
    expect(() => b.check()).not.toThrow(); // baseline here: 0.25 ms counted
    c.wall = 60e6; // 30 ms more, 9.5 of it on the CPU: 9.75 ms used
    c.cpu = 9.6e6;
    expect(() => b.check()).not.toThrow();
    c.wall = 61e6; // 0.25 ms more of work: 10 ms used
    c.cpu = 9.85e6;
    expect(() => b.check()).toThrow("callback exceeded its 10 ms CPU-time budget");
  });

  test("a spinning callback is stopped at its budget", () => {
    const { c, b } = clocks();
    b.begin(5);
    let stoppedAt = 0;
    try {
      for (;;) {
        c.wall += 50_000;
        c.cpu += 50_000;
        b.check();
      }
    } catch (e) {
      expect(e).toBeInstanceOf(BudgetExceeded);
      stoppedAt = c.wall;
    }
    expect(stoppedAt).toBeGreaterThanOrEqual(5e6);
    expect(stoppedAt).toBeLessThanOrEqual(5.1e6);
  });

  test("a new callback starts from zero", () => {
    const { c, b } = clocks();
    b.begin(10);
    c.wall = c.cpu = 9e6;
    b.check();
    b.begin(10);
    c.wall = c.cpu = 18e6;
    expect(() => b.check()).not.toThrow();
  });

  test("without a CPU clock the budget is wall time", () => {
    let wall = 0;
    const b = new CallbackBudget(null, () => wall);
    b.begin(10);
    b.check();
    wall = 10.5e6;
    expect(() => b.check()).toThrow(BudgetExceeded);
  });
});
