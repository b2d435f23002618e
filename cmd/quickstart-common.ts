// What both quickstarts (loopback and --captured) share: the .mesh/ home, following a ztunnel
// child's log, waiting for the access records of one request, and printing the summary table.
import { createWriteStream, existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { ErrorCodes, MeshError } from "../core/errors/index.ts";
import { initLocalCa } from "../core/identity/index.ts";

/** One JSON log record of a ztunnel child, tagged with its node. */
export interface AccessRecord {
  [k: string]: unknown;
}

/** How to start this same program again as a child (bun + script, or the compiled binary). */
export function selfCommand(): string[] {
  const main = Bun.main;
  return main.startsWith("/$bunfs") || main === process.execPath ? [process.execPath] : [process.execPath, main];
}

/** `.mesh/` in the working directory, with its logs folder and (created on first use) a local CA. */
export async function quickstartHome(): Promise<{ home: string; caDir: string; logDir: string }> {
  const home = resolve(".mesh");
  const caDir = join(home, "ca");
  const logDir = join(home, "logs");
  mkdirSync(logDir, { recursive: true });
  if (!existsSync(join(caDir, "root-cert.pem"))) {
    await initLocalCa(caDir, { trustDomain: "cluster.local" });
    process.stdout.write(`created a local CA in ${caDir}\n`);
  }
  return { home, caDir, logDir };
}

/**
 * Copies a ztunnel child's stderr to `logPath` and appends its access records (tagged with `node`)
 * to `access`. Resolves when the child logs "ztunnel started"; rejects if its stderr ends first.
 */
export function followZtunnelLog(stderr: ReadableStream<Uint8Array>, node: string, logPath: string, access: AccessRecord[]): Promise<void> {
  const file = createWriteStream(logPath);
  const started = new Promise<void>((resolveStarted, reject) => {
    void (async () => {
      let pending = "";
      const decoder = new TextDecoder();
      for await (const chunk of stderr as unknown as AsyncIterable<Uint8Array>) {
        file.write(chunk);
        pending += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          try {
            const rec = JSON.parse(line) as AccessRecord;
            if (rec.msg === "ztunnel started") resolveStarted();
            if (rec.scope === "access") access.push({ ...rec, node });
          } catch {
            // not JSON; kept in the log file
          }
        }
      }
      file.end();
      reject(new MeshError(ErrorCodes.INTERNAL, `the ztunnel of ${node} exited during start-up (see ${logPath})`));
    })();
  });
  started.catch(() => {}); // a caller that waits on readiness instead never awaits it
  return started;
}

/**
 * The access records of the demo request: node-a's outbound and node-b's inbound. Each arrives
 * when its side sees the connection close, so wait up to `timeoutMs` for both.
 */
export async function demoAccessRecords(access: readonly AccessRecord[], timeoutMs: number): Promise<{ outbound: AccessRecord | undefined; inbound: AccessRecord | undefined }> {
  const until = Date.now() + timeoutMs;
  let outbound: AccessRecord | undefined;
  let inbound: AccessRecord | undefined;
  while (Date.now() < until && !(outbound && inbound)) {
    outbound = access.find((r) => r.node === "node-a" && r.direction === "outbound" && !r.error);
    inbound = access.find((r) => r.node === "node-b" && r.direction === "inbound" && !r.error);
    if (!(outbound && inbound)) await Bun.sleep(50);
  }
  return { outbound, inbound };
}

/** The summary rows both sides of the tunnel know: identities and TLS (inbound first), bytes (outbound). */
export function tunnelRows(outbound: AccessRecord | undefined, inbound: AccessRecord | undefined): [string, string][] {
  return [
    ["source identity", String(inbound?.["src.identity"] ?? outbound?.["src.identity"] ?? "-")],
    ["destination identity", String(inbound?.["dst.identity"] ?? outbound?.["dst.identity"] ?? "-")],
    ["TLS", String(inbound?.["tls_version"] ?? outbound?.["tls_version"] ?? "-")],
    ["bytes client -> server", String(outbound?.["bytes_sent"] ?? "-")],
    ["bytes server -> client", String(outbound?.["bytes_recv"] ?? "-")],
  ];
}

/** "<status line> | <body>" of a raw HTTP/1.1 response; `fallback` stands in for an empty status line. */
export function responseRow(response: string, fallback = ""): [string, string] {
  const firstLine = response.split("\r\n")[0] || fallback;
  const bodyLine = response.split("\r\n\r\n")[1]?.trim() ?? "";
  return ["response", `${firstLine} | ${bodyLine}`];
}

export function printRows(rows: readonly (readonly [string, string])[]): void {
  const w = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(`\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join("\n")}\n`);
}

/** Resolves at the first SIGINT or SIGTERM. */
export function untilStopSignal(): Promise<void> {
  return new Promise<void>((resolveSignal) => {
    process.once("SIGINT", () => resolveSignal());
    process.once("SIGTERM", () => resolveSignal());
  });
}
