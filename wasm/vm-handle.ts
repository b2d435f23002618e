// Where a VM runs, seen from the main thread: in a worker (default; a looping plugin cannot stall
// the main thread, and worker.terminate() ends it) or inline (no thread hop; the in-module budget
// check still stops a loop, but the main thread is busy until it does).
//
// The worker path is callback-driven (no async functions or promise chains per round trip): the
// measured main-thread overhead of the first, promise-based version was ~4.5 µs per phase.

import { ErrorCodes } from "../core/errors/index.ts";
import type { AbiVersion } from "./abi.ts";
import {
  CTL_STATE,
  createChannelBuffers,
  MessageReader,
  MessageWriter,
  readReply,
  readStartReply,
  serveCall,
  type ServiceHandlers,
  State,
  writeCommands,
} from "./channel.ts";
import { type BatchReply, type Command, emptyEffects, type Failure, type StartReply, type VmConfig } from "./protocol.ts";
import { VmCore } from "./vm.ts";
import type { WorkerInit } from "./vm-worker.ts";

/** The VM stopped answering or died; every command in flight failed with this. */
export class VmDead extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
    this.name = "VmDead";
  }
}

/** `slowestNs`: the longest single command of the batch, when the VM ran on the calling thread. */
export type RunCallback = (error: VmDead | undefined, reply: BatchReply | undefined, slowestNs?: number) => void;

export interface VmHandle {
  /** Runs a batch; calls back (never synchronously) with the reply or with VmDead. */
  run(cmds: readonly Command[], done: RunCallback): void;
  /** A VM on the calling thread also runs a batch at once. */
  runNow?(cmds: readonly Command[]): { reply: BatchReply; slowestNs: number };
  close(): void;
}

/** Promise form of VmHandle.run, for the rare paths that are not per request. */
export function runAsync(vm: VmHandle, cmds: readonly Command[]): Promise<BatchReply> {
  return new Promise((resolve, reject) => vm.run(cmds, (e, r) => (e !== undefined ? reject(e) : resolve(r!))));
}

export interface SpawnOptions {
  readonly module: WebAssembly.Module;
  readonly abi: AbiVersion;
  readonly memory: { readonly initialPages: number; readonly maximumPages: number } | undefined;
  readonly config: VmConfig;
  readonly services: ServiceHandlers;
  /** Extra time the main thread grants past the budget before terminating the worker. */
  readonly killGraceMs: number;
  /** Microseconds the main thread busy-waits for a reply before yielding (0 = never spin). */
  readonly spinMicros: number;
  /** Microseconds the worker busy-waits for the next batch before parking. */
  readonly workerSpinMicros: number;
  /** How the worker wakes the main thread (see vm-worker.ts); "message" is faster in Bun 1.4.4. */
  readonly wakeMain: "message" | "atomics";
  readonly workerUrl: string | URL;
}

export async function spawnInline(o: SpawnOptions): Promise<{ vm: VmHandle; start: StartReply }> {
  const { vm, reply } = VmCore.start(o.module, o.abi, o.memory, o.config, o.services);
  return {
    vm: {
      run: (cmds, done) => {
        const r = vm.execute(cmds);
        const slowest = vm.slowestCommandNs;
        queueMicrotask(() => done(undefined, r, slowest));
      },
      runNow: (cmds) => {
        const reply = vm.execute(cmds);
        return { reply, slowestNs: vm.slowestCommandNs };
      },
      close: () => {},
    },
    start: reply,
  };
}

type WaitAsync = (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<string> | string };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/**
 * Where the worker entry is. From source: next to this file. In a `bun build --compile` binary
 * every module's import.meta.url is `file:///$bunfs/root/<binary>` and additional entrypoints sit
 * under `/$bunfs/root/` at their path relative to the build root, so the binary must be built
 * from the repository root with `wasm/vm-worker.ts` as an extra entrypoint (see README).
 */
export function defaultWorkerUrl(): URL {
  const here = import.meta.url;
  const compiled = here.includes("/$bunfs/") || here.includes("/~BUN/");
  return compiled ? new URL("./wasm/vm-worker.ts", here) : new URL("./vm-worker.ts", here);
}

