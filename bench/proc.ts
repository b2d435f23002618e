// Process and /proc helpers shared by the orchestrator and the path adapters (Linux only).

import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { Subprocess } from "bun";

let clockTicks: number | undefined;

/** Kernel clock ticks per second (`getconf CLK_TCK`), used to turn /proc/<pid>/stat times into seconds. */
export function clkTck(): number {
  if (clockTicks !== undefined) return clockTicks;
  const out = Bun.spawnSync(["getconf", "CLK_TCK"], { stdout: "pipe", stderr: "ignore" });
  const v = Number.parseInt(out.stdout.toString().trim(), 10);
  clockTicks = Number.isFinite(v) && v > 0 ? v : 100;
  return clockTicks;
}

/**
 * utime + stime in seconds of a process (all its threads), or of one of its threads when `tid` is
 * given; NaN when it is gone.
 */
export function cpuSeconds(pid: number, tid?: number): number {
  try {
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, "utf8");
    // The command name (field 2) may contain spaces; fields after the last ')' are positional.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state); utime/stime are fields 14/15.
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return (utime + stime) / clkTck();
  } catch {
    return Number.NaN;
  }
}

export function totalCpuSeconds(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) sum += cpuSeconds(pid);
  return sum;
}

/** VmRSS of a process in KiB, or NaN when it is gone. */
export function rssKiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Number of open file descriptors of a process, or NaN when it is gone. */
export function openFdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

/** Soft and hard RLIMIT_NOFILE of this process, read from /proc/self/limits. */
export function nofileLimits(): { soft: number; hard: number } {
  try {
    const text = readFileSync("/proc/self/limits", "utf8");
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
    const parse = (s: string | undefined): number => (s === "unlimited" ? 1 << 30 : Number(s));
    if (m) return { soft: parse(m[1]), hard: parse(m[2]) };
  } catch {
    // fall through
  }
  return { soft: 1024, hard: 1024 };
}

/**
 * Command prefix that raises the child's soft fd limit to the hard limit before exec, so
 * 10 000-connection runs work even when the parent was started with a low soft limit.
 * `exec` keeps the pid, so the pid Bun.spawn returns is the real child's.
 */
export function withRaisedNofile(cmd: readonly string[]): string[] {
  const { soft, hard } = nofileLimits();
  if (soft >= hard) return [...cmd];
  return ["sh", "-c", 'ulimit -n "$0" 2>/dev/null; exec "$@"', String(hard), ...cmd];
}

/** Is something listening on host:port (IPv4)? Reads /proc/net/tcp instead of connecting, so no proxy sees a probe. */
export function isListening(host: string, port: number): boolean {
  const octets = host.split(".").map((o) => Number(o));
  if (octets.length !== 4) return false;
  const hex = (n: number, w: number) => n.toString(16).toUpperCase().padStart(w, "0");
  // The kernel prints the address as a host-order u32 (little endian on x86/arm64).
  const addr = [...octets].reverse().map((o) => hex(o, 2)).join("");
  const want = `${addr}:${hex(port, 4)}`;
  const anyAddr = `00000000:${hex(port, 4)}`;
  let text = "";
  try {
    text = readFileSync("/proc/net/tcp", "utf8");
  } catch {
    return false;
  }
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[3] === "0A" && (f[1] === want || f[1] === anyAddr)) return true;
  }
  return false;
}

export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  alive?: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < 100_000; i++) {
    if (await check()) return;
    const dead = alive?.();
    if (dead) throw new Error(`${what}: ${dead}`);
    await Bun.sleep(50);
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms`);
}

/** A free TCP port on host (bind to port 0 and release). Racy in principle; fine on per-run loopback addresses. */
export function freePort(host: string): number {
  const l = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** Random third octet so concurrent runs (and other engineers' tests) rarely share addresses. */
export function randomOctet(): number {
  return 1 + Math.floor(Math.random() * 250);
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Only ever signals the given child. */
export async function stopChild(child: Subprocess | undefined, graceMs = 3000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const done = await Promise.race([child.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
  if (!done) {
    child.kill("SIGKILL");
    await Promise.race([child.exited, Bun.sleep(2000)]);
  }
}

export function tailFile(path: string, lines = 20): string {
  if (!existsSync(path)) return "";
  const text = readFileSync(path, "utf8");
  return text.split("\n").slice(-lines).join("\n");
}

/** Reason a child has died, for readiness loops; undefined while it runs. */
export function deathReason(child: Subprocess, logPath?: string): string | undefined {
  if (child.exitCode === null && child.signalCode === null) return undefined;
  const tail = logPath ? tailFile(logPath, 15) : "";
  return `exited (code ${child.exitCode ?? "-"}, signal ${child.signalCode ?? "-"})${tail ? `\n${tail}` : ""}`;
}
