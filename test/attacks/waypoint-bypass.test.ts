// Getting past the waypoint's policy without satisfying it (reference/reliability.md §7 A8, B10):
// identity and forwarding headers a client writes are never believed; a CONNECT-level identity
// claim is believed only from the destination itself (the hairpin); the waypoint relays only for
// destinations bound to it; and every route around it — a pod-addressed SOCKS request, a tunnel
// straight to the pod's ztunnel, a tunnel that presents the waypoint's own identity from the wrong
// address — ends at the waypoint's policy or nowhere. Each case checks at the app (which records
// every byte it receives) that the denied request never arrived.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Duplex } from "node:stream";
import { meshCert, type PresentedCert } from "./fixtures.ts";
import {
  RecordingHttpApp,
  TestMesh,
  TunnelClient,
  ZtunnelProcess,
  allocSubnet,
  localConfig,
  parseResponses,
  rawExchange,
  serviceKey,
  socksConnect,
  startWaypoint,
  until,
  type AppEcho,
  type RawExchange,
} from "../harness/index.ts";

const ID = (sa: string): string => `spiffe://cluster.local/ns/default/sa/${sa}`;
const ADMIN = ID("admin");

let markerNo = 0;
const marker = (what: string): string => `/${what}-${++markerNo}-${process.pid}`;

function policies(clientIp: string): string {
  const doc = (name: string, target: string, action: string, rules: string): string =>
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: ${target}}]
  action: ${action}
  rules:
${rules}`;
  return [
    doc("no-secret", "server", "DENY", `  - to: [{operation: {paths: ["/secret*"]}}]\n`),
    doc("no-delete", "server", "DENY", `  - to: [{operation: {methods: ["DELETE"]}}]\n`),
    doc("admin-only", "adminonly", "ALLOW", `  - from: [{source: {principals: ["cluster.local/ns/default/sa/admin"]}}]\n`),
    doc("from-partner", "iponly", "ALLOW", `  - from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]\n`),
    doc("block-client", "ipdeny", "DENY", `  - from: [{source: {remoteIpBlocks: ["${clientIp}/32"]}}]\n`),
    doc("client-public", "mixed", "ALLOW", `  - from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]\n    to: [{operation: {paths: ["/public*"]}}]\n`),
  ].join("---\n");
}

interface HttpResult {
  status: number;
  body: string;
}

/** One HTTP/1.1 request over an open byte stream (a tunnel or a SOCKS socket), `Connection: close`. */
async function httpOver(stream: Duplex, path: string, host: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  const r = await rawExchange(stream, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`, { waitMs: 10_000, done: (t) => parseResponses(t).length > 0 });
  stream.destroy();
  const res = parseResponses(r.text)[0];
  return { status: res?.status ?? 0, body: res?.body ?? "" };
}

