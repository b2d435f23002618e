// The DNS proxy's logic (reference/ztunnel.md §1, port 15053): answer A and AAAA for names the
// mesh knows, say NXDOMAIN for names in the cluster domain it does not, and forward everything
// else to the node's resolvers, byte for byte. No upstream means SERVFAIL at once, never a wait.
// Wire format by dns-packet; this file never parses DNS by hand.
import dnsPacket from "dns-packet";
import { connectTcp, udpExchange } from "../net/index.ts";

/** What the mesh says about a name (asked with the querying workload in mind). */
export type MeshAnswer =
  | { readonly kind: "addresses"; readonly ips: readonly string[] }
  | { readonly kind: "nxdomain" }
  /** not a mesh name: ask the upstream resolvers */
  | { readonly kind: "forward" };

export type MeshLookup = (name: string) => MeshAnswer;

export type DnsLog = (level: "debug" | "info" | "warn", msg: string, fields?: Record<string, unknown>) => void;

export interface DnsProxyOptions {
  /** upstream resolvers (IP literals, port 53) */
  readonly upstreams: readonly string[];
  /** per upstream, per attempt */
  readonly upstreamTimeoutMs?: number;
  /** TTL of mesh answers (istio/ztunnel: 30 s) */
  readonly ttlSeconds?: number;
  readonly log?: DnsLog;
  /** upstream port, for tests */
  readonly upstreamPort?: number;
}

const RCODE_FORMERR = 1;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
/** Largest DNS message over TCP (two-byte length prefix). */
export const MAX_DNS_MESSAGE = 65_535;

export class DnsProxy {
  private readonly timeoutMs: number;
  private readonly ttl: number;
  private readonly port: number;

  constructor(private readonly opts: DnsProxyOptions) {
    this.timeoutMs = opts.upstreamTimeoutMs ?? 2000;
    this.ttl = opts.ttlSeconds ?? 30;
    this.port = opts.upstreamPort ?? 53;
  }

  get upstreams(): readonly string[] {
    return this.opts.upstreams;
  }

  /**
   * The response to one query message; undefined when the message cannot even be read as a DNS
   * header (dropped, as a resolver would).
   */
  async answer(query: Uint8Array, lookup: MeshLookup, transport: "udp" | "tcp"): Promise<Uint8Array | undefined> {
    let packet: dnsPacket.Packet;
    try {
      packet = dnsPacket.decode(Buffer.from(query));
    } catch {
      return formErr(query);
    }
    if (packet.type !== "query") return undefined;
    const q = packet.questions?.[0];
    if (!q || packet.questions!.length !== 1) return this.reply(packet, RCODE_FORMERR, []);
    const name = q.name.toLowerCase().replace(/\.$/, "");
    let mesh: MeshAnswer;
    try {
      mesh = lookup(name);
    } catch (e) {
      this.opts.log?.("warn", "DNS mesh lookup failed", { name, error: (e as Error).message });
      return this.reply(packet, RCODE_SERVFAIL, []);
    }
    if (mesh.kind === "nxdomain") return this.reply(packet, RCODE_NXDOMAIN, []);
    if (mesh.kind === "addresses") {
      const want = q.type === "A" ? 4 : q.type === "AAAA" ? 6 : 0;
      // Other types for a mesh name: the name exists, with no data of that type (NODATA).
      const answers: dnsPacket.Answer[] = mesh.ips
        .filter((ip) => (ip.includes(":") ? 6 : 4) === want)
        .map((ip) => ({ type: want === 4 ? "A" : "AAAA", name: q.name, ttl: this.ttl, class: "IN", data: ip }) as dnsPacket.Answer);
      return this.reply(packet, 0, answers, true);
    }
    return this.forward(query, packet, transport);
  }

