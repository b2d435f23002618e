// @ts-nocheck — AssemblyScript 0.14 source (compiled by asc, not by tsc).
//
// Shared by the example filters (AssemblyScript 0.14 + @solo-io/proxy-runtime 0.1.8):
// - this module: read the plugin configuration safely, parse it as a small JSON object with typed,
//   validating accessors, and header helpers that report the host status instead of aborting;
// - ./proxy.ts: the module's ABI exports (`export * from "../../common/assembly/proxy"`), i.e. the
//   SDK's callback routing without its reference leaks.
//
// Why the configuration helpers exist:
// - `@solo-io/proxy-runtime` 0.1.8 `RootContext.onConfigure` passes `configuration_size` as the
//   size *out-pointer* of `proxy_get_buffer_bytes`, so the host writes into a random address (the
//   config length) and, with an empty configuration, the module traps. Every example therefore
//   overrides `onConfigure` and reads the configuration with `readPluginConfiguration` below,
//   which uses the SDK's correct `get_buffer_bytes` wrapper and never calls the host for size 0.
// - AssemblyScript 0.14 has no JSON in its standard library and nothing else is installed, so a
//   bounded JSON reader lives here (objects, arrays, strings, numbers, booleans, null).
//
// Istio delivers `WasmPlugin.spec.pluginConfig` to the module as JSON text, so examples take JSON.
//
// A filter author copying an example copies this folder along with it.

