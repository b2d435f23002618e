// Defensive scrub for anything the admin port serialises. The config dump is assembled from live
// state by other folders; whatever they hand us, private keys must not leave the process
// (reference/reliability.md, key material handling).

const MAX_DEPTH = 64;
const PRIVATE_KEY_PEM = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
export const REDACTED = "[redacted]";

/**
 * Whether a property name looks like it holds key material: `key`, `keyPem`, `privateKey`,
 * `private_key`, `signingKey`, `secretKey`, `keyDer`, ... (case and `_`/`-` insensitive).
 * Deliberately broad: a false positive hides a field from a debug dump, a false negative leaks a key.
 */
export function isKeyMaterialName(name: string): boolean {
  const n = name.toLowerCase().replace(/[-_.\s]/g, "");
  return (
    n === "key" ||
    n.includes("privatekey") ||
    n.includes("secretkey") ||
    n.includes("signingkey") ||
    n.startsWith("keypem") ||
    n.endsWith("keypem") ||
    n.endsWith("keyder") ||
    n.includes("keymaterial")
  );
}

/**
 * A JSON-safe deep copy of `value` without key material: properties (and Map entries) whose name
 * looks like a key are removed, and any string carrying a PEM private key is replaced. Maps become
 * objects, Sets arrays, BigInts strings, byte arrays a length; cycles are cut.
 */
export function scrubKeyMaterial(value: unknown): unknown {
  return walk(value, 0, []);
}

function walk(v: unknown, depth: number, stack: object[]): unknown {
  switch (typeof v) {
    case "string":
      return PRIVATE_KEY_PEM.test(v) ? REDACTED : v;
    case "number":
      return Number.isFinite(v) ? v : String(v);
    case "boolean":
      return v;
    case "bigint":
      return v.toString();
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
  }
  if (v === null) return null;
  const obj = v as object;
  if (stack.includes(obj)) return "[circular]";
  if (depth >= MAX_DEPTH) return "[too deep]";
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? null : obj.toISOString();
  // Raw bytes could be a DER key; their length is all a dump needs.
  if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) return `[${obj.byteLength} bytes]`;
  stack.push(obj);
  try {
    if (Array.isArray(obj)) return obj.map((x) => walk(x, depth + 1, stack) ?? null);
    if (obj instanceof Set) return [...obj].map((x) => walk(x, depth + 1, stack) ?? null);
    if (obj instanceof Map) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of obj) {
        const name = String(k);
        if (isKeyMaterialName(name)) continue;
        const w = walk(x, depth + 1, stack);
        if (w !== undefined) out[name] = w;
      }
      return out;
    }
    if (obj instanceof Error) return { name: obj.name, message: walk(obj.message, depth + 1, stack) };
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") return walk(toJSON.call(obj), depth + 1, stack);
    const out: Record<string, unknown> = {};
    for (const name of Object.keys(obj)) {
      if (isKeyMaterialName(name)) continue;
      const w = walk((obj as Record<string, unknown>)[name], depth + 1, stack);
      if (w !== undefined) out[name] = w;
    }
    return out;
  } finally {
    stack.pop();
  }
}
