// Route regexes are written for RE2 (Envoy, hence Istio). JavaScript's engine accepts more
// (lookaround, backreferences) and reads some RE2 syntax differently, so a pattern is accepted only
// when its meaning is the same in both; it is compiled once, anchored to match the whole value.

const LEADING_FLAGS = /^\(\?([ims]+)\)/;
const UNSUPPORTED: readonly (readonly [RegExp, string])[] = [
  [/\(\?<?[=!]/, "lookahead and lookbehind are not RE2"],
  [/\\[1-9]/, "backreferences are not RE2"],
  [/\\k</, "named backreferences are not RE2"],
];

/** Compiles an RE2-style pattern into a whole-value matcher, or returns why it cannot. */
export function compileRouteRegex(pattern: string): RegExp | string {
  let body = pattern;
  let flags = "u";
  const lead = LEADING_FLAGS.exec(body);
  if (lead) {
    flags += [...new Set(lead[1]!)].join("");
    body = body.slice(lead[0].length);
  }
  for (const [re, why] of UNSUPPORTED) if (re.test(body)) return why;
  // RE2 spellings with a JavaScript equivalent.
  body = body.replaceAll("(?P<", "(?<").replaceAll("\\A", "^").replaceAll("\\z", "$");
  try {
    // The `u` flag makes unknown escapes and stray brackets (e.g. POSIX classes) errors, as in RE2.
    return new RegExp(`^(?:${body})$`, flags);
  } catch (e) {
    return `does not compile: ${e instanceof Error ? e.message : String(e)}`;
  }
}
