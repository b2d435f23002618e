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

  test("moduleCpuNs: the CPU since the first check, only once there were two", () => {
    const b = new CallbackBudget();
    b.begin(100);
    b.check();
    spin(3);
    expect(b.moduleCpuNs()).toBe(0);
    b.check();
    const ns = b.moduleCpuNs();
    expect(ns).toBeGreaterThan(2.5e6);
    expect(ns).toBeLessThan(50e6);
  });
});

describe("CallbackBudget on given clocks", () => {
  test("from the first check on, only CPU time counts", () => {
    let wall = 0;
    let cpu = 0;
    const b = new CallbackBudget(() => cpu, () => wall);
    b.begin(10);
    wall = 4e6; // before the first check (at most FUEL_PER_CHECK iterations in): not counted
    b.check();
    wall = 30e6; // 26 ms more, 9 of it on the CPU
    cpu = 9e6;
    expect(() => b.check()).not.toThrow();
    wall = 31.5e6; // 1 ms more of work: 10 ms used
    cpu = 10e6;
    expect(() => b.check()).toThrow("callback exceeded its 10 ms CPU-time budget");
  });

  test("a new callback starts from zero", () => {
    let wall = 0;
    let cpu = 0;
    const b = new CallbackBudget(() => cpu, () => wall);
    b.begin(10);
    b.check();
    wall = cpu = 9e6;
    b.check();
    b.begin(10);
    wall = cpu = 18e6;
    expect(() => b.check()).not.toThrow();
  });

  test("without a CPU clock the budget is wall time", () => {
    let wall = 0;
    const b = new CallbackBudget(null, () => wall);
    b.begin(10);
    b.check();
    wall = 10.5e6;
    expect(() => b.check()).toThrow(BudgetExceeded);
    expect(b.moduleCpuNs()).toBe(0);
  });
});
