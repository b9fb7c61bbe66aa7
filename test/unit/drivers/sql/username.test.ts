import { describe, expect, it } from 'vitest';
import {
  USERNAME_LIMITS,
  deriveUsername,
  grantRoleName,
  sanitize,
} from '../../../../src/drivers/sql/username.js';
import { generatePassword } from '../../../../src/drivers/sql/password.js';

describe('deriveUsername', () => {
  it('is deterministic, lower-case, [a-z0-9_] only, prefixed, with a hash suffix', () => {
    const a = deriveUsername('Ann.Lee@Example.com', { prefix: 'lk_', maxLength: 63 });
    expect(a).toMatch(/^lk_ann_lee_example_com_[0-9a-f]{8}$/);
    expect(deriveUsername('  ann.lee@example.COM ', { prefix: 'lk_', maxLength: 63 })).toBe(a);
  });

  it('never collides for emails that read the same after sanitising', () => {
    const opts = { prefix: 'lk_', maxLength: 63 };
    expect(deriveUsername('a.b@x.io', opts)).not.toBe(deriveUsername('a_b@x.io', opts));
    expect(deriveUsername('a+b@x.io', opts)).not.toBe(deriveUsername('a-b@x.io', opts));
  });

  it.each(Object.entries(USERNAME_LIMITS))(
    'fits the %s limit (%i) and stays distinct after truncation',
    (_engine, limit) => {
      const long = 'x'.repeat(200);
      const u1 = deriveUsername(`${long}1@example.com`, { prefix: 'lk_', maxLength: limit });
      const u2 = deriveUsername(`${long}2@example.com`, { prefix: 'lk_', maxLength: limit });
      expect(u1.length).toBeLessThanOrEqual(limit);
      expect(u2.length).toBeLessThanOrEqual(limit);
      expect(u1).not.toBe(u2);
      expect(u1).toMatch(/^lk_[a-z0-9_]+$/);
    },
  );

  it('handles unicode, quotes and SQL in the local part', () => {
    const u = deriveUsername(`"; DROP ROLE postgres; --Zoë@example.com`, {
      prefix: 'lk_',
      maxLength: 63,
    });
    expect(u).toMatch(/^lk_[a-z0-9_]+_[0-9a-f]{8}$/);
    expect(sanitize('Zoë')).toBe('zoe');
  });

  it('refuses bad prefixes', () => {
    expect(() => deriveUsername('a@b.io', { prefix: 'LK', maxLength: 63 })).toThrow(/userPrefix/);
    expect(() => deriveUsername('a@b.io', { prefix: 'lk"_', maxLength: 63 })).toThrow(/userPrefix/);
    expect(() => deriveUsername('a@b.io', { prefix: 'a'.repeat(24), maxLength: 32 })).toThrow(
      /too long/,
    );
  });
});

describe('grantRoleName', () => {
  it('keeps a plain id, hashes anything else', () => {
    expect(grantRoleName('g_123', { prefix: 'lk_', maxLength: 63 })).toBe('lk_g_g_123');
    const a = grantRoleName('Grant-1', { prefix: 'lk_', maxLength: 63 });
    const b = grantRoleName('grant-1', { prefix: 'lk_', maxLength: 63 });
    expect(a).toMatch(/^lk_g_grant_1_[0-9a-f]{8}$/);
    expect(a).not.toBe(b);
  });

  it('fits the MySQL limit for long ids', () => {
    const r = grantRoleName('x'.repeat(128), { prefix: 'lk_', maxLength: 32 });
    expect(r.length).toBeLessThanOrEqual(32);
    expect(r).not.toBe(grantRoleName(`${'x'.repeat(127)}y`, { prefix: 'lk_', maxLength: 32 }));
  });
});

describe('generatePassword', () => {
  it('is 32 characters with every class, URL-safe, and different each time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const p = generatePassword();
      expect(p).toHaveLength(32);
      expect(p).toMatch(/[A-Z]/);
      expect(p).toMatch(/[a-z]/);
      expect(p).toMatch(/[0-9]/);
      expect(p).toMatch(/[-_.~]/);
      expect(p).toMatch(/^[A-Za-z][A-Za-z0-9._~-]+$/);
      seen.add(p);
    }
    expect(seen.size).toBe(200);
  });
});