import { log, LogLevelValues, Context } from "@solo-io/proxy-runtime";
import { get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";
import {
  proxy_get_header_map_value, proxy_replace_header_map_value, proxy_remove_header_map_value,
} from "@solo-io/proxy-runtime/imports";
import { free } from "@solo-io/proxy-runtime/malloc";

/**
 * The base for an example's stream (per-request) context: the SDK's `Context` without its debug
 * logging in the end-of-stream callbacks. 0.1.8's `onDone`, `onLog` and `onDelete` each build a
 * message ("context id: N: onDone()") and encode it to UTF-8 on every request, before the host
 * can drop it: three strings allocated and freed per request, most of what a simple filter's
 * module spends on it. A filter that needs these callbacks overrides them as usual.
 */
export class StreamContext extends Context {
  onDone(): bool {
    return true;
  }

  onLog(): void {}

  onDelete(): void {}
}

/** proxy_map_type_t values. */
export const REQUEST_HEADERS: i32 = 0;
export const RESPONSE_HEADERS: i32 = 2;
export const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;

/**
 * First value of header `name` in map `mapType`, or null when the header is absent. The SDK's
 * `stream_context.headers.*.get()` returns "" for both "absent" and "present but empty", which is
 * not enough for a presence check, so this calls the host directly (ABI:
 * `proxy_get_header_map_value(map_type, key_ptr, key_size, →value_ptr, →value_size)`; NOT_FOUND
 * when absent).
 */
export function headerValue(mapType: i32, name: string): string | null {
  const key = String.UTF8.encode(name);
  const out = new ArrayBuffer(8); // two u32 out-parameters: value_ptr, value_size
  const outPtr = changetype<usize>(out);
  const status = proxy_get_header_map_value(mapType, changetype<usize>(key), key.byteLength, outPtr, outPtr + 4);
  if (status != 0) return null;
  const ptr = <usize>load<u32>(outPtr);
  const size = <usize>load<u32>(outPtr + 4);
  if (ptr == 0 || size == 0) return "";
  const value = String.UTF8.decodeUnsafe(ptr, size);
  free(ptr); // the host allocated it with our `malloc`
  return value;
}

/**
 * Sets header `name` to `value` in map `mapType`; returns the host status (0 = OK). The SDK's
 * `replace()` aborts the whole VM on a non-OK status; a filter should decide instead.
 */
export function replaceHeader(mapType: i32, name: string, value: string): u32 {
  const key = String.UTF8.encode(name);
  const val = String.UTF8.encode(value);
  return proxy_replace_header_map_value(mapType, changetype<usize>(key), key.byteLength, changetype<usize>(val), val.byteLength);
}

/** Removes header `name` from map `mapType`; returns the host status (0 = OK, also when absent). */
export function removeHeader(mapType: i32, name: string): u32 {
  const key = String.UTF8.encode(name);
  return proxy_remove_header_map_value(mapType, changetype<usize>(key), key.byteLength);
}

/** Configurations above this size are refused (a filter config is a handful of fields). */
export const MAX_CONFIGURATION_BYTES: u32 = 65536;
const MAX_DEPTH: i32 = 16;
const PLUGIN_CONFIGURATION: i32 = 7; // proxy_buffer_type_t

/**
 * The plugin configuration as text, or null when it could not be read. Size 0 means "no
 * configuration" and yields "" without a hostcall.
 */
export function readPluginConfiguration(size: u32): string | null {
  if (size == 0) return "";
  if (size > MAX_CONFIGURATION_BYTES) {
    log(LogLevelValues.error, "plugin configuration too large: " + size.toString() + " bytes");
    return null;
  }
  const bytes = get_buffer_bytes(PLUGIN_CONFIGURATION, 0, size);
  if (<u32>bytes.byteLength != size) {
    log(LogLevelValues.error, "could not read the plugin configuration");
    return null;
  }
  return String.UTF8.decode(bytes);
}

export enum JsonKind { Null, Bool, Number, String, Array, Object }

export class JsonValue {
  kind: i32 = JsonKind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  items: Array<JsonValue> = [];
  keys: Array<string> = [];
  values: Array<JsonValue> = [];

  /** Member `key` of an object (last one wins on duplicates), or null. */
  get(key: string): JsonValue | null {
    for (let i = this.keys.length - 1; i >= 0; i--) {
      if (this.keys[i] == key) return this.values[i];
    }
    return null;
  }
}

class JsonParser {
  text: string;
  pos: i32 = 0;
  error: string = "";

  constructor(text: string) {
    this.text = text;
  }

  fail(what: string): JsonValue | null {
    if (this.error.length == 0) this.error = what + " at offset " + this.pos.toString();
    return null;
  }

  skipWhitespace(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) return;
      this.pos++;
    }
  }

  peek(): i32 {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }

  literal(word: string): bool {
    if (this.text.substr(this.pos, word.length) == word) {
      this.pos += word.length;
      return true;
    }
    return false;
  }

  value(depth: i32): JsonValue | null {
    if (depth > MAX_DEPTH) return this.fail("nesting too deep");
    this.skipWhitespace();
    const c = this.peek();
    if (c == 0x7b) return this.object(depth); // {
    if (c == 0x5b) return this.array(depth); // [
    if (c == 0x22) { // "
      const s = this.string();
      if (s === null) return null;
      const v = new JsonValue();
      v.kind = JsonKind.String;
      v.str = s;
      return v;
    }
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    const v = new JsonValue();
    if (this.literal("true")) { v.kind = JsonKind.Bool; v.bool = true; return v; }
    if (this.literal("false")) { v.kind = JsonKind.Bool; return v; }
    if (this.literal("null")) return v;
    return this.fail("unexpected character");
  }

  object(depth: i32): JsonValue | null {
    const v = new JsonValue();
    v.kind = JsonKind.Object;
    this.pos++; // {
    this.skipWhitespace();
    if (this.peek() == 0x7d) { this.pos++; return v; }
    while (true) {
      this.skipWhitespace();
      if (this.peek() != 0x22) return this.fail("expected a member name");
      const key = this.string();
      if (key === null) return null;
      this.skipWhitespace();
      if (this.peek() != 0x3a) return this.fail("expected ':'");
      this.pos++;
      const member = this.value(depth + 1);
      if (member === null) return null;
      v.keys.push(key);
      v.values.push(member);
      this.skipWhitespace();
      const c = this.peek();
      this.pos++;
      if (c == 0x2c) continue; // ,
      if (c == 0x7d) return v; // }
      this.pos--;
      return this.fail("expected ',' or '}'");
    }
    return null;
  }

  array(depth: i32): JsonValue | null {
    const v = new JsonValue();
    v.kind = JsonKind.Array;
    this.pos++; // [
    this.skipWhitespace();
    if (this.peek() == 0x5d) { this.pos++; return v; }
    while (true) {
      const item = this.value(depth + 1);
      if (item === null) return null;
      v.items.push(item);
      this.skipWhitespace();
      const c = this.peek();
      this.pos++;
      if (c == 0x2c) continue;
      if (c == 0x5d) return v;
      this.pos--;
      return this.fail("expected ',' or ']'");
    }
    return null;
  }

  hex4(): i32 {
    if (this.pos + 4 > this.text.length) return -1;
    let code = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.text.charCodeAt(this.pos + i);
      let d = -1;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
      if (d < 0) return -1;
      code = (code << 4) | d;
    }
    this.pos += 4;
    return code;
  }

  string(): string | null {
    this.pos++; // opening quote
    let out = "";
    let start = this.pos;
    while (true) {
      if (this.pos >= this.text.length) {
        this.fail("unterminated string");
        return null;
      }
      const c = this.text.charCodeAt(this.pos);
      if (c == 0x22) {
        out += this.text.substring(start, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) {
        this.fail("control character in string");
        return null;
      }
      if (c != 0x5c) { this.pos++; continue; }
      out += this.text.substring(start, this.pos);
      this.pos++; // backslash
      const e = this.peek();
      this.pos++;
      if (e == 0x22) out += "\"";
      else if (e == 0x5c) out += "\\";
      else if (e == 0x2f) out += "/";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x6e) out += "\n";
      else if (e == 0x72) out += "\r";
      else if (e == 0x74) out += "\t";
      else if (e == 0x75) {
        const code = this.hex4();
        if (code < 0) {
          this.fail("bad \\u escape");
          return null;
        }
        out += String.fromCharCode(code);
      } else {
        this.pos--;
        this.fail("bad escape");
        return null;
      }
      start = this.pos;
    }
    return null;
  }

  number(): JsonValue | null {
    const start = this.pos;
    if (this.peek() == 0x2d) this.pos++;
    if (this.peek() == 0x30) {
      this.pos++;
    } else if (this.peek() >= 0x31 && this.peek() <= 0x39) {
      while (this.peek() >= 0x30 && this.peek() <= 0x39) this.pos++;
    } else {
      return this.fail("bad number");
    }
    if (this.peek() == 0x2e) {
      this.pos++;
      if (!(this.peek() >= 0x30 && this.peek() <= 0x39)) return this.fail("bad number");
      while (this.peek() >= 0x30 && this.peek() <= 0x39) this.pos++;
    }
    if (this.peek() == 0x65 || this.peek() == 0x45) {
      this.pos++;
      if (this.peek() == 0x2b || this.peek() == 0x2d) this.pos++;
      if (!(this.peek() >= 0x30 && this.peek() <= 0x39)) return this.fail("bad number");
      while (this.peek() >= 0x30 && this.peek() <= 0x39) this.pos++;
    }
    const v = new JsonValue();
    v.kind = JsonKind.Number;
    v.str = this.text.substring(start, this.pos);
    v.num = parseFloat(v.str);
    return v;
  }
}

