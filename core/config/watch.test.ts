import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { FileConfigSource, StateStore, loadConfigFile } from "./index.ts";

type Entry = { level: "info" | "warn" | "error"; msg: string; fields?: Record<string, unknown> };

const config = (name: string, ip: string) => `
workloads:
- uid: ${name}
  name: ${name}
  namespace: default
  workloadIps: ["${ip}"]
`;

/** Waits for a condition with a bounded poll: fails after `timeoutMs`, never sleeps a fixed time. */
async function until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

let dir: string;
let file: string;
let logs: Entry[];
let store: StateStore;
let source: FileConfigSource | undefined;
const log = (level: Entry["level"], msg: string, fields?: Record<string, unknown>) => logs.push({ level, msg, fields });
const names = () => [...store.current().workloads.values()].map((w) => w.name);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "mesh-config-"));
  file = join(dir, "mesh.yaml");
  logs = [];
  store = new StateStore();
});

afterEach(() => {
  source?.stop();
  source = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function startWith(text: string): FileConfigSource {
  writeFileSync(file, text);
  source = new FileConfigSource(file, store, log, { debounceMs: 20 });
  source.start();
  return source;
}

describe("FileConfigSource", () => {
  test("start() fails with CONFIG_FILE_MISSING when the file is absent", () => {
    const s = new FileConfigSource(join(dir, "absent.yaml"), store, log);
    expect(() => s.start()).toThrow(MeshError);
    try {
      s.start();
    } catch (e) {
      expect((e as MeshError).code).toBe(ErrorCodes.CONFIG_FILE_MISSING);
    }
  });

  test("start() throws the loader's error for a bad initial file and installs nothing", () => {
    writeFileSync(file, "workloads: [{uid: a}]\n");
    const s = new FileConfigSource(file, store, log);
    let err: unknown;
    try {
      s.start();
    } catch (e) {
      err = e;
    }
    expect((err as MeshError).code).toBe(ErrorCodes.CONFIG_INVALID);
    expect((err as MeshError).details).toContain(`${file}: workloads[0].namespace: required field is missing (expected a namespace name)`);
    expect(store.sourceNames()).toEqual([]);
  });

  test("loads once, then applies a valid change", async () => {
    const s = startWith(config("one", "10.0.0.1"));
    expect(names()).toEqual(["one"]);
    expect(s.lastGood()?.fileName).toBe(file);
    const changes: string[][] = [];
    store.subscribe((next) => changes.push([...next.workloads.keys()]));

    writeFileSync(file, config("two", "10.0.0.2"));
    await until(() => s.stats().reloads === 1, "the change to apply");
    expect(names()).toEqual(["two"]);
    expect(store.current().workloadByAddress("", "10.0.0.2")?.name).toBe("two");
    expect(changes).toEqual([["two"]]);
    expect(logs.find((l) => l.msg === "config reloaded")?.fields).toMatchObject({ workloads: 1, services: 0, policies: 0 });
  });

  test("an invalid change keeps the last good state and logs every error", async () => {
    const s = startWith(config("good", "10.0.0.1"));
    writeFileSync(file, "workloads:\n- {uid: a, namespace: ns, workloadIps: [bad]}\n- {uid: b, namespace: ns, workloadIps: [], protocol: x}\n");
    await until(() => s.stats().rejected === 1, "the bad change to be rejected");
    expect(names()).toEqual(["good"]);
    const errors = logs.filter((l) => l.level === "error").map((l) => l.msg);
    expect(errors).toEqual([
      `${file}: 2 errors; keeping the last good config`,
      `${file}: workloads[0].workloadIps[0]: expected an IPv4 or IPv6 address, got "bad"`,
      `${file}: workloads[1].protocol: expected one of HBONE, TCP, got "x"`,
    ]);
    // a YAML syntax error is handled the same way
    writeFileSync(file, "workloads: [\n");
    await until(() => s.stats().rejected === 2, "the syntax error to be rejected");
    expect(logs.at(-1)?.fields?.code).toBe(ErrorCodes.CONFIG_PARSE);
    expect(logs.at(-1)?.msg).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+:\\d+: .*keeping the last good config$`));
    expect(names()).toEqual(["good"]);
    // and the next good version is picked up
    writeFileSync(file, config("fixed", "10.0.0.3"));
    await until(() => s.stats().reloads === 1, "the fix to apply");
    expect(names()).toEqual(["fixed"]);
  });

  test("an editor's rename-over-the-file replace is picked up", async () => {
    const s = startWith(config("before", "10.0.0.1"));
    const tmp = join(dir, ".mesh.yaml.swp");
    writeFileSync(tmp, config("after", "10.0.0.2"));
    renameSync(tmp, file);
    await until(() => s.stats().reloads === 1, "the replaced file to load");
    expect(names()).toEqual(["after"]);
    // the watch survives the inode change
    writeFileSync(file, config("again", "10.0.0.3"));
    await until(() => s.stats().reloads === 2, "a later change to load");
    expect(names()).toEqual(["again"]);
  });

  test("a Kubernetes ConfigMap symlink swap is picked up", async () => {
    // ConfigMap volumes: mesh.yaml -> ..data/mesh.yaml, ..data -> ..v1; an update swaps ..data.
    mkdirSync(join(dir, "..v1"));
    mkdirSync(join(dir, "..v2"));
    writeFileSync(join(dir, "..v1", "mesh.yaml"), config("v1", "10.0.0.1"));
    writeFileSync(join(dir, "..v2", "mesh.yaml"), config("v2", "10.0.0.2"));
    symlinkSync("..v1", join(dir, "..data"));
    symlinkSync(join("..data", "mesh.yaml"), file);
    source = new FileConfigSource(file, store, log, { debounceMs: 20 });
    source.start();
    expect(names()).toEqual(["v1"]);
    symlinkSync("..v2", join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    const s = source;
    await until(() => s.stats().reloads === 1, "the swapped ConfigMap to load");
    expect(names()).toEqual(["v2"]);
  });

  test("a directory that never goes quiet does not starve the reload", async () => {
    const s = startWith(config("quiet", "10.0.0.1"));
    let n = 0;
    const noise = setInterval(() => writeFileSync(join(dir, "noise.log"), String(n++)), 5);
    try {
      writeFileSync(file, config("noisy", "10.0.0.2"));
      await until(() => s.stats().reloads === 1, "the change to apply despite the noise");
      expect(names()).toEqual(["noisy"]);
    } finally {
      clearInterval(noise);
    }
  });

  test("other files in the directory (a log beside the config) do not cost a read", async () => {
    const s = startWith(config("calm", "10.0.0.1"));
    for (let i = 0; i < 50; i++) writeFileSync(join(dir, "app.log"), `line ${i}\n`);
    // then a change to the config itself: the only check the watcher makes
    writeFileSync(file, config("changed", "10.0.0.2"));
    await until(() => s.stats().reloads === 1, "the config change");
    expect(s.stats().checks).toBe(1);
  });

  test("writing the same content is a no-op", async () => {
    const text = config("same", "10.0.0.1");
    const s = startWith(text);
    const before = store.current();
    writeFileSync(file, text);
    await until(() => s.stats().unchanged >= 1, "the rewrite to be checked");
    expect(s.stats().reloads).toBe(0);
    expect(store.current()).toBe(before);
  });

  test("a deleted file keeps the last good state until it comes back", async () => {
    const s = startWith(config("kept", "10.0.0.1"));
    unlinkSync(file);
    await until(() => logs.some((l) => l.level === "warn" && l.msg.startsWith("config file is missing")), "the missing-file warning");
    expect(names()).toEqual(["kept"]);
    writeFileSync(file, config("back", "10.0.0.2"));
    await until(() => s.stats().reloads === 1, "the recreated file to load");
    expect(names()).toEqual(["back"]);
  });

  test("warnings of a loaded file are logged", () => {
    startWith(`workloads: [{uid: a, namespace: ns, workloadIps: [], services: {"ns/undefined": {80: 80}}}]`);
    expect(logs.filter((l) => l.level === "warn").map((l) => l.msg)).toEqual([
      `${file}: workloads[0].services["ns/undefined"]: service "ns/undefined" is not defined; kept as a staged endpoint`,
    ]);
  });
});

describe("loadConfigFile", () => {
  test("loads a file, and names a missing one", async () => {
    writeFileSync(file, config("x", "10.0.0.1"));
    expect((await loadConfigFile(file)).state.workloads.size).toBe(1);
    const err = await loadConfigFile(join(dir, "nope.yaml")).catch((e: unknown) => e);
    expect((err as MeshError).code).toBe(ErrorCodes.CONFIG_FILE_MISSING);
    expect((err as MeshError).message).toBe(`config file not found: ${join(dir, "nope.yaml")}`);
  });

  test("refuses files over the size bound and non-UTF-8 text", async () => {
    writeFileSync(file, "#".repeat(2048));
    const big = await loadConfigFile(file, 1024).catch((e: unknown) => e);
    expect((big as MeshError).code).toBe(ErrorCodes.CONFIG_INVALID);
    writeFileSync(file, new Uint8Array([0x77, 0x3a, 0x20, 0xff, 0xfe]));
    const bin = await loadConfigFile(file).catch((e: unknown) => e);
    expect((bin as MeshError).code).toBe(ErrorCodes.CONFIG_PARSE);
  });
});
