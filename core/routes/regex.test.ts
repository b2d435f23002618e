import { describe, expect, test } from "bun:test";
import { compileRouteRegex } from "./regex.ts";

describe("compileRouteRegex (RE2 patterns, whole-value match)", () => {
  test.each([
    ["/api/v[0-9]+", "/api/v12", true],
    ["/api/v[0-9]+", "/api/v12/x", false],
    ["a|b", "b", true],
    ["a|b", "ab", false],
    ["(?i)/Users", "/users", true],
    ["(?P<id>[0-9]+)", "42", true],
    ["\\A/x\\z", "/x", true],
  ] as const)("%s vs %s -> %p", (pattern, value, want) => {
    const re = compileRouteRegex(pattern);
    expect(re).toBeInstanceOf(RegExp);
    expect((re as RegExp).test(value)).toBe(want);
  });

  test.each([
    ["(?=a)a", "lookahead and lookbehind are not RE2"],
    ["(?<!a)b", "lookahead and lookbehind are not RE2"],
    ["(a)\\1", "backreferences are not RE2"],
    ["(?<n>a)\\k<n>", "named backreferences are not RE2"],
  ])("rejects %s", (pattern, why) => expect(compileRouteRegex(pattern)).toBe(why));

  test.each(["[[:alpha:]]", "(a", "a{2,1}", "\\q"])("rejects %s as not compiling", (pattern) => {
    expect(compileRouteRegex(pattern)).toStartWith("does not compile: ");
  });
});
