import { describe, expect, test } from "bun:test";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { istioIdentity, parseSpiffeId, principalOf } from "./index.ts";

function rejects(text: string): MeshError {
  try {
    parseSpiffeId(text);
  } catch (e) {
    expect(e).toBeInstanceOf(MeshError);
    expect((e as MeshError).code).toBe(ErrorCodes.SPIFFE_ID_INVALID);
    return e as MeshError;
  }
  throw new Error(`accepted ${JSON.stringify(text)}`);
}

describe("parseSpiffeId accepts", () => {
  const good: [string, { trustDomain: string; path: string; namespace?: string; serviceAccount?: string; uri: string }][] = [
    ["spiffe://cluster.local/ns/default/sa/bookinfo", { trustDomain: "cluster.local", path: "/ns/default/sa/bookinfo", namespace: "default", serviceAccount: "bookinfo", uri: "spiffe://cluster.local/ns/default/sa/bookinfo" }],
    ["spiffe://example.org", { trustDomain: "example.org", path: "", uri: "spiffe://example.org" }],
    ["spiffe://example.org/workload", { trustDomain: "example.org", path: "/workload", uri: "spiffe://example.org/workload" }],
    ["SPIFFE://example.org/Path/With.Dots-and_Under", { trustDomain: "example.org", path: "/Path/With.Dots-and_Under", uri: "spiffe://example.org/Path/With.Dots-and_Under" }],
    ["spiffe://a-b_c.9/x/..y/.z", { trustDomain: "a-b_c.9", path: "/x/..y/.z", uri: "spiffe://a-b_c.9/x/..y/.z" }],
    // five segments is not the Istio form, so no namespace
    ["spiffe://td/ns/a/sa/b/c", { trustDomain: "td", path: "/ns/a/sa/b/c", uri: "spiffe://td/ns/a/sa/b/c" }],
    ["spiffe://td/NS/a/sa/b", { trustDomain: "td", path: "/NS/a/sa/b", uri: "spiffe://td/NS/a/sa/b" }],
  ];
  for (const [text, want] of good) {
    test(text, () => {
      expect({ ...parseSpiffeId(text) }).toEqual(want);
    });
  }

  test("exactly 2048 bytes and a 255-byte trust domain", () => {
    const td = "a".repeat(255);
    const head = `spiffe://${td}/`;
    const id = head + "p".repeat(2048 - head.length);
    expect(Buffer.byteLength(id)).toBe(2048);
    expect(parseSpiffeId(id).trustDomain).toBe(td);
  });
});

describe("parseSpiffeId rejects", () => {
  const bad: [string, string, RegExp][] = [
    ["empty", "", /empty/],
    ["wrong scheme", "https://example.org/a", /scheme/],
    ["missing //", "spiffe:example.org/a", /scheme/],
    ["empty trust domain", "spiffe:///a", /trust domain is empty/],
    ["uppercase trust domain", "spiffe://Example.org/a", /lowercase/],
    ["userinfo", "spiffe://user@example.org/a", /userinfo/],
    ["port", "spiffe://example.org:8080/a", /port/],
    ["percent in trust domain", "spiffe://exa%6dple.org/a", /percent-encoding/],
    ["percent-encoded slash in path", "spiffe://example.org/a%2Fb", /percent-encoding/],
    ["query", "spiffe://example.org/a?x=1", /query/],
    ["fragment", "spiffe://example.org/a#frag", /fragment/],
    ["query in trust domain", "spiffe://example.org?x", /query/],
    ["dot segment", "spiffe://example.org/a/./b", /'\.'/],
    ["dot-dot segment", "spiffe://example.org/a/../b", /'\.\.'/],
    ["trailing slash", "spiffe://example.org/a/", /end with '\/'/],
    ["root path only", "spiffe://example.org/", /end with '\/'/],
    ["empty segment", "spiffe://example.org/a//b", /empty segment/],
    ["space in path", "spiffe://example.org/a b", /character " "/],
    ["non-ASCII in path", "spiffe://example.org/caf\u00e9", /character/],
    ["invalid trust domain char", "spiffe://exa*mple.org/a", /character "\*"/],
    ["trust domain over 255 bytes", `spiffe://${"a".repeat(256)}/a`, /255/],
    ["2049 bytes", `spiffe://example.org/${"a".repeat(2049 - "spiffe://example.org/".length)}`, /2048/],
  ];
  for (const [name, text, why] of bad) {
    test(name, () => {
      expect(rejects(text).message).toMatch(why);
    });
  }
});

describe("istioIdentity and principalOf", () => {
  test("build the Istio form", () => {
    expect(istioIdentity("cluster.local", "default", "sleep")).toBe("spiffe://cluster.local/ns/default/sa/sleep");
  });
  test("refuse components that would change the structure", () => {
    expect(() => istioIdentity("cluster.local", "a/b", "sleep")).toThrow(MeshError);
    expect(() => istioIdentity("Cluster.local", "default", "sleep")).toThrow(/lowercase/);
    expect(() => istioIdentity("cluster.local", "default", "")).toThrow(MeshError);
  });
  test("principal drops the scheme", () => {
    expect(principalOf("spiffe://cluster.local/ns/default/sa/sleep")).toBe("cluster.local/ns/default/sa/sleep");
    expect(principalOf(parseSpiffeId("SPIFFE://td/x"))).toBe("td/x");
    expect(() => principalOf("cluster.local/ns/default/sa/sleep")).toThrow(MeshError);
  });
});
