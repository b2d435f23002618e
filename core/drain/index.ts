// Drain: what every role does on SIGTERM or /quitquitquit once it stopped accepting and sent
// GOAWAY — wait for open connections to finish, but never past the deadline.

/** Resolves when `remaining()` reaches 0 or the deadline passes; returns how many were left. */
export async function waitForDrain(opts: { deadlineMs: number; remaining: () => number; pollMs?: number }): Promise<number> {
  const deadline = Date.now() + opts.deadlineMs;
  while (opts.remaining() > 0 && Date.now() < deadline) await Bun.sleep(opts.pollMs ?? 25);
  return opts.remaining();
}
