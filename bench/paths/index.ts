// The three ways traffic can go from the load generator to the server app.

export { createDirectPath } from "./direct.ts";
export { createStunnelPath, type StunnelPathOptions } from "./stunnel.ts";
export { createMeshPath, meshBenchConfig, type MeshPathOptions } from "./mesh.ts";
export { PathUnavailable, type AppEndpoint, type BenchPath, type PathHandle, type PathName, type ProxyProcess } from "./types.ts";
