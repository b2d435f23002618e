// Request path normalization before policy, routing and the upstream request — Istio's default
// (BASE: Envoy's normalize_path, RFC 3986 §6.2.2): percent-encoded unreserved characters are
// decoded, other escapes upper-cased, `\` becomes `/`, dot segments are removed. A path that
// differs only in spelling then meets the same policy (`/%73ecret` is `/secret`) and the backend
// gets the path the policy saw. `%00` and malformed escapes are refused (400).

const UNRESERVED = /[A-Za-z0-9\-._~]/;

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** RFC 3986 §5.2.4 remove_dot_segments on an absolute path. */
function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split("/");
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === ".") {
      if (last) out.push("");
    } else if (s === "..") {
      out.pop();
      if (last) out.push("");
    } else out.push(s);
  }
  return `/${out.join("/")}`;
}

/** The normalized origin-form target, or an error naming why the path is refused. */
export function normalizeRequestPath(target: string): { ok: true; path: string } | { ok: false; why: string } {
  if (target === "*") return { ok: true, path: target };
  const q = target.indexOf("?");
  const rawPath = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q);
  let p = "";
  for (let i = 0; i < rawPath.length; i++) {
    const ch = rawPath[i]!;
    if (ch === "%") {
      const a = hex(rawPath.charCodeAt(i + 1));
      const b = hex(rawPath.charCodeAt(i + 2));
      if (a < 0 || b < 0) return { ok: false, why: "malformed percent-encoding in the path" };
      const code = a * 16 + b;
      if (code === 0) return { ok: false, why: "NUL in the path" };
      const decoded = String.fromCharCode(code);
      p += UNRESERVED.test(decoded) ? decoded : `%${rawPath.slice(i + 1, i + 3).toUpperCase()}`;
      i += 2;
    } else if (ch === "\\") p += "/";
    else p += ch;
  }
  if (!p.startsWith("/")) return { ok: false, why: "the path must start with /" };
  return { ok: true, path: removeDotSegments(p) + query };
}
