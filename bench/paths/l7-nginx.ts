// The L7 stand-in peer: nginx as an HTTP/1.1 reverse proxy with keep-alive upstream connections
// (shared/reference/perf.md §2.4 and §4 `nginx-proxy.conf`), run in the foreground from a temporary
// config: `daemon off; master_process off; worker_processes 1;` — one process, so its pid is the
// one whose CPU is read. access_log off (nginx's usual benchmark setting; the waypoint, by
// contrast, logs every request at its default log level).
//
// When nginx is missing and we are root, `apt-get install -y nginx-light` (then `nginx`, with an
// `apt-get update` first if needed) runs non-interactively; otherwise start() throws
// PathUnavailable and the column says why.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { deathReason, freePort, isListening, stopChild, waitFor, withRaisedNofile } from "../proc.ts";
import type { L7Handle, L7Path } from "./l7-types.ts";
import { PathUnavailable, type AppEndpoint } from "./types.ts";

export interface L7NginxPathOptions {
  log: (line: string) => void;
  /** Address nginx listens on (a fresh 127.x address). */
  host: string;
  install: boolean;
  keepWorkDir: boolean;
}

const CANDIDATES = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx", "/usr/bin/nginx"];

function findNginx(): string | undefined {
  const onPath = Bun.which("nginx");
  if (onPath) return onPath;
  return CANDIDATES.find((p) => existsSync(p));
}

async function run(cmd: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [o, e, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, out: `${o}${e}` };
}

let installAttempt: Promise<string> | undefined;

/** The nginx binary, installing it from the OS packages when allowed. Throws PathUnavailable otherwise. */
export function ensureNginx(opts: Pick<L7NginxPathOptions, "log" | "install">): Promise<string> {
  const found = findNginx();
  if (found) return Promise.resolve(found);
  installAttempt ??= (async () => {
    if (!opts.install) throw new PathUnavailable("nginx is not installed (--no-install)");
    if (process.getuid?.() !== 0) throw new PathUnavailable("nginx is not installed and this is not root (install nginx-light or nginx)");
    if (!Bun.which("apt-get")) throw new PathUnavailable("nginx is not installed and there is no apt-get");
    const env = ["env", "DEBIAN_FRONTEND=noninteractive"];
    const install = (pkg: string) => run([...env, "apt-get", "install", "-y", "-q", "--no-install-recommends", pkg], 300_000);
    let last = { code: 0, out: "" };
    for (const refresh of [false, true]) {
      if (refresh) {
        opts.log("apt-get install failed; running apt-get update first");
        await run([...env, "apt-get", "update", "-q"], 300_000);
      }
      for (const pkg of ["nginx-light", "nginx"]) {
        opts.log(`nginx not found: apt-get install -y ${pkg}`);
        last = await install(pkg);
        const bin = findNginx();
        if (bin) return bin;
      }
    }
    const tail = last.out.trim().split("\n").slice(-4).join(" / ");
    throw new PathUnavailable(`nginx is not installed and apt-get could not install nginx-light or nginx (exit ${last.code}): ${tail}`);
  })();
  return installAttempt;
}

function nginxConfig(dir: string, listen: string, app: AppEndpoint): string {
  return `# bench/paths/l7-nginx.ts: L7 stand-in peer (reverse proxy, keep-alive upstream)
daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 4096; }
http {
  access_log off;
  tcp_nodelay on;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path ${join(dir, "body")};
  proxy_temp_path ${join(dir, "proxy")};
  upstream app { server ${app.host}:${app.port}; keepalive 64; keepalive_requests 10000000; }
  server {
    listen ${listen};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

export function createL7NginxPath(opts: L7NginxPathOptions): L7Path {
  let child: Subprocess | undefined;
  let workDir: string | undefined;
  return {
    name: "nginx",
    async start(app: AppEndpoint): Promise<L7Handle> {
      const bin = await ensureNginx(opts);
      const version = (await run([bin, "-v"], 10_000)).out.match(/nginx\/(\S+)/)?.[1] ?? "?";
      workDir = mkdtempSync(join(tmpdir(), "bench-l7-nginx-"));
      const port = freePort(opts.host);
      const conf = join(workDir, "nginx.conf");
      writeFileSync(conf, nginxConfig(workDir, `${opts.host}:${port}`, app));
      const logPath = join(workDir, "stderr.log");
      // -e: the early error log, before the config is read (nginx ≥ 1.19.5); -p: relative paths.
      child = Bun.spawn(withRaisedNofile([bin, "-p", workDir, "-e", join(workDir, "early-error.log"), "-c", conf]), {
        stdin: "ignore",
        stdout: Bun.file(logPath),
        stderr: Bun.file(logPath),
      });
      const c = child;
      await waitFor(`nginx on ${opts.host}:${port}`, () => isListening(opts.host, port), 10_000, () => deathReason(c, logPath));
      opts.log(`nginx ${version} ready (pid ${c.pid})`);
      return {
        entry: { kind: "tcp", host: opts.host, port },
        authority: `${app.host}:${app.port}`,
        procs: [{ role: "nginx", label: "nginx", pid: c.pid }],
        notes: [`nginx ${version} (${bin}): daemon off; master_process off; worker_processes 1; access_log off; upstream keepalive 64, proxy_http_version 1.1, Connection ""`],
      };
    },
    async stop(): Promise<void> {
      await stopChild(child);
      child = undefined;
      if (workDir && !opts.keepWorkDir) rmSync(workDir, { recursive: true, force: true });
      workDir = undefined;
    },
  };
}
