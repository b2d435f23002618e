// `mesh quickstart --captured --once`: builds its own namespaces, sends plain curl through the
// captured mesh, prints the table, exits 0 only if mTLS crossed, and leaves nothing behind.
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { meshCommand } from "../harness/mesh.ts";
import { canRun } from "./testbed.ts";

const can = canRun();
const why = !can.ok ? can.why : ["curl", "ip6tables"].some((c) => Bun.which(c) === null) ? "missing curl or ip6tables" : undefined;
if (why) console.log(`skip mesh quickstart --captured: ${why}`);

test.skipIf(why !== undefined)("mesh quickstart --captured --once: plain curl in a pod crosses the mesh over mTLS, then everything is removed", async () => {
  const cwd = mkdtempSync(join(tmpdir(), "mesh-qs-captured-"));
  try {
    const proc = Bun.spawn([...meshCommand(), "quickstart", "--captured", "--once"], { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toContain("source identity         spiffe://cluster.local/ns/default/sa/sleep");
    expect(out).toContain("hello from echo-0 (GET /)");
    expect(out).toMatch(/mTLS end to end\s+yes/);
    expect(readdirSync("/var/run/netns").filter((n) => n.startsWith("mqs-"))).toEqual([]);
    expect(existsSync("/etc/netns/mqs-sleep")).toBe(false);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}, 60_000);
