// The request pipeline records a request (metrics, access log, plugins' completion) after the turn in
// which its response was written, so that work does not hold back the response's bytes, and before
// handle() resolves. A recorder that fails is logged and does not take the waypoint down.
import { describe, expect, test } from "bun:test";
import type { MeshState, Workload } from "../config/index.ts";
import type { PolicyEngine } from "../policy/index.ts";
import type { RouteTable } from "../routes/index.ts";
import { createLogger, type MeshMetrics } from "../telemetry/index.ts";
import type { EndpointBalancer } from "./endpoints.ts";
import type { L7Request, L7Responder } from "./exchange.ts";
import { RequestPipeline, type PipelineContext, type UpstreamClients } from "./handler.ts";
import type { RequestOrigin } from "./plugin-api.ts";

function pipeline(events: string[], onRecord: () => void): { p: RequestPipeline; logged: string[] } {
  const logged: string[] = [];
  const log = createLogger({ format: "json", level: "info", component: "test", write: (line: string) => logged.push(line) });
  const ctx: PipelineContext = {
    state: () => ({}) as MeshState,
    self: () => ({ namespace: "default", name: "waypoint" }) as Workload,
    routes: () => ({}) as RouteTable,
    // every request is denied: a local reply, no upstream
    policies: () => ({ evaluate: () => ({ allowed: false, policy: "deny-all" }) }) as unknown as PolicyEngine,
    gateways: () => [],
    balancer: {} as EndpointBalancer,
    upstream: {} as UpstreamClients,
    metrics: {
      requestCompleted: () => {
        events.push("recorded");
        onRecord();
      },
    } as unknown as MeshMetrics,
    log,
    accessLog: createLogger({ format: "json", level: "info", component: "access", write: () => {} }),
  };
  return { p: new RequestPipeline(ctx), logged };
}

const origin: RequestOrigin = { targetIp: "10.0.0.2", targetPort: 80, principal: "spiffe://cluster.local/ns/default/sa/client", sourceIp: "10.0.0.1", sourcePort: 40000 };
const request: L7Request = {
  protocol: "HTTP/1.1",
  method: "GET",
  path: "/",
  authority: "server",
  scheme: "http",
  headers: [],
  headerBytes: 40,
  body: { empty: true, start: (s) => s.end(), pause() {}, resume() {} },
};

function responder(events: string[]): L7Responder {
  let sent = false;
  return {
    head: (status, _h, end) => {
      sent = true;
      events.push(`head ${status}${end ? " end" : ""}`);
    },
    write: () => true,
    onDrain() {},
    end: () => events.push("end"),
    reset: () => events.push("reset"),
    get headSent() {
      return sent;
    },
    onAbort() {},
  };
}

describe("request pipeline: recording", () => {
  test("the response is written in full before the request is recorded, and handle() waits for the record", async () => {
    const events: string[] = [];
    const { p } = pipeline(events, () => {});
    const handled = p.handle(origin, request, responder(events));
    await Promise.resolve();
    expect(events).toEqual(["head 403", "end"]);
    await handled;
    expect(events).toEqual(["head 403", "end", "recorded"]);
  });

  test("a recorder that throws is logged, and handle() still resolves", async () => {
    const events: string[] = [];
    const { p, logged } = pipeline(events, () => {
      throw new Error("metrics store broken");
    });
    await p.handle(origin, request, responder(events));
    expect(events).toEqual(["head 403", "end", "recorded"]);
    expect(logged.some((l) => l.includes("recording a request failed") && l.includes("metrics store broken"))).toBe(true);
  });
});