/**
 * Typed, validating access to a JSON object configuration. Every accessor records the key as
 * known; `finish()` fails on unknown keys (a misspelt key silently falling back to a default is
 * worse than a refused configuration) and on the first type error.
 */
export class ConfigReader {
  root: JsonValue;
  error: string = "";
  known: Array<string> = [];

  constructor(root: JsonValue) {
    this.root = root;
  }

  private member(key: string, kind: i32, kindName: string): JsonValue | null {
    this.known.push(key);
    const v = this.root.get(key);
    if (v === null || v.kind == JsonKind.Null) return null;
    if (v.kind != kind) {
      this.invalid(key, "must be " + kindName);
      return null;
    }
    return v;
  }

  invalid(key: string, why: string): void {
    if (this.error.length == 0) this.error = "\"" + key + "\" " + why;
  }

  has(key: string): bool {
    const v = this.root.get(key);
    return v !== null && v.kind != JsonKind.Null;
  }

  // No `cond ? param : field` ternaries on references here: AssemblyScript 0.14's reference
  // counting mis-handles that mix (a refcount underflow aborts the VM on a later release).
  string(key: string, fallback: string): string {
    const v = this.member(key, JsonKind.String, "a string");
    if (v === null) return fallback;
    return v.str;
  }

  bool(key: string, fallback: bool): bool {
    const v = this.member(key, JsonKind.Bool, "a boolean");
    if (v === null) return fallback;
    return v.bool;
  }

