// SOCKS5 (RFC 1928), the subset istio/ztunnel serves on 15080: no authentication, CONNECT only,
// IPv4, IPv6 and domain-name targets. A pure byte-level state machine, so it is tested without
// sockets; the listener in outbound.ts feeds it.
import { MeshError, ErrorCodes } from "../errors/index.ts";

export type SocksTarget =
  | { readonly kind: "ip"; readonly ip: string; readonly port: number }
  | { readonly kind: "domain"; readonly domain: string; readonly port: number };

export type SocksStep =
  | { readonly type: "need-more" }
  | { readonly type: "reply"; readonly bytes: Uint8Array }
  | { readonly type: "request"; readonly target: SocksTarget; readonly rest: Uint8Array }
  | { readonly type: "error"; readonly error: MeshError; readonly reply?: Uint8Array };

/** A greeting plus a request never needs more than this. */
const MAX_HANDSHAKE_BYTES = 1024;

export class Socks5Handshake {
  private buf = new Uint8Array(0);
  private phase: "greeting" | "request" | "done" = "greeting";

  feed(chunk: Uint8Array): SocksStep[] {
    if (this.phase === "done") return [];
    const merged = new Uint8Array(this.buf.length + chunk.length);
    merged.set(this.buf, 0);
    merged.set(chunk, this.buf.length);
    this.buf = merged;
    if (this.buf.length > MAX_HANDSHAKE_BYTES) {
      this.phase = "done";
      return [fail("handshake larger than 1024 bytes")];
    }
    const steps: SocksStep[] = [];
    for (;;) {
      const step = this.phase === "greeting" ? this.greeting() : this.phase === "request" ? this.request() : undefined;
      if (!step) break;
      if (step.type === "need-more") break;
      steps.push(step);
      if (step.type === "error" || step.type === "request") {
        this.phase = "done";
        break;
      }
    }
    return steps;
  }

  private greeting(): SocksStep {
    const b = this.buf;
    if (b.length < 2) return { type: "need-more" };
    if (b[0] !== 5) return fail(`unsupported SOCKS version ${b[0]} (only SOCKS5 is served)`);
    const n = b[1]!;
    if (b.length < 2 + n) return { type: "need-more" };
    const methods = b.subarray(2, 2 + n);
    this.buf = b.slice(2 + n);
    if (!methods.includes(0x00)) {
      return { type: "error", error: new MeshError(ErrorCodes.SOCKS_PROTOCOL, "SOCKS5 client offers no 'no authentication' method"), reply: Uint8Array.of(5, 0xff) };
    }
    this.phase = "request";
    return { type: "reply", bytes: Uint8Array.of(5, 0) };
  }

  private request(): SocksStep {
    const b = this.buf;
    if (b.length < 4) return { type: "need-more" };
    if (b[0] !== 5) return fail(`bad SOCKS5 request version ${b[0]}`);
    if (b[1] !== 1) {
      return { type: "error", error: new MeshError(ErrorCodes.SOCKS_PROTOCOL, `SOCKS5 command ${b[1]} is not supported (only CONNECT)`), reply: socksReply(0x07) };
    }
    const atyp = b[3];
    let target: SocksTarget;
    let end: number;
    if (atyp === 1) {
      end = 4 + 4 + 2;
      if (b.length < end) return { type: "need-more" };
      target = { kind: "ip", ip: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port: (b[8]! << 8) | b[9]! };
    } else if (atyp === 4) {
      end = 4 + 16 + 2;
      if (b.length < end) return { type: "need-more" };
      target = { kind: "ip", ip: formatIpv6(b.subarray(4, 20)), port: (b[20]! << 8) | b[21]! };
    } else if (atyp === 3) {
      if (b.length < 5) return { type: "need-more" };
      const len = b[4]!;
      end = 5 + len + 2;
      if (b.length < end) return { type: "need-more" };
      if (len === 0) return fail("empty SOCKS5 domain name");
      const domain = new TextDecoder().decode(b.subarray(5, 5 + len));
      if (!/^[A-Za-z0-9.-]+$/.test(domain)) return fail("SOCKS5 domain name has invalid characters");
      target = { kind: "domain", domain: domain.toLowerCase().replace(/\.$/, ""), port: (b[5 + len]! << 8) | b[6 + len]! };
    } else {
      return { type: "error", error: new MeshError(ErrorCodes.SOCKS_PROTOCOL, `SOCKS5 address type ${atyp} is not supported`), reply: socksReply(0x08) };
    }
    if (target.port === 0) return fail("SOCKS5 target port 0");
    return { type: "request", target, rest: b.slice(end) };
  }
}

function fail(msg: string): SocksStep {
  return { type: "error", error: new MeshError(ErrorCodes.SOCKS_PROTOCOL, msg), reply: socksReply(0x01) };
}

function formatIpv6(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  // compress the longest run of zero groups
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/** A SOCKS5 reply with the given code and an all-zero IPv4 bound address. */
export function socksReply(code: number): Uint8Array {
  return Uint8Array.of(5, code, 0, 1, 0, 0, 0, 0, 0, 0);
}
