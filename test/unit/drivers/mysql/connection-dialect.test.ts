import { describe, expect, it } from 'vitest';
import {
  assertSupportedServer,
  detectFlavor,
  loginOptions,
  sslOptionsFor,
  tlsAttempts,
} from '../../../../src/drivers/mysql/connection.js';
import {
  authFingerprint,
  createMariadbOps,
  mariadbDefaultRole,
} from '../../../../src/drivers/mysql/dialect-mariadb.js';
import { mysqlNativePasswordHash } from '../../../../src/drivers/mysql/password-hash.js';
import {
  assertObjectName,
  grantDatabasePattern,
  privilegeTarget,
  quoteIdent,
} from '../../../../src/drivers/mysql/dialect.js';

describe('TLS modes', () => {
  it('maps each sslMode to mysql2 options, with fallbacks for allow and prefer', () => {
    expect(tlsAttempts('disable', undefined)).toEqual([undefined]);
    expect(tlsAttempts('allow', undefined)).toEqual([undefined, { rejectUnauthorized: false }]);
    expect(tlsAttempts('prefer', undefined)).toEqual([{ rejectUnauthorized: false }, undefined]);
    expect(tlsAttempts('require', undefined)).toEqual([{ rejectUnauthorized: false }]);
    expect(sslOptionsFor('require', 'PEM')).toEqual({
      ca: 'PEM',
      rejectUnauthorized: true,
      verifyIdentity: false,
    });
    expect(tlsAttempts('verify-ca', 'PEM')).toEqual([
      { ca: 'PEM', rejectUnauthorized: true, verifyIdentity: false },
    ]);
    expect(tlsAttempts('verify-full', 'PEM')).toEqual([
      { ca: 'PEM', rejectUnauthorized: true, verifyIdentity: true },
    ]);
  });
});

describe('IAM auth login', () => {
  it('sends a fresh token per connection through the cleartext plugin', async () => {
    let n = 0;
    const opts = loginOptions({ user: 'svc', password: () => Promise.resolve(`token-${++n}`) });
    expect(opts.user).toBe('svc');
    expect(opts.password).toBeUndefined();
    const plugin = opts.authPlugins?.mysql_clear_password;
    if (!plugin) throw new Error('plugin expected');
    const meta = {} as Parameters<typeof plugin>[0];
    const first = await plugin(meta)(Buffer.alloc(0));
    const second = await plugin(meta)(Buffer.alloc(0));
    expect(first).toEqual(Buffer.from('token-1\0'));
    expect(second).toEqual(Buffer.from('token-2\0'));
  });

  it('uses the static password of a secret as is', () => {
    expect(loginOptions({ user: 'svc', password: 'pw' })).toEqual({ user: 'svc', password: 'pw' });
  });
});

describe('server detection', () => {
  it('detects the flavor from VERSION() and refuses unsupported or mismatched servers', () => {
    expect(detectFlavor('10.11.19-MariaDB-0+deb12u1')).toBe('mariadb');
    expect(detectFlavor('8.4.3')).toBe('mysql');
    expect(() =>
      assertSupportedServer({ flavor: 'mariadb', version: '10.11.19-MariaDB' }, 'auto'),
    ).not.toThrow();
    expect(() =>
      assertSupportedServer({ flavor: 'mysql', version: '8.0.36' }, 'mysql'),
    ).not.toThrow();
    expect(() =>
      assertSupportedServer({ flavor: 'mariadb', version: '10.5.1-MariaDB' }, 'auto'),
    ).toThrow(/10.6/);
    expect(() => assertSupportedServer({ flavor: 'mysql', version: '5.7.44' }, 'auto')).toThrow(
      /8.0.21/,
    );
    expect(() =>
      assertSupportedServer({ flavor: 'mariadb', version: '10.11.2-MariaDB' }, 'mysql'),
    ).toThrow(/configured as mysql/);
  });
});

describe('identifiers', () => {
  it('quotes with backticks, doubling a backtick', () => {
    expect(quoteIdent("we`ird'; DROP")).toBe("`we``ird'; DROP`");
    expect(() => quoteIdent('a\0b')).toThrow();
  });

  it('escapes the wildcards of database-level grants and refuses what cannot be expressed', () => {
    expect(grantDatabasePattern('a_b%c')).toBe('a\\_b\\%c');
    expect(() => grantDatabasePattern('a\\b')).toThrow(/backslash/);
    expect(privilegeTarget({ kind: 'database', database: 'a_b' })).toBe('`a\\_b`.*');
    expect(privilegeTarget({ kind: 'table', database: 'a_b', table: 't`x' })).toBe('`a_b`.`t``x`');
    expect(() => assertObjectName('x'.repeat(65), 'table')).toThrow(/64/);
    expect(() => assertObjectName('trailing ', 'database')).toThrow(/space/);
  });
});

