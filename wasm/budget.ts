// The time budget of one callback (a command, or the start sequence), enforced at the module's
// fuel checks (instrument.ts). It is CPU time of the thread running the VM, not wall time: on a
// busy node the process is preempted for milliseconds at a time, and a plugin must not fail a
// request because the waypoint was not scheduled.
//
// Reading the CPU clock is a system call (~0.4 µs), too dear for every phase of every request,
// and wall time bounds CPU time from above. So a callback takes its CPU baseline at the first
// check it reaches once BASELINE_AFTER_NS of wall time have passed — callbacks shorter than that,
// nearly all of them, never read the clock — and the time before the baseline counts as its wall
// time capped at BASELINE_AFTER_NS: a preemption before the baseline costs the plugin at most that.
import { cpuClock } from "../core/os/index.ts";
import { BudgetExceeded } from "./traps.ts";

const BASELINE_AFTER_NS = 250_000;

export class CallbackBudget {
  private budgetMs = 0;
  private budgetNs = 0;
  private startWall = 0;
  private deadlineWall = 0;
  /** When the CPU baseline was taken (0: not yet), and the CPU clock then. */
  private baselineWall = 0;
  private baselineCpu = 0;

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
    this.baselineWall = 0;
  }

  /** At a fuel check: throws BudgetExceeded once the callback has used its budget. */
  check(): void {
    const now = this.wall();
    if (this.baselineWall === 0 && this.cpu !== null && now - this.startWall >= BASELINE_AFTER_NS) {
      this.baselineWall = now;
      this.baselineCpu = this.cpu();
    }
    if (now < this.deadlineWall) return;
    const used = this.usedNs(now);
    if (used >= this.budgetNs) throw new BudgetExceeded(this.budgetMs);
    this.deadlineWall = now + (this.budgetNs - used);
  }

  /**
   * CPU time the callback has used in the module, in ns, as the budget counts it; 0 for a
   * callback that never took a baseline (it ran under BASELINE_AFTER_NS, or reached no check
   * after that: if it took long, that was not the module's doing).
   */
  moduleCpuNs(): number {
    return this.baselineWall === 0 ? 0 : this.usedNs(this.wall());
  }

  private usedNs(now: number): number {
    if (this.cpu === null) return now - this.startWall;
    if (this.baselineWall === 0) return Math.min(now - this.startWall, BASELINE_AFTER_NS);
    return Math.min(this.baselineWall - this.startWall, BASELINE_AFTER_NS) + (this.cpu() - this.baselineCpu);
  }
}