  /** An integer in [min, max]. */
  integer(key: string, fallback: u32, min: u32, max: u32): u32 {
    const v = this.member(key, JsonKind.Number, "a number");
    if (v === null) return fallback;
    const n = v.num;
    if (n != Math.floor(n) || n < <f64>min || n > <f64>max) {
      this.invalid(key, "must be an integer in [" + min.toString() + ", " + max.toString() + "]");
      return fallback;
    }
    return <u32>n;
  }

  stringArray(key: string, fallback: Array<string>): Array<string> {
    const v = this.member(key, JsonKind.Array, "an array of strings");
    if (v === null) return fallback;
    const out = new Array<string>();
    for (let i = 0; i < v.items.length; i++) {
      const item = v.items[i];
      if (item.kind != JsonKind.String) {
        this.invalid(key, "must be an array of strings");
        return fallback;
      }
      out.push(item.str);
    }
    return out;
  }

  /** True when every key was known and every value had the right type; logs the problem otherwise. */
  finish(): bool {
    for (let i = 0; i < this.root.keys.length; i++) {
      const key = this.root.keys[i];
      if (!this.known.includes(key)) {
        this.invalid(key, "is not a known configuration key");
        break;
      }
    }
    if (this.error.length > 0) {
      log(LogLevelValues.error, "invalid plugin configuration: " + this.error);
      return false;
    }
    return true;
  }
}

/**
 * Parses the plugin configuration (see `readPluginConfiguration`) as a JSON object. Empty or
 * all-whitespace text is an empty object, so every example runs with its defaults when no
 * pluginConfig is set. Returns null (and logs why) when the text is not a JSON object.
 */
export function parseJsonConfiguration(text: string): ConfigReader | null {
  const parser = new JsonParser(text);
  parser.skipWhitespace();
  if (parser.pos >= text.length) {
    const empty = new JsonValue();
    empty.kind = JsonKind.Object;
    return new ConfigReader(empty);
  }
  const v = parser.value(0);
  if (v !== null) {
    parser.skipWhitespace();
    if (parser.pos < text.length) parser.fail("trailing characters");
  }
  if (v === null || parser.error.length > 0) {
    log(LogLevelValues.error, "plugin configuration is not valid JSON: " + parser.error);
    return null;
  }
  if (v.kind != JsonKind.Object) {
    log(LogLevelValues.error, "plugin configuration must be a JSON object");
    return null;
  }
  return new ConfigReader(v);
}

/** Reads and parses the plugin configuration in one step (for `RootContext.onConfigure`). */
export function loadJsonConfiguration(size: u32): ConfigReader | null {
  const text = readPluginConfiguration(size);
  if (text === null) return null;
  return parseJsonConfiguration(text);
}

/**
 * An HTTP field name we are willing to add: lower-case token characters only (HTTP/2 forbids
 * upper case; pseudo-headers such as `:path` cannot be added).
 */
export function isHeaderName(name: string): bool {
  if (name.length == 0 || name.length > 256) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
      c == 0x21 || c == 0x23 || c == 0x24 || c == 0x25 || c == 0x26 || c == 0x27 || c == 0x2a ||
      c == 0x2b || c == 0x2d || c == 0x2e || c == 0x5e || c == 0x5f || c == 0x60 || c == 0x7c || c == 0x7e;
    if (!ok) return false;
  }
  return true;
}

/** A field value without CR, LF, NUL or other control characters (no header injection). */
export function isHeaderValue(value: string): bool {
  if (value.length > 8192) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c != 0x09) || c == 0x7f) return false;
  }
  return true;
}
