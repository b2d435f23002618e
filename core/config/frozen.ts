// Maps in the state model are shared by every connection; a Map that refuses writes turns an
// accidental mutation into an immediate error instead of a silent change to live state.

const sealed = new WeakSet<object>();

export class FrozenMap<K, V> extends Map<K, V> {
  constructor(entries?: Iterable<readonly [K, V]> | null) {
    super(entries ?? undefined);
    sealed.add(this);
  }
  override set(key: K, value: V): this {
    if (sealed.has(this)) throw new TypeError("the mesh state is immutable");
    return super.set(key, value);
  }
  override delete(_key: K): boolean {
    throw new TypeError("the mesh state is immutable");
  }
  override clear(): void {
    throw new TypeError("the mesh state is immutable");
  }
}

export function frozenMap<K, V>(m: Iterable<readonly [K, V]>): ReadonlyMap<K, V> {
  return m instanceof FrozenMap ? m : new FrozenMap(m);
}