describe("waypoint bypass attempts", () => {
  const subnet = allocSubnet();
  const ip = (n: number): string => `${subnet}${n}`;
  const clientIp = ip(1);
  const serverIp = ip(2);
  const server2Ip = ip(3);
  const plainIp = ip(4);
  const otherIp = ip(5);
  const elsewhereIp = ip(7); // an address no workload has
  const waypointIp = ip(10);
  const vip = { server: ip(100), adminonly: ip(101), iponly: ip(103), ipdeny: ip(104), plain: ip(105), other: ip(106), mixed: ip(107), waypoint: ip(110), waypointB: ip(111) };
  const host = (svc: string): string => `${svc}.default.svc.cluster.local`;
  let mesh: TestMesh;
  let waypoint: ZtunnelProcess;
  const apps: Record<string, RecordingHttpApp> = {};
  const certs: Record<string, PresentedCert> = {};
  const clients: TunnelClient[] = [];
  /** markers of denied requests, re-checked against every app at the end */
  const denied: string[] = [];

  const receivedAnywhere = (m: string): boolean => Object.values(apps).some((a) => a.received(m));

  beforeAll(async () => {
    const config = localConfig({
      workloads: [
        { name: "client", ip: clientIp, node: "node-a" },
        { name: "server", ip: serverIp, node: "node-b", services: { [serviceKey("server")]: { 80: 8080 } } },
        {
          name: "server2",
          ip: server2Ip,
          node: "node-b",
          services: { [serviceKey("adminonly")]: { 80: 8080 }, [serviceKey("iponly")]: { 80: 8080 }, [serviceKey("ipdeny")]: { 80: 8080 }, [serviceKey("mixed")]: { 80: 8080 } },
        },
        { name: "plain", ip: plainIp, node: "node-b", services: { [serviceKey("plain")]: { 80: 8080 } } },
        { name: "other", ip: otherIp, node: "node-b", services: { [serviceKey("other")]: { 80: 8080 } } },
        { name: "waypoint", ip: waypointIp, node: "node-w", services: { [serviceKey("waypoint")]: { 15008: 15008 } } },
        { name: "waypoint-b", ip: ip(11), node: "node-w", services: { [serviceKey("waypoint-b")]: { 15008: 15008 } } },
      ],
      services: [
        { name: "server", vip: vip.server, ports: { 80: 8080 }, waypoint: "waypoint" },
        { name: "adminonly", vip: vip.adminonly, ports: { 80: 8080 }, waypoint: "waypoint" },
        { name: "iponly", vip: vip.iponly, ports: { 80: 8080 }, waypoint: "waypoint" },
        { name: "ipdeny", vip: vip.ipdeny, ports: { 80: 8080 }, waypoint: "waypoint" },
        { name: "mixed", vip: vip.mixed, ports: { 80: 8080 }, waypoint: "waypoint" },
        { name: "plain", vip: vip.plain, ports: { 80: 8080 } },
        { name: "other", vip: vip.other, ports: { 80: 8080 }, waypoint: "waypoint-b" },
        { name: "waypoint", vip: vip.waypoint, ports: { 15008: 15008 } },
        { name: "waypoint-b", vip: vip.waypointB, ports: { 15008: 15008 } },
      ],
    });
    for (const [name, addr] of [["server", serverIp], ["server2", server2Ip], ["plain", plainIp], ["other", otherIp]] as const) apps[name] = await RecordingHttpApp.start(addr, 8080);
    mesh = await TestMesh.start({ config, nodes: ["node-a", "node-b"] });
    waypoint = await startWaypoint(mesh, { policies: policies(clientIp) });
    for (const sa of ["client", "admin", "server2", "waypoint"]) certs[sa] = await meshCert(mesh.caDir, ID(sa));
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await waypoint?.stop();
    await mesh?.stop();
    await Promise.all(Object.values(apps).map((a) => a.close()));
  });

  function hbone(address: string, sa: string, localAddress = clientIp): TunnelClient {
    const c = new TunnelClient({ address, cert: certs[sa]!, localAddress });
    clients.push(c);
    return c;
  }

  /** A request through the waypoint: CONNECT to `authority` as `sa` (CONNECT headers optional), then one GET. */
  async function viaWaypoint(opts: { sa: string; authority: string; path: string; host: string; headers?: Record<string, string>; connectHeaders?: Record<string, string>; from?: string }): Promise<HttpResult> {
    const t = await hbone(waypointIp, opts.sa, opts.from).open(opts.authority, opts.connectHeaders);
    expect([opts.authority, t.status]).toEqual([opts.authority, 200]);
    return httpOver(t.stream, opts.path, opts.host, opts.headers);
  }

  const ignoredClaims = (): number => waypoint.records.filter((r) => r.msg === "ignored a source identity claim").length;

  test("control: the waypoint serves its services, and the admin identity satisfies the ALLOW policy", async () => {
    const fine = marker("fine");
    const r = await viaWaypoint({ sa: "client", authority: `${vip.server}:80`, path: fine, host: host("server") });
    expect(r.status).toBe(200);
    expect(apps.server!.requestsFor(fine).length).toBe(1);
    const adm = marker("admin");
    const a = await viaWaypoint({ sa: "admin", authority: `${vip.adminonly}:80`, path: adm, host: host("adminonly") });
    expect(a.status).toBe(200);
    expect(apps.server2!.requestsFor(adm).length).toBe(1);
    const secret = marker("secret");
    denied.push(secret);
    const d = await viaWaypoint({ sa: "client", authority: `${vip.server}:80`, path: secret, host: host("server") });
    expect([d.status, d.body]).toEqual([403, "RBAC: access denied"]);
  });

  test("A8 identity headers from a client never satisfy a principal ALLOW", async () => {
    const forged: Record<string, Record<string, string>> = {
      "x-forwarded-client-cert": { "x-forwarded-client-cert": `By=${ID("adminonly")};URI=${ADMIN}` },
      "x-mesh-source-principal (as an HTTP header)": { "x-mesh-source-principal": ADMIN },
      "x-forwarded-for (an admin's address)": { "x-forwarded-for": elsewhereIp },
      "forwarded": { forwarded: `for=${elsewhereIp};by=${ADMIN}` },
      "x-envoy-peer-metadata-id": { "x-envoy-peer-metadata-id": `sidecar~${elsewhereIp}~admin.default~default.svc.cluster.local` },
      "all of them": {
        "x-forwarded-client-cert": `URI=${ADMIN}`,
        "x-mesh-source-principal": ADMIN,
        "x-forwarded-for": elsewhereIp,
        "x-envoy-original-dst-host": `${server2Ip}:8080`,
      },
    };
    for (const [what, headers] of Object.entries(forged)) {
      const m = marker("forged");
      denied.push(m);
      const r = await viaWaypoint({ sa: "client", authority: `${vip.adminonly}:80`, path: m, host: host("adminonly"), headers });
      expect([what, r.status]).toEqual([what, 403]);
    }
    await Bun.sleep(100);
    for (const m of denied) expect([m, receivedAnywhere(m)]).toEqual([m, false]);
  });

  test("A8 identity headers a client sends are not passed on to the app either", async () => {
    const m = marker("strip");
    const r = await viaWaypoint({
      sa: "client",
      authority: `${vip.server}:80`,
      path: m,
      host: host("server"),
      headers: { "x-forwarded-client-cert": `URI=${ADMIN}`, "x-mesh-source-principal": ADMIN, "x-envoy-peer-metadata-id": "x" },
    });
    expect(r.status).toBe(200);
    const seen = (JSON.parse(r.body) as AppEcho).headers;
    expect(Object.keys(seen).filter((k) => k === "x-forwarded-client-cert" || k.startsWith("x-mesh-") || k.startsWith("x-envoy-"))).toEqual([]);
  });

  test("remoteIpBlocks use the tunnel's source, never X-Forwarded-For or Forwarded: a forged header neither grants nor evades", async () => {
    const spoofs: Record<string, string>[] = [{ "x-forwarded-for": "203.0.113.9" }, { "x-forwarded-for": "203.0.113.9, 203.0.113.10" }, { forwarded: "for=203.0.113.9" }, { "x-real-ip": "203.0.113.9" }];
    for (const headers of spoofs) {
      const grant = marker("ipgrant");
      denied.push(grant);
      const g = await viaWaypoint({ sa: "client", authority: `${vip.iponly}:80`, path: grant, host: host("iponly"), headers });
      expect([headers, "ALLOW remoteIpBlocks", g.status]).toEqual([headers, "ALLOW remoteIpBlocks", 403]);
      const evade = marker("ipevade");
      denied.push(evade);
      const e = await viaWaypoint({ sa: "client", authority: `${vip.ipdeny}:80`, path: evade, host: host("ipdeny"), headers });
      expect([headers, "DENY remoteIpBlocks", e.status]).toEqual([headers, "DENY remoteIpBlocks", 403]);
    }
    // control: the DENY is on the client's address only; the same identity from elsewhere passes
    const ok = marker("ipok");
    const c = await viaWaypoint({ sa: "client", authority: `${vip.ipdeny}:80`, path: ok, host: host("ipdeny"), from: elsewhereIp });
    expect(c.status).toBe(200);
    await Bun.sleep(100);
    for (const m of denied) expect([m, receivedAnywhere(m)]).toEqual([m, false]);
  });

  test("a CONNECT-level source claim (x-mesh-source-principal) from anyone but the destination itself is ignored and logged", async () => {
    const claim = { "x-mesh-source-principal": ADMIN, forwarded: "for=203.0.113.9" };
    const cases: { what: string; sa: string; authority: string; from?: string }[] = [
      { what: "client, service-addressed", sa: "client", authority: `${vip.adminonly}:80` },
      { what: "client, pod-addressed", sa: "client", authority: `${server2Ip}:8080` },
      { what: "the destination's identity from another address", sa: "server2", authority: `${server2Ip}:8080` },
      { what: "the destination's identity, service-addressed", sa: "server2", authority: `${vip.adminonly}:80`, from: server2Ip },
      { what: "the waypoint's identity", sa: "waypoint", authority: `${server2Ip}:8080` },
    ];
    for (const c of cases) {
      const before = ignoredClaims();
      const m = marker("claim");
      denied.push(m);
      const r = await viaWaypoint({ sa: c.sa, authority: c.authority, path: m, host: host("adminonly"), connectHeaders: claim, ...(c.from ? { from: c.from } : {}) });
      expect([c.what, r.status]).toEqual([c.what, 403]);
      await until(() => ignoredClaims() > before, 5000, `the waypoint to log the ignored claim (${c.what})`);
    }
    // and the claimed forwarded address did not satisfy the remoteIpBlocks ALLOW either
    const m = marker("claimip");
    denied.push(m);
    const r = await viaWaypoint({ sa: "client", authority: `${vip.iponly}:80`, path: m, host: host("iponly"), connectHeaders: claim });
    expect(r.status).toBe(403);
    await Bun.sleep(100);
    for (const x of denied) expect([x, receivedAnywhere(x)]).toEqual([x, false]);
  });

  test("the Host header cannot pick which service's policy applies: the tunnel's destination decides", async () => {
    const a = marker("secret");
    const b = marker("hostswap");
    denied.push(a, b);
    // to the server VIP, claiming the admin-only service's host: the server's DENY still applies
    const r1 = await viaWaypoint({ sa: "client", authority: `${vip.server}:80`, path: a, host: host("adminonly") });
    expect(r1.status).toBe(403);
    // to the admin-only VIP, claiming the server's host: the ALLOW for admin still applies
    const r2 = await viaWaypoint({ sa: "client", authority: `${vip.adminonly}:80`, path: b, host: host("server") });
    expect(r2.status).toBe(403);
    await Bun.sleep(100);
    expect(receivedAnywhere(a)).toBe(false);
    expect(receivedAnywhere(b)).toBe(false);
  });

  test("each pipelined request on a kept-alive tunnel is authorized on its own", async () => {
    const fine = marker("fine");
    const secret = marker("secret");
    denied.push(secret);
    const t = await hbone(waypointIp, "client").open(`${vip.server}:80`);
    expect(t.status).toBe(200);
    const h = `Host: ${host("server")}\r\n`;
    const r = await rawExchange(t.stream, `GET ${fine} HTTP/1.1\r\n${h}\r\nGET ${secret} HTTP/1.1\r\n${h}Connection: close\r\n\r\n`, { waitMs: 10_000 });
    t.stream.destroy();
    expect(parseResponses(r.text).map((x) => x.status)).toEqual([200, 403]);
    await Bun.sleep(100);
    expect(apps.server!.requestsFor(fine).length).toBe(1);
    expect(receivedAnywhere(secret)).toBe(false);
  });

  test("path spellings cannot dodge a path DENY (Istio's default BASE normalization: dot segments, %2e, %-encoded unreserved characters)", async () => {
    const spellings: [string, (n: string) => string][] = [
      ["dot segment", (n) => `/./secret${n}`],
      ["dot-dot segment", (n) => `/fine/../secret${n}`],
      ["%2e segment", (n) => `/%2e/secret${n}`],
      ["%2e%2e segment", (n) => `/fine/%2e%2e/secret${n}`],
      ["%-encoded letter", (n) => `/%73ecret${n}`],
      ["%-encoded letter mid-word", (n) => `/secr%65t${n}`],
      ["several %-encoded letters", (n) => `/%73%65%63ret${n}`],
    ];
    const outcomes: Record<string, string> = {};
    const tails: string[] = [];
    for (const [what, spell] of spellings) {
      const tail = `-${++markerNo}-${process.pid}`;
      tails.push(tail);
      const r = await viaWaypoint({ sa: "client", authority: `${vip.server}:80`, path: spell(tail), host: host("server") });
      outcomes[what] = r.status === 403 || r.status === 400 ? "refused" : `status ${r.status}`;
    }
    await Bun.sleep(100);
    expect(outcomes).toEqual(Object.fromEntries(spellings.map(([w]) => [w, "refused"])));
    for (const t of tails) expect([t, apps.server!.requestsFor(t).map((x) => x.target)]).toEqual([t, []]);
  });

  test("a method DENY cannot be dodged by the method's case (Istio refuses non-upper-case methods with 400)", async () => {
    const control = marker("delete");
    denied.push(control);
    const t0 = await hbone(waypointIp, "client").open(`${vip.server}:80`);
    const r0 = await rawExchange(t0.stream, `DELETE ${control} HTTP/1.1\r\nHost: ${host("server")}\r\nConnection: close\r\n\r\n`, { waitMs: 10_000 });
    t0.stream.destroy();
    expect(parseResponses(r0.text).map((x) => x.status)).toEqual([403]);
    const outcomes: Record<string, number | undefined> = {};
    const paths: string[] = [];
    for (const method of ["delete", "Delete", "dELETE"]) {
      const m = marker("delete");
      paths.push(m);
      const t = await hbone(waypointIp, "client").open(`${vip.server}:80`);
      const r = await rawExchange(t.stream, `${method} ${m} HTTP/1.1\r\nHost: ${host("server")}\r\nConnection: close\r\n\r\n`, { waitMs: 10_000 });
      t.stream.destroy();
      outcomes[method] = parseResponses(r.text)[0]?.status;
    }
    await Bun.sleep(100);
    expect(Object.values(outcomes).every((s) => s === 400 || s === 403) ? "refused" : outcomes).toBe("refused");
    for (const m of paths) expect([m, receivedAnywhere(m)]).toEqual([m, false]);
  });

  test("bytes the waypoint cannot classify as HTTP are TCP under L4 policy, where HTTP rules fail closed: no L7 rule is dodged that way", async () => {
    const h = (svc: string): string => `Host: ${host(svc)}\r\nConnection: close\r\n\r\n`;
    // allowed by HTTP: the mixed ALLOW (client AND /public*) lets this through as HTTP
    const pub = marker("public");
    const ok = await viaWaypoint({ sa: "client", authority: `${vip.mixed}:80`, path: pub, host: host("mixed") });
    expect(ok.status).toBe(200);
    /** A tunnel to `svc`, optional silence, then `lead` + an HTTP request for a path its policy refuses. */
    const send = async (svc: "server" | "mixed", lead: string, silenceMs: number, tail: string): Promise<RawExchange> => {
      const t = await hbone(waypointIp, "client").open(`${vip[svc]}:80`);
      expect(t.status).toBe(200);
      if (silenceMs) await Bun.sleep(silenceMs);
      const path = svc === "server" ? "/secret" : "/private";
      const r = await rawExchange(t.stream, `${lead}GET ${path}${tail} HTTP/1.1\r\n${h(svc)}`, { waitMs: 3000 });
      t.stream.destroy();
      return r;
    };
    const tricks: { what: string; send: (tail: string) => Promise<RawExchange> }[] = [];
    for (const svc of ["server", "mixed"] as const) {
      tricks.push(
        { what: `${svc}: silence past protocol detection, then HTTP`, send: (tail) => send(svc, "", 1500, tail) },
        { what: `${svc}: a CRLF before the request line`, send: (tail) => send(svc, "\r\n", 0, tail) },
        { what: `${svc}: a space before the request line`, send: (tail) => send(svc, " ", 0, tail) },
      );
    }
    const outcomes: Record<string, string> = {};
    const tails: string[] = [];
    for (const t of tricks) {
      const tail = `-${++markerNo}-${process.pid}`;
      tails.push(tail);
      const r = await t.send(tail);
      const status = parseResponses(r.text)[0]?.status;
      outcomes[t.what] = status === 200 ? "served" : "not served";
    }
    await Bun.sleep(200);
    expect(outcomes).toEqual(Object.fromEntries(tricks.map((t) => [t.what, "not served"])));
    for (const t of tails) expect([t, receivedAnywhere(t)]).toEqual([t, false]);
  });

  test("not an open relay: a CONNECT for a destination that does not use this waypoint is 400, for an unknown one 503; nothing dialled", async () => {
    const connsBefore = Object.fromEntries(Object.entries(apps).map(([k, a]) => [k, a.connections]));
    const c = hbone(waypointIp, "client");
    const cases: [string, number][] = [
      [`${vip.plain}:80`, 400], // a service without a waypoint
      [`${plainIp}:8080`, 400], // its pod
      [`${host("plain")}:80`, 400], // by hostname
      [`${vip.other}:80`, 400], // a service bound to another waypoint
      [`${otherIp}:8080`, 400],
      [`${vip.waypoint}:15008`, 400], // the waypoint's own service
      [`${waypointIp}:15008`, 400], // itself
      [`${ip(77)}:80`, 503], // an address nothing has
      ["203.0.113.9:443", 503], // outside the mesh
      [`nope.default.svc.cluster.local:80`, 503],
    ];
    for (const [authority, want] of cases) {
      const t = await c.open(authority);
      expect([authority, t.status]).toEqual([authority, want]);
    }
    await Bun.sleep(200);
    expect(Object.fromEntries(Object.entries(apps).map(([k, a]) => [k, a.connections]))).toEqual(connsBefore);
    expect(waypoint.records.some((r) => r.msg === "waypoint tunnel for a destination this waypoint does not serve")).toBe(true);
  });

  test("skip (1): SOCKS from the client straight to the server pod (only the service has a waypoint) is hairpinned: the DENY holds", async () => {
    const secret = marker("secret");
    denied.push(secret);
    const d = await httpOver(await socksConnect({ host: clientIp }, serverIp, 8080), secret, host("server"));
    expect([d.status, d.body]).toEqual([403, "RBAC: access denied"]);
    const before = waypoint.accessRecords().length;
    const fine = marker("fine");
    const ok = await httpOver(await socksConnect({ host: clientIp }, serverIp, 8080), fine, host("server"));
    expect(ok.status).toBe(200);
    await until(() => waypoint.accessRecords().slice(before).some((r) => r.path === fine), 5000, "the waypoint's access line for the hairpinned request");
    const line = waypoint.accessRecords().find((r) => r.path === fine)!;
    expect(line["src.identity"]).toBe(ID("client"));
    // via the service VIP (steered by the client's ztunnel) the same DENY applies
    const viaVip = marker("secret");
    denied.push(viaVip);
    const v = await httpOver(await socksConnect({ host: clientIp }, vip.server, 80), viaVip, host("server"));
    expect(v.status).toBe(403);
    await Bun.sleep(100);
    expect(apps.server!.received(secret)).toBe(false);
    expect(apps.server!.received(viaVip)).toBe(false);
  });

  test("skip (2): an HBONE CONNECT straight to the server pod's ztunnel as the client is hairpinned: the DENY holds", async () => {
    const z = hbone(serverIp, "client");
    for (const authority of [`${serverIp}:8080`, `${host("server")}:80`]) {
      const secret = marker("secret");
      denied.push(secret);
      const t = await z.open(authority);
      expect([authority, t.status]).toEqual([authority, 200]);
      const d = await httpOver(t.stream, secret, host("server"));
      expect([authority, d.status]).toEqual([authority, 403]);
      const fine = marker("fine");
      const t2 = await z.open(authority);
      const ok = await httpOver(t2.stream, fine, host("server"));
      expect([authority, ok.status]).toEqual([authority, 200]);
      expect(apps.server!.requestsFor(fine).length).toBe(1);
    }
    await Bun.sleep(100);
    for (const m of denied) expect([m, receivedAnywhere(m)]).toEqual([m, false]);
  });

  test("skip (2b): a hairpinned tunnel carries the verified caller, not one the client claims in its CONNECT", async () => {
    // server2 backs the admin-only service: straight to its ztunnel with a claim of being admin
    const m = marker("hairclaim");
    denied.push(m);
    const t = await hbone(server2Ip, "client").open(`${server2Ip}:8080`, { "x-mesh-source-principal": ADMIN, forwarded: "for=203.0.113.9" });
    expect(t.status).toBe(200);
    const r = await httpOver(t.stream, m, host("adminonly"));
    expect(r.status).toBe(403);
    // control: the real admin identity, hairpinned the same way, is vouched for and allowed
    const ok = marker("hairadmin");
    const t2 = await hbone(server2Ip, "admin", elsewhereIp).open(`${server2Ip}:8080`);
    expect(t2.status).toBe(200);
    const a = await httpOver(t2.stream, ok, host("adminonly"));
    expect(a.status).toBe(200);
    expect(apps.server2!.requestsFor(ok).length).toBe(1);
    await Bun.sleep(100);
    expect(apps.server2!.received(m)).toBe(false);
  });

  test("skip (3): a tunnel to the server's ztunnel with the waypoint's identity from a non-waypoint address is refused (503), never delivered", async () => {
    const before = apps.server!.connections;
    for (const from of [clientIp, elsewhereIp]) {
      const t = await hbone(serverIp, "waypoint", from).open(`${serverIp}:8080`);
      expect([from, t.status]).toEqual([from, 503]);
      if (t.status === 200) {
        const m = marker("wpid");
        denied.push(m);
        await httpOver(t.stream, m, host("server"));
      }
    }
    await Bun.sleep(200);
    expect(apps.server!.connections).toBe(before);
    await until(() => mesh.z("node-b").records.some((r) => String(r.error ?? "").includes("WAYPOINT_REQUIRED") || String(r.error ?? "").includes("waypoint's identity")), 5000, "the server ztunnel's record of the refused tunnel");
  });

  test("skip (4) control: the waypoint's own tunnels to the app are delivered", async () => {
    const fine = marker("fine");
    const r = await viaWaypoint({ sa: "client", authority: `${vip.server}:80`, path: fine, host: host("server") });
    expect(r.status).toBe(200);
    const seen = apps.server!.requestsFor(fine);
    expect(seen.map((x) => x.complete)).toEqual([true]);
    // forwarded by the waypoint: its x-forwarded-for carries the client's tunnel source
    expect(seen[0]!.headers.find(([k]) => k === "x-forwarded-for")?.[1]).toBe(clientIp);
  });

  test("no denied request ever reached any app", async () => {
    await Bun.sleep(200);
    for (const m of denied) expect([m, receivedAnywhere(m)]).toEqual([m, false]);
    expect(waypoint.running).toBe(true);
  });
});