describe('MariaDB statements', () => {
  const ops = createMariadbOps({ accountHost: '%', metaDatabase: 'latchkey' });
  it('records the user first, creates it with a password hash, then its default role (the marker)', async () => {
    const d = mariadbDefaultRole('lk_ann_1234abcd', '%', 'lk_');
    expect(d).toMatch(/^lk_d_[0-9a-f]{16}$/);
    const log: { sql: string; values: readonly unknown[] | undefined }[] = [];
    const session = {
      query: (sql: string, values?: readonly unknown[]) => {
        log.push({ sql, values });
        return Promise.resolve([]);
      },
    };
    const password = 'Pw-plain-text-9';
    await ops.createUser(session, 'lk_ann_1234abcd', '%', { password, issuedFor: 'g1' }, 'lk_');
    const changes = log.filter(
      (r) => !r.sql.startsWith('SELECT') && !r.sql.includes(' IF NOT EXISTS `latchkey`'),
    );
    const hash = mysqlNativePasswordHash(password);
    expect(changes.map((c) => c.sql)).toEqual([
      'INSERT INTO `latchkey`.`users` (username, host, issued_for, auth_fp) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE issued_for = VALUES(issued_for), auth_fp = VALUES(auth_fp)',
      'CREATE USER `lk_ann_1234abcd`@`%` IDENTIFIED BY PASSWORD ?',
      `CREATE ROLE IF NOT EXISTS \`${d}\``,
      `GRANT \`${d}\` TO \`lk_ann_1234abcd\`@\`%\``,
      `SET DEFAULT ROLE \`${d}\` FOR \`lk_ann_1234abcd\`@\`%\``,
    ]);
    expect(changes[0]?.values).toEqual(['lk_ann_1234abcd', '%', 'g1', authFingerprint(hash)]);
    expect(changes[1]?.values).toEqual([hash]);
    expect(JSON.stringify(log)).not.toContain(password);
    expect(ops.attachStatements('lk_g_g1', 'lk_ann_1234abcd', '%', 'lk_')).toEqual([
      { sql: `GRANT \`lk_g_g1\` TO \`${d}\`` },
    ]);
    expect(ops.dropUserStatements('lk_ann_1234abcd', '%', 'lk_')).toEqual([
      { sql: 'DROP USER IF EXISTS `lk_ann_1234abcd`@`%`' },
      { sql: `DROP ROLE IF EXISTS \`${d}\`` },
    ]);
  });

  it('does not read the user again when the grant has just read it under the lock', async () => {
    const log: string[] = [];
    const session = {
      query: (sql: string) => {
        log.push(sql);
        return Promise.resolve([]);
      },
    };
    const auth = { password: 'Pw-plain-text-9', issuedFor: 'g1' };
    const userReads = (): number => log.filter((q) => q.includes('FROM mysql.global_priv')).length;
    // Read by the caller: nothing there.
    await ops.createUser(session, 'lk_ann_1234abcd', '%', auth, 'lk_', null);
    expect(userReads()).toBe(0);
    expect(log.some((q) => q.startsWith('CREATE USER'))).toBe(true);
    // Read by the caller: a creation a crash interrupted, which is finished, not re-created.
    log.length = 0;
    const incomplete = {
      username: 'lk_ann_1234abcd',
      managed: true,
      canLogin: true,
      passwordIssuedFor: 'g0',
      incomplete: true,
    };
    await ops.createUser(session, 'lk_ann_1234abcd', '%', auth, 'lk_', incomplete);
    expect(userReads()).toBe(0);
    expect(log.some((q) => q.startsWith('CREATE USER'))).toBe(false);
    expect(log.some((q) => q.startsWith('ALTER USER'))).toBe(true);
    // Not read by the caller: read here.
    log.length = 0;
    await ops.createUser(session, 'lk_ann_1234abcd', '%', auth, 'lk_');
    expect(userReads()).toBe(1);
  });

  it('refuses grantee IAM auth (RDS for MySQL only)', async () => {
    const session = { query: () => Promise.resolve([]) };
    await expect(
      ops.createUser(session, 'u', '%', { password: null, issuedFor: null }, 'lk_'),
    ).rejects.toThrow(/MySQL only/);
  });
});
