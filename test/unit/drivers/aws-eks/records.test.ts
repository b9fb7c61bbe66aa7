import { describe, expect, it } from 'vitest';
import {
  MAX_TAG_VALUE,
  baseTags,
  desiredScope,
  grantTagId,
  grantTags,
  readRecords,
} from '../../../../src/drivers/aws-eks/records.js';

const many = Array.from(
  { length: 100 },
  (_, i) => `namespace-${String(i).padStart(3, '0')}-${'x'.repeat(40)}`,
);

describe('aws-eks records in access-entry tags', () => {
  it('a long namespace list continues over several tags, each within AWS limits, and reads back', () => {
    const rec = {
      level: 'edit' as const,
      scope: { type: 'namespace' as const, namespaces: many },
      expiresAt: Date.parse('2026-11-26T08:00:00Z'),
    };
    const tags = grantTags('latchkey', 'g1', rec);
    const keys = Object.keys(tags);
    expect(keys.length).toBeGreaterThan(10);
    expect(keys[0]).toBe('latchkey-g.g1');
    expect(keys[1]).toBe('latchkey-gc2.g1');
    for (const [k, v] of Object.entries(tags)) {
      expect(k.length).toBeLessThanOrEqual(128);
      expect(v.length).toBeLessThanOrEqual(MAX_TAG_VALUE);
      expect(v).toMatch(/^[A-Za-z0-9 +\-=._:/@]*$/);
    }
    const back = readRecords({ ...tags, 'latchkey-managed': 'true', other: 'x' }, 'latchkey');
    expect(back.managed).toBe(true);
    expect(back.grants.get('g1')).toEqual(rec);
    expect(back.grantKeys.get('g1')).toEqual(keys);
    expect(back.tagCount).toBe(keys.length + 2);
  });

  it('a record with a missing piece, in the middle or at the end, is unreadable, never guessed', () => {
    // Short names: pieces joined across a gap would still parse as namespace names.
    const short = Array.from({ length: 300 }, (_, i) => `n${i}`);
    const tags = grantTags('latchkey', 'g1', {
      level: 'view',
      scope: { type: 'namespace', namespaces: short },
      expiresAt: undefined,
    });
    const last = Object.keys(tags).at(-1) ?? '';
    for (const missing of ['latchkey-gc2.g1', last]) {
      const cut = { ...tags };
      delete cut[missing];
      const back = readRecords(cut, 'latchkey');
      expect(back.grants.size, missing).toBe(0);
      expect(back.unreadable, missing).toContain('latchkey-g.g1');
    }
  });

  it('grant ids that are not tag-safe are hashed; the prefix is respected', () => {
    expect(grantTagId('g-42', 'latchkey')).toBe('g-42');
    expect(grantTagId('g#42', 'latchkey')).toMatch(/^h-[0-9a-f]{40}$/);
    expect(grantTagId('x'.repeat(200), 'latchkey')).toMatch(/^h-[0-9a-f]{40}$/);
    const back = readRecords(
      { 'apono-g.g1': 'view/never/cluster/.', 'latchkey-g.g2': 'view/never/cluster/.' },
      'apono',
    );
    expect([...back.grants.keys()]).toEqual(['g1']);
  });

  it('the desired association is the union of the holders and the pre-existing one', () => {
    const rec = readRecords(
      {
        ...grantTags('latchkey', 'a', {
          level: 'view',
          scope: { type: 'namespace', namespaces: ['dev'] },
          expiresAt: undefined,
        }),
        ...grantTags('latchkey', 'b', {
          level: 'view',
          scope: { type: 'namespace', namespaces: ['qa'] },
          expiresAt: undefined,
        }),
        ...grantTags('latchkey', 'c', {
          level: 'edit',
          scope: { type: 'cluster' },
          expiresAt: undefined,
        }),
        ...baseTags('latchkey', 'view', { type: 'namespace', namespaces: ['ops'] }),
      },
      'latchkey',
    );
    expect(desiredScope(rec, 'view')).toEqual({
      type: 'namespace',
      namespaces: ['dev', 'ops', 'qa'],
    });
    expect(desiredScope(rec, 'view', 'a')).toEqual({
      type: 'namespace',
      namespaces: ['ops', 'qa'],
    });
    expect(desiredScope(rec, 'edit')).toEqual({ type: 'cluster' });
    expect(desiredScope(rec, 'edit', 'c')).toBeUndefined();
    expect(desiredScope(rec, 'admin')).toBeUndefined();
  });
});