class WorkerVm implements VmHandle {
  private readonly ctl: Int32Array;
  private readonly reader: MessageReader;
  private readonly writer: MessageWriter;
  private dead: Failure | undefined;
  private closed = false;
  /** The hand-over in progress: the state we left the channel in, and who waits for the answer. */
  private expect: number = State.IDLE;
  private waiter: ((error: VmDead | undefined) => void) | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly worker: Worker,
    private readonly o: SpawnOptions,
    channel: { ctl: SharedArrayBuffer; data: SharedArrayBuffer },
  ) {
    this.ctl = new Int32Array(channel.ctl);
    this.reader = new MessageReader(channel.data);
    this.writer = new MessageWriter(channel.data as never);
    // the worker posts a message after each hand-over; a late one only causes a spare check
    worker.onmessage = () => this.check();
    worker.addEventListener("error", (e: ErrorEvent) => {
      e.preventDefault?.();
      if (/ModuleNotFound/.test(e.message)) {
        this.kill({
          code: ErrorCodes.INTERNAL,
          message: `cannot load the plugin worker (${e.message}); a compiled binary must be built from the repository root with wasm/vm-worker.ts as an extra entrypoint`,
        });
      } else this.kill({ code: ErrorCodes.WASM_TRAP, message: `plugin worker failed: ${e.message}` });
    });
    worker.addEventListener("close", () => {
      if (!this.closed) this.kill({ code: ErrorCodes.WASM_TRAP, message: "plugin worker exited" });
    });
  }

  /** Marks the VM dead, fails the waiter, and ends the thread. */
  kill(f: Failure): void {
    if (this.dead === undefined) this.dead = f;
    this.closed = true;
    this.finish(new VmDead(this.dead));
    this.worker.terminate();
  }

  private finish(error: VmDead | undefined): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const w = this.waiter;
    this.waiter = undefined;
    w?.(error);
  }

  /** Hands the channel to the worker and arranges for `then` to run when it hands it back. */
  private handOver(state: number, budgetMs: number, then: (error: VmDead | undefined) => void): void {
    this.waiter = then;
    this.expect = state;
    this.timer = setTimeout(
      () =>
        this.kill({
          code: ErrorCodes.WASM_TIMEOUT,
          message: `plugin did not answer within ${budgetMs} ms; its worker was terminated`,
        }),
      budgetMs,
    );
    if (state !== State.IDLE) {
      Atomics.store(this.ctl, CTL_STATE, state);
      Atomics.notify(this.ctl, CTL_STATE);
    }
    if (this.o.spinMicros > 0) {
      const until = Bun.nanoseconds() + this.o.spinMicros * 1000;
      while (Atomics.load(this.ctl, CTL_STATE) === state && Bun.nanoseconds() < until) {}
      if (Atomics.load(this.ctl, CTL_STATE) !== state) {
        queueMicrotask(() => this.check());
        return;
      }
    }
    if (this.o.wakeMain === "atomics") this.armWaitAsync();
  }

  private armWaitAsync(): void {
    const r = waitAsync(this.ctl, CTL_STATE, this.expect);
    const next = (): void => {
      this.check();
      if (this.waiter !== undefined) this.armWaitAsync(); // a call was served, or a spurious wake
    };
    if (r.async) void (r.value as Promise<string>).then(next);
    else queueMicrotask(next);
  }

  /** The worker may have handed the channel back: serve its call, or finish the hand-over. */
  private check(): void {
    if (this.waiter === undefined) return;
    const s = Atomics.load(this.ctl, CTL_STATE);
    if (s === this.expect) return;
    if (s === State.CALL) {
      serveCall(this.reader.reset(), this.writer, this.o.services);
      this.expect = State.CALL_REPLY;
      Atomics.store(this.ctl, CTL_STATE, State.CALL_REPLY);
      Atomics.notify(this.ctl, CTL_STATE);
      return;
    }
    if (s === State.REPLY) {
      this.finish(undefined);
      return;
    }
    this.kill({ code: ErrorCodes.WASM_TRAP, message: `plugin worker protocol error (state ${s})` });
  }

  awaitStart(): Promise<StartReply> {
    return new Promise((resolve, reject) =>
      this.handOver(State.IDLE, this.o.config.startBudgetMs + this.o.killGraceMs, (e) =>
        e !== undefined ? reject(e) : resolve(readStartReply(this.reader.reset())),
      ),
    );
  }

  run(cmds: readonly Command[], done: RunCallback): void {
    if (this.dead !== undefined) {
      const f = this.dead;
      queueMicrotask(() => done(new VmDead(f), undefined));
      return;
    }
    this.writer.reset();
    writeCommands(this.writer, cmds);
    const budget = this.o.config.callbackBudgetMs * Math.max(1, cmds.length) + this.o.killGraceMs;
    this.handOver(State.COMMANDS, budget, (e) => {
      if (e !== undefined) done(e, undefined);
      else done(undefined, readReply(this.reader.reset()));
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.finish(new VmDead({ code: ErrorCodes.WASM_TRAP, message: "plugin VM closed" }));
    Atomics.store(this.ctl, CTL_STATE, State.EXIT);
    Atomics.notify(this.ctl, CTL_STATE);
    this.worker.terminate();
  }
}

/** Starts a VM in a fresh worker; resolves once the start sequence ran (successfully or not). */
export async function spawnWorker(o: SpawnOptions, maxChannelBytes: number): Promise<{ vm: VmHandle; start: StartReply }> {
  const channel = createChannelBuffers(64 * 1024, maxChannelBytes);
  const worker = new Worker(o.workerUrl);
  worker.unref();
  const vm = new WorkerVm(worker, o, channel);
  const init: WorkerInit = {
    channel,
    module: o.module,
    abi: o.abi,
    memory: o.memory,
    config: o.config,
    spinMicros: o.workerSpinMicros,
    wakeMain: o.wakeMain,
  };
  worker.postMessage(init);
  try {
    const start = await vm.awaitStart();
    return { vm, start };
  } catch (e) {
    vm.close();
    if (e instanceof VmDead) return { vm, start: { ok: false, failure: e.failure, effects: emptyEffects() } };
    throw e;
  }
}
