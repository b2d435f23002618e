// Test support: run a module in an inline VmCore (synchronous, no worker) and poke its memory.

import type { LogLevelValue } from "../abi.ts";
import { ENV_IMPORTS, WASI_IMPORTS } from "../imports.ts";
import { instrumentModule } from "../instrument.ts";
import { describeModule } from "../module-info.ts";
import type { BatchEffects, StartReply, VmConfig, VmServices } from "../protocol.ts";
import { SharedState } from "../shared.ts";
import { VmCore } from "../vm.ts";

/** `(func (export "t.NAME") ...)` forwarding to every host import, so tests can call them directly. */
export function trampolines(): string {
  const out: string[] = [];
  const add = (alias: string, t: { params: readonly string[]; results: readonly string[] }) => {
    const p = t.params.length ? ` (param ${t.params.join(" ")})` : "";
    const r = t.results.length ? ` (result ${t.results.join(" ")})` : "";
    const gets = t.params.map((_, i) => `(local.get ${i})`).join(" ");
    out.push(`(func (export "t.${alias}")${p}${r} (call $${alias} ${gets}))`);
  };
  for (const [name, t] of Object.entries(ENV_IMPORTS)) add(name, t);
  for (const [name, t] of Object.entries(WASI_IMPORTS)) add(`wasi_${name}`, t);
  return out.join("\n");
}

export interface InlineOptions {
  readonly configuration?: string;
  readonly vmConfiguration?: string;
  readonly logLevel?: LogLevelValue;
  readonly maxBufferBytes?: number;
  readonly maxHeaderBytes?: number;
  readonly maxMemoryPages?: number;
  readonly callbackBudgetMs?: number;
  readonly shared?: SharedState;
  readonly vmId?: string;
  readonly env?: Record<string, string>;
  readonly httpCallUpstreams?: readonly string[];
  readonly onQueueReady?: (queueId: number) => void;
}

export function servicesFor(shared: SharedState, vmId: string, onReady: (id: number) => void = () => {}): VmServices {
  return {
    sharedGet: (k) => shared.getData(vmId, k),
    sharedSet: (k, v, c) => shared.setData(vmId, k, v, c),
    queueRegister: (n) => shared.registerQueue(vmId, n, onReady),
    queueResolve: (vm, n) => shared.resolveQueue(vm, n),
    queueEnqueue: (id, v) => shared.enqueue(id, v),
    queueDequeue: (id) => shared.dequeue(id),
  };
}

export function inlineVm(bytes: Uint8Array, o: InlineOptions = {}): { vm: VmCore; start: StartReply } {
  const report = describeModule(bytes);
  const maxPages = o.maxMemoryPages ?? 64;
  const inst = instrumentModule(bytes, maxPages);
  const vmId = o.vmId ?? "vm";
  const cfg: VmConfig = {
    plugin: { name: "test-plugin", rootId: "test-root", vmId, node: { id: "node-1", metadata: { WORKLOAD_NAME: "waypoint" } } },
    configuration: new TextEncoder().encode(o.configuration ?? ""),
    vmConfiguration: new TextEncoder().encode(o.vmConfiguration ?? ""),
    env: o.env ?? {},
    logLevel: o.logLevel ?? 0,
    maxMemoryPages: maxPages,
    maxBufferBytes: o.maxBufferBytes ?? 1 << 20,
    maxHeaderBytes: o.maxHeaderBytes ?? 65536,
    callbackBudgetMs: o.callbackBudgetMs ?? 1000,
    startBudgetMs: 2000,
    httpCallUpstreams: o.httpCallUpstreams,
    metricSeed: [],
  };
  const services = servicesFor(o.shared ?? new SharedState(), vmId, o.onQueueReady);
  const { vm, reply } = VmCore.start(new WebAssembly.Module(inst.bytes), report.abiVersion ?? "0.2.1", inst.memory, cfg, services);
  return { vm, start: reply };
}

/** A scratch area in module memory (the test prelude leaves 8192..60000 to tests). */
export class Scratch {
  private next = 8192;
  constructor(private readonly vm: VmCore) {}
  /** Writes bytes (or a UTF-8 string), returns [ptr, len]. */
  put(data: string | Uint8Array): [number, number] {
    const b = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const ptr = this.next;
    if (!this.vm.mem.write(ptr, b)) throw new Error("scratch write out of bounds");
    this.next += (b.length + 8) & ~7;
    if (this.next > 60000) throw new Error("scratch area exhausted");
    return [ptr, b.length];
  }
  /** A fresh u32 out-slot. */
  slot(): number {
    const p = this.next;
    this.next += 8;
    this.vm.mem.writeU32(p, 0xdeadbeef);
    return p;
  }
  u32(ptr: number): number {
    return this.vm.mem.readU32(ptr)!;
  }
  u64(ptr: number): bigint {
    const b = this.vm.mem.read(ptr, 8)!;
    return new DataView(b.buffer).getBigUint64(0, true);
  }
  /** Reads the (ptr, size) pair the host wrote to two out-slots. */
  out(ptrSlot: number, sizeSlot: number): Uint8Array {
    return this.vm.mem.read(this.u32(ptrSlot), this.u32(sizeSlot))!;
  }
  text(ptrSlot: number, sizeSlot: number): string {
    return new TextDecoder().decode(this.out(ptrSlot, sizeSlot));
  }
}

export function logsOf(e: BatchEffects): string[] {
  return e.logs.map((l) => l.message);
}
