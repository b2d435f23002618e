// Running `mesh` commands (source or compiled binary) as a user would, and building the binary.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { meshCommand } from "./mesh.ts";

const REPO = resolve(import.meta.dir, "../..");

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `mesh ARGS` to completion (killed after `timeoutMs`). */
export async function runMesh(args: readonly string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const proc = Bun.spawn([...meshCommand(), ...args], {
    cwd: opts.cwd ?? REPO,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Lines that look like a JavaScript stack frame ("    at f (file.ts:1:2)"). */
export function stackFrames(text: string): string[] {
  return text.split("\n").filter((l) => /^\s+at\s.*(:\d+:\d+\)?|\(native\))$/.test(l));
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (!e.name.endsWith(".test.ts")) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Makes sure `dist/mesh` exists and is not older than the sources it is built from (cmd, core,
 * examples, plugins), building it as `npm run build` does when needed. The build goes to a
 * temporary file that is renamed into place, so a concurrent user never sees half a binary.
 * Returns the path, or the reason the build failed.
 */
export async function ensureBinary(): Promise<{ path: string } | { error: string }> {
  const out = join(REPO, "dist/mesh");
  const sources = ["cmd", "core", "examples", "plugins"].map((d) => join(REPO, d)).filter((d) => existsSync(d));
  const newest = Math.max(...sources.map(newestSource), statSync(join(REPO, "package.json")).mtimeMs);
  if (existsSync(out) && statSync(out).mtimeMs >= newest) return { path: out };
  mkdirSync(join(REPO, "dist"), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  const proc = Bun.spawn(
    [process.execPath, "build", "--compile", "--minify", "--bytecode", "--format=esm", "cmd/mesh.ts", "wasm/vm-worker.ts", "--outfile", tmp],
    { cwd: REPO, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0 || !existsSync(tmp)) {
    rmSync(tmp, { force: true });
    return { error: `bun build exited ${code}:\n${stderr || stdout}` };
  }
  renameSync(tmp, out);
  return { path: out };
}
