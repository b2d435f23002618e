// Drain: what every role does on SIGTERM or /quitquitquit once it stopped accepting and sent
// GOAWAY — wait for open connections to finish, but never past the deadline.

/** Resolves when `remaining()` reaches 0 or the deadline passes; returns how many were left. */
export async function waitForDrain(opts: { deadlineMs: number; remaining: () => number; pollMs?: number }): Promise<number> {
  const deadline = Date.now() + opts.deadlineMs;
  while (opts.remaining() > 0 && Date.now() < deadline) await Bun.sleep(opts.pollMs ?? 25);
  return opts.remaining();
}

/** What a role supplies to drain: how to stop accepting, what is still open, how to close. */
export interface RoleDrainSteps {
  readonly deadlineMs: number;
  readonly log: { info(msg: string, fields?: Record<string, unknown>): void };
  /** logged with "draining" (what is open) */
  readonly fields: Record<string, unknown>;
  /** stop accepting, GOAWAY, ask keep-alive connections to close after their request */
  stopAccepting(): void;
  remaining(): number;
  /** the deadline passed with `forced` still open: close them */
  onDeadline?(forced: number): void;
  shutdown(): Promise<void>;
  onExit?(code: number): void;
}

/** The drain every role runs: stop accepting, wait up to the deadline, close the rest, exit 0. */
export async function drainRole(d: RoleDrainSteps): Promise<number> {
  d.log.info("draining", { ...d.fields, deadlineMs: d.deadlineMs });
  d.stopAccepting();
  const forced = await waitForDrain({ deadlineMs: d.deadlineMs, remaining: () => d.remaining() });
  if (forced > 0) d.onDeadline?.(forced);
  await d.shutdown();
  d.log.info("drained", { forced });
  d.onExit?.(0);
  return 0;
}
