// Process-wide shared data (key/value with compare-and-swap) and shared queues, scoped by VM id as
// in cpp-host. Lives on the main thread; VMs in workers reach it through synchronous channel
// calls. A queue belongs to the root context that registered it; enqueueing wakes that owner.

import { Status, type StatusCode } from "./abi.ts";

export const SHARED_VALUE_MAX_BYTES = 1 << 20;
export const SHARED_KEYS_MAX = 65536;
export const QUEUE_MAX_ITEMS = 10000;
export const QUEUES_MAX = 4096;

interface Queue {
  readonly id: number;
  readonly vmId: string;
  readonly name: string;
  items: Uint8Array[];
  /** Called (asynchronously by the owner) when an item arrives. */
  owner: ((queueId: number) => void) | undefined;
}

export class SharedState {
  private readonly data = new Map<string, Map<string, { value: Uint8Array; cas: number }>>();
  private nextCas = 1;
  private readonly queues = new Map<number, Queue>();
  private readonly queueIds = new Map<string, number>();
  private nextQueueId = 1;

  getData(vmId: string, key: string): { value: Uint8Array; cas: number } | undefined {
    return this.data.get(vmId)?.get(key);
  }

  /** cas 0 sets unconditionally; otherwise it must equal the current token (when the key exists). */
  setData(vmId: string, key: string, value: Uint8Array, cas: number): StatusCode {
    if (value.length > SHARED_VALUE_MAX_BYTES) return Status.BAD_ARGUMENT;
    let scope = this.data.get(vmId);
    if (scope === undefined) {
      scope = new Map();
      this.data.set(vmId, scope);
    }
    const cur = scope.get(key);
    if (cur !== undefined && cas !== 0 && cas >>> 0 !== cur.cas) return Status.CAS_MISMATCH;
    if (cur === undefined && scope.size >= SHARED_KEYS_MAX) return Status.INTERNAL_FAILURE;
    const token = this.nextCas;
    this.nextCas = this.nextCas >= 0xffffffff ? 1 : this.nextCas + 1;
    scope.set(key, { value: value.slice(), cas: token });
    return Status.OK;
  }

  /** Creates or re-opens queue (vmId, name); the caller becomes its owner. 0 when full. */
  registerQueue(vmId: string, name: string, owner: (queueId: number) => void): number {
    const key = `${vmId}\0${name}`;
    const existing = this.queueIds.get(key);
    if (existing !== undefined) {
      this.queues.get(existing)!.owner = owner;
      return existing;
    }
    if (this.queues.size >= QUEUES_MAX) return 0;
    const id = this.nextQueueId++;
    this.queues.set(id, { id, vmId, name, items: [], owner });
    this.queueIds.set(key, id);
    return id;
  }

  resolveQueue(vmId: string, name: string): number | undefined {
    return this.queueIds.get(`${vmId}\0${name}`);
  }

  enqueue(queueId: number, value: Uint8Array): StatusCode {
    const q = this.queues.get(queueId);
    if (q === undefined) return Status.NOT_FOUND;
    if (q.items.length >= QUEUE_MAX_ITEMS || value.length > SHARED_VALUE_MAX_BYTES) return Status.INTERNAL_FAILURE;
    q.items.push(value.slice());
    const owner = q.owner;
    if (owner !== undefined) queueMicrotask(() => owner(queueId));
    return Status.OK;
  }

  dequeue(queueId: number): { status: StatusCode; value?: Uint8Array } {
    const q = this.queues.get(queueId);
    if (q === undefined) return { status: Status.NOT_FOUND };
    const v = q.items.shift();
    return v === undefined ? { status: Status.EMPTY } : { status: Status.OK, value: v };
  }

  /** Drops the owner callback of every queue owned by `owner` (plugin stopped). */
  releaseOwner(owner: (queueId: number) => void): void {
    for (const q of this.queues.values()) if (q.owner === owner) q.owner = undefined;
  }
}

/** The state shared by every plugin of this process (what Envoy shares per process and vm_id). */
export const processSharedState = new SharedState();
