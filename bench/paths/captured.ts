// Captured mode (Linux, root): pod → pod through the mesh vs pod → pod without it, on the
// network-namespace testbed, with the same load generator and app as the loopback rows
// (bench/load.ts). The client pod dials the server pod's IP with plain TCP; once both pods are
// handed to their node's ztunnel (`mesh pod add`) the very same dial is captured and carried by
// HBONE between the nodes. Standalone for now (run.ts does not start pods in namespaces):
//
//   bun bench/paths/captured.ts [--bytes 256M] [--rtts 2000] [--conn-seconds 2] [--json FILE]
//
// Prints a Markdown table: throughput up/down (1 stream), 1 KiB RTT p50/p99, new connections/s,
// and the two ztunnels' CPU per GB moved.
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { CapturedMesh } from "../../test/netns/captured-mesh.ts";
import { canRun } from "../../test/netns/testbed.ts";
import { totalCpuSeconds } from "../proc.ts";
import { fmt, ratio } from "../stats.ts";

const LOAD = resolve(import.meta.dir, "..", "load.ts");
const APP_PORT = 9000;

interface Row {
  path: "pod→pod direct" | "pod→pod mesh (captured)";
  upGbps: number;
  downGbps: number;
  rttP50Us: number;
  rttP99Us: number;
  connPerSec: number;
  proxyCpuSecPerGB?: number;
}

function sizeArg(v: string | undefined, dflt: number): number {
  if (!v) return dflt;
  const m = /^(\d+)([KMG]?)$/i.exec(v);
  if (!m) throw new Error(`bad size ${v} (e.g. 256M)`);
  return Number(m[1]) * ({ "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase()] ?? 1);
}

async function load(mesh: CapturedMesh, args: string[]): Promise<Record<string, unknown>> {
  const r = await mesh.tb.exec("c1", [process.execPath, LOAD, ...args], { timeoutMs: 300_000 });
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  const v = JSON.parse(last || "{}") as Record<string, unknown>;
  if (v.error || r.code !== 0) throw new Error(`load ${args[0]} failed: ${String(v.error ?? r.stderr)}`);
  return v;
}

async function measure(mesh: CapturedMesh, path: Row["path"], o: { bytes: number; rtts: number; connSeconds: number }, proxyPids: number[], port: number): Promise<Row> {
  const entry = JSON.stringify({ kind: "tcp", host: mesh.tb.pod("s1").ip, port });
  const cpu0 = totalCpuSeconds(proxyPids);
  const up = await load(mesh, ["throughput", "--entry", entry, "--streams", "1", "--bytes", String(o.bytes), "--dir", "up"]);
  const down = await load(mesh, ["throughput", "--entry", entry, "--streams", "1", "--bytes", String(o.bytes), "--dir", "down"]);
  const cpu1 = totalCpuSeconds(proxyPids);
  const rtt = await load(mesh, ["latency", "--entry", entry, "--count", String(o.rtts), "--warmup", String(Math.min(500, o.rtts))]);
  const conn = await load(mesh, ["connrate", "--entry", entry, "--concurrency", "16", "--duration-ms", String(o.connSeconds * 1000)]);
  return {
    path,
    upGbps: Number(up.gbps),
    downGbps: Number(down.gbps),
    rttP50Us: Number(rtt.p50Us),
    rttP99Us: Number(rtt.p99Us),
    connPerSec: Number(conn.perSec),
    ...(proxyPids.length > 0 ? { proxyCpuSecPerGB: (cpu1 - cpu0) / ((2 * o.bytes) / 1e9) } : {}),
  };
}

export async function runCapturedBench(o: { bytes: number; rtts: number; connSeconds: number }): Promise<Row[]> {
  const can = canRun();
  if (!can.ok) throw new Error(`captured-mode bench cannot run: ${can.why}`);
  const mesh = await CapturedMesh.start({
    testbed: { pods: [{ name: "c1", node: "node-a" }, { name: "s1", node: "node-b" }] },
    workloads: () => [
      { pod: "c1", node: "node-a", serviceAccount: "client" },
      { pod: "s1", node: "node-b", serviceAccount: "server" },
    ],
  });
  try {
    // One app port per path: the connection-rate test leaves thousands of TIME_WAIT entries on its
    // 4-tuples, which would slow the next path's connects to the same port.
    for (const port of [APP_PORT, APP_PORT + 1]) await mesh.app("s1", [process.execPath, LOAD, "serve", "--host", mesh.tb.pod("s1").ip, "--port", String(port)]);
    const direct = await measure(mesh, "pod→pod direct", o, [], APP_PORT);
    await mesh.addPod("c1");
    await mesh.addPod("s1");
    const pids = [...mesh.ztunnels.values()].map((z) => z.proc.pid);
    const captured = await measure(mesh, "pod→pod mesh (captured)", o, pids, APP_PORT + 1);
    return [direct, captured];
  } finally {
    await mesh.stop();
  }
}

export function capturedTable(rows: Row[]): string {
  const [d, m] = rows;
  const lines = [
    "| path | up Gbit/s | down Gbit/s | 1 KiB RTT p50 µs | p99 µs | new conns/s | ztunnel CPU core-s/GB |",
    "|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.path} | ${fmt(r.upGbps, 2)} | ${fmt(r.downGbps, 2)} | ${fmt(r.rttP50Us, 0)} | ${fmt(r.rttP99Us, 0)} | ${fmt(r.connPerSec, 0)} | ${r.proxyCpuSecPerGB === undefined ? "-" : fmt(r.proxyCpuSecPerGB, 2)} |`),
  ];
  if (d && m) {
    lines.push(
      "",
      `mesh / direct: up ${fmt(ratio(m.upGbps, d.upGbps), 2)}×, down ${fmt(ratio(m.downGbps, d.downGbps), 2)}×, ` +
        `RTT p50 +${fmt(m.rttP50Us - d.rttP50Us, 0)} µs, conns/s ${fmt(ratio(m.connPerSec, d.connPerSec), 2)}×`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { bytes: { type: "string" }, rtts: { type: "string" }, "conn-seconds": { type: "string" }, json: { type: "string" } } });
  const rows = await runCapturedBench({
    bytes: sizeArg(values.bytes, 256 * 1024 ** 2),
    rtts: Number(values.rtts ?? 2000),
    connSeconds: Number(values["conn-seconds"] ?? 2),
  });
  console.log(capturedTable(rows));
  if (values.json) writeFileSync(resolve(values.json), `${JSON.stringify({ date: new Date().toISOString(), rows }, null, 2)}\n`);
  process.exit(0);
}
