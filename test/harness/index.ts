// Shared fixtures for end-to-end tests.
export { TestMesh, ZtunnelProcess, meshCommand, allocSubnet, twoNodeConfig, type MeshOptions, type LogRecord } from "./mesh.ts";
export { echoServer, serve, socksConnect, exchange, until, SocksError, type TestServer } from "./net.ts";
