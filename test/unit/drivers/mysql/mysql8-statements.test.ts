/**
 * The MySQL 8 dialect by exact statement text, through the real core flows (MariaDB cannot
 * run `ATTRIBUTE`, `SET DEFAULT ROLE ALL` or `mysql.role_edges`).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { createSealer } from '../../../../src/protocol/seal.js';
import {
  createMysqlOps,
  mysqlExpiryEventStatements,
} from '../../../../src/drivers/mysql/dialect-mysql.js';
import { expiryEventName } from '../../../../src/drivers/mysql/dialect.js';
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
/** The expiry EVENT of grant g1, in the metadata database `latchkey`. */
const EV1 = `\`latchkey\`.\`${expiryEventName('lk_g_g1', 'lk_')}\``;
/** Statement text up to the body of a stored program (the body has its own test). */
const head = (sql: string): string => sql.split(' DO BEGIN')[0] ?? sql;

let fake: FakeMysql8;
let now: Date;
let opts: SqlCoreOptions;
let scope: SqlScope;

beforeEach(() => {
  fake = new FakeMysql8();
  fake.schemas.add('sales');
  fake.tables.add('sales.orders');
  now = new Date('2026-11-25T20:00:00.000Z');
  const dialect = createMysqlSqlDialect(
    createMysqlOps({ accountHost: '%', metaDatabase: 'latchkey' }),
    {
      accountHost: '%',
      metaDatabase: 'latchkey',
      lockTimeoutSeconds: 10,
    },
  );
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
    expect(changes.map((c) => head(c.sql))).toEqual([
      `CREATE USER ${A} IDENTIFIED WITH caching_sha2_password AS ? ATTRIBUTE ?`,
      'CREATE USER IF NOT EXISTS `lk_g_g1`@`%` PASSWORD EXPIRE ACCOUNT LOCK ATTRIBUTE ?',
      'GRANT SELECT, SHOW VIEW ON `sales`.`orders` TO `lk_g_g1`@`%`',
      `GRANT \`lk_g_g1\`@\`%\` TO ${A}`,
      `SET DEFAULT ROLE ALL TO ${A}`,
      // Server-side expiry: an EVENT in the metadata database, at expiresAt (UTC).
      'CREATE DATABASE IF NOT EXISTS `latchkey`',
      `CREATE DEFINER = CURRENT_USER EVENT IF NOT EXISTS ${EV1} ON SCHEDULE AT '2026-11-26 08:00:00' ON COMPLETION NOT PRESERVE COMMENT 'latchkey: expiry of lk_g_g1'`,
      `ALTER EVENT ${EV1} ON SCHEDULE AT '2026-11-26 08:00:00'`,
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
    const locks = fake.log.filter((r) => /^SELECT (GET|RELEASE)_LOCK\(/.test(r.sql));
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
    expect(fake.changes().map((c) => head(c.sql))).toEqual([
      'GRANT SELECT, SHOW VIEW ON `sales`.`orders` TO `lk_g_g1`@`%`',
      `GRANT \`lk_g_g1\`@\`%\` TO ${A}`,
      `SET DEFAULT ROLE ALL TO ${A}`,
      // The event again (idempotent): a crash between the role and its event is mended.
      `CREATE DEFINER = CURRENT_USER EVENT IF NOT EXISTS ${EV1} ON SCHEDULE AT '2026-11-26 08:00:00' ON COMPLETION NOT PRESERVE COMMENT 'latchkey: expiry of lk_g_g1'`,
      `ALTER EVENT ${EV1} ON SCHEDULE AT '2026-11-26 08:00:00'`,
      `ALTER USER ${A} IDENTIFIED WITH caching_sha2_password AS ? ATTRIBUTE ?`,
    ]);
  });

  it('the expiry EVENT does what revoke does, on the server, with no agent', () => {
    const [create, alter] = mysqlExpiryEventStatements(
      'latchkey',
      {
        grantId: 'g1',
        role: 'lk_g_g1',
        username: USER,
        permission: { kind: 'read' },
        resources: [],
        expiresAt: '2026-11-26T07:59:59.250Z',
      },
      { prefix: 'lk_', host: '%', lockName: userLockName(USER, '%') },
    );
    expect(alter?.sql).toBe(`ALTER EVENT ${EV1} ON SCHEDULE AT '2026-11-26 08:00:00'`);
    const body = (create?.sql ?? '').split(' DO ')[1]?.split('\n');
    const lock = `'${userLockName(USER, '%')}'`;
    expect(body).toEqual([
      'BEGIN',
      'DECLARE done INT DEFAULT 0;',
      'DECLARE cid BIGINT UNSIGNED;',
      `DECLARE grantee_sessions CURSOR FOR SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '${USER}';`,
      'DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;',
      // A connection that ended meanwhile (ER_NO_SUCH_THREAD) does not stop the others.
      'DECLARE CONTINUE HANDLER FOR 1094 BEGIN END;',
      // Under the agent's own per-user lock.
      `DO GET_LOCK(${lock}, 60);`,
      // The grant role (and with it its record, the role's attribute) goes first ...
      'DROP USER IF EXISTS `lk_g_g1`@`%`;',
      // ... and on the last grant role of the user, the login is locked and every session ended.
      `IF NOT EXISTS (SELECT 1 FROM mysql.role_edges WHERE TO_USER = '${USER}' AND TO_HOST = '%' AND LEFT(FROM_USER, 5) = 'lk_g_') THEN`,
      `ALTER USER IF EXISTS ${A} ACCOUNT LOCK;`,
      'OPEN grantee_sessions;',
      'kill_each: LOOP',
      'FETCH grantee_sessions INTO cid;',
      'IF done = 1 THEN LEAVE kill_each; END IF;',
      'KILL CONNECTION cid;',
      'END LOOP;',
      'CLOSE grantee_sessions;',
      'END IF;',
      `DO RELEASE_LOCK(${lock});`,
      'END',
    ]);
    // Names only as quote-doubled literals; nothing that a backslash could turn around.
    expect(() =>
      mysqlExpiryEventStatements(
        'latchkey',
        {
          grantId: 'x',
          role: 'lk_g_x',
          username: 'a\\b',
          permission: { kind: 'read' },
          resources: [],
          expiresAt: '2030-01-01T00:00:00Z',
        },
        { prefix: 'lk_', host: '%', lockName: 'l' },
      ),
    ).toThrow(/backslash/);
  });

  it('a grant without expiry schedules nothing; without the EVENT privilege, or when the event is gone already, the grant still succeeds', async () => {
    await grantFlow(opts, scope, grantParams);
    expect(fake.changes().some((c) => /EVENT|DATABASE/.test(c.sql))).toBe(false);
    fake.refuse = { pattern: /^CREATE DEFINER = CURRENT_USER EVENT/, errno: 1044 };
    fake.log.length = 0;
    const out = await grantFlow(opts, scope, {
      ...grantParams,
      grantId: 'g5',
      expiresAt: '2026-11-26T08:00:00.000Z',
    });
    expect(out.username).toBe(USER);
    expect(fake.changes().map((c) => head(c.sql))).toContain(`SET DEFAULT ROLE ALL TO ${A}`);
    expect(fake.accounts.has('lk_g_g5@%')).toBe(true);
    // An event that fired (or was dropped at once, its time past) between the two
    // statements: nothing to move, the grant goes on.
    fake.refuse = { pattern: /^ALTER EVENT/, errno: 1539 };
    const again = await grantFlow(opts, scope, {
      ...grantParams,
      grantId: 'g8',
      expiresAt: '2026-11-26T08:00:00.000Z',
    });
    expect(again.username).toBe(USER);
    // Any other failure of the event is the grant's failure (and is undone).
    fake.refuse = { pattern: /^ALTER EVENT/, errno: 1064 };
    await expect(
      grantFlow(opts, scope, {
        ...grantParams,
        grantId: 'g9',
        expiresAt: '2026-11-26T08:00:00.000Z',
      }),
    ).rejects.toBeDefined();
    expect(fake.accounts.has('lk_g_g9@%')).toBe(false);
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
      [`DROP EVENT IF EXISTS ${EV1}`, undefined],
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
      [`DROP EVENT IF EXISTS ${EV1}`, undefined],
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
    expect(fake.changes().map((c) => c.sql)).toEqual([
      'DROP USER IF EXISTS `lk_g_g1`@`%`',
      `DROP EVENT IF EXISTS ${EV1}`,
    ]);
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

  it('objects a grantee defined: cleanup keeps the user (E_GUARDRAIL) or drops them first; a new account of that name is refused', async () => {
    await grantFlow(opts, scope, grantParams);
    await revokeFlow(opts, scope, { grantId: 'g1', grantee: { email: EMAIL } });
    fake.definerObjects = [
      { kind: 'VIEW', db: 'sales', name: 'v_orders', definer: `${USER}@%` },
      { kind: 'PROCEDURE', db: 'sales', name: 'p_tidy', definer: `${USER}@%` },
      { kind: 'VIEW', db: 'sales', name: 'theirs', definer: 'someone@%' },
    ];
    fake.log.length = 0;
    const kept = await cleanupFlow(opts, scope, { usernames: [USER] });
    expect(kept.dropped).toEqual([]);
    expect(kept.kept[0]).toMatchObject({ username: USER, code: 'E_GUARDRAIL' });
    expect(kept.kept[0]?.reason).toContain('VIEW sales.v_orders');
    expect(fake.changes().filter((c) => c.sql.startsWith('DROP'))).toEqual([]);

    // Dropped by hand, as an operator might: a grant that would create the account again
    // is refused before any change (the objects would come back with its rights).
    fake.accounts.delete(`${USER}@%`);
    fake.log.length = 0;
    await expect(grantFlow(opts, scope, { ...grantParams, grantId: 'g6' })).rejects.toMatchObject({
      code: 'E_GUARDRAIL',
      message: expect.stringContaining('PROCEDURE sales.p_tidy') as string,
    });
    expect(fake.changes()).toEqual([]);

    // The account back (marked, locked): with ownedObjects drop, cleanup drops the user's
    // objects (only those), then the user.
    fake.accounts.set(`${USER}@%`, {
      locked: true,
      attribute: '{"managedBy":"latchkey","kind":"user","v":1}',
      role: false,
    });
    fake.log.length = 0;
    const dropped = await cleanupFlow({ ...opts, ownedObjects: 'drop' }, scope, {
      usernames: [USER],
    });
    expect(dropped.dropped).toEqual([USER]);
    expect(fake.changes().map((c) => c.sql)).toEqual([
      `ALTER USER ${A} ACCOUNT LOCK`,
      'DROP VIEW IF EXISTS `sales`.`v_orders`',
      'DROP PROCEDURE IF EXISTS `sales`.`p_tidy`',
      `DROP USER IF EXISTS ${A}`,
    ]);
    expect(fake.definerObjects.map((o) => o.name)).toEqual(['theirs']);
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
      `DROP EVENT IF EXISTS ${EV1}`,
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
