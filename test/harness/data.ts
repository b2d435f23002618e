// Bulk data for end-to-end tests without holding it in memory: a sender streams pseudo-random
// bytes (blocks from a small random pool, picked by a seeded PRNG) and hashes what it wrote; a
// receiver hashes what arrives. Comparing the two digests proves the bytes arrived intact and in order.
import { createHash, randomBytes } from "node:crypto";
import type net from "node:net";

const BLOCK = 64 * 1024;
const POOL_BLOCKS = 32;

export interface Digest {
  readonly bytes: number;
  readonly sha256: string;
}

/** xorshift32: fast, deterministic for a seed, good enough to vary the block sequence. */
function xorshift(seed: number): () => number {
  let x = seed | 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/**
 * Writes `total` bytes to `s`, honouring backpressure, then half-closes (unless `end: false`).
 * Resolves with the digest of what was written.
 */
export async function sendPattern(s: net.Socket, total: number, opts: { seed?: number; end?: boolean } = {}): Promise<Digest> {
  const pool = Array.from({ length: POOL_BLOCKS }, () => randomBytes(BLOCK));
  const next = xorshift(opts.seed ?? 1);
  const hash = createHash("sha256");
  let sent = 0;
  let failed: Error | undefined;
  const onError = (e: Error) => (failed = e);
  s.on("error", onError);
  try {
    while (sent < total) {
      if (failed) throw failed;
      if (s.destroyed) throw new Error(`socket closed after ${sent} of ${total} bytes`);
      const block = pool[next() % POOL_BLOCKS]!;
      // Vary the chunk length so block boundaries do not line up with anything downstream.
      const len = Math.min(total - sent, BLOCK - (next() % 4096));
      const chunk = block.subarray(0, len);
      hash.update(chunk);
      sent += len;
      if (!s.write(chunk)) await waitDrain(s);
    }
    if (opts.end !== false) s.end();
  } finally {
    s.off("error", onError);
  }
  return { bytes: sent, sha256: hash.digest("hex") };
}

function waitDrain(s: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      s.off("drain", done);
      s.off("close", closed);
      resolve();
    };
    const closed = () => {
      s.off("drain", done);
      reject(new Error("socket closed while waiting for drain"));
    };
    s.on("drain", done);
    s.once("close", closed);
  });
}

/** Hashes everything `s` receives until the peer half-closes. */
export function receiveDigest(s: net.Socket): Promise<Digest> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let bytes = 0;
    s.on("data", (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
    });
    s.once("end", () => resolve({ bytes, sha256: hash.digest("hex") }));
    // `on`, not `once`: a second error event must not become an unhandled one.
    s.on("error", reject);
    s.once("close", () => reject(new Error(`socket closed without a FIN after ${bytes} bytes`)));
  });
}
