// Plugins that trap, loop, or eat memory (reliability checklist item 43): the failure surfaces as
// a typed MeshError, the fail strategy decides the request's fate, other plugins and requests
// keep being served, and the next request finds a working VM.

import { describe, expect, test } from "bun:test";
import { ErrorCodes, isMeshError } from "../core/errors/index.ts";
import { REQ, RESP, testPlugin, until } from "./testdata/plugins.ts";

// Misbehaves on request when the request carries x-trap / x-loop / x-hog / x-fill.
const UNRULY = `
(func $has (param i32 i32) (result i32)
  (i32.eqz (call $proxy_get_header_map_value (i32.const 0) (local.get 0) (local.get 1) (i32.const 256) (i32.const 260))))
(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
  (if (call $has {{"x-trap"}}) (then (unreachable)))
  (if (call $has {{"x-loop"}}) (then (loop $l (br $l))))
  (if (call $has {{"x-hog"}})
    (then (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (unreachable)))
  (if (call $has {{"x-fill"}})
    (then
      (drop (memory.grow (i32.const 62)))
      (loop $l (memory.fill (i32.const 0) (i32.const 0) (i32.const 4194304)) (br $l))))
  (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-served"}} {{"1"}}))
  (i32.const 0))
`;
const with_ = (name: string): [string, string][] => [...REQ, [name, "1"]];
const SERVED: [string, string][] = [...REQ, ["x-served", "1"]];

