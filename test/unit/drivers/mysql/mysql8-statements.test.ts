/**
 * The MySQL 8 dialect by exact statement text, through the real core flows (MariaDB cannot
 * run `ATTRIBUTE`, `SET DEFAULT ROLE ALL` or `mysql.role_edges`).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { createSealer } from '../../../../src/protocol/seal.js';
import { createMysqlOps } from '../../../../src/drivers/mysql/dialect-mysql.js';
import { createMysqlSqlDialect, userLockName } from '../../../../src/drivers/mysql/sql-dialect.js';
import {
  cleanupFlow,
  grantFlow,
  revokeFlow,
  rotateGranteeFlow,
  sweepFlow,
  type SqlCoreOptions,
} from '../../../../src/drivers/sql/core.js';
import type { SqlScope } from '../../../../src/drivers/sql/dialect.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import { deriveUsername } from '../../../../src/drivers/sql/username.js';
import { cachingSha2PasswordHash } from '../../../../src/drivers/mysql/password-hash.js';
import { FakeMysql8 } from '../../../helpers/mysql.js';

const EMAIL = 'Ann.Lee@Example.com';
const USER = deriveUsername(EMAIL, { prefix: 'lk_', maxLength: 32 });
const A = `\`${USER}\`@\`%\``;

let fake: FakeMysql8;
let now: Date;
let opts: SqlCoreOptions;
let scope: SqlScope;

beforeEach(() => {
  fake = new FakeMysql8();
  fake.schemas.add('sales');
  fake.tables.add('sales.orders');
  now = new Date('2026-11-25T20:00:00.000Z');
  const dialect = createMysqlSqlDialect(createMysqlOps(), {
    accountHost: '%',
    metaDatabase: 'latchkey',
    lockTimeoutSeconds: 10,
  });
  opts = {
    dialect,
    iamAuth: false,
    ownedObjects: 'reassign',
    sealer: createSealer({ allowPlaintext: true }),
    now: () => now,
    access: { host: 'db.example.com', port: 3306, engine: 'mysql' },
  };
  scope = {
    session: fake,
    onDatabase: (_db, fn) => fn(fake),
    withLockSession: (fn) => fn(fake),
    signal: new AbortController().signal,
    serviceAccount: 'latchkey_svc',
    prefix: 'lk_',
  };
});

const grantParams = {
  grantId: 'g1',
  grantee: { email: EMAIL },
  resources: [{ type: 'table', id: tableId('sales', null, 'orders') }],
  permission: 'read',
};

describe('MySQL 8 statements', () => {
  it('fits the username in 32 characters', () => {
    expect(USER.length).toBeLessThanOrEqual(32);
    expect(USER).toMatch(/^lk_ann_lee_example_com_[0-9a-f]{8}$/);
  });

  it('grant: user with attribute marker, grant role as a locked account with its record, default roles', async () => {
    const out = await grantFlow(opts, scope, {
      ...grantParams,
      expiresAt: '2026-11-26T08:00:00.000Z',
    });
    expect(out.username).toBe(USER);
    const changes = fake.changes();
    expect(changes.map((c) => c.sql)).toEqual([
      `CREATE USER ${A} IDENTIFIED WITH caching_sha2_password AS ? ATTRIBUTE ?`,
      'CREATE USER IF NOT EXISTS `lk_g_g1`@`%` PASSWORD EXPIRE ACCOUNT LOCK ATTRIBUTE ?',
      'GRANT SELECT, SHOW VIEW ON `sales`.`orders` TO `lk_g_g1`@`%`',
      `GRANT \`lk_g_g1\`@\`%\` TO ${A}`,
      `SET DEFAULT ROLE ALL TO ${A}`,
    ]);
    // The password only as its caching_sha2_password hash; the marker names the grant.
    const c0 = out.credentials;
    const issued = c0 && 'plaintext' in c0 ? (c0.plaintext.password ?? '') : '';
    const hash = String(changes[0]?.values?.[0]);
    expect(hash).toMatch(/^\$A\$005\$[./0-9A-Za-z]{20}[./0-9A-Za-z]{43}$/);
    expect(cachingSha2PasswordHash(issued, hash.slice(7, 27))).toBe(hash);
    expect(JSON.stringify(fake.log)).not.toContain(issued);
    expect(changes[0]?.values?.[1]).toBe(
      '{"managedBy":"latchkey","kind":"user","v":1,"issuedFor":"g1"}',
    );
    expect(JSON.parse(String(changes[1]?.values?.[0]))).toEqual({
      managedBy: 'latchkey',
      kind: 'grant',
      v: 1,
      grantId: 'g1',
      username: USER,
      permission: 'read',
      resources: ['table:sales/orders'],
      expiresAt: '2026-11-26T08:00:00.000Z',
    });
    // Serialized on the account's engine lock, released at the end.
    const locks = fake.log.filter((r) => r.sql.includes('_LOCK('));
    expect(locks.map((r) => [r.sql, r.values])).toEqual([
      ['SELECT GET_LOCK(?, ?) AS got', [userLockName(USER, '%'), 10]],
      ['SELECT RELEASE_LOCK(?) AS released', [userLockName(USER, '%')]],
    ]);

    // Idempotent: the same grant again re-applies the (harmless) re-grants, and, because
    // the current password was issued for this very grant (its result may have been lost),
    // issues a fresh one.
    fake.log.length = 0;
    const again = await grantFlow(opts, scope, {
      ...grantParams,
      expiresAt: '2026-11-26T08:00:00.000Z',
    });
    expect(again.alreadyGranted).toBe(true);
    expect(again.credentials).toBeDefined();
    expect(fake.changes().map((c) => c.sql)).toEqual([
      'GRANT SELECT, SHOW VIEW ON `sales`.`orders` TO `lk_g_g1`@`%`',
      `GRANT \`lk_g_g1\`@\`%\` TO ${A}`,
      `SET DEFAULT ROLE ALL TO ${A}`,
      `ALTER USER ${A} IDENTIFIED WITH caching_sha2_password AS ? ATTRIBUTE ?`,
    ]);
  });

  it('database-level grants escape the LIKE wildcards of the database name', async () => {
    fake.schemas.add('my_db');
    await grantFlow(opts, scope, {
      ...grantParams,
      grantId: 'g2',
      resources: [{ type: 'database', id: 'database:my_db' }],
      permission: 'write',
    });
    expect(fake.changes().map((c) => c.sql)).toContain(
      'GRANT SELECT, INSERT, UPDATE, DELETE, SHOW VIEW ON `my\\_db`.* TO `lk_g_g2`@`%`',
    );
  });

  it('revoke of the last grant: ACCOUNT LOCK, then KILL each session, then the role is dropped', async () => {
    await grantFlow(opts, scope, grantParams);
    fake.processes = [
      { id: 41, user: USER },
      { id: 42, user: USER },
      { id: 7, user: 'someone_else' },
    ];
    fake.log.length = 0;
    const out = await revokeFlow(opts, scope, { grantId: 'g1', grantee: { email: EMAIL } });
    expect(fake.changes().map((c) => [c.sql, c.values])).toEqual([
      [`ALTER USER ${A} ACCOUNT LOCK`, undefined],
      ['KILL CONNECTION ?', [41]],
      ['KILL CONNECTION ?', [42]],
      ['DROP USER IF EXISTS `lk_g_g1`@`%`', undefined],
    ]);
    expect(out).toMatchObject({ revoked: ['g1'], sessionsTerminated: 2, alreadyRevoked: false });
    expect(fake.processes).toEqual([{ id: 7, user: 'someone_else' }]);

    fake.log.length = 0;
    const again = await revokeFlow(opts, scope, { grantId: 'g1', grantee: { email: EMAIL } });
    expect(again.alreadyRevoked).toBe(true);
    expect(fake.changes().filter((c) => !c.sql.startsWith('KILL'))).toEqual([]);
  });

  it('revoke on RDS (KILL denied, no CONNECTION_ADMIN): sessions end through mysql.rds_kill', async () => {
    await grantFlow(opts, scope, grantParams);
    fake.processes = [
      { id: 41, user: USER },
      { id: 7, user: 'someone_else' },
    ];
    fake.killDenied = true;
    fake.log.length = 0;
    const out = await revokeFlow(opts, scope, { grantId: 'g1', grantee: { email: EMAIL } });
    expect(fake.changes().map((c) => [c.sql, c.values])).toEqual([
      [`ALTER USER ${A} ACCOUNT LOCK`, undefined],
      ['KILL CONNECTION ?', [41]],
      ['CALL mysql.rds_kill(?)', [41]],
      ['DROP USER IF EXISTS `lk_g_g1`@`%`', undefined],
    ]);
    expect(out).toMatchObject({ sessionsTerminated: 1 });
    expect(fake.processes).toEqual([{ id: 7, user: 'someone_else' }]);
  });

  it('revoke with another grant left keeps the login open', async () => {
    fake.tables.add('sales.customers');
    await grantFlow(opts, scope, grantParams);
    await grantFlow(opts, scope, {
      ...grantParams,
      grantId: 'g3',
      resources: [{ type: 'table', id: tableId('sales', null, 'customers') }],
    });
    fake.log.length = 0;
    await revokeFlow(opts, scope, { grantId: 'g1', grantee: { email: EMAIL } });
    expect(fake.changes().map((c) => c.sql)).toEqual(['DROP USER IF EXISTS `lk_g_g1`@`%`']);
  });

  it('rotate sets a new password hash and clears issuedFor in one ALTER USER', async () => {
    await grantFlow(opts, scope, grantParams);
    fake.log.length = 0;
    const out = await rotateGranteeFlow(opts, scope, { email: EMAIL });
    const c = out.credentials;
    const password = c && 'plaintext' in c ? (c.plaintext.password ?? '') : '';
    const changes = fake.changes();
    expect(changes.map((x) => x.sql)).toEqual([
      `ALTER USER ${A} IDENTIFIED WITH caching_sha2_password AS ? ATTRIBUTE ?`,
    ]);
    const hash = String(changes[0]?.values?.[0]);
    expect(cachingSha2PasswordHash(password, hash.slice(7, 27))).toBe(hash);
    expect(changes[0]?.values?.[1]).toBe('{"issuedFor":null}');
    expect(JSON.stringify(fake.log)).not.toContain(password);
    expect(fake.accounts.get(`${USER}@%`)?.attribute).toBe(
      '{"managedBy":"latchkey","kind":"user","v":1}',
    );
  });

  it('a re-delivered grant whose password was issued for it gets a fresh one; another grant does not', async () => {
    const first = await grantFlow(opts, scope, grantParams);
    expect(first.credentials).toBeDefined();
    fake.log.length = 0;
    // The same grant again (its result may have been lost): a fresh password, in one ALTER USER.
    const again = await grantFlow(opts, scope, grantParams);
    expect(again.alreadyGranted).toBe(true);
    const c = again.credentials;
    const password = c && 'plaintext' in c ? (c.plaintext.password ?? '') : '';
    expect(password).toMatch(/^.{32}$/);
    const alter = fake.changes().filter((x) => x.sql.startsWith('ALTER USER'));
    expect(alter.map((x) => [x.sql, x.values?.[1]])).toEqual([
      [
        `ALTER USER ${A} IDENTIFIED WITH caching_sha2_password AS ? ATTRIBUTE ?`,
        '{"issuedFor":"g1"}',
      ],
    ]);
    // A second grant to the same user: its result carries no password, and it rotates nothing.
    fake.tables.add('sales.customers');
    fake.log.length = 0;
    const other = await grantFlow(opts, scope, {
      ...grantParams,
      grantId: 'g2',
      resources: [{ type: 'table', id: tableId('sales', null, 'customers') }],
    });
    expect(other.credentials).toBeUndefined();
    expect(fake.changes().filter((x) => x.sql.startsWith('ALTER USER'))).toEqual([]);
  });

  it('cleanup drops only a marked user without grants; an unmarked one is kept', async () => {
    await grantFlow(opts, scope, grantParams);
    await revokeFlow(opts, scope, { grantId: 'g1', grantee: { email: EMAIL } });
    fake.accounts.set('lk_foreign@%', { locked: false, attribute: null, role: false });
    fake.log.length = 0;
    const out = await cleanupFlow(opts, scope, { usernames: [USER, 'lk_foreign'] });
    expect(out.dropped).toEqual([USER]);
    expect(out.kept).toEqual([
      { username: 'lk_foreign', reason: expect.any(String) as string, code: 'E_NOT_MANAGED' },
    ]);
    expect(fake.changes().map((c) => c.sql)).toEqual([
      `ALTER USER ${A} ACCOUNT LOCK`,
      `DROP USER IF EXISTS ${A}`,
    ]);
  });

  it('sweep revokes a grant whose expiresAt (read from the role attribute) has passed', async () => {
    await grantFlow(opts, scope, { ...grantParams, expiresAt: '2026-11-25T21:00:00.000Z' });
    expect((await sweepFlow(opts, scope)).revoked).toEqual([]);
    now = new Date('2026-11-25T22:00:00.000Z');
    fake.log.length = 0;
    const report = await sweepFlow(opts, scope);
    expect(report).toEqual({ revoked: ['g1'], errors: [] });
    expect(fake.changes().map((c) => c.sql)).toEqual([
      `ALTER USER ${A} ACCOUNT LOCK`,
      'DROP USER IF EXISTS `lk_g_g1`@`%`',
    ]);
  });

  it('grantee IAM auth: AWSAuthenticationPlugin over TLS, and no password in the result', async () => {
    const out = await grantFlow({ ...opts, iamAuth: true }, scope, grantParams);
    expect(out.credentials).toBeUndefined();
    expect(fake.changes()[0]).toEqual({
      sql: `CREATE USER ${A} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL ATTRIBUTE ?`,
      values: ['{"managedBy":"latchkey","kind":"user","v":1}'],
    });
  });

  it('a held user lock is E_CONFLICT and nothing changes', async () => {
    fake.lockFree = false;
    await expect(grantFlow(opts, scope, grantParams)).rejects.toMatchObject({ code: 'E_CONFLICT' });
    expect(fake.changes()).toEqual([]);
  });

  it('an unmarked existing user is E_NOT_MANAGED', async () => {
    fake.accounts.set(`${USER}@%`, {
      locked: false,
      attribute: '{"comment":"made by hand"}',
      role: false,
    });
    await expect(grantFlow(opts, scope, grantParams)).rejects.toMatchObject({
      code: 'E_NOT_MANAGED',
    });
    expect(fake.changes()).toEqual([]);
  });
});
