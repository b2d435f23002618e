import { describe, expect, test } from "bun:test";
import { normalizeRequestPath } from "./normalize.ts";

const norm = (p: string) => {
  const r = normalizeRequestPath(p);
  return r.ok ? r.path : `!${r.why}`;
};

describe("request path normalization (Istio BASE)", () => {
  test("unreserved escapes are decoded, others upper-cased; the query is untouched", () => {
    expect(norm("/%73ecret/x")).toBe("/secret/x");
    expect(norm("/secr%65t")).toBe("/secret");
    expect(norm("/a%2fb")).toBe("/a%2Fb");
    expect(norm("/a%20b?x=%73")).toBe("/a%20b?x=%73");
    expect(norm("/%7e")).toBe("/~");
  });
  test("dot segments and backslashes", () => {
    expect(norm("/a/./b/../c")).toBe("/a/c");
    expect(norm("/public/../secret")).toBe("/secret");
    expect(norm("/%2e%2e/secret")).toBe("/secret");
    expect(norm("/a\\..\\secret")).toBe("/secret");
    expect(norm("/a/b/..")).toBe("/a/");
    expect(norm("/../../x")).toBe("/x");
  });
  test("NUL and malformed escapes are refused", () => {
    expect(norm("/a%00b")).toStartWith("!");
    expect(norm("/a%zz")).toStartWith("!");
    expect(norm("/a%2")).toStartWith("!");
  });
  test("already normal paths are unchanged", () => {
    expect(norm("/")).toBe("/");
    expect(norm("/api/v1/items?id=3")).toBe("/api/v1/items?id=3");
    expect(norm("*")).toBe("*");
  });
});
