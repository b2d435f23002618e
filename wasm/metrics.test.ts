// Plugin metrics kept in a store the embedder can share between versions of a plugin: a reload's
// new VM continues the counters, and while the old VM finishes its requests both count into it.
import { describe, expect, test } from "bun:test";
import { PluginMetricStore } from "./metrics.ts";
import { REQ, testPlugin } from "./testdata/plugins.ts";

const COUNTING = `(global $c (mut i32) (i32.const 0)) (global $g (mut i32) (i32.const 0))
 (func (export "proxy_on_configure") (param i32 i32) (result i32)
   (drop (call $proxy_define_metric (i32.const 0) {{"requests"}} (i32.const 300)))
   (global.set $c (i32.load (i32.const 300)))
   (drop (call $proxy_define_metric (i32.const 1) {{"last_size"}} (i32.const 300)))
   (global.set $g (i32.load (i32.const 300)))
   (i32.const 1))
 (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
   (drop (call $proxy_increment_metric (global.get $c) (i64.const 1)))
   (drop (call $proxy_record_metric (global.get $g) (i64.extend_i32_u (local.get 1))))
   (i32.const 0))`;

describe("a metric store shared by the versions of a plugin", () => {
  for (const isolation of ["inline", "worker"] as const) {
    test(`${isolation}: counters continue across versions, also while both run; a gauge keeps its last value`, async () => {
      const store = new PluginMetricStore();
      const value = (name: string) => store.snapshot().find((m) => m.name === name)?.value;
      const v1 = (await testPlugin(COUNTING, { isolation, metricStore: store, name: "ns.counting" })).plugin;
      await v1.start();
      for (let i = 0; i < 3; i++) await v1.stream().requestHeaders(REQ, true);
      expect(value("requests")).toBe(3);
      // the reload: a new version starts while the old one still serves
      const v2 = (await testPlugin(COUNTING, { isolation, metricStore: store, name: "ns.counting" })).plugin;
      await v2.start();
      await v2.stream().requestHeaders(REQ, true);
      await v1.stream().requestHeaders(REQ, true);
      await v2.stream().requestHeaders(REQ, true);
      expect(value("requests")).toBe(6);
      expect(value("last_size")).toBe(REQ.length);
      await v1.stop();
      await v2.stream().requestHeaders(REQ, true);
      expect(value("requests")).toBe(7);
      expect(v2.metrics()).toEqual(store.snapshot());
      await v2.stop();
    });
  }

  test("without a shared store each plugin counts on its own", async () => {
    const a = (await testPlugin(COUNTING)).plugin;
    const b = (await testPlugin(COUNTING)).plugin;
    await a.start();
    await b.start();
    await a.stream().requestHeaders(REQ, true);
    expect(a.metrics().find((m) => m.name === "requests")?.value).toBe(1);
    expect(b.metrics().find((m) => m.name === "requests")?.value ?? 0).toBe(0);
    await a.stop();
    await b.stop();
  });
});
