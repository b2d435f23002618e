// Shared fixtures for end-to-end tests.
export { TestMesh, ZtunnelProcess, meshCommand, allocSubnet, type MeshOptions, type LogRecord } from "./mesh.ts";
export { localConfig, twoNodeConfig, twoNodeWorkloads, serverService, serviceKey, type ConfigWorkload, type ConfigService, type PortMap } from "./config.ts";
export { twoNodeEchoMesh, type TwoNodeEchoMesh } from "./two-node.ts";
export { echoServer, serve, socksConnect, exchange, until, SocksError, type TestServer } from "./net.ts";
export { recordingRelay, tlsRecords, freePort, type RecordingRelay, type RecordedConnection, type TlsRecordHeader } from "./wire.ts";
export { sendPattern, receiveDigest, type Digest } from "./data.ts";
export { parsePrometheus, samples, sampleSum, type Sample } from "./metrics.ts";
export { runMesh, ensureBinary, stackFrames, type CliResult } from "./cli.ts";
export { presentedCertificate, type PresentedCertificate } from "./tls.ts";
export { workloadFixture, type WorkloadFixtureOptions } from "./workload.ts";
export { startWaypoint, type WaypointProcessOptions } from "./waypoint.ts";
export { hboneConnect, type HboneTestCert, type HboneTestTunnel } from "./hbone-client.ts";
