// Multi-process test harness: a CA, a config file and one real ztunnel process per node, each
// workload on its own 127.x address. Runs `bun cmd/mesh.ts` by default, or the compiled binary
// when MESH_BIN is set (the suite runs both).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { initLocalCa } from "../../core/identity/index.ts";

const REPO = resolve(import.meta.dir, "../..");

/** The command that runs `mesh`: the compiled binary if MESH_BIN is set, else bun + source. */
export function meshCommand(): string[] {
  const bin = process.env.MESH_BIN;
  if (bin) return [resolve(REPO, bin)];
  return [process.execPath, join(REPO, "cmd/mesh.ts")];
}

let subnetCounter = 0;
/**
 * A /24 of loopback addresses for one test, distinct across tests in this process and (by pid)
 * across concurrently running suites: "127.A.B." — append the host byte.
 */
export function allocSubnet(): string {
  subnetCounter++;
  const a = 100 + (process.pid % 100);
  return `127.${a}.${subnetCounter % 250}.`;
}

export interface LogRecord {
  [key: string]: unknown;
  level?: string;
  scope?: string;
  msg?: string;
}

export class ZtunnelProcess {
  readonly records: LogRecord[] = [];
  readonly stderrText: string[] = [];
  ports = { admin: 0, metrics: 0, readiness: 0 };
  private waiters: { pred: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }[] = [];
  readonly exited: Promise<number>;

  constructor(
    readonly node: string,
    readonly proc: Subprocess<"ignore", "pipe", "pipe">,
  ) {
    this.exited = proc.exited;
    void this.readLogs();
  }

  private async readLogs(): Promise<void> {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of this.proc.stderr as unknown as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        this.stderrText.push(line);
        let rec: LogRecord;
        try {
          rec = JSON.parse(line) as LogRecord;
        } catch {
          continue;
        }
        this.records.push(rec);
        if (rec.msg === "ztunnel started") {
          this.ports = { admin: Number(String(rec.admin).split(":").pop()), metrics: Number(rec.metrics), readiness: Number(rec.readiness) };
        }
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(rec)) return true;
          w.resolve(rec);
          return false;
        });
      }
    }
  }

  /** Resolves with the first log record (past or future) matching `pred`. */
  waitForLog(pred: (r: LogRecord) => boolean, timeoutMs = 10_000): Promise<LogRecord> {
    const found = this.records.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolveRec, reject) => {
      const w = { pred, resolve: (r: LogRecord) => (clearTimeout(t), resolveRec(r)) };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`${this.node}: no log record matched within ${timeoutMs} ms; last lines:\n${this.stderrText.slice(-10).join("\n")}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  accessRecords(direction?: "inbound" | "outbound"): LogRecord[] {
    return this.records.filter((r) => r.scope === "access" && (!direction || r.direction === direction));
  }

  async waitReady(timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    // A process that dies at start-up (bad flag, port in use) prints one non-JSON line and exits.
    const died = this.exited.then(async (code) => {
      await Bun.sleep(50); // let the last stderr lines arrive
      throw new Error(`${this.node} exited ${code} during start-up:\n${this.stderrText.slice(-20).join("\n")}`);
    });
    died.catch(() => {});
    await Promise.race([this.waitForLog((r) => r.msg === "ztunnel started" || r.level === "error", timeoutMs), died]);
    while (Date.now() < until) {
      if (this.proc.exitCode !== null) throw new Error(`${this.node} exited ${this.proc.exitCode}:\n${this.stderrText.join("\n")}`);
      try {
        const r = await fetch(`http://127.0.0.1:${this.ports.readiness}/healthz/ready`);
        if (r.status === 200) return;
      } catch {
        // not up yet
      }
      await Bun.sleep(25);
    }
    throw new Error(`${this.node} not ready after ${timeoutMs} ms:\n${this.stderrText.slice(-20).join("\n")}`);
  }

  async configDump(): Promise<Record<string, any>> {
    const r = await fetch(`http://127.0.0.1:${this.ports.admin}/config_dump`);
    return (await r.json()) as Record<string, any>;
  }

  async metricsText(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.ports.metrics}/metrics`)).text();
  }

  /** POST /quitquitquit on the admin port (starts a drain). */
  async quit(): Promise<Response> {
    return fetch(`http://127.0.0.1:${this.ports.admin}/quitquitquit`, { method: "POST" });
  }

  /** The exit code, or undefined if the process is still running after `timeoutMs`. */
  async exitWithin(timeoutMs: number): Promise<number | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)));
    const code = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    return code;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  signal(sig: NodeJS.Signals = "SIGTERM"): void {
    if (this.proc.exitCode === null) this.proc.kill(sig);
  }

  async stop(): Promise<number> {
    this.signal("SIGTERM");
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 15_000);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}

export interface MeshOptions {
  /** YAML of the istio/ztunnel local config */
  config: string;
  nodes: readonly string[];
  env?: Record<string, string>;
  trustDomain?: string;
  /** an existing CA directory to reuse (faster than a new one per test) */
  caDir?: string;
  extraArgs?: Record<string, string[]>;
}

export class TestMesh {
  readonly ztunnels = new Map<string, ZtunnelProcess>();
  constructor(
    readonly dir: string,
    readonly caDir: string,
    readonly configPath: string,
  ) {}

  static async start(opts: MeshOptions): Promise<TestMesh> {
    const dir = mkdtempSync(join(tmpdir(), "mesh-test-"));
    const caDir = opts.caDir ?? join(dir, "ca");
    if (!opts.caDir) await initLocalCa(caDir, { trustDomain: opts.trustDomain ?? "cluster.local" });
    const configPath = join(dir, "config.yaml");
    writeFileSync(configPath, opts.config);
    const mesh = new TestMesh(dir, caDir, configPath);
    try {
      for (const node of opts.nodes) mesh.ztunnels.set(node, mesh.spawn(node, opts));
      await Promise.all([...mesh.ztunnels.values()].map((z) => z.waitReady()));
    } catch (e) {
      await mesh.stop();
      throw e;
    }
    return mesh;
  }

  spawn(node: string, opts: Pick<MeshOptions, "env" | "extraArgs">, configPath = this.configPath): ZtunnelProcess {
    const proc = Bun.spawn(
      [
        ...meshCommand(),
        "--role", "ztunnel",
        "--config", configPath,
        "--node", node,
        "--ca-dir", this.caDir,
        "--admin-port", "0",
        "--metrics-port", "0",
        "--readiness-port", "0",
        ...(opts.extraArgs?.[node] ?? []),
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, MESH_LOG_LEVEL: "debug", ...opts.env } },
    );
    return new ZtunnelProcess(node, proc);
  }

  z(node: string): ZtunnelProcess {
    const z = this.ztunnels.get(node);
    if (!z) throw new Error(`no ztunnel for ${node}`);
    return z;
  }

  updateConfig(yaml: string): void {
    // write-then-rename, as editors and config management do
    const tmp = `${this.configPath}.tmp`;
    writeFileSync(tmp, yaml);
    require("node:fs").renameSync(tmp, this.configPath);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.ztunnels.values()].map((z) => z.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
