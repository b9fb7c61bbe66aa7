/**
 * A map that keeps at most `max` entries: past that, the entry inserted first goes. For
 * caches of values computed from their key alone (parsed configs and markers, key objects,
 * derived names), where losing an entry only costs computing it again.
 */
export class BoundedCache<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(private readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('BoundedCache: max must be ≥ 1');
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value of `key`, computed by `compute` (and kept) when it is not held. */
  get(key: K, compute: (key: K) => V): V {
    const held = this.entries.get(key);
    if (held !== undefined || this.entries.has(key)) return held as V;
    const value = compute(key);
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(key, value);
    return value;
  }
}
