// Command-line plumbing shared by the harness's entry points (run.ts, l7.ts) and their child
// processes (load.ts, paths/l7-load.ts): integer flags, path lists, usage on a bad flag, and the
// main wrapper that stops children on Ctrl-C.

/** parseArgs option entries for string-valued flags (`{ name: { type: "string" } }` per name). */
export function stringFlags<const K extends string>(...names: K[]): Record<K, { type: "string" }> {
  return Object.fromEntries(names.map((n) => [n, { type: "string" }])) as Record<K, { type: "string" }>;
}

/**
 * An integer flag of at least `min`: `dflt` when absent (required when `dflt` is undefined).
 * Throws with the flag's name on anything else.
 */
export function intArg(text: string | undefined, name: string, dflt?: number, min = 0): number {
  if (text === undefined) {
    if (dflt === undefined) throw new Error(`--${name} is required`);
    return dflt;
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new Error(`--${name} must be ${min === 1 ? "a positive integer" : min === 0 ? "a non-negative integer" : `an integer ≥ ${min}`}, got "${text}"`);
  }
  return n;
}

/** `--only a,b`: the named subset of `all`, in `all`'s order (all of it when the flag is absent). */
export function parseOnly<T extends string>(text: string | undefined, all: readonly T[]): T[] {
  if (text === undefined) return [...all];
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!all.includes(n as T)) throw new Error(`--only: unknown path "${n}" (known: ${all.join(", ")})`);
  const only = all.filter((p) => names.includes(p));
  if (only.length === 0) throw new Error("--only selects no path");
  return only;
}

/**
 * Parses argv with `parse`; on `--help` prints the usage and returns 0, on a bad flag prints the
 * message and the usage and returns 2 (the exit code), else the options.
 */
export function parseCli<T>(parse: (argv: string[]) => T | "help", usage: string, argv = process.argv.slice(2)): T | number {
  let o: T | "help";
  try {
    o = parse(argv);
  } catch (e) {
    console.error(`${(e as Error).message}\n${usage}`);
    return 2;
  }
  if (o === "help") {
    console.log(usage);
    return 0;
  }
  return o;
}

/**
 * Runs an entry point's `main` and exits with its code (1 after an uncaught error). On SIGINT or
 * SIGTERM, `stop(signal)` ends the children this run started, then the process exits 130.
 */
export function runMain(main: () => Promise<number>, stop: (signal: string) => Promise<void>): void {
  const onSignal = (sig: string) => void stop(sig).then(() => process.exit(130));
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  main()
    .then((code) => process.exit(code))
    .catch((e: unknown) => {
      console.error(e);
      process.exit(1);
    });
}
