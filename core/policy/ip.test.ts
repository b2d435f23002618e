import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { cidrContains, parseCidr, parseIp } from "../config/index.ts";
import { AddressSlot, cidrHas, compileCidr, parseAddressInto } from "./ip.ts";

const ip = fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.ipV4().map((v4) => `::ffff:${v4}`));
const text = fc.oneof(ip, fc.string({ maxLength: 20 }), fc.constantFrom("01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "::", ":::", "1::2::3", ""));

describe("fast address parsing and CIDR matching", () => {
  test("accepts exactly what core/config's parseIp accepts", () => {
    fc.assert(
      fc.property(text, (s) => {
        const slot = new AddressSlot();
        const ok = parseAddressInto(s, slot);
        const want = parseIp(s);
        expect(ok).toBe(want !== undefined);
        if (want) expect(slot.family).toBe(want.family);
      }),
      { numRuns: 2000 },
    );
  });

  test("containment agrees with core/config's cidrContains", () => {
    // A second address near the first (same high bits) so containment is often true.
    const pair = fc.tuple(ip, ip, fc.integer({ min: 0, max: 128 }), fc.integer({ min: 0, max: 16 }));
    fc.assert(
      fc.property(pair, ([a, b, len, shared]) => {
        const pa = parseIp(a);
        if (!pa) return;
        const max = pa.family === 4 ? 32 : 128;
        const l = len % (max + 1);
        const cidrText = `${pa.text}/${l}`;
        const c = compileCidr(cidrText)!;
        const ref = parseCidr(cidrText)!;
        // Candidates: b, and a with its last `shared` bits flipped.
        const bytes = new Uint8Array(pa.bytes);
        for (let i = 0; i < shared; i++) bytes[bytes.length - 1 - (i >> 3)]! ^= 1 << (i & 7);
        const flipped = pa.family === 4 ? [...bytes].join(".") : parseIp(toV6(bytes))!.text;
        for (const cand of [b, flipped]) {
          const slot = new AddressSlot();
          if (!parseAddressInto(cand, slot)) continue;
          expect(cidrHas(c, slot)).toBe(cidrContains(ref, cand));
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("edges", () => {
    const at = (cidr: string, addr: string) => {
      const slot = new AddressSlot();
      expect(parseAddressInto(addr, slot)).toBe(true);
      return cidrHas(compileCidr(cidr)!, slot);
    };
    expect(at("0.0.0.0/0", "255.255.255.255")).toBe(true);
    expect(at("255.255.255.255/32", "255.255.255.255")).toBe(true);
    expect(at("255.255.255.254/32", "255.255.255.255")).toBe(false);
    expect(at("128.0.0.0/1", "127.255.255.255")).toBe(false);
    expect(at("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(true);
    expect(at("2001:db8::/33", "2001:db8:8000::1")).toBe(false);
    expect(at("2001:db8::/33", "2001:db8:7fff::1")).toBe(true);
    expect(at("::ffff:10.0.0.0/104", "10.1.2.3")).toBe(true);
    expect(compileCidr("10.0.0.0/33")).toBeUndefined();
  });
});

function toV6(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(":");
}
