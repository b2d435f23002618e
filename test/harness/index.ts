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
export { RecordingHttpApp, RecordingH2App, type RecordedRequest, type RecordedStream, type AppEcho } from "./attack-app.ts";
export { TunnelClient, RawInnerH2, H2ErrorCode, rawExchange, parseResponses, headerOf, getHeaders, rssKiB, type WaypointTunnel, type RawExchange, type ParsedResponse } from "./attack-tunnel.ts";
export { H1Client, socksH1, h1Once, socksH2, h2Request, readUntilClosed, readBytes, json, first, sha256, patternBytes, type H1Request, type H1Response, type H2Response, type HeaderList, type TcpOutcome } from "./l7-client.ts";
export { startHttpApp, startH2App, echoResponse, type HttpApp, type HttpBehaviour, type SeenRequest, type H2App, type H2Behaviour, type H2Seen } from "./l7-apps.ts";
export { inNamespace, requestLines, connectionLines, traceparent, TRACEPARENT, ISTIO_DURATION_BUCKETS } from "./l7-mesh.ts";
export { httpOver, type HttpOverReply } from "./http-over.ts";
