// The most common e2e setup: the two-node mesh (twoNodeConfig) with an echo app on the server
// workload, started before a describe block's tests and stopped after them.
import { afterAll, beforeAll } from "bun:test";
import { twoNodeConfig } from "./config.ts";
import { TestMesh, allocSubnet } from "./mesh.ts";
import { echoServer, type TestServer } from "./net.ts";

export interface TwoNodeEchoMesh {
  /** client <subnet>1 (node-a), server <subnet>2 (node-b), service VIP <subnet>100 */
  readonly subnet: string;
  /** set once the describe block's beforeAll has run */
  readonly mesh: TestMesh;
  /** the echo app on <subnet>2:8080 */
  readonly app: TestServer;
}

/** Call inside a describe block; the returned handle's mesh and app are set for its tests. */
export function twoNodeEchoMesh(): TwoNodeEchoMesh {
  const subnet = allocSubnet();
  let mesh: TestMesh | undefined;
  let app: TestServer | undefined;
  beforeAll(async () => {
    mesh = await TestMesh.start({ config: twoNodeConfig(subnet), nodes: ["node-a", "node-b"] });
    app = await echoServer(`${subnet}2`, 8080);
  }, 30_000);
  afterAll(async () => {
    await app?.close();
    await mesh?.stop();
  });
  const started = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`twoNodeEchoMesh: ${what} is not started (used outside the describe block's tests?)`);
    return v;
  };
  return {
    subnet,
    get mesh() {
      return started(mesh, "the mesh");
    },
    get app() {
      return started(app, "the echo app");
    },
  };
}
