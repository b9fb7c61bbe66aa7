/**
 * The in-process idempotency store: command id → digest of its envelope, state, result.
 *
 * Bounded: when more than `capacity` commands are remembered, the oldest finished ones
 * are forgotten first (insertion order). Running commands are never evicted (their
 * number is bounded by the queue size).
 */
import type { Result } from '../protocol/messages.js';

export type IdempotencyEntry =
  { digest: string; state: 'running' } | { digest: string; state: 'done'; result: Result };

export class IdempotencyStore {
  private readonly entries = new Map<string, IdempotencyEntry>();

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError('idempotency capacity must be a positive integer');
    }
  }

  get(commandId: string): IdempotencyEntry | undefined {
    return this.entries.get(commandId);
  }

  markRunning(commandId: string, digest: string): void {
    this.entries.set(commandId, { digest, state: 'running' });
    this.evict();
  }

  markDone(commandId: string, digest: string, result: Result): void {
    // Re-insert so that the most recently finished are kept longest.
    this.entries.delete(commandId);
    this.entries.set(commandId, { digest, state: 'done', result });
    this.evict();
  }

  get size(): number {
    return this.entries.size;
  }

  private evict(): void {
    if (this.entries.size <= this.capacity) return;
    for (const [id, entry] of this.entries) {
      if (this.entries.size <= this.capacity) break;
      if (entry.state === 'done') this.entries.delete(id);
    }
  }
}
