// An incoming body (a request's at the server, a response's at the client): chunks queue here
// until the consumer reads them; above the high-water mark the connection pauses its transport, so
// a slow consumer pushes back on the peer instead of growing memory.
import type { HeaderList } from "./headers.ts";

export interface BodyFlow {
  /** Stop reading from the transport (queue above the high-water mark). */
  pause(): void;
  /** Reading may continue. */
  resume(): void;
  /** The consumer asked for data for the first time (the server sends `100 Continue` here). */
  firstRead?(): void;
}

export class Http1Body implements AsyncIterable<Uint8Array> {
  private queue: Uint8Array[] = [];
  private queued = 0;
  private received = 0;
  private ended = false;
  private failure: Error | undefined;
  private waiter: { resolve(c: Uint8Array | undefined): void; reject(e: Error): void } | undefined;
  private paused = false;
  private dropping = false;
  private readStarted = false;
  private trailerList: HeaderList | undefined;

  constructor(
    private readonly flow: BodyFlow,
    private readonly highWater: number,
  ) {}

  /** Body octets received so far (read or not). */
  get bytesReceived(): number {
    return this.received;
  }

  /** Every octet arrived (the message is complete). */
  get complete(): boolean {
    return this.ended;
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** Trailer fields, once the body is complete (chunked bodies only). */
  get trailers(): HeaderList | undefined {
    return this.trailerList;
  }

  /** Being discarded: the consumer said it will not read. */
  get discarding(): boolean {
    return this.dropping;
  }

  /** Connection side: a piece of body arrived. */
  push(chunk: Uint8Array): void {
    if (this.ended || this.failure) return;
    this.received += chunk.length;
    if (this.dropping || chunk.length === 0) return;
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w.resolve(chunk);
      return;
    }
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (!this.paused && this.queued >= this.highWater) {
      this.paused = true;
      this.flow.pause();
    }
  }

  /** Connection side: the body is complete. */
  end(trailers?: HeaderList): void {
    if (this.ended || this.failure) return;
    this.ended = true;
    this.trailerList = trailers;
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(undefined);
  }

  /** Connection side: the body will never complete (parse error, connection closed). */
  fail(err: Error): void {
    if (this.ended || this.failure) return;
    this.failure = err;
    this.queue = [];
    this.queued = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
    this.unpause();
  }

  /**
   * What read() would give at once, without a promise: the next chunk that has arrived, null at
   * the end, or undefined when nothing is there yet (then read()). Throws if the body cannot complete.
   */
  readArrived(): Uint8Array | null | undefined {
    if (!this.readStarted) {
      this.readStarted = true;
      this.flow.firstRead?.();
    }
    if (this.queue.length > 0) {
      const c = this.queue.shift()!;
      this.queued -= c.length;
      if (this.paused && this.queued <= this.highWater >> 1) this.unpause();
      return c;
    }
    if (this.failure) throw this.failure;
    if (this.ended || this.dropping) return null;
    return undefined;
  }

  /** The next chunk, or undefined at the end. Rejects if the body cannot complete. One reader at a time. */
  read(): Promise<Uint8Array | undefined> {
    let arrived: Uint8Array | null | undefined;
    try {
      arrived = this.readArrived();
    } catch (e) {
      return Promise.reject(e);
    }
    if (arrived !== undefined) return Promise.resolve(arrived ?? undefined);
    if (this.waiter) return Promise.reject(new Error("http1 body: concurrent read"));
    this.unpause();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const c = await this.read();
      if (c === undefined) return;
      yield c;
    }
  }

  /** The whole body in one buffer; rejects (and discards the rest) beyond `maxBytes`. */
  async readAll(maxBytes = Infinity): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let n = 0;
    for (;;) {
      const c = await this.read();
      if (c === undefined) break;
      n += c.length;
      if (n > maxBytes) {
        this.discard();
        throw new RangeError(`http1 body larger than ${maxBytes} bytes`);
      }
      parts.push(c);
    }
    return Buffer.concat(parts, n);
  }

  /** Drop what is queued and whatever still arrives; the connection keeps reading to reach the next message. */
  discard(): void {
    if (this.dropping) return;
    this.dropping = true;
    this.queue = [];
    this.queued = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(undefined);
    this.unpause();
  }

  private unpause(): void {
    if (!this.paused) return;
    this.paused = false;
    this.flow.resume();
  }
}
