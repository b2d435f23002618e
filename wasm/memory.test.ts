import { describe, expect, test } from "bun:test";
import { GuestMemory } from "./memory.ts";

describe("GuestMemory.readString", () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 3 });
  const guest = new GuestMemory(memory);
  const put = (at: number, s: string): number => {
    const b = new TextEncoder().encode(s);
    new Uint8Array(memory.buffer).set(b, at);
    return b.length;
  };

  test("ASCII, UTF-8 and Latin-1-looking bytes decode as UTF-8; empty is empty", () => {
    expect(guest.readString(16, put(16, "x-request-id"))).toBe("x-request-id");
    expect(guest.readString(64, put(64, "värde ✓ 😀"))).toBe("värde ✓ 😀");
    // 0xE9 alone is not UTF-8: replaced, never read as Latin-1 "é"
    new Uint8Array(memory.buffer).set([0x61, 0xe9, 0x62], 128);
    expect(guest.readString(128, 3)).toBe("a\uFFFDb");
    expect(guest.readString(200, 0)).toBe("");
    const long = "k".repeat(5000);
    expect(guest.readString(1024, put(1024, long))).toBe(long);
  });

  test("out of bounds (also as negative i32) is undefined; memory growth is seen", () => {
    const size = memory.buffer.byteLength;
    expect(guest.readString(size - 2, 4)).toBeUndefined();
    expect(guest.readString(-1, 1)).toBeUndefined();
    expect(guest.readString(0, -1)).toBeUndefined();
    memory.grow(1);
    const n = put(size + 10, "after-grow");
    expect(guest.readString(size + 10, n)).toBe("after-grow");
  });
});
