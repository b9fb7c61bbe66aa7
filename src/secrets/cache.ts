/**
 * A small TTL cache for resolved secrets.
 *
 * Each value is held as a UTF-8 `Buffer` of its JSON, not as the object handed out, so
 * that (a) a caller can never change what the cache holds (every hit decodes a fresh
 * copy) and (b) the bytes can be overwritten with zeros when the entry expires, is
 * invalidated or the cache is cleared. JavaScript strings cannot be wiped: copies handed
 * to callers live until the garbage collector frees them; the cache keeps no string of
 * its own. Expired entries are purged on every access, so no timer keeps the process up.
 */
import type { ServiceSecret } from './types.js';

interface Entry {
  bytes: Buffer;
  expiresAt: number;
}

export class SecretCache {
  private readonly entries = new Map<string, Entry>();

  /**
   * @param ttlMs how long a value is reused; `<= 0` disables caching.
   * @param now   clock, injectable for tests.
   */
  constructor(
    private readonly ttlMs: number,
    private readonly now: () => Date = () => new Date(),
  ) {}

  get(key: string): ServiceSecret | undefined {
    this.purgeExpired();
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    return JSON.parse(entry.bytes.toString('utf8')) as ServiceSecret;
  }

  set(key: string, value: ServiceSecret): void {
    if (this.ttlMs <= 0) return;
    this.delete(key);
    this.entries.set(key, {
      bytes: Buffer.from(JSON.stringify(value), 'utf8'),
      expiresAt: this.now().getTime() + this.ttlMs,
    });
  }

  /** Removes `key`, zeroing its bytes. */
  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.bytes.fill(0);
    this.entries.delete(key);
  }

  /** Removes every entry whose key matches, zeroing their bytes. */
  deleteWhere(matches: (key: string) => boolean): void {
    for (const key of [...this.entries.keys()]) if (matches(key)) this.delete(key);
  }

  /** Removes every entry, zeroing their bytes. */
  clear(): void {
    for (const key of [...this.entries.keys()]) this.delete(key);
  }

  get size(): number {
    this.purgeExpired();
    return this.entries.size;
  }

  /** @internal For tests: the raw bytes held for `key` (to check they are zeroed on eviction). */
  rawBytes(key: string): Buffer | undefined {
    return this.entries.get(key)?.bytes;
  }

  private purgeExpired(): void {
    const now = this.now().getTime();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt <= now) this.delete(key);
    }
  }
}
