import { describe, expect, it } from 'vitest';
import { BoundedCache } from '../../../../src/bounded-cache.js';
import {
  grantMarker,
  grantRecordOf,
  minimalGrantMarker,
} from '../../../../src/drivers/sql/marker.js';
import type { GrantRecord } from '../../../../src/drivers/sql/dialect.js';

describe('BoundedCache', () => {
  it('computes a value once per key and keeps null and undefined values too', () => {
    const cache = new BoundedCache<string, string | null | undefined>(8);
    let calls = 0;
    const compute = (k: string): string | null | undefined => {
      calls++;
      return k === 'n' ? null : k === 'u' ? undefined : k.toUpperCase();
    };
    expect(cache.get('a', compute)).toBe('A');
    expect(cache.get('a', compute)).toBe('A');
    expect(cache.get('n', compute)).toBeNull();
    expect(cache.get('n', compute)).toBeNull();
    expect(cache.get('u', compute)).toBeUndefined();
    expect(cache.get('u', compute)).toBeUndefined();
    expect(calls).toBe(3);
    expect(cache.size).toBe(3);
  });

  it('forgets the entry inserted first once full, and keeps nothing when computing throws', () => {
    const cache = new BoundedCache<number, number>(3);
    const seen: number[] = [];
    const square = (k: number): number => {
      seen.push(k);
      return k * k;
    };
    for (const k of [1, 2, 3, 4]) cache.get(k, square);
    expect(cache.size).toBe(3);
    cache.get(2, square); // still held
    cache.get(1, square); // forgotten: computed again
    expect(seen).toEqual([1, 2, 3, 4, 1]);
    expect(() =>
      cache.get(9, () => {
        throw new Error('bad');
      }),
    ).toThrow('bad');
    expect(cache.get(9, square)).toBe(81);
    expect(() => new BoundedCache(0)).toThrow(RangeError);
  });
});

describe('grantRecordOf', () => {
  const record: GrantRecord = {
    grantId: 'g-1',
    role: 'lk_g_g_1',
    username: 'lk_ann',
    permission: { kind: 'read' },
    resources: [{ kind: 'table', database: 'app', schema: 'public', table: 'orders' }],
    expiresAt: '2026-12-05T14:00:00.000Z',
  };

  it('reads the record of a grant marker once, frozen, and nothing from other texts', () => {
    const text = grantMarker(record);
    const first = grantRecordOf('lk_g_g_1', text, true);
    expect(first).toEqual(record);
    expect(grantRecordOf('lk_g_g_1', text, true)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(Object.isFrozen(first?.resources[0])).toBe(true);
    // The role is part of the key: the same text for another role is that role's record.
    expect(grantRecordOf('lk_g_other', text, true)?.role).toBe('lk_g_other');
    // Without schemas (MySQL) the same text is read as that engine reads it.
    expect(grantRecordOf('lk_g_g_1', text, false)).not.toBe(first);
    expect(grantRecordOf('lk_g_g_1', minimalGrantMarker(), true)).toBeNull();
    expect(grantRecordOf('lk_g_g_1', '{"managedBy":"latchkey"', true)).toBeNull();
    expect(grantRecordOf('lk_g_g_1', undefined, true)).toBeNull();
    expect(grantRecordOf('lk_g_g_1', '', true)).toBeNull();
  });
});
