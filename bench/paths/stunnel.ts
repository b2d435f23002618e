// Stand-in peer: an stunnel mTLS pair, client mode -> server mode, `verify = 2` both ways,
// TLS 1.3 only, ECDSA P-256 certificates from a throwaway CA (reference/perf.md §2, §4).
//
//   load generator -> stunnel client (127.78.X.1:P1) =mTLS=> stunnel server (127.78.X.2:P2) -> app (127.78.X.3)

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { deathReason, freePort, isListening, randomOctet, stopChild, waitFor, withRaisedNofile } from "../proc.ts";
import { PathUnavailable, type AppEndpoint, type BenchPath, type PathHandle } from "./types.ts";

export interface StunnelPathOptions {
  log: (line: string) => void;
  /** Try `apt-get install -y stunnel4` when stunnel is missing (root only). */
  install: boolean;
  keepWorkDir: boolean;
}

interface Run {
  code: number;
  out: string;
}

async function run(cmd: string[], timeoutMs: number, cwd?: string): Promise<Run> {
  const child = Bun.spawn(cmd, { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  const code = await child.exited;
  clearTimeout(timer);
  return { code, out: `${out}${err}` };
}

function findStunnel(): string | undefined {
  // Debian's `stunnel` may be a compatibility wrapper script; `stunnel4` is the binary itself.
  return Bun.which("stunnel4") ?? Bun.which("stunnel") ?? undefined;
}

async function ensureStunnel(opts: StunnelPathOptions): Promise<string> {
  const found = findStunnel();
  if (found) return found;
  if (!opts.install) throw new PathUnavailable("stunnel4 is not installed (install it with `apt-get install -y stunnel4`)");
  if (process.getuid?.() !== 0) throw new PathUnavailable("stunnel4 is not installed and installing it needs root (`apt-get install -y stunnel4`)");
  if (!Bun.which("apt-get")) throw new PathUnavailable("stunnel4 is not installed and there is no apt-get on this machine");
  const install = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "stunnel4"];
  opts.log("stunnel4 not found: apt-get install -y stunnel4");
  let r = await run(install, 300_000);
  if (r.code !== 0) {
    opts.log("apt-get install failed; running apt-get update first");
    await run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-q"], 300_000);
    r = await run(install, 300_000);
  }
  const after = findStunnel();
  if (!after) {
    const tail = r.out.trim().split("\n").slice(-5).join("\n");
    throw new PathUnavailable(`stunnel4 is not installed and \`apt-get install -y stunnel4\` failed (exit ${r.code}):\n${tail}`);
  }
  return after;
}

async function makeCerts(dir: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  const steps: string[][] = [["openssl", "req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bench-ca"]];
  for (const n of ["server", "client"]) {
    writeFileSync(join(dir, `${n}.ext`), `subjectAltName=DNS:${n}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    steps.push(["openssl", "req", ...ec, "-keyout", `${n}.key`, "-out", `${n}.csr`, "-subj", `/CN=${n}`]);
    steps.push(["openssl", "x509", "-req", "-in", `${n}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${n}.crt`, "-days", "2", "-extfile", `${n}.ext`]);
  }
  for (const cmd of steps) {
    const r = await run(cmd, 30_000, dir);
    if (r.code !== 0) throw new Error(`${cmd.slice(0, 3).join(" ")} failed: ${r.out.trim()}`);
  }
}

function stunnelConfig(role: "client" | "server", accept: string, connect: string, dir: string): string {
  return [
    "foreground = yes",
    "pid =",
    "syslog = no",
    // Errors only: the default (notice) logs every connection, which would bill the
    // connection-rate test for log writes.
    "debug = 3",
    `[${role}]`,
    ...(role === "client" ? ["client = yes", "checkHost = server"] : []),
    `accept = ${accept}`,
    `connect = ${connect}`,
    `cert = ${join(dir, `${role}.crt`)}`,
    `key = ${join(dir, `${role}.key`)}`,
    `CAfile = ${join(dir, "ca.crt")}`,
    "verify = 2",
    "sslVersionMin = TLSv1.3",
    "socket = l:TCP_NODELAY=1",
    "socket = r:TCP_NODELAY=1",
    "",
  ].join("\n");
}

export function createStunnelPath(opts: StunnelPathOptions): BenchPath {
  const net = `127.78.${randomOctet()}`;
  const clientHost = `${net}.1`;
  const serverHost = `${net}.2`;
  let children: Subprocess[] = [];
  let workDir: string | undefined;

  return {
    name: "stunnel",
    appHost: `${net}.3`,
    // Each tunnelled connection costs the stunnel client 2 fds (and a thread); keep 10 % headroom.
    idleConnCap: (nofile: number) => Math.max(0, Math.floor(((nofile - 256) / 2) * 0.9)),

    async start(app: AppEndpoint): Promise<PathHandle> {
      const bin = await ensureStunnel(opts);
      const version = (await run([bin, "-version"], 10_000)).out.match(/stunnel\s+(\d+\.\d+)/)?.[1] ?? "?";
      workDir = mkdtempSync(join(tmpdir(), "bench-stunnel-"));
      await makeCerts(workDir);
      const serverPort = freePort(serverHost);
      const clientPort = freePort(clientHost);
      const hops: { role: "server" | "client"; accept: string; connect: string; host: string; port: number }[] = [
        { role: "server", accept: `${serverHost}:${serverPort}`, connect: `${app.host}:${app.port}`, host: serverHost, port: serverPort },
        { role: "client", accept: `${clientHost}:${clientPort}`, connect: `${serverHost}:${serverPort}`, host: clientHost, port: clientPort },
      ];
      const proxies: PathHandle["proxies"] = [];
      for (const hop of hops) {
        const conf = join(workDir, `${hop.role}.conf`);
        const logPath = join(workDir, `${hop.role}.log`);
        writeFileSync(conf, stunnelConfig(hop.role, hop.accept, hop.connect, workDir));
        const child = Bun.spawn(withRaisedNofile([bin, conf]), { stdin: "ignore", stdout: Bun.file(logPath), stderr: Bun.file(logPath) });
        children.push(child);
        await waitFor(`stunnel ${hop.role} on ${hop.accept}`, () => isListening(hop.host, hop.port), 10_000, () => deathReason(child, logPath));
        proxies.push({ role: hop.role, label: `stunnel ${hop.role}`, pid: child.pid });
      }
      return {
        entry: { kind: "tcp", host: clientHost, port: clientPort },
        proxyPids: proxies.map((p) => p.pid),
        proxies,
        notes: [`stunnel ${version} (${bin}), TLS 1.3, ECDSA P-256, verify = 2`],
      };
    },

    async stop(): Promise<void> {
      await Promise.all(children.map((c) => stopChild(c)));
      children = [];
      if (workDir && !opts.keepWorkDir) rmSync(workDir, { recursive: true, force: true });
      workDir = undefined;
    },
  };
}
