// The time budget of one callback (a command, or the start sequence), enforced at the module's
// fuel checks (instrument.ts). It is CPU time of the thread running the VM, not wall time: on a
// busy node the process is preempted for milliseconds at a time, and a plugin must not fail a
// request because the waypoint was not scheduled. It is counted from the callback's first check:
// the checks come every FUEL_PER_CHECK iterations, which is the granularity of enforcement
// anyway, and reading the CPU clock at every callback's start would cost ~0.4 µs (a system call)
// on every phase. Wall time bounds the thread's CPU time from above, so the clock is read only at
// the first check and when the wall-clock deadline passes; a callback without a check pays nothing.
import { cpuClock } from "../core/os/index.ts";
import { BudgetExceeded } from "./traps.ts";

export class CallbackBudget {
  private budgetMs = 0;
  private budgetNs = 0;
  private startWall = 0;
  private deadlineWall = 0;
  private checks = 0;
  private cpuAtFirst = 0;

  /** `cpu`: this thread's CPU clock in ns (null: wall time only); `wall`: a monotonic clock in ns. */
  constructor(
    private readonly cpu: (() => number) | null = cpuClock("thread") ?? null,
    private readonly wall: () => number = Bun.nanoseconds,
  ) {}

  /** A callback starts with `budgetMs` of CPU time. */
  begin(budgetMs: number): void {
    this.budgetMs = budgetMs;
    this.budgetNs = budgetMs * 1e6;
    this.startWall = this.wall();
    this.deadlineWall = this.startWall + this.budgetNs;
    this.checks = 0;
  }

  /** At a fuel check: throws BudgetExceeded once the callback has used its budget. */
  check(): void {
    const now = this.wall();
    if (++this.checks === 1 && this.cpu !== null) {
      this.cpuAtFirst = this.cpu();
    }
    if (now < this.deadlineWall) return;
    const used = this.cpu === null ? now - this.startWall : this.cpu() - this.cpuAtFirst;
    if (used >= this.budgetNs) throw new BudgetExceeded(this.budgetMs);
    this.deadlineWall = now + (this.budgetNs - used);
  }

  /**
   * CPU time the callback has spent since its first check, in ns; 0 with fewer than two checks
   * (it ran under FUEL_PER_CHECK iterations of its own: if it took long, that was not the module).
   */
  moduleCpuNs(): number {
    if (this.checks < 2 || this.cpu === null) return 0;
    return this.cpu() - this.cpuAtFirst;
  }
}
