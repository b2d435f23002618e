// An HTTP/2 frame inspector on the bytes a client sends into the waypoint, ahead of node:http2.
// It bounds what the HTTP/2 library would otherwise accept or buffer: a header block split into
// endless CONTINUATION frames (CVE-2024-27316 class), rapid RST_STREAM (CVE-2023-44487), and floods
// of control frames or empty DATA frames. Reading frame headers costs a few operations per frame.

export interface H2GuardLimits {
  /** bytes of one header block (HEADERS + CONTINUATION payloads) */
  readonly maxHeaderBlockBytes: number;
  /** CONTINUATION frames in one header block */
  readonly maxContinuationFrames: number;
  /** RST_STREAM frames from the client per second */
  readonly maxResetsPerSecond: number;
  /** PING, SETTINGS, PRIORITY, WINDOW_UPDATE on stream 0, empty DATA frames, per second */
  readonly maxControlFramesPerSecond: number;
  /** largest frame payload accepted (our SETTINGS_MAX_FRAME_SIZE is the default 16 KiB) */
  readonly maxFramePayload: number;
}

export const DEFAULT_H2_GUARD: H2GuardLimits = {
  maxHeaderBlockBytes: 96 * 1024,
  maxContinuationFrames: 64,
  maxResetsPerSecond: 200,
  maxControlFramesPerSecond: 1000,
  maxFramePayload: 16 * 1024,
};

const PREFACE_LENGTH = 24;
const T_DATA = 0x0;
const T_HEADERS = 0x1;
const T_PRIORITY = 0x2;
const T_RST_STREAM = 0x3;
const T_SETTINGS = 0x4;
const T_PING = 0x6;
const T_WINDOW_UPDATE = 0x8;
const T_CONTINUATION = 0x9;
const F_END_STREAM = 0x1;
const F_END_HEADERS = 0x4;

export class H2FrameGuard {
  private prefaceLeft = PREFACE_LENGTH;
  /** bytes of the current frame header collected so far */
  private readonly header = new Uint8Array(9);
  private headerHave = 0;
  /** payload bytes of the current frame still to skip */
  private payloadLeft = 0;
  private inHeaderBlock = false;
  private blockBytes = 0;
  private continuations = 0;
  private windowStart = 0;
  private resets = 0;
  private control = 0;
  /** Why the connection must close, once a limit is crossed. */
  violation: string | undefined;

  constructor(
    private readonly limits: H2GuardLimits = DEFAULT_H2_GUARD,
    private readonly now: () => number = Date.now,
  ) {}

  /** Inspect the next bytes; false once a limit is crossed (the caller closes the connection). */
  inspect(chunk: Uint8Array): boolean {
    if (this.violation) return false;
    let i = 0;
    const n = chunk.byteLength;
    if (this.prefaceLeft > 0) {
      const take = Math.min(this.prefaceLeft, n);
      this.prefaceLeft -= take;
      i = take;
    }
    while (i < n) {
      if (this.payloadLeft > 0) {
        const take = Math.min(this.payloadLeft, n - i);
        this.payloadLeft -= take;
        i += take;
        continue;
      }
      const need = 9 - this.headerHave;
      const take = Math.min(need, n - i);
      this.header.set(chunk.subarray(i, i + take), this.headerHave);
      this.headerHave += take;
      i += take;
      if (this.headerHave < 9) break;
      this.headerHave = 0;
      if (!this.frame()) return false;
    }
    return true;
  }

  private frame(): boolean {
    const h = this.header;
    const length = (h[0]! << 16) | (h[1]! << 8) | h[2]!;
    const type = h[3]!;
    const flags = h[4]!;
    const stream = ((h[5]! & 0x7f) << 24) | (h[6]! << 16) | (h[7]! << 8) | h[8]!;
    this.payloadLeft = length;
    if (length > this.limits.maxFramePayload) return this.fail(`frame of ${length} bytes exceeds the ${this.limits.maxFramePayload}-byte maximum`);
    if (this.inHeaderBlock && type !== T_CONTINUATION) return this.fail("header block interrupted by another frame");
    switch (type) {
      case T_HEADERS:
        this.blockBytes = length;
        this.continuations = 0;
        this.inHeaderBlock = (flags & F_END_HEADERS) === 0;
        break;
      case T_CONTINUATION:
        if (!this.inHeaderBlock) return this.fail("CONTINUATION outside a header block");
        this.blockBytes += length;
        if (++this.continuations > this.limits.maxContinuationFrames) return this.fail(`more than ${this.limits.maxContinuationFrames} CONTINUATION frames in one header block`);
        if ((flags & F_END_HEADERS) !== 0) this.inHeaderBlock = false;
        break;
      case T_RST_STREAM:
        this.tick();
        if (++this.resets > this.limits.maxResetsPerSecond) return this.fail(`more than ${this.limits.maxResetsPerSecond} stream resets per second`);
        break;
      case T_DATA:
        if (length === 0 && (flags & F_END_STREAM) === 0 && !this.countControl()) return false;
        break;
      case T_PING:
      case T_SETTINGS:
      case T_PRIORITY:
        if (!this.countControl()) return false;
        break;
      case T_WINDOW_UPDATE:
        if (stream === 0 && !this.countControl()) return false;
        break;
      default:
        break;
    }
    if (this.blockBytes > this.limits.maxHeaderBlockBytes) return this.fail(`header block of more than ${this.limits.maxHeaderBlockBytes} bytes`);
    return true;
  }

  private tick(): void {
    const t = this.now();
    if (t - this.windowStart >= 1000) {
      this.windowStart = t;
      this.resets = 0;
      this.control = 0;
    }
  }

  private countControl(): boolean {
    this.tick();
    if (++this.control > this.limits.maxControlFramesPerSecond) return this.fail(`more than ${this.limits.maxControlFramesPerSecond} control frames per second`);
    return true;
  }

  private fail(why: string): false {
    this.violation = why;
    return false;
  }
}
