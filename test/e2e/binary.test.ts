// The compiled single binary (dist/mesh, as `npm run build` makes it): the same traffic path as
// the source, and the CLI a user meets first. Built here when missing or older than the sources.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { ensureBinary, exchange, meshCommand, runMesh, socksConnect, stackFrames, twoNodeConfig, twoNodeEchoMesh, until } from "../harness/index.ts";

const REPO = resolve(import.meta.dir, "../..");
const built = await ensureBinary();
if ("error" in built) console.warn(`binary.test.ts: skipped, the build failed:\n${built.error}`);
const binary = "path" in built ? built.path : "";

describe.skipIf(!binary)("compiled binary", () => {
  let previousBin: string | undefined;
  let work: string;
  beforeAll(() => {
    previousBin = process.env.MESH_BIN;
    process.env.MESH_BIN = relative(REPO, binary);
    work = mkdtempSync(join(tmpdir(), "mesh-binary-"));
  });
  afterAll(() => {
    if (previousBin === undefined) delete process.env.MESH_BIN;
    else process.env.MESH_BIN = previousBin;
    rmSync(work, { recursive: true, force: true });
  });

  test("the harness runs the binary", () => {
    expect(meshCommand()).toEqual([binary]);
  });

  describe("two ztunnels", () => {
    const two = twoNodeEchoMesh();
    const { subnet } = two;

    test("pod IP, service VIP and service hostname all reach the app over HBONE", async () => {
      for (const [host, port] of [[`${subnet}2`, 8080], [`${subnet}100`, 80], ["server.default.svc.cluster.local", 80]] as const) {
        const s = await socksConnect({ host: `${subnet}1` }, host, port);
        expect((await exchange(s, `ping ${host}`)).toString()).toBe(`ping ${host}`);
      }
      await until(() => two.mesh.z("node-b").accessRecords("inbound").length >= 3, 5000, "3 inbound access records");
      const inbound = two.mesh.z("node-b").accessRecords("inbound");
      expect(inbound.every((r) => r["src.identity"] === "spiffe://cluster.local/ns/default/sa/client")).toBe(true);
      expect(inbound.every((r) => r["tls_version"] === "TLSv1.3")).toBe(true);
      expect(inbound.filter((r) => r.error)).toEqual([]);
      // It is the binary that serves, not bun + source.
      expect(two.mesh.z("node-a").proc.pid).toBeGreaterThan(0);
      const cmdline = readFileSync(`/proc/${two.mesh.z("node-a").proc.pid}/cmdline`, "utf8").split("\0");
      expect(cmdline[0]).toBe(binary);
    }, 30_000);

    test("SIGTERM drains and exits 0", async () => {
      expect(await two.mesh.z("node-a").stop()).toBe(0);
    }, 30_000);
  });

  test("mesh version", async () => {
    const r = await runMesh(["version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^mesh \d+\.\d+\.\d+ \(bun \d+\.\d+\.\d+\)\n$/);
    expect(r.stderr).toBe("");
  }, 30_000);

  test("mesh --help", async () => {
    const r = await runMesh(["--help"]);
    expect(r.code).toBe(0);
    for (const word of ["--role ztunnel", "mesh ca init", "mesh check", "mesh quickstart", "mesh version"]) expect(r.stdout).toContain(word);
    expect(r.stderr).toBe("");
  }, 30_000);

  test("mesh check: a valid file exits 0 with a summary; an invalid one exits 1 naming the field", async () => {
    const good = join(work, "good.yaml");
    const bad = join(work, "bad.yaml");
    writeFileSync(good, twoNodeConfig("127.9.9."));
    writeFileSync(bad, twoNodeConfig("127.9.9.").replace('workloadIps: ["127.9.9.2"]', 'workloadIps: ["127.9.9.299"]'));
    const ok = await runMesh(["check", good]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("2 workloads, 1 service");
    const ko = await runMesh(["check", bad]);
    expect(ko.code).toBe(1);
    expect(ko.stderr).toStartWith("error[CONFIG_INVALID]");
    expect(ko.stderr).toContain("workloads[1].workloadIps[0]");
    expect(stackFrames(ko.stderr)).toEqual([]);
    // the plugins section is checked as the waypoint reads it
    const badPlugin = join(work, "bad-plugin.yaml");
    writeFileSync(badPlugin, `${twoNodeConfig("127.9.9.")}plugins:\n- {name: p, url: "oci://ghcr.io/x:1", failStrategy: SOMETIMES}\n`);
    const kp = await runMesh(["check", badPlugin]);
    expect(kp.code).toBe(1);
    expect(kp.stderr).toContain("plugins[0] (p): url: only local modules");
    expect(kp.stderr).toContain("failStrategy");
    const goodPlugin = join(work, "good-plugin.yaml");
    writeFileSync(goodPlugin, `${twoNodeConfig("127.9.9.")}plugins:\n- {name: p, url: p.wasm, phase: AUTHZ}\n`);
    const okp = await runMesh(["check", goodPlugin]);
    expect(okp.code).toBe(0);
    expect(okp.stdout).toContain("plugins: default/p (AUTHZ, FAIL_CLOSE)");
    const missing = await runMesh(["check", join(work, "nope.yaml")]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toStartWith("error[CONFIG_FILE_MISSING]");
  }, 30_000);

  test("mesh ca init creates a CA and refuses to overwrite it", async () => {
    const dir = join(work, "ca");
    const first = await runMesh(["ca", "init", "--dir", dir]);
    expect(first.code).toBe(0);
    const root = readFileSync(join(dir, "root-cert.pem"), "utf8");
    expect(root).toContain("BEGIN CERTIFICATE");
    const again = await runMesh(["ca", "init", "--dir", dir]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toStartWith("error[CA_EXISTS]");
    expect(stackFrames(again.stderr)).toEqual([]);
    expect(readFileSync(join(dir, "root-cert.pem"), "utf8")).toBe(root);
  }, 30_000);

  test("an unknown flag: one line on stderr, non-zero exit", async () => {
    for (const args of [["--bogus"], ["check", "--bogus", "x.yaml"], ["--role", "ztunnel", "--no-such-flag"]]) {
      const r = await runMesh(args);
      expect(r.code).not.toBe(0);
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith("error[FLAG_INVALID]");
      expect(r.stdout).toBe("");
    }
  }, 30_000);

  test("mesh quickstart --once: two nodes, traffic over mTLS, exit 0", async () => {
    const cwd = join(work, "quickstart");
    mkdirSync(cwd);
    const r = await runMesh(["quickstart", "--once"], { cwd, timeoutMs: 60_000 });
    if (r.code !== 0) console.error(r.stdout, r.stderr);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/mTLS end to end\s+yes/);
    expect(r.stdout).toContain("spiffe://cluster.local/ns/default/sa/sleep");
    expect(r.stdout).toContain("spiffe://cluster.local/ns/default/sa/echo");
    expect(stackFrames(r.stderr)).toEqual([]);
  }, 60_000);
});
