import { describe, expect, it } from 'vitest';
import {
  databaseId,
  parsePermission,
  parseResource,
  resourceIdOf,
  roleId,
  schemaId,
  tableId,
  validateGrantShape,
} from '../../../../src/drivers/sql/resources.js';
import {
  grantMarker,
  isUserMarker,
  parseUserMarker,
  parseGrantMarker,
  userMarker,
} from '../../../../src/drivers/sql/marker.js';
import { loginExpiry } from '../../../../src/drivers/sql/core.js';
import type { GrantRecord } from '../../../../src/drivers/sql/dialect.js';

describe('resource ids', () => {
  it('round-trips names with slashes, colons, quotes and unicode', () => {
    const names = ['sales/eu', 'a:b', `we"ird'; --`, 'Ünï cödé', '%41'];
    for (const n of names) {
      for (const r of [
        { kind: 'database' as const, database: n },
        { kind: 'schema' as const, database: n, schema: n },
        { kind: 'table' as const, database: n, schema: n, table: n },
        { kind: 'role' as const, role: n },
      ]) {
        const id = resourceIdOf(r);
        expect(parseResource({ type: r.kind, id }, true)).toEqual(r);
      }
    }
    expect(parseResource({ type: 'table', id: tableId('db', null, 't') }, false)).toEqual({
      kind: 'table',
      database: 'db',
      schema: null,
      table: 't',
    });
  });

  it('refuses malformed ids and types that do not match', () => {
    expect(() => parseResource({ type: 'schema', id: databaseId('x') }, true)).toThrow(
      /does not match/,
    );
    expect(() => parseResource({ type: 'table', id: 'table:a/b' }, true)).toThrow(/malformed/);
    expect(() => parseResource({ type: 'table', id: 'table:a//c' }, true)).toThrow(/empty name/);
    expect(() => parseResource({ type: 'table', id: 'table:%E0%A4%A' }, true)).toThrow(
      /not well encoded/,
    );
    expect(() => parseResource({ type: 'schema', id: schemaId('a', 'b') }, false)).toThrow(
      /no schemas/,
    );
    expect(() => parseResource({ type: 'bucket', id: 'bucket:x' }, true)).toThrow(
      /unknown resource type/,
    );
    expect(() => parseResource({ type: 'role', id: 'role:%00' }, true)).toThrow(/NUL/);
  });
});

describe('permissions and grant shape', () => {
  it('parses the closed set and role:<name>', () => {
    expect(parsePermission('read')).toEqual({ kind: 'read' });
    expect(parsePermission('role:analyst')).toEqual({ kind: 'role', role: 'analyst' });
    expect(() => parsePermission('owner')).toThrow(/unknown permission/);
    expect(() => parsePermission('role:')).toThrow(/role name/);
  });

  it('checks that the permission fits the resources', () => {
    const db = { kind: 'database' as const, database: 'd' };
    const t = { kind: 'table' as const, database: 'd', schema: 's', table: 't' };
    expect(validateGrantShape({ kind: 'connect' }, [db, db])).toEqual([db]);
    expect(() => validateGrantShape({ kind: 'connect' }, [t])).toThrow(/database resources only/);
    expect(() => validateGrantShape({ kind: 'read' }, [])).toThrow(/no resource/);
    expect(() => validateGrantShape({ kind: 'read' }, [{ kind: 'role', role: 'r' }])).toThrow(
      /role:<name>/,
    );
    expect(validateGrantShape({ kind: 'role', role: 'r' }, [])).toEqual([
      { kind: 'role', role: 'r' },
    ]);
    expect(() =>
      validateGrantShape({ kind: 'role', role: 'r' }, [{ kind: 'role', role: 'q' }]),
    ).toThrow();
    expect(roleId('r')).toBe('role:r');
  });
});

describe('markers', () => {
  const record: GrantRecord = {
    grantId: 'g1',
    role: 'lk_g_g1',
    username: 'lk_ann_1234abcd',
    permission: { kind: 'write' },
    resources: [{ kind: 'table', database: 'd/1', schema: 'public', table: 'o"rders' }],
    expiresAt: '2030-01-01T00:00:00.000Z',
  };

  it('round-trips a grant record and refuses anything else', () => {
    expect(parseGrantMarker('lk_g_g1', grantMarker(record), true)).toEqual(record);
    expect(parseGrantMarker('x', 'not json', true)).toBeNull();
    expect(parseGrantMarker('x', JSON.stringify({ managedBy: 'someone-else' }), true)).toBeNull();
    expect(parseGrantMarker('x', null, true)).toBeNull();
    expect(isUserMarker(userMarker())).toBe(true);
    expect(parseUserMarker(userMarker('g1'))).toEqual({ issuedFor: 'g1' });
    expect(parseUserMarker(userMarker())).toEqual({ issuedFor: null });
    expect(
      parseUserMarker('{"managedBy":"latchkey","kind":"user","v":1,"issuedFor":null}'),
    ).toEqual({ issuedFor: null });
    expect(parseUserMarker('{"managedBy":"latchkey","kind":"user","v":1,"issuedFor":7}')).toBe(
      null,
    );
    expect(isUserMarker('{"managedBy":"latchkey"}')).toBe(false);
    expect(isUserMarker(undefined)).toBe(false);
  });

  it('login expiry is the latest expiry, or none when one grant has none', () => {
    const a = { ...record, expiresAt: '2030-01-01T00:00:00.000Z' };
    const b = { ...record, expiresAt: '2031-01-01T00:00:00.000Z' };
    const c: GrantRecord = { ...record, expiresAt: undefined };
    expect(loginExpiry([a, b])?.toISOString()).toBe('2031-01-01T00:00:00.000Z');
    expect(loginExpiry([a, c])).toBeNull();
  });
});
