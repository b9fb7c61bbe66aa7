/**
 * MariaDB: a crash (kill -9) at any point of a grant, then the same grant re-delivered.
 * MariaDB DDL is not transactional, so the user is recorded first: the re-run finishes
 * what the crash left, returns a password that really logs in, and nothing half-created
 * blocks later grants. Also: the password reaches the server only as a hash.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Driver } from '../../../../src/drivers/driver.js';
import {
  createMariadbOps,
  mariadbDefaultRole,
} from '../../../../src/drivers/mysql/dialect-mariadb.js';
import { mysqlNativePasswordHash } from '../../../../src/drivers/mysql/password-hash.js';
import { createMysqlSqlDialect } from '../../../../src/drivers/mysql/sql-dialect.js';
import { grantFlow, type SqlCoreOptions } from '../../../../src/drivers/sql/core.js';
import type { Row, SqlScope } from '../../../../src/drivers/sql/dialect.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import { deriveUsername } from '../../../../src/drivers/sql/username.js';
import type { GrantOutput, GrantParams } from '../../../../src/protocol/messages.js';
import { createSealer } from '../../../../src/protocol/seal.js';
import { CrashSwitch, type CrashPlan } from '../../../helpers/crash.js';
import {
  createMysqlFixture,
  loginErrno,
  mysqlLogin,
  passwordOf,
  qi,
  type MysqlFixture,
} from '../../../helpers/mysql.js';

let f: MysqlFixture;
let driver: Driver;

beforeAll(async () => {
  f = await createMysqlFixture();
  driver = f.driver();
});

afterAll(async () => {
  await f.teardown();
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function params(grantId: string, email: string, table = 'orders'): GrantParams {
  return {
    grantId: `${grantId}-${f.suffix}`,
    grantee: { email },
    resources: [{ type: 'table', id: tableId(f.database, null, table) }],
    permission: 'read',
  };
}

function userOf(email: string): string {
  return deriveUsername(email, { prefix: f.prefix, maxLength: 80 });
}

/** Runs one grant through the core on its own connection, crashing as planned. */
async function crashedGrant(
  plan: CrashPlan,
  p: GrantParams,
): Promise<{ out: GrantOutput | null; sent: string[] }> {
  const sw = new CrashSwitch(plan);
  const conn = await mysqlLogin(f.serviceUser, f.servicePassword);
  sw.onKill(() => conn.destroy());
  const session = sw.session({
    query: async (sql, values) => {
      const [rows] = await conn.query(sql, values === undefined ? undefined : [...values]);
      return Array.isArray(rows) ? (rows as Row[]) : [];
    },
  });
  const scope: SqlScope = {
    session,
    onDatabase: (_db, fn) => fn(session),
    withLockSession: (fn) => fn(session),
    signal: new AbortController().signal,
    serviceAccount: f.serviceUser,
    prefix: f.prefix,
  };
  const settings = { accountHost: '%', metaDatabase: f.metaDatabase };
  const opts: SqlCoreOptions = {
    dialect: sw.dialect(
      createMysqlSqlDialect(createMariadbOps(settings), { ...settings, lockTimeoutSeconds: 20 }),
    ),
    iamAuth: false,
    ownedObjects: 'drop',
    sealer: createSealer({ allowPlaintext: true }),
    now: () => new Date(),
    access: { host: '127.0.0.1', port: 3306 },
  };
  let out: GrantOutput | null = null;
  try {
    out = await grantFlow(opts, scope, p);
  } catch {
    // the crash, or the error injected before it
  } finally {
    conn.destroy();
  }
  // The exact text each statement reached the server as (values inlined by the client).
  const sent = sw.statements.map((s) =>
    mysql.format(s.sql, (s.values ?? []) as Parameters<typeof mysql.format>[1]),
  );
  return { out, sent };
}

async function isMarked(user: string): Promise<boolean> {
  const [rows] = await f.admin.query(
    "SELECT 1 FROM mysql.roles_mapping WHERE User = ? AND Host = '%' AND Role = ?",
    [user, mariadbDefaultRole(user, '%', f.prefix)],
  );
  return (rows as unknown[]).length === 1;
}

/** The re-delivered grant: succeeds, carries a password that really logs in, user marked. */
async function expectRedeliveryWorks(p: GrantParams): Promise<string> {
  const out = await driver.grant(f.ctx(), p);
  const user = userOf(p.grantee.email);
  expect(out.username).toBe(user);
  const password = passwordOf(out);
  expect(password).toMatch(/^.{32}$/);
  const c = await mysqlLogin(user, password);
  try {
    const [rows] = await c.query(`SELECT total FROM ${qi(f.database)}.orders ORDER BY id`);
    expect(rows).toEqual([{ total: 10 }, { total: 20 }]);
  } finally {
    await c.end();
  }
  expect(await loginErrno(user, `${password}x`)).toBe(1045);
  expect(await isMarked(user)).toBe(true);
  return password;
}

