import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { canonicalIp, cidrContains, parseCidr, parseIp, parseNetworkAddress } from "./addresses.ts";

describe("canonicalIp", () => {
  test.each([
    ["10.0.0.1", "10.0.0.1"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["::", "::"],
    ["::1", "::1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"], // first longest run
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group is not compressed
    ["fe80:0:0:0:1:0:0:0", "fe80::1:0:0:0"], // equal runs: the first is compressed
    ["::ffff:10.1.2.3", "10.1.2.3"], // IPv4-mapped folds to IPv4
    ["::FFFF:0a01:0203", "10.1.2.3"],
    ["64:ff9b::1.2.3.4", "64:ff9b::102:304"],
  ])("%s -> %s", (input, want) => {
    expect(canonicalIp(input)).toBe(want);
  });

  test.each([
    "",
    "10.0.0.300",
    "10.0.0",
    "10.0.0.1.2",
    "010.0.0.1",
    "10.0.0.1 ",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::8",
    "12345::1",
    "fe80::1%eth0",
    "[::1]",
    "::1.2.3",
    "1.2.3.4::",
    "g::1",
    "localhost",
  ])("rejects %p", (input) => {
    expect(canonicalIp(input)).toBeUndefined();
  });

  test("agrees with the WHATWG URL serializer on random IPv6 addresses", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), (groups) => {
        const text = groups.map((g) => g.toString(16).toUpperCase()).join(":");
        const p = parseIp(text)!;
        expect(p).toBeDefined();
        if (p.family === 6) expect(p.text).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
        else expect(groups.slice(0, 6)).toEqual([0, 0, 0, 0, 0, 0xffff]);
        // canonical text is a fixed point
        expect(canonicalIp(p.text)).toBe(p.text);
      }),
    );
  });
});

describe("parseCidr / cidrContains", () => {
  test("clears host bits and folds mapped prefixes", () => {
    expect(parseCidr("10.1.2.3/8")).toMatchObject({ ip: "10.0.0.0", prefixLength: 8, family: 4 });
    expect(parseCidr("10.1.2.3")).toMatchObject({ ip: "10.1.2.3", prefixLength: 32 });
    expect(parseCidr("2001:db8::ff/120")).toMatchObject({ ip: "2001:db8::", prefixLength: 120, family: 6 });
    expect(parseCidr("::ffff:10.0.0.0/104")).toMatchObject({ ip: "10.0.0.0", prefixLength: 8, family: 4 });
    expect(parseCidr("0.0.0.0/0")).toMatchObject({ ip: "0.0.0.0", prefixLength: 0 });
  });
  test.each(["10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08", "::/129", "10.0.0.0/", "/8", "::ffff:1.2.3.4/95"])(
    "rejects %p",
    (s) => expect(parseCidr(s)).toBeUndefined(),
  );
  test("containment", () => {
    const c = parseCidr("10.96.0.0/12")!;
    expect(cidrContains(c, "10.111.255.255")).toBe(true);
    expect(cidrContains(c, "10.112.0.0")).toBe(false);
    expect(cidrContains(c, "::ffff:10.96.0.1")).toBe(true);
    expect(cidrContains(c, "2001:db8::1")).toBe(false);
    expect(cidrContains(parseCidr("0.0.0.0/0")!, "1.2.3.4")).toBe(true);
  });
});

test("parseNetworkAddress splits at the first slash, network may be empty", () => {
  expect(parseNetworkAddress("/10.0.0.1")).toEqual({ network: "", ip: "10.0.0.1" });
  expect(parseNetworkAddress("net-a/2001:DB8::1")).toEqual({ network: "net-a", ip: "2001:db8::1" });
  expect(parseNetworkAddress("10.0.0.1")).toBeUndefined();
  expect(parseNetworkAddress("a/b/10.0.0.1")).toBeUndefined();
});
