import { describe, expect, test } from "bun:test";
import type { Workload } from "../config/index.ts";
import { EndpointBalancer, type Endpoint } from "./endpoints.ts";

function ep(name: string, capacity = 1): Endpoint {
  const workload = { uid: name, name, capacity } as unknown as Workload;
  return { workload, ip: `10.0.0.${name.length}`, port: 80, key: name };
}

/** A deterministic sequence in [0, 1). */
function seq(...xs: number[]): () => number {
  let i = 0;
  return () => xs[i++ % xs.length]!;
}

describe("least request (power of two choices)", () => {
  test("of the two candidates drawn, the one with fewer requests in flight wins", () => {
    const b = new EndpointBalancer();
    const [a, c] = [ep("a"), ep("cc")];
    b.begin(a);
    b.begin(a);
    // draws a then c: c has less in flight
    expect(b.pick([a, c], seq(0, 0.9))).toBe(c);
    b.finish(a);
    b.finish(a);
    b.begin(c);
    expect(b.pick([a, c], seq(0, 0.9))).toBe(a);
  });

  test("capacity weighs the load: twice the capacity takes twice the requests in flight", () => {
    const b = new EndpointBalancer();
    const [small, big] = [ep("s", 1), ep("bb", 2)];
    b.begin(big);
    b.begin(big);
    b.begin(small);
    // (2+1)/2 = 1.5 vs (1+1)/1 = 2: big still wins
    expect(b.pick([small, big], seq(0, 0.9))).toBe(big);
  });

  test("over many picks a slow endpoint (requests pile up) gets fewer new ones", () => {
    const b = new EndpointBalancer();
    const fast = ep("f");
    const slow = ep("ss");
    const counts = new Map<string, number>();
    let r = 0.123;
    const rand = () => (r = (r * 9301 + 49297) % 233280 / 233280);
    for (let i = 0; i < 1000; i++) {
      const e = b.pick([fast, slow], rand)!;
      counts.set(e.key, (counts.get(e.key) ?? 0) + 1);
      b.begin(e);
      if (e === fast) b.finish(e); // fast answers at once; slow never does
    }
    expect(counts.get("f")!).toBeGreaterThan(900);
  });

  test("a retry avoids endpoints already tried when others exist", () => {
    const b = new EndpointBalancer();
    const [a, c] = [ep("a"), ep("cc")];
    for (let i = 0; i < 20; i++) expect(b.pick([a, c], Math.random, new Set(["a"]))).toBe(c);
    expect(b.pick([a], Math.random, new Set(["a"]))).toBe(a);
  });
});

describe("passive ejection", () => {
  test("consecutive connect failures eject an endpoint for a while; success resets the count", () => {
    let now = 1_000;
    const b = new EndpointBalancer({ consecutiveFailures: 3, baseEjectionMs: 10_000, maxEjectionMs: 60_000 }, () => now);
    const [bad, good] = [ep("bad"), ep("good")];
    expect(b.connectFailed(bad)).toBe(false);
    expect(b.connectFailed(bad)).toBe(false);
    b.connectSucceeded(bad);
    expect(b.connectFailed(bad)).toBe(false);
    expect(b.connectFailed(bad)).toBe(false);
    expect(b.connectFailed(bad)).toBe(true);
    expect(b.ejectedCount).toBe(1);
    for (let i = 0; i < 50; i++) expect(b.pick([bad, good])).toBe(good);
    now += 10_001;
    expect(b.isEjected("bad")).toBe(false);
    // the second ejection lasts twice as long
    for (let i = 0; i < 3; i++) b.connectFailed(bad);
    now += 15_000;
    expect(b.isEjected("bad")).toBe(true);
  });

  test("when every endpoint is ejected, they are still tried (panic mode) rather than failing everything", () => {
    const b = new EndpointBalancer({ consecutiveFailures: 1, baseEjectionMs: 60_000, maxEjectionMs: 60_000 });
    const only = ep("only");
    b.connectFailed(only);
    expect(b.pick([only])).toBe(only);
  });
});
