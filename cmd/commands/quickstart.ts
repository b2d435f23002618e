// `mesh quickstart`: a two-node mesh on loopback addresses, no root needed. Starts two ztunnel
// processes and an echo app, sends traffic through the mesh, and shows what crossed.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import quickstartYaml from "../../examples/quickstart.yaml" with { type: "text" };
import { MeshError, ErrorCodes } from "../../core/errors/index.ts";
import { serveHttp } from "../../core/net/index.ts";
import { noPositionals, parseFlags } from "../flags.ts";
import { helpFor } from "../help.ts";
import { demoAccessRecords, followZtunnelLog, printRows, quickstartHome, responseRow, selfCommand, tunnelRows, untilStopSignal, type AccessRecord } from "../quickstart-common.ts";
import { socks5Request } from "../socks-client.ts";

const CLIENT_SOCKS = { host: "127.0.20.1", port: 15080 };
const ECHO = { host: "127.0.20.2", port: 8080 };
const ECHO_URL_HOST = "echo.default.svc.cluster.local";
const NODES = [
  { node: "node-a", admin: 15000, metrics: 15020, readiness: 15021 },
  { node: "node-b", admin: 15100, metrics: 15120, readiness: 15121 },
] as const;

async function waitReady(port: number, child: { exitCode: number | null }, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new MeshError(ErrorCodes.INTERNAL, `a ztunnel exited with code ${child.exitCode} during start-up (see .mesh/logs/)`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz/ready`);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(50);
  }
  throw new MeshError(ErrorCodes.INTERNAL, `ztunnel readiness on port ${port} did not turn ready within ${timeoutMs} ms`);
}

export async function runQuickstart(args: string[]): Promise<number> {
  const { flags, positionals } = parseFlags("mesh quickstart", args, { once: { type: "boolean" }, captured: { type: "boolean" } });
  if (flags.help) {
    process.stdout.write(helpFor("quickstart"));
    return 0;
  }
  noPositionals("mesh quickstart", positionals);
  if (flags.captured) {
    const { runCapturedQuickstart } = await import("./quickstart-captured.ts");
    return runCapturedQuickstart({ once: flags.once === true });
  }
  const { home, caDir, logDir } = await quickstartHome();
  const configPath = join(home, "quickstart.yaml");
  writeFileSync(configPath, quickstartYaml);

  const access: AccessRecord[] = [];
  const children = NODES.map((n) => {
    const child = Bun.spawn(
      [
        ...selfCommand(),
        "--role", "ztunnel",
        "--config", configPath,
        "--node", n.node,
        "--ca-dir", caDir,
        "--admin-port", String(n.admin),
        "--metrics-port", String(n.metrics),
        "--readiness-port", String(n.readiness),
      ],
      { stdout: "ignore", stderr: "pipe", stdin: "ignore" },
    );
    // Readiness is polled on its port below, so the "started" promise is not needed here.
    void followZtunnelLog(child.stderr, n.node, join(logDir, `${n.node}.log`), access);
    return { ...n, child };
  });

  const stopAll = async () => {
    for (const c of children) if (c.child.exitCode === null) c.child.kill("SIGTERM");
    await Promise.all(children.map((c) => c.child.exited));
  };

  let echo: { stop(): Promise<void> } | undefined;
  try {
    for (const c of children) await waitReady(c.readiness, c.child, 20_000);
    echo = serveHttp(
      async (req) => {
        const body = await req.text();
        return new Response(`hello from echo-0 (${req.method} ${new URL(req.url).pathname})${body ? `: ${body}` : ""}\n`);
      },
      { hostname: ECHO.host, port: ECHO.port },
    );
    const request = `GET / HTTP/1.1\r\nHost: ${ECHO_URL_HOST}\r\nConnection: close\r\n\r\n`;
    const response = await socks5Request(CLIENT_SOCKS, { host: ECHO_URL_HOST, port: 80 }, request, 10_000);
    const ok = /^HTTP\/1\.1 200/.test(response) && response.includes("hello from echo-0");

    const { outbound, inbound } = await demoAccessRecords(access, 3000);
    const crossed = ok && !!inbound && inbound["tls_version"] === "TLSv1.3" && typeof inbound["src.identity"] === "string" && typeof inbound["dst.identity"] === "string";
    printSummary(response, outbound, inbound, crossed);
    if (flags.once) {
      await echo.stop();
      await stopAll();
      return crossed ? 0 : 1;
    }
    process.stdout.write(
      `\nThe mesh is up. Send your own traffic from the client workload (sleep, node-a) to echo (node-b):\n\n` +
        `  curl --socks5-hostname ${CLIENT_SOCKS.host}:${CLIENT_SOCKS.port} http://${ECHO_URL_HOST}/\n\n` +
        `Logs: ${logDir}/node-a.log, ${logDir}/node-b.log. Press Ctrl-C to drain and exit.\n`,
    );
    await untilStopSignal();
    process.stdout.write("draining...\n");
    await echo.stop();
    await stopAll();
    process.stdout.write("stopped.\n");
    return 0;
  } catch (e) {
    await echo?.stop();
    await stopAll();
    throw e;
  }
}

function printSummary(response: string, out: AccessRecord | undefined, inb: AccessRecord | undefined, crossed: boolean): void {
  printRows([
    ...tunnelRows(out, inb),
    ["path", `sleep-0 (127.0.20.1, node-a) -> HBONE ${String(out?.["dst.addr"] ?? "?")} -> echo-0 (node-b)`],
    responseRow(response),
    ["metrics", NODES.map((n) => `http://127.0.0.1:${n.metrics}/metrics (${n.node})`).join(", ")],
    ["mTLS end to end", crossed ? "yes" : "NO"],
  ]);
}
