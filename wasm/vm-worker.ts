// Worker entry: runs one plugin VM (vm.ts) in its own thread so the main thread can stop it.
// The first (and only) message carries the compiled module, the VM configuration and the
// channel buffers; after that the worker never returns to its event loop: it blocks in
// Atomics.wait for command batches and answers through the channel (channel.ts).

import { ErrorCodes } from "../core/errors/index.ts";
import type { AbiVersion } from "./abi.ts";
import {
  CTL_LENGTH,
  CTL_STATE,
  type ChannelBuffers,
  MessageReader,
  MessageWriter,
  readCommands,
  Service,
  State,
  writeReply,
  writeStartReply,
} from "./channel.ts";
import { type BatchReply, emptyEffects, type StartReply, type VmConfig, type VmServices } from "./protocol.ts";
import { VmCore } from "./vm.ts";

declare var self: Worker;

export interface WorkerInit {
  readonly channel: ChannelBuffers;
  readonly module: WebAssembly.Module;
  readonly abi: AbiVersion;
  readonly memory: { readonly initialPages: number; readonly maximumPages: number } | undefined;
  readonly config: VmConfig;
  /** After replying, busy-wait this long for the next batch before parking (µs). */
  readonly spinMicros: number;
  /** How the main thread is woken: a message (default) or Atomics.notify for Atomics.waitAsync. */
  readonly wakeMain: "message" | "atomics";
}

function run(init: WorkerInit): void {
  const ctl = new Int32Array(init.channel.ctl);
  const reader = new MessageReader(init.channel.data);
  const writer = new MessageWriter(init.channel.data as never);

  // The main thread is woken with a message rather than Atomics.notify: waking a thread that
  // awaits Atomics.waitAsync costs ~4 µs more per round trip in Bun 1.4.4 (measured, README).
  const byMessage = init.wakeMain === "message";
  const signal = (state: number): void => {
    Atomics.store(ctl, CTL_LENGTH, writer.pos);
    Atomics.store(ctl, CTL_STATE, state);
    if (byMessage) self.postMessage(0);
    else Atomics.notify(ctl, CTL_STATE);
  };
  /** Synchronous call to the main thread (which is waiting on this channel). */
  const call = (): MessageReader => {
    signal(State.CALL);
    while (Atomics.load(ctl, CTL_STATE) === State.CALL) Atomics.wait(ctl, CTL_STATE, State.CALL);
    return reader.reset();
  };
  const services: VmServices = {
    sharedGet(key) {
      writer.reset();
      writer.u8v(Service.SHARED_GET);
      writer.str(key);
      const r = call();
      if (r.u8v() === 0) return undefined;
      const value = r.bytes();
      return { value, cas: r.u32() };
    },
    sharedSet(key, value, cas) {
      writer.reset();
      writer.u8v(Service.SHARED_SET);
      writer.str(key);
      writer.bytes(value);
      writer.u32(cas);
      return call().u32();
    },
    queueRegister(name) {
      writer.reset();
      writer.u8v(Service.QUEUE_REGISTER);
      writer.str(name);
      return call().u32();
    },
    queueResolve(vmId, name) {
      writer.reset();
      writer.u8v(Service.QUEUE_RESOLVE);
      writer.str(vmId);
      writer.str(name);
      const id = call().u32();
      return id === 0 ? undefined : id;
    },
    queueEnqueue(queueId, value) {
      writer.reset();
      writer.u8v(Service.QUEUE_ENQUEUE);
      writer.u32(queueId);
      writer.bytes(value);
      return call().u32();
    },
    queueDequeue(queueId) {
      writer.reset();
      writer.u8v(Service.QUEUE_DEQUEUE);
      writer.u32(queueId);
      const r = call();
      const status = r.u32();
      const value = r.bytes();
      return status === 0 ? { status, value } : { status };
    },
  };

  let vm: VmCore;
  let started: StartReply;
  try {
    ({ vm, reply: started } = VmCore.start(init.module, init.abi, init.memory, init.config, services));
  } catch (e) {
    started = {
      ok: false,
      failure: { code: ErrorCodes.WASM_MODULE_INVALID, message: e instanceof Error ? e.message : String(e) },
      effects: emptyEffects(),
    };
    writer.reset();
    writeStartReply(writer, started);
    signal(State.REPLY);
    return;
  }
  writer.reset();
  writeStartReply(writer, started);
  signal(State.REPLY);

  for (;;) {
    let s = Atomics.load(ctl, CTL_STATE);
    if (init.spinMicros > 0 && s === State.REPLY) {
      // a parked thread takes ~10 µs to wake; a short spin keeps a busy plugin hot
      const until = Bun.nanoseconds() + init.spinMicros * 1000;
      while (s === State.REPLY && Bun.nanoseconds() < until) s = Atomics.load(ctl, CTL_STATE);
    }
    while (s === State.REPLY || s === State.IDLE) {
      Atomics.wait(ctl, CTL_STATE, s);
      s = Atomics.load(ctl, CTL_STATE);
    }
    if (s !== State.COMMANDS) return; // EXIT (or a protocol error): leave the loop, the thread ends
    const cmds = readCommands(reader.reset());
    const reply: BatchReply = vm.execute(cmds);
    writer.reset();
    try {
      writeReply(writer, reply);
    } catch (e) {
      // the reply does not fit the channel: fail every command of the batch (the VM stays usable)
      const failure = { code: ErrorCodes.WASM_BUFFER_LIMIT, message: e instanceof Error ? e.message : String(e) };
      writer.reset();
      writeReply(writer, {
        outcomes: reply.outcomes.map(() => ({ emissions: [], failure })),
        effects: { ...emptyEffects(), droppedLogs: reply.effects.logs.length, rootDone: reply.effects.rootDone },
      });
    }
    signal(State.REPLY);
  }
}

self.onmessage = (e: MessageEvent) => {
  self.onmessage = null;
  run(e.data as WorkerInit);
};
