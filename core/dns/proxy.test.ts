// The DNS proxy's answers and forwarding, against a real UDP/TCP resolver on loopback.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import dnsPacket from "dns-packet";
import { ErrorCodes, isMeshError } from "../errors/index.ts";
import { bindUdp, listenTcp, type TcpListener, type UdpListener } from "../net/index.ts";
import { DnsProxy, frameTcpMessage, splitTcpMessages, type MeshLookup } from "./proxy.ts";
import { parseResolvConf } from "./resolv.ts";
import { TcpMessageReader } from "./server.ts";

const query = (name: string, type: "A" | "AAAA" | "MX", id = 7) =>
  new Uint8Array(dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] }));
const decode = (b: Uint8Array | undefined) => dnsPacket.decode(Buffer.from(b!)) as dnsPacket.DecodedPacket & { rcode: string };

const lookup: MeshLookup = (name) => {
  if (name === "echo.default.svc.cluster.local") return { kind: "addresses", ips: ["10.96.0.1", "fd00::1"] };
  if (name.endsWith(".cluster.local")) return { kind: "nxdomain" };
  return { kind: "forward" };
};

/** Upstream on 127.0.0.1: answers upstream.test A 192.0.2.9, NXDOMAIN otherwise; counts queries. */
let udp: UdpListener;
let tcp: TcpListener;
let asked = 0;
function upstreamAnswer(q: Uint8Array): Uint8Array {
  asked++;
  const p = dnsPacket.decode(Buffer.from(q));
  const known = p.questions?.[0]?.name === "upstream.test";
  return new Uint8Array(
    dnsPacket.encode({ type: "response", id: p.id, flags: known ? 0 : 3, questions: p.questions, answers: known ? [{ type: "A", name: "upstream.test", data: "192.0.2.9" }] : [] }),
  );
}

describe("DnsProxy", () => {
  let port = 0;
  beforeAll(async () => {
    // TCP on the same port number as UDP, as a resolver has. The number the kernel picked for UDP
    // may be taken for TCP by another process: then try another.
    for (let attempt = 0; ; attempt++) {
      udp = await bindUdp({ hostname: "127.0.0.1", port: 0, onMessage: (d, _f, reply) => reply(upstreamAnswer(d)) });
      port = udp.port;
      try {
        tcp = listenTcp({
          hostname: "127.0.0.1",
          port,
          onConnection: (c) => {
            const reader = new TcpMessageReader();
            c.setEvents({
              data(chunk) {
                for (const m of reader.push(chunk)) c.write(frameTcpMessage(upstreamAnswer(m)));
              },
              end() {
                c.end();
              },
              drain() {},
              close() {},
            });
          },
        });
        break;
      } catch (e) {
        udp.close();
        if (!isMeshError(e, ErrorCodes.ADDRESS_IN_USE) || attempt >= 20) throw e;
      }
    }
  });
  afterAll(() => {
    udp.close();
    tcp.close();
  });

  test("mesh names: A and AAAA from the state, NODATA for other types, NXDOMAIN for unknown cluster names", async () => {
    const p = new DnsProxy({ upstreams: [] });
    const a = decode(await p.answer(query("echo.default.svc.cluster.local", "A"), lookup, "udp"));
    expect(a.id).toBe(7);
    expect(a.rcode).toBe("NOERROR");
    expect(a.flag_aa).toBe(true);
    expect(a.flag_rd).toBe(true);
    expect(a.answers?.map((x) => [x.type, (x as { data: string }).data, (x as { ttl: number }).ttl])).toEqual([["A", "10.96.0.1", 30]]);
    const aaaa = decode(await p.answer(query("echo.default.svc.cluster.local", "AAAA"), lookup, "udp"));
    expect(aaaa.answers?.map((x) => (x as { data: string }).data)).toEqual(["fd00::1"]);
    const mx = decode(await p.answer(query("echo.default.svc.cluster.local", "MX"), lookup, "udp"));
    expect([mx.rcode, mx.answers?.length]).toEqual(["NOERROR", 0]);
    expect(decode(await p.answer(query("nope.default.svc.cluster.local", "A"), lookup, "udp")).rcode).toBe("NXDOMAIN");
  });

  test("other names are forwarded over UDP or TCP; no upstream or a dead one is SERVFAIL", async () => {
    const p = new DnsProxy({ upstreams: ["127.0.0.1"], upstreamPort: port });
    const viaUdp = decode(await p.answer(query("upstream.test", "A", 99), lookup, "udp"));
    expect([viaUdp.id, viaUdp.rcode, (viaUdp.answers?.[0] as { data: string }).data]).toEqual([99, "NOERROR", "192.0.2.9"]);
    const viaTcp = decode(await p.answer(query("upstream.test", "A", 100), lookup, "tcp"));
    expect([viaTcp.id, (viaTcp.answers?.[0] as { data: string }).data]).toEqual([100, "192.0.2.9"]);
    expect(decode(await p.answer(query("other.test", "A"), lookup, "udp")).rcode).toBe("NXDOMAIN");
    const before = asked;
    expect(decode(await new DnsProxy({ upstreams: [] }).answer(query("upstream.test", "A"), lookup, "udp")).rcode).toBe("SERVFAIL");
    expect(asked).toBe(before);
    // A resolver that never answers (nothing on that port), then a working one.
    const dead = await bindUdp({ hostname: "127.0.0.2", port, onMessage: () => {} }).catch(() => undefined);
    const fallback = new DnsProxy({ upstreams: ["127.0.0.2", "127.0.0.1"], upstreamPort: port, upstreamTimeoutMs: 200 });
    expect(decode(await fallback.answer(query("upstream.test", "A"), lookup, "udp")).rcode).toBe("NOERROR");
    dead?.close();
  });

  test("garbage gets FORMERR (or nothing when even the header is short); responses are ignored", async () => {
    const p = new DnsProxy({ upstreams: [] });
    const junk = new Uint8Array([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
    const r = await p.answer(junk, lookup, "udp");
    expect(r && [r[0], r[1], r[3]! & 0xf]).toEqual([0x12, 0x34, 1]);
    expect(await p.answer(new Uint8Array([1, 2, 3]), lookup, "udp")).toBeUndefined();
    const resp = new Uint8Array(dnsPacket.encode({ type: "response", id: 1, questions: [{ type: "A", name: "x" }] }));
    expect(await p.answer(resp, lookup, "udp")).toBeUndefined();
  });

  test("TCP framing splits and joins messages", () => {
    const a = frameTcpMessage(new Uint8Array([1, 2, 3]));
    const b = frameTcpMessage(new Uint8Array([4]));
    const joined = new Uint8Array([...a, ...b, 0]);
    const { messages, rest } = splitTcpMessages(joined);
    expect(messages.map((m) => [...m])).toEqual([[1, 2, 3], [4]]);
    expect([...rest]).toEqual([0]);
  });

  test("resolv.conf: nameservers in order, search list, comments", () => {
    const c = parseResolvConf("# x\nnameserver 10.0.0.2\nnameserver fd00::53 ; y\nnameserver not-an-ip\nsearch a.svc.cluster.local cluster.local.\noptions ndots:5\n");
    expect(c).toEqual({ nameservers: ["10.0.0.2", "fd00::53"], search: ["a.svc.cluster.local", "cluster.local"] });
    expect(parseResolvConf("").nameservers).toEqual([]);
  });
});
