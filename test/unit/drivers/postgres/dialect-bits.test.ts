import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { lockKey, quoteIdent, quoteLiteral } from '../../../../src/drivers/postgres/dialect.js';
import { mapPgError } from '../../../../src/drivers/postgres/errors.js';
import { scramVerifier } from '../../../../src/drivers/postgres/scram.js';
import { parsePostgresConfig } from '../../../../src/drivers/postgres/config.js';
import { sslOptionsFor } from '../../../../src/drivers/postgres/pool.js';
import { LatchkeyError } from '../../../../src/errors.js';
import type { Integration } from '../../../../src/protocol/messages.js';

describe('quoting', () => {
  it('quotes identifiers and doubles quotes; refuses NUL and names PostgreSQL would truncate', () => {
    expect(quoteIdent('orders')).toBe('"orders"');
    expect(quoteIdent('a"b; DROP TABLE x; --')).toBe('"a""b; DROP TABLE x; --"');
    expect(quoteIdent('select')).toBe('"select"');
    expect(() => quoteIdent('a\u0000b')).toThrow(LatchkeyError);
    expect(() => quoteIdent('')).toThrow(LatchkeyError);
    expect(quoteIdent('x'.repeat(63))).toHaveLength(65);
    expect(() => quoteIdent('ü'.repeat(32))).toThrow(/63 bytes/);
  });

  it('quotes literals safely under any standard_conforming_strings', () => {
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(quoteLiteral('a\\b')).toBe("E'a\\\\b'");
    expect(() => quoteLiteral('\u0000')).toThrow(LatchkeyError);
  });

  it('derives a stable signed 64-bit advisory lock key per username', () => {
    expect(lockKey('lk_a')).toBe(lockKey('lk_a'));
    expect(lockKey('lk_a')).not.toBe(lockKey('lk_b'));
    const n = BigInt(lockKey('lk_a'));
    expect(n >= -(2n ** 63n) && n < 2n ** 63n).toBe(true);
  });
});

describe('SCRAM verifier', () => {
  it('is the PostgreSQL format and verifies the password', async () => {
    const salt = Buffer.from('0123456789abcdef');
    const v = await scramVerifier('Secret-Pass-123', 4096, salt);
    const m = /^SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)$/.exec(v);
    expect(m?.[1]).toBe(salt.toString('base64'));
    const salted = pbkdf2Sync('Secret-Pass-123', salt, 4096, 32, 'sha256');
    const stored = createHash('sha256')
      .update(createHmac('sha256', salted).update('Client Key').digest())
      .digest('base64');
    expect(m?.[2]).toBe(stored);
    expect(v).not.toContain('Secret-Pass-123');
    await expect(scramVerifier('pässword')).rejects.toThrow(RangeError);
  });
});

describe('mapPgError', () => {
  const pgErr = (code: string, message = 'x') =>
    Object.assign(new Error(message), { code, severity: 'ERROR' });
  it.each([
    ['28P01', 'E_CONNECT'],
    ['42501', 'E_PRIVILEGE'],
    ['3D000', 'E_NOT_FOUND'],
    ['42704', 'E_NOT_FOUND'],
    ['40P01', 'E_CONFLICT'],
    ['55P03', 'E_CONFLICT'],
    ['57014', 'E_TIMEOUT'],
    ['57P01', 'E_CONNECT'],
    ['08006', 'E_CONNECT'],
    ['53300', 'E_CONNECT'],
    ['25P03', 'E_CONNECT'],
    ['53200', 'E_THROTTLED'],
    ['2BP01', 'E_GUARDRAIL'],
    ['22023', 'E_INVALID'],
    ['42601', 'E_INTERNAL'],
    ['ECONNREFUSED', 'E_CONNECT'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'E_CONNECT'],
  ])('%s → %s', (code, expected) => {
    const e = mapPgError(pgErr(code));
    expect(e.code).toBe(expected);
    expect(e.retryable).toBe(
      ['E_CONNECT', 'E_CONFLICT', 'E_TIMEOUT', 'E_THROTTLED', 'E_INTERNAL'].includes(expected),
    );
  });

  it('never echoes a message that may carry a secret, and passes LatchkeyErrors through', () => {
    const e = mapPgError(pgErr('22023', 'invalid value for password "hunter2"'));
    expect(e.message).not.toContain('hunter2');
    const le = new LatchkeyError('E_BUSY', 'busy');
    expect(mapPgError(le)).toBe(le);
    expect(mapPgError(new Error('weird')).code).toBe('E_INTERNAL');
    expect(mapPgError(new Error('Connection terminated unexpectedly')).code).toBe('E_CONNECT');
    expect(
      mapPgError(new Error('Client has encountered a connection error and is not queryable')).code,
    ).toBe('E_CONNECT');
  });
});

describe('config', () => {
  const integration = (
    config: Record<string, unknown>,
    extra: Partial<Integration> = {},
  ): Integration => ({
    id: 'pg1',
    type: 'postgres',
    config,
    secret: { store: 'env', prefix: 'PG_' },
    ...extra,
  });

  it('applies documented defaults and freezes', () => {
    const c = parsePostgresConfig(integration({ host: 'db.internal' }));
    expect(c).toMatchObject({
      host: 'db.internal',
      port: 5432,
      database: 'postgres',
      sslMode: 'prefer',
      authType: 'user-password',
      userPrefix: 'lk_',
      accountHost: 'db.internal',
      accountPort: 5432,
      ownedObjects: 'reassign',
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(
      parsePostgresConfig(integration({ host: 'h' }, { settings: { dropOwnedObjects: true } }))
        .ownedObjects,
    ).toBe('drop');
  });

  it('refuses unknown fields, IAM auth without TLS or region, and a missing secret', () => {
    expect(() => parsePostgresConfig(integration({ host: 'h', hots: 'x' }))).toThrow(
      /invalid postgres config/,
    );
    expect(() => parsePostgresConfig(integration({ host: 'h; rm -rf' }))).toThrow(/host/);
    expect(() =>
      parsePostgresConfig(
        integration({
          host: 'h',
          authType: 'iam-auth',
          region: 'eu-west-1',
          username: 'u',
          sslMode: 'disable',
        }),
      ),
    ).toThrow(/needs TLS/);
    expect(() =>
      parsePostgresConfig(integration({ host: 'h', authType: 'iam-auth', username: 'u' })),
    ).toThrow(/region/);
    expect(
      parsePostgresConfig(
        integration({ host: 'h', authType: 'iam-auth', username: 'u', region: 'r' }),
      ).sslMode,
    ).toBe('verify-full');
    expect(() => parsePostgresConfig({ id: 'x', type: 'postgres', config: { host: 'h' } })).toThrow(
      /secret/,
    );
    expect(() => parsePostgresConfig(integration({ host: 'h', sslMode: 'verify-ca' }))).toThrow(
      /caBundle/,
    );
  });

  it('maps SSL modes to TLS options', () => {
    expect(sslOptionsFor('disable', 'h', undefined)).toBe(false);
    expect(sslOptionsFor('require', 'h', undefined)).toEqual({ rejectUnauthorized: false });
    const ca = sslOptionsFor('verify-ca', 'h', 'PEM');
    expect(ca).toMatchObject({ rejectUnauthorized: true, ca: 'PEM' });
    expect(ca && ca.checkServerIdentity?.('h', {} as never)).toBeUndefined();
    expect(sslOptionsFor('verify-full', 'db.example', 'PEM')).toEqual({
      rejectUnauthorized: true,
      ca: 'PEM',
      servername: 'db.example',
    });
  });
});
