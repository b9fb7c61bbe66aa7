/**
 * The idempotency store on its own: which results it keeps (the most recently finished),
 * what it forgets and when, and its journal record.
 */
import { describe, expect, it } from 'vitest';
import { IdempotencyStore, COMMAND_KEY_PREFIX } from '../../../src/dispatch/idempotency.js';
import { ResultFrame, type HeldFrame } from '../../../src/protocol/result-frame.js';
import type { StateJournal } from '../../../src/state/journal.js';

function frame(commandId: string): ResultFrame {
  return ResultFrame.of({
    type: 'result',
    commandId,
    kind: 'check',
    status: 'ok',
    output: { ok: true, checks: [] },
    timings: {
      receivedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: '2026-01-01T00:00:00.001Z',
      queueMs: 0,
      runMs: 1,
    },
  });
}

function finish(store: IdempotencyStore, id: string, retainUntil?: number): void {
  store.markRunning(id, `d-${id}`, retainUntil);
  store.markDone(id, `d-${id}`, frame(id));
}

/** The state of each id, in the order given. */
function states(store: IdempotencyStore, ids: string[]): (string | undefined)[] {
  return ids.map((id) => store.get(id)?.state);
}

/** A journal in memory: only what the store uses. */
class MemoryJournal {
  readonly records = new Map<string, string>();
  *entries(prefix: string): IterableIterator<[string, string]> {
    for (const [k, v] of this.records) if (k.startsWith(prefix)) yield [k, v];
  }
  putRaw(key: string, json: string): Promise<void> {
    this.records.set(key, json);
    return Promise.resolve();
  }
  delete(key: string): Promise<void> {
    this.records.delete(key);
    return Promise.resolve();
  }
  asJournal(): StateJournal {
    return this as unknown as StateJournal;
  }
}

describe('IdempotencyStore', () => {
  it('keeps the results of the most recently finished, and only the digest of older ones', () => {
    const store = new IdempotencyStore(2);
    for (const id of ['a', 'b', 'c']) finish(store, id);
    expect(states(store, ['a', 'b', 'c'])).toEqual(['forgotten', 'done', 'done']);
    expect(store.get('a')).toEqual({ digest: 'd-a', state: 'forgotten' });
    expect(store.resultsHeld).toBe(2);
    expect(store.size).toBe(3);
  });

  it('counts from when a command finished, not from when it started', () => {
    const store = new IdempotencyStore(2);
    for (const id of ['a', 'b', 'c']) store.markRunning(id, `d-${id}`);
    // Finished in another order than started: the first to finish is the first to go.
    store.markDone('c', 'd-c', frame('c'));
    store.markDone('a', 'd-a', frame('a'));
    store.markDone('b', 'd-b', frame('b'));
    expect(states(store, ['a', 'b', 'c'])).toEqual(['done', 'done', 'forgotten']);
    // Running ones are never forgotten, whatever the capacity.
    for (const id of ['x', 'y', 'z']) store.markRunning(id, `d-${id}`);
    expect(states(store, ['x', 'y', 'z'])).toEqual(['running', 'running', 'running']);
    expect(store.resultsHeld).toBe(2);
  });

  it('a result finished again counts as the newest', () => {
    const store = new IdempotencyStore(2);
    finish(store, 'a');
    finish(store, 'b');
    store.markDone('a', 'd-a', frame('a'));
    finish(store, 'c');
    expect(states(store, ['a', 'b', 'c'])).toEqual(['done', 'forgotten', 'done']);
    expect(store.resultsHeld).toBe(2);
  });

  it('forgets an evicted id outright once its window has passed', () => {
    let now = 1_000;
    const store = new IdempotencyStore(1, { now: () => now });
    finish(store, 'old', 1_500);
    finish(store, 'keep', 5_000);
    // `old` lost its result while still inside its window: digest kept.
    expect(store.get('old')?.state).toBe('forgotten');
    now = 2_000;
    finish(store, 'new', 5_000);
    // `keep` is evicted inside its window (5 000 is still ahead): its digest stays.
    expect(store.get('keep')?.state).toBe('forgotten');
    now = 6_000;
    finish(store, 'last', 9_000);
    // `new` is evicted past its window: nothing of it is left.
    expect(store.get('new')).toBeUndefined();
    expect(store.get('last')?.state).toBe('done');
  });

  it('has room again once expired ids are purged, never purging running ones', () => {
    let now = 1_000;
    const store = new IdempotencyStore(2, { maxEntries: 3, now: () => now });
    store.markRunning('run', 'd-run', 1_100);
    finish(store, 'a', 1_100);
    finish(store, 'b', 1_100);
    expect(store.hasRoom()).toBe(false);
    now = 1_200;
    expect(store.hasRoom()).toBe(true);
    expect(states(store, ['run', 'a', 'b'])).toEqual(['running', undefined, undefined]);
    expect(store.resultsHeld).toBe(0);
    // The held list is still whole after the purge: new results come and go in order.
    for (const id of ['c', 'd', 'e']) finish(store, id, 9_000);
    expect(states(store, ['c', 'd', 'e'])).toEqual(['forgotten', 'done', 'done']);
  });

  it('reports a spooled result whose file is gone as forgotten', () => {
    const store = new IdempotencyStore(2);
    store.markRunning('s', 'd-s');
    const gone = { spooled: true, held: false, commandId: 's' } as unknown as HeldFrame;
    store.markDone('s', 'd-s', gone);
    expect(store.get('s')).toEqual({ digest: 'd-s', state: 'forgotten' });
  });

  it('records finished and forgotten ids in the journal and reads them back in order', () => {
    const journal = new MemoryJournal();
    const store = new IdempotencyStore(2, { journal: journal.asJournal() });
    for (const id of ['a', 'b', 'c']) finish(store, id, Date.now() + 60_000);
    store.markRunning('r', 'd-r');
    expect(journal.records.has(`${COMMAND_KEY_PREFIX}r`)).toBe(false);
    expect(JSON.parse(journal.records.get(`${COMMAND_KEY_PREFIX}a`) ?? '')).toMatchObject({
      d: 'd-a',
      s: 'forgotten',
    });
    const c = journal.records.get(`${COMMAND_KEY_PREFIX}c`) ?? '';
    expect(c.endsWith(`,"r":${frame('c').text}}`)).toBe(true);

    // A restarted store with a smaller capacity keeps the most recently finished.
    const again = new IdempotencyStore(1, { journal: journal.asJournal() });
    expect(states(again, ['a', 'b', 'c', 'r'])).toEqual([
      'forgotten',
      'forgotten',
      'done',
      undefined,
    ]);
    const held = again.get('c');
    expect(held?.state === 'done' && held.result instanceof ResultFrame && held.result.text).toBe(
      frame('c').text,
    );
  });
});