describe("fail strategies", () => {
  test("FAIL_CLOSE: a trap answers 503 wasm_fail_stream; the next request gets a fresh VM", async () => {
    const { plugin, hostLogs } = await testPlugin(UNRULY);
    await plugin.start();
    const s = plugin.stream();
    const r = await s.requestHeaders(with_("x-trap"), true);
    expect(r.action).toBe("local");
    expect(r.response).toMatchObject({ status: 503, details: "wasm_fail_stream", grpcStatus: 14 });
    expect(isMeshError(r.failure, ErrorCodes.WASM_TRAP)).toBe(true);
    expect(r.failure!.message).toContain("trap");
    expect((await s.responseHeaders(RESP, true)).action).toBe("local"); // the failed stream stays failed
    s.done();
    expect(hostLogs.some((l) => l.includes("[WASM_TRAP]"))).toBe(true);
    expect(plugin.starts).toBe(1); // restarted lazily
    const next = await plugin.stream().requestHeaders(REQ, true);
    expect(next).toEqual({ action: "continue", headers: SERVED });
    expect(plugin.starts).toBe(2);
    await plugin.stop();
  });

  test("FAIL_OPEN: the request continues without the plugin, unmodified", async () => {
    const { plugin } = await testPlugin(UNRULY, { failStrategy: "FAIL_OPEN" });
    await plugin.start();
    const s = plugin.stream();
    const h = with_("x-trap");
    const r = await s.requestHeaders(h, false);
    expect(r.action).toBe("continue");
    expect(r.headers).toBe(h);
    expect(isMeshError(r.failure, ErrorCodes.WASM_TRAP)).toBe(true);
    const body = new TextEncoder().encode("payload");
    const rb = await s.requestBody(body, true);
    expect(rb.action).toBe("continue");
    expect(rb.body).toEqual(body);
    const rr = await s.responseHeaders(RESP, true);
    expect(rr.action).toBe("continue");
    expect(rr.headers).toBe(RESP);
    s.done();
    expect((await plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    await plugin.stop();
  });

  test("FAIL_RELOAD: 503 for the failing request and a fresh VM started right away", async () => {
    const { plugin } = await testPlugin(UNRULY, { failStrategy: "FAIL_RELOAD" });
    await plugin.start();
    const r = await plugin.stream().requestHeaders(with_("x-trap"), true);
    expect(r.action).toBe("local");
    expect(r.response!.status).toBe(503);
    await until(() => plugin.starts === 2, "the eager restart");
    expect((await plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    await plugin.stop();
  });
});

describe("time budget", () => {
  test("a looping callback is stopped at its budget; other plugins and requests are served meanwhile", async () => {
    const looping = await testPlugin(UNRULY, { callbackBudgetMs: 400, name: "looping", isolation: "worker" });
    const healthy = await testPlugin(UNRULY, { name: "healthy", isolation: "worker" });
    await looping.plugin.start();
    await healthy.plugin.start();
    const order: string[] = [];
    const stuck = looping.plugin
      .stream()
      .requestHeaders(with_("x-loop"), true)
      .then((r) => {
        order.push("looping");
        return r;
      });
    // queued behind the looping callback on the same VM: moves to the fresh VM
    const queued = looping.plugin
      .stream()
      .requestHeaders(REQ, true)
      .then((r) => {
        order.push("queued");
        return r;
      });
    // the main thread and the other plugin keep working while the loop spins in its worker
    await Bun.sleep(5);
    order.push("timer");
    const other = await healthy.plugin.stream().requestHeaders(REQ, true);
    order.push("other plugin");
    expect(other.headers).toEqual(SERVED);
    const r = await stuck;
    expect(r.action).toBe("local");
    expect(isMeshError(r.failure, ErrorCodes.WASM_TIMEOUT)).toBe(true);
    expect((await queued).headers).toEqual(SERVED);
    expect(order).toEqual(["timer", "other plugin", "looping", "queued"]);
    expect(looping.plugin.starts).toBe(2);
    expect((await looping.plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    await looping.plugin.stop();
    await healthy.plugin.stop();
  });

  test("a worker that does not answer is terminated by the main thread", async () => {
    // each loop iteration clears 4 MiB, so the in-module budget check (every 1000 iterations)
    // comes long after the main thread's deadline (5 ms + 20 ms grace)
    const { plugin } = await testPlugin(UNRULY, { callbackBudgetMs: 5, killGraceMs: 20, maxMemoryPages: 64, isolation: "worker" });
    await plugin.start();
    const r = await plugin.stream().requestHeaders(with_("x-fill"), true);
    expect(r.action).toBe("local");
    expect(isMeshError(r.failure, ErrorCodes.WASM_TIMEOUT)).toBe(true);
    expect(r.failure!.message).toContain("did not answer");
    expect((await plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    await plugin.stop();
  });

  test("inline isolation stops a loop too (the calling thread is busy until the budget)", async () => {
    const { plugin } = await testPlugin(UNRULY, { callbackBudgetMs: 20, isolation: "inline" });
    await plugin.start();
    const r = await plugin.stream().requestHeaders(with_("x-loop"), true);
    expect(isMeshError(r.failure, ErrorCodes.WASM_TIMEOUT)).toBe(true);
    expect((await plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    await plugin.stop();
  });
});

// Works through 20 M loop iterations (several ms of CPU on any machine) when the request carries
// x-slow; once per start when the configuration says "slow-start", spins until it has used 300 ms
// of its thread's CPU (WASI's thread CPU-time clock). Logs once on x-log.
const SLOW = `
(func $now (result i64)
  (drop (call $wasi_clock_time_get (i32.const 3) (i64.const 0) (i32.const 272)))
  (i64.load (i32.const 272)))
(func $spin (param $ns i64) (local $end i64)
  (local.set $end (i64.add (call $now) (local.get $ns)))
  (loop $l (br_if $l (i64.lt_u (call $now) (local.get $end)))))
(func $work (param $n i32) (local $i i32)
  (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
(func (export "proxy_on_vm_start") (param i32 i32) (result i32)
  (if (i32.eq (local.get 1) (i32.const 10)) (then (call $spin (i64.const 300000000))))
  (i32.const 1))
(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
  (if (i32.eqz (call $proxy_get_header_map_value (i32.const 0) {{"x-slow"}} (i32.const 256) (i32.const 260)))
    (then (call $work (i32.const 20000000))))
  (if (i32.eqz (call $proxy_get_header_map_value (i32.const 0) {{"x-log"}} (i32.const 256) (i32.const 260)))
    (then (drop (call $proxy_log (i32.const 2) {{"held"}}))))
  (drop (call $proxy_add_header_map_value (i32.const 0) {{"x-served"}} {{"1"}}))
  (i32.const 0))
`;

describe("auto isolation (the default): the calling thread while the plugin behaves, a worker after", () => {
  test("a callback past its budget: that request fails per strategy, and the plugin runs in its own worker from then on", async () => {
    const reasons: string[] = [];
    const { plugin, hostLogs } = await testPlugin(UNRULY, { callbackBudgetMs: 60, onQuarantine: (r) => reasons.push(r) });
    await plugin.start();
    expect(plugin.isolation).toBe("inline");
    expect((await plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    // on the calling thread, the loop holds it for the budget (and no longer)
    const t0 = performance.now();
    const first = plugin.stream().requestHeaders(with_("x-loop"), true);
    const held = performance.now() - t0;
    expect(held).toBeGreaterThanOrEqual(55);
    expect(held).toBeLessThan(2000);
    const r = await first;
    expect(r.action).toBe("local");
    expect(isMeshError(r.failure, ErrorCodes.WASM_TIMEOUT)).toBe(true);
    expect(plugin.isolation).toBe("worker");
    expect(reasons).toEqual([expect.stringContaining("past its time budget")]);
    expect(hostLogs.some((l) => l.includes("moved to its own worker"))).toBe(true);
    // the next VM is a worker: a loop no longer holds the calling thread
    const order: string[] = [];
    const t1 = performance.now();
    const stuck = plugin
      .stream()
      .requestHeaders(with_("x-loop"), true)
      .then((x) => {
        order.push("looping");
        return x;
      });
    // inline, the loop would hold the thread for its whole 60 ms budget (≥ 55 ms above); the margin
    // below it is for a collection or a preemption on a busy machine, not for the plugin
    expect(performance.now() - t1).toBeLessThan(55);
    await Bun.sleep(5);
    order.push("timer");
    expect(isMeshError((await stuck).failure, ErrorCodes.WASM_TIMEOUT)).toBe(true);
    expect(order).toEqual(["timer", "looping"]);
    expect((await plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    expect(plugin.isolation).toBe("worker");
    expect(reasons.length).toBe(1);
    await plugin.stop();
  });

  test("callbacks that keep spending CPU in the module (3 over 1 ms) move it to a worker; the requests themselves succeed", async () => {
    const reasons: string[] = [];
    const { plugin } = await testPlugin(SLOW, { callbackBudgetMs: 2000, onQuarantine: (r) => reasons.push(r) });
    await plugin.start();
    for (let i = 0; i < 2; i++) expect((await plugin.stream().requestHeaders(with_("x-slow"), true)).headers).toEqual([...with_("x-slow"), ["x-served", "1"]]);
    for (let i = 0; i < 20; i++) expect((await plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    expect(plugin.isolation).toBe("inline"); // two slow callbacks are not enough (a preempted process looks the same)
    expect((await plugin.stream().requestHeaders(with_("x-slow"), true)).action).toBe("continue");
    expect(plugin.isolation).toBe("worker");
    expect(reasons).toEqual([expect.stringContaining("spent over 1 ms of the waypoint's CPU in the module")]);
    await plugin.stop();
  });

  test("time a callback spends outside the module (the host, a collection, preemption) does not count as the plugin's", async () => {
    const reasons: string[] = [];
    // the embedder's logger holds the thread for 3 ms: the callback takes long, the module does not
    const hold = (e: { message: string }) => {
      if (e.message !== "held") return;
      const end = Bun.nanoseconds() + 3e6;
      while (Bun.nanoseconds() < end);
    };
    const { plugin } = await testPlugin(SLOW, { callbackBudgetMs: 100, onQuarantine: (r) => reasons.push(r), log: hold });
    await plugin.start();
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      expect((await plugin.stream().requestHeaders(with_("x-log"), true)).headers).toEqual([...with_("x-log"), ["x-served", "1"]]);
      expect(performance.now() - t0).toBeGreaterThan(2.5);
    }
    expect(plugin.isolation).toBe("inline");
    expect(reasons).toEqual([]);
    await plugin.stop();
  });

  test("a start that runs long on the calling thread is run again in a worker, and the plugin works", async () => {
    const reasons: string[] = [];
    const { plugin } = await testPlugin(SLOW, { vmConfiguration: "slow-start", onQuarantine: (r) => reasons.push(r) });
    await plugin.start();
    expect(plugin.isolation).toBe("worker");
    expect(reasons).toEqual([expect.stringContaining("its start ran past")]);
    expect((await plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    await plugin.stop();
  });

  test("isolation: inline is never moved; isolation: worker starts in a worker", async () => {
    const inline = await testPlugin(UNRULY, { callbackBudgetMs: 20, isolation: "inline" });
    await inline.plugin.start();
    await inline.plugin.stream().requestHeaders(with_("x-loop"), true);
    expect((await inline.plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    expect(inline.plugin.isolation).toBe("inline");
    await inline.plugin.stop();
    const worker = await testPlugin(UNRULY, { isolation: "worker" });
    await worker.plugin.start();
    expect(worker.plugin.isolation).toBe("worker");
    await worker.plugin.stop();
  });
});

describe("memory limit", () => {
  test("growing past maxMemoryPages fails inside the module and surfaces as WASM_MEMORY_LIMIT", async () => {
    const { plugin } = await testPlugin(UNRULY, { maxMemoryPages: 8 });
    await plugin.start();
    const r = await plugin.stream().requestHeaders(with_("x-hog"), true);
    expect(r.action).toBe("local");
    expect(isMeshError(r.failure, ErrorCodes.WASM_MEMORY_LIMIT)).toBe(true);
    expect(r.failure!.message).toContain("8 pages");
    expect((await plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    await plugin.stop();
  });
});

describe("start failures", () => {
  const cases: [string, string, string, Record<string, unknown>][] = [
    [
      "proxy_on_configure returns false",
      `(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 0))`,
      ErrorCodes.WASM_CONFIG_REJECTED,
      {},
    ],
    [
      "proxy_on_vm_start returns false",
      `(func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 0))`,
      ErrorCodes.WASM_CONFIG_REJECTED,
      {},
    ],
    [
      "proxy_on_context_create traps",
      `(func (export "proxy_on_context_create") (param i32 i32) (unreachable))`,
      ErrorCodes.WASM_TRAP,
      {},
    ],
    [
      "proxy_on_configure loops",
      `(func (export "proxy_on_configure") (param i32 i32) (result i32) (loop $l (br $l)) (i32.const 1))`,
      ErrorCodes.WASM_TIMEOUT,
      { startBudgetMs: 50 },
    ],
    [
      "the start function calls proc_exit",
      `(func $init (call $wasi_proc_exit (i32.const 255))) (start $init)`,
      ErrorCodes.WASM_TRAP,
      {},
    ],
  ];
  for (const [name, body, code, opts] of cases) {
    test(`${name} -> ${code}`, async () => {
      const { plugin } = await testPlugin(body, opts);
      const err = await plugin.start().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isMeshError(err, code as never)).toBe(true);
      await plugin.stop();
    });
  }
});

describe("stop", () => {
  test("a stream still waiting when the plugin stops is resolved, later streams fail per strategy", async () => {
    const { plugin } = await testPlugin(
      `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 1))`,
    );
    await plugin.start();
    const waiting = plugin.stream().requestHeaders(REQ, true); // paused forever
    await Bun.sleep(5);
    await plugin.stop();
    const r = await waiting;
    expect(r.action).toBe("local");
    expect(r.failure?.message).toContain("stopped");
    expect((await plugin.stream().requestHeaders(REQ, true)).action).toBe("local");
  });

  test("a stream of a plugin that was never started fails per strategy instead of hanging", async () => {
    const { plugin } = await testPlugin(UNRULY, { failStrategy: "FAIL_OPEN" });
    const r = await plugin.stream().requestHeaders(REQ, true);
    expect(r.action).toBe("continue");
    expect(r.headers).toBe(REQ);
    expect(isMeshError(r.failure, ErrorCodes.INTERNAL)).toBe(true);
    await plugin.start();
    expect((await plugin.stream().requestHeaders(REQ, true)).headers).toEqual(SERVED);
    await plugin.stop();
  });

  test("an embedder logger that throws does not break the plugin", async () => {
    const { plugin } = await testPlugin(
      `(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
         (call $log3 {{"hello"}} (i32.const 1) (i32.const 2) (i32.const 3)) (i32.const 0))`,
      {
        log: () => {
          throw new Error("logger down");
        },
      },
    );
    await plugin.start();
    expect((await plugin.stream().requestHeaders(REQ, true)).action).toBe("continue");
    await plugin.stop();
  });
});