  private reply(query: dnsPacket.Packet, rcode: number, answers: dnsPacket.Answer[], authoritative = false): Uint8Array {
    const rd = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
    return new Uint8Array(
      dnsPacket.encode({
        type: "response",
        id: query.id ?? 0,
        flags: rd | dnsPacket.RECURSION_AVAILABLE | (authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | rcode,
        questions: query.questions ?? [],
        answers,
      }),
    );
  }

  private async forward(raw: Uint8Array, packet: dnsPacket.Packet, transport: "udp" | "tcp"): Promise<Uint8Array> {
    if (this.opts.upstreams.length === 0) {
      this.opts.log?.("debug", "DNS query not for the mesh and no upstream resolver configured; SERVFAIL", { name: packet.questions?.[0]?.name });
      return this.reply(packet, RCODE_SERVFAIL, []);
    }
    const id = packet.id ?? 0;
    for (const upstream of this.opts.upstreams) {
      try {
        const resp =
          transport === "tcp"
            ? await tcpExchange(upstream, this.port, raw, this.timeoutMs)
            : await udpExchange({ ip: upstream, port: this.port, payload: raw, timeoutMs: this.timeoutMs, accept: (r) => r.byteLength >= 2 && ((r[0]! << 8) | r[1]!) === id });
        return resp;
      } catch (e) {
        this.opts.log?.("debug", "DNS upstream failed; trying the next", { upstream, error: (e as Error).message });
      }
    }
    return this.reply(packet, RCODE_SERVFAIL, []);
  }
}

/** FORMERR echoing the id of a message whose body could not be decoded; nothing when even the header is short. */
function formErr(query: Uint8Array): Uint8Array | undefined {
  if (query.byteLength < 12) return undefined;
  const out = new Uint8Array(12);
  out[0] = query[0]!;
  out[1] = query[1]!;
  out[2] = 0x80 | (query[2]! & 0x79); // QR, keep opcode and RD
  out[3] = 0x80 | RCODE_FORMERR;
  return out;
}

/** One DNS exchange over TCP (two-byte length prefix both ways). */
async function tcpExchange(ip: string, port: number, query: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
  const conn = await connectTcp({ hostname: ip, port, timeoutMs });
  return new Promise<Uint8Array>((resolve, reject) => {
    let buf = new Uint8Array(0);
    const timer = setTimeout(() => finish(new Error(`no TCP answer from ${ip} within ${timeoutMs} ms`)), timeoutMs);
    let done = false;
    const finish = (err?: Error, value?: Uint8Array) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    conn.setEvents({
      data(chunk) {
        const next = new Uint8Array(buf.byteLength + chunk.byteLength);
        next.set(buf);
        next.set(chunk, buf.byteLength);
        buf = next;
        if (buf.byteLength >= 2) {
          const len = (buf[0]! << 8) | buf[1]!;
          if (buf.byteLength >= 2 + len) finish(undefined, buf.slice(2, 2 + len));
        }
      },
      end() {
        finish(new Error(`${ip} closed the TCP connection without a full answer`));
      },
      drain() {},
      close(err) {
        finish(err ?? new Error(`${ip} closed the TCP connection`));
      },
    });
    conn.write(frameTcpMessage(query));
  });
}

/**
 * Splits a TCP byte stream into DNS messages (two-byte length prefix). Returns the messages and
 * the unconsumed rest; a stream that announces nothing parseable is the caller's to close.
 */
export function splitTcpMessages(buf: Uint8Array): { messages: Uint8Array[]; rest: Uint8Array } {
  const messages: Uint8Array[] = [];
  let off = 0;
  while (buf.byteLength - off >= 2) {
    const len = (buf[off]! << 8) | buf[off + 1]!;
    if (buf.byteLength - off - 2 < len) break;
    messages.push(buf.slice(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return { messages, rest: buf.slice(off) };
}

export function frameTcpMessage(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + msg.byteLength);
  out[0] = msg.byteLength >> 8;
  out[1] = msg.byteLength & 0xff;
  out.set(msg, 2);
  return out;
}