describe('mariadb: a crash at any point of a grant, then the same grant again', () => {
  const steps: { name: string; plan: (user: string) => CrashPlan }[] = [
    {
      name: 'inside createUser, after its record and before CREATE USER',
      plan: (user) => ({ atStatement: new RegExp(`^CREATE USER ${escapeRe(qi(user))}`) }),
    },
    {
      name: 'inside createUser, after CREATE USER and before its default role (the marker)',
      plan: (user) => ({
        atStatement: new RegExp(
          `^CREATE ROLE IF NOT EXISTS ${escapeRe(qi(mariadbDefaultRole(user, '%', f.prefix)))}`,
        ),
      }),
    },
    { name: 'after createUser', plan: () => ({ beforeMethod: 'getGrantRole' }) },
    { name: 'after the grant role was created', plan: () => ({ beforeMethod: 'grantPrivileges' }) },
    {
      name: 'after the privileges were granted',
      plan: () => ({ beforeMethod: 'grantRoleToUser' }),
    },
    { name: 'after the last step (the result was lost)', plan: () => ({}) },
    {
      name: 'inside the undo of a failed grant, after DROP USER and before its default role',
      plan: (user) => ({
        failMethod: 'grantRoleToUser',
        atStatement: new RegExp(
          `^DROP ROLE IF EXISTS ${escapeRe(qi(mariadbDefaultRole(user, '%', f.prefix)))}`,
        ),
      }),
    },
  ];

  steps.forEach((step, i) => {
    it(`${step.name}: the re-run returns credentials that log in`, async () => {
      const email = `crash${i}.${f.suffix}@example.com`;
      const p = params(`gc${i}`, email);
      await crashedGrant(step.plan(userOf(email)), p);
      const password = await expectRedeliveryWorks(p);

      // Another grant to the same user carries no password and changes none, also twice.
      const other = params(`go${i}`, email, 'customers');
      const o1 = await driver.grant(f.ctx(), other);
      const o2 = await driver.grant(f.ctx(), other);
      expect(o1.credentials).toBeUndefined();
      expect(o2.credentials).toBeUndefined();
      expect(o2.alreadyGranted).toBe(true);
      expect(await loginErrno(userOf(email), password)).toBeUndefined();
    });
  });

  it('a crash inside the re-run’s password change (record written, ALTER not) still gets a password next time', async () => {
    const email = `crash-rerun.${f.suffix}@example.com`;
    const user = userOf(email);
    const p = params('gcr', email);
    const first = await crashedGrant({}, p);
    const lost = first.out === null ? '' : passwordOf(first.out);
    await crashedGrant(
      { atStatement: new RegExp(`^ALTER USER ${escapeRe(qi(user))}@\`%\` IDENTIFIED BY PASSWORD`) },
      p,
    );
    expect(await loginErrno(user, lost)).toBeUndefined(); // the ALTER never ran
    const fresh = await expectRedeliveryWorks(p);
    expect(await loginErrno(user, lost)).toBe(1045);
    expect(fresh).not.toBe(lost);
  });

  it('someone else’s user of that name is refused, even with a stale record of ours', async () => {
    const email = `crash-foreign.${f.suffix}@example.com`;
    const user = userOf(email);
    // A record from a run that crashed before CREATE USER…
    await crashedGrant(
      { atStatement: new RegExp(`^CREATE USER ${escapeRe(qi(user))}`) },
      params('gf', email),
    );
    // …then someone else creates that user.
    await f.admin.query(`CREATE USER ${qi(user)}@'%' IDENTIFIED BY 'Someone-else-1'`);
    await expect(driver.grant(f.ctx(), params('gf', email))).rejects.toMatchObject({
      code: 'E_NOT_MANAGED',
    });
    expect(await isMarked(user)).toBe(false);
    expect(await loginErrno(user, 'Someone-else-1')).toBeUndefined();
  });
});

describe('mariadb: grantee passwords reach the server only as hashes', () => {
  it('CREATE USER and ALTER USER carry the mysql_native_password hash, never the password', async () => {
    const email = `hashes.${f.suffix}@example.com`;
    const user = userOf(email);
    const p = params('gh', email);
    const first = await crashedGrant({}, p);
    const again = await crashedGrant({}, p); // re-delivered: a fresh password, by ALTER USER
    for (const run of [first, again]) {
      expect(run.out).not.toBeNull();
      const password = run.out === null ? '' : passwordOf(run.out);
      const text = run.sent.join('\n');
      expect(text).not.toContain(password);
      expect(text).toContain(mysqlNativePasswordHash(password));
      expect(
        run.sent.some((s) =>
          /^(CREATE|ALTER) USER .* IDENTIFIED BY PASSWORD '\*[0-9A-F]{40}'$/.test(s),
        ),
      ).toBe(true);
    }
    const newest = again.out === null ? '' : passwordOf(again.out);
    const oldest = first.out === null ? '' : passwordOf(first.out);
    expect(await loginErrno(user, newest)).toBeUndefined();
    expect(await loginErrno(user, oldest)).toBe(1045);
  });
});
