/**
 * The mysql driver against the real MariaDB (LATCHKEY_TEST_MYSQL_URL), as a service account
 * with only the privileges the driver needs. Every grantee statement runs over a fresh
 * connection as the grantee.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Driver } from '../../../../src/drivers/driver.js';
import { isLatchkeyError } from '../../../../src/errors.js';
import type { GrantOutput } from '../../../../src/protocol/messages.js';
import { databaseId, roleId, tableId } from '../../../../src/drivers/sql/resources.js';
import { deriveUsername } from '../../../../src/drivers/sql/username.js';
import { createMysqlDriver } from '../../../../src/drivers/mysql/driver.js';
import { userLockName } from '../../../../src/drivers/mysql/sql-dialect.js';
import {
  createMysqlFixture,
  db,
  mysqlLogin,
  passwordOf,
  qi,
  serviceAccountGrants,
  table,
  withLogin,
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

async function errnoOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { errno?: number }).errno;
  }
}
async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return isLatchkeyError(err) ? err.code : `non-latchkey: ${String(err)}`;
  }
}

describe('discover', () => {
  it('lists databases, tables and existing roles, hiding system schemas and our own objects', async () => {
    const role = `lkt_${f.suffix}_reporting`;
    await f.admin.query(`CREATE ROLE ${qi(role)}`);
    const out = await driver.discover(f.ctx());
    const ids = out.resources.map((r) => r.id);
    expect(ids).toContain(databaseId(f.database));
    expect(ids).toContain(tableId(f.database, null, 'orders'));
    expect(ids).toContain(roleId(role));
    expect(ids).not.toContain(databaseId('mysql'));
    expect(ids).not.toContain(databaseId('information_schema'));
    expect(ids).not.toContain(databaseId(f.metaDatabase));
    const orders = out.resources.find((r) => r.id === tableId(f.database, null, 'orders'));
    expect(orders).toMatchObject({
      type: 'table',
      parentId: databaseId(f.database),
      name: 'orders',
    });
    expect(out.permissions.map((p) => p.id)).toEqual(
      expect.arrayContaining(['connect', 'read', 'write', 'admin', `role:${role}`]),
    );

    expect(out.warnings).toEqual([]);
    const all = await driver.discover(f.ctx(f.integration({ showSystemSchemas: true })));
    expect(all.resources.map((r) => r.id)).toContain(databaseId('mysql'));
  });
});

describe('grant and revoke', () => {
  it('grants read on one table: SELECT works there, INSERT and other tables are refused', async () => {
    const out = await driver.grant(f.ctx(), {
      grantId: `g-read-${f.suffix}`,
      grantee: { email: f.email('reader') },
      resources: [table(f.database, 'orders')],
      permission: 'read',
    });
    expect(out.alreadyGranted).toBe(false);
    expect(out.username).toBe(
      deriveUsername(f.email('reader'), { prefix: f.prefix, maxLength: 80 }),
    );
    expect(out.access).toMatchObject({
      host: expect.any(String) as string,
      database: f.database,
      engine: 'mariadb',
    });
    const password = passwordOf(out);
    await withLogin(out.username, password, async (c) => {
      const [rows] = await c.query(`SELECT total FROM ${qi(f.database)}.orders ORDER BY id`);
      expect(rows).toEqual([{ total: 10 }, { total: 20 }]);
      expect(await errnoOf(c.query(`INSERT INTO ${qi(f.database)}.orders VALUES (3, 30)`))).toBe(
        1142,
      );
      expect(await errnoOf(c.query(`SELECT * FROM ${qi(f.database)}.customers`))).toBe(1142);
    });

    // Idempotent: the same grant again says so; since the password was issued for this
    // very grant (a re-delivery whose first result may be lost), it carries a fresh one
    // and the earlier one stops working.
    const again = await driver.grant(f.ctx(), {
      grantId: `g-read-${f.suffix}`,
      grantee: { email: f.email('reader') },
      resources: [table(f.database, 'orders')],
      permission: 'read',
    });
    expect(again.alreadyGranted).toBe(true);
    const fresh = passwordOf(again);
    expect(fresh).not.toBe(password);
    await withLogin(out.username, fresh, async (c) => {
      await expect(
        c.query(`SELECT 1 FROM ${qi(f.database)}.orders LIMIT 1`),
      ).resolves.toBeDefined();
    });
    await expect(mysqlLogin(out.username, password)).rejects.toMatchObject({ errno: 1045 });
  });

  it('overlapping grants: revoking one keeps the other; revoking the last locks and ends open sessions', async () => {
    const grantee = { email: f.email('overlap') };
    const g1 = await driver.grant(f.ctx(), {
      grantId: `g-ov1-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'orders')],
      permission: 'read',
    });
    const password = passwordOf(g1);
    const g2 = await driver.grant(f.ctx(), {
      grantId: `g-ov2-${f.suffix}`,
      grantee,
      resources: [db(f.database)],
      permission: 'write',
    });
    expect(g2.credentials).toBeUndefined();
    await withLogin(g1.username, password, async (c) => {
      await c.query(`INSERT INTO ${qi(f.database)}.customers VALUES (100, 'x')`);
    });

    const r1 = await driver.revoke(f.ctx(), {
      grantId: `g-ov2-${f.suffix}`,
      grantee,
      resources: [db(f.database)],
      permission: 'write',
    });
    expect(r1.alreadyRevoked).toBe(false);
    expect(r1.revoked).toEqual([`g-ov2-${f.suffix}`]);
    expect(r1.phases.find((p) => p.phase === 'lock-login')?.status).toBe('skipped');
    await withLogin(g1.username, password, async (c) => {
      await expect(
        c.query(`SELECT total FROM ${qi(f.database)}.orders WHERE id = 1`),
      ).resolves.toBeDefined();
      expect(
        await errnoOf(c.query(`INSERT INTO ${qi(f.database)}.customers VALUES (101, 'y')`)),
      ).toBe(1142);
    });

    // An open session of the grantee is ended by the last revoke, and no new login works.
    const open = await mysqlLogin(g1.username, password);
    try {
      await open.query('SELECT 1');
      const r2 = await driver.revoke(f.ctx(), {
        grantId: `g-ov1-${f.suffix}`,
        grantee,
        resources: [table(f.database, 'orders')],
        permission: 'read',
      });
      expect(r2.phases.map((p) => [p.phase, p.status])).toEqual([
        ['lock-login', 'done'],
        ['terminate-sessions', 'done'],
        ['drop-grant-role', 'done'],
      ]);
      expect(r2.sessionsTerminated).toBeGreaterThanOrEqual(1);
      await expect(open.query('SELECT 1')).rejects.toThrow();
    } finally {
      open.destroy();
    }
    const loginErr = await errnoOf(mysqlLogin(g1.username, password));
    expect([4151, 3118]).toContain(loginErr); // account is locked (MariaDB, MySQL)

    // Already revoked is success.
    const r3 = await driver.revoke(f.ctx(), {
      grantId: `g-ov1-${f.suffix}`,
      grantee,
      resources: [],
      permission: 'read',
    });
    expect(r3.alreadyRevoked).toBe(true);

    // A new grant after that unlocks the login with a fresh password.
    const g3 = await driver.grant(f.ctx(), {
      grantId: `g-ov3-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'customers')],
      permission: 'read',
    });
    const fresh = passwordOf(g3);
    await withLogin(g3.username, fresh, async (c) => {
      await expect(
        c.query(`SELECT name FROM ${qi(f.database)}.customers WHERE id = 1`),
      ).resolves.toBeDefined();
    });
    expect(await errnoOf(mysqlLogin(g3.username, password))).toBe(1045);
  });

  it('grants an existing role (role:<name>) and admin on a database', async () => {
    const role = `lkt_${f.suffix}_auditor`;
    await f.admin.query(`CREATE ROLE ${qi(role)}`);
    await f.admin.query(`GRANT SELECT ON ${qi(f.database)}.customers TO ${qi(role)}`);
    await f.admin.query(`GRANT ${qi(role)} TO ${qi(f.serviceUser)}@${qi('%')} WITH ADMIN OPTION`);
    const out = await driver.grant(f.ctx(), {
      grantId: `g-role-${f.suffix}`,
      grantee: { email: f.email('auditor') },
      resources: [],
      permission: `role:${role}`,
    });
    await withLogin(out.username, passwordOf(out), async (c) => {
      await expect(c.query(`SELECT name FROM ${qi(f.database)}.customers`)).resolves.toBeDefined();
      expect(await errnoOf(c.query(`SELECT * FROM ${qi(f.database)}.orders`))).toBe(1142);
    });

    const admin = await driver.grant(f.ctx(), {
      grantId: `g-admin-${f.suffix}`,
      grantee: { email: f.email('dba') },
      resources: [db(f.database)],
      permission: 'admin',
    });
    await withLogin(admin.username, passwordOf(admin), async (c) => {
      await c.query(`CREATE TABLE ${qi(f.database)}.scratch (a INT)`);
      await c.query(`DROP TABLE ${qi(f.database)}.scratch`);
    });
  });

  it('refuses bad grants before any change', async () => {
    const grantee = { email: f.email('refused') };
    expect(
      await codeOf(
        driver.grant(f.ctx(), {
          grantId: 'g-x1',
          grantee,
          resources: [table(f.database, 'nope')],
          permission: 'read',
        }),
      ),
    ).toBe('E_NOT_FOUND');
    expect(
      await codeOf(
        driver.grant(f.ctx(), {
          grantId: 'g-x2',
          grantee,
          resources: [db('mysql')],
          permission: 'read',
        }),
      ),
    ).toBe('E_GUARDRAIL');
    expect(
      await codeOf(
        driver.grant(f.ctx(), {
          grantId: 'g-x3',
          grantee,
          resources: [db(f.database)],
          permission: 'sudo',
        }),
      ),
    ).toBe('E_INVALID');
    expect(
      await codeOf(
        driver.grant(f.ctx(), {
          grantId: 'g-x4',
          grantee,
          resources: [],
          permission: 'role:no_such_role_x',
        }),
      ),
    ).toBe('E_NOT_FOUND');
    const username = deriveUsername(grantee.email, { prefix: f.prefix, maxLength: 80 });
    const [rows] = await f.admin.query('SELECT User FROM mysql.global_priv WHERE User = ?', [
      username,
    ]);
    expect(rows).toEqual([]);
  });
});

describe('hostile names', () => {
  it('grants on databases and tables with quotes, backticks, semicolons, unicode and keywords', async () => {
    const hostileDb = `lkt_${f.suffix}_x\`'"; DROP DATABASE mysql; --`;
    const likeDb = `lkt_${f.suffix}_a_b`;
    const likeTwin = `lkt_${f.suffix}_aXb`;
    f.extraDatabases.push(hostileDb, likeDb, likeTwin);
    await f.admin.query(`CREATE DATABASE ${qi(hostileDb)}`);
    await f.admin.query(`CREATE TABLE ${qi(hostileDb)}.${qi('select')} (${qi('from')} INT)`);
    await f.admin.query(`CREATE TABLE ${qi(hostileDb)}.${qi('sélect ☃ `x`')} (a INT)`);
    await f.admin.query(`CREATE DATABASE ${qi(likeDb)}`);
    await f.admin.query(`CREATE TABLE ${qi(likeDb)}.t (a INT)`);
    await f.admin.query(`CREATE DATABASE ${qi(likeTwin)}`);
    await f.admin.query(`CREATE TABLE ${qi(likeTwin)}.t (a INT)`);
    for (const d of [hostileDb, likeDb, likeTwin]) {
      await f.admin.query(
        `GRANT SELECT, SHOW VIEW ON ${qi(d)}.* TO ${qi(f.serviceUser)}@${qi('%')} WITH GRANT OPTION`,
      );
    }

    const discovered = await driver.discover(f.ctx());
    expect(discovered.resources.map((r) => r.id)).toContain(
      tableId(hostileDb, null, 'sélect ☃ `x`'),
    );

    const out = await driver.grant(f.ctx(), {
      grantId: `g-hostile-${f.suffix}`,
      grantee: { email: f.email('hostile') },
      resources: [table(hostileDb, 'select'), table(hostileDb, 'sélect ☃ `x`'), db(likeDb)],
      permission: 'read',
    });
    await withLogin(out.username, passwordOf(out), async (c) => {
      await expect(
        c.query(`SELECT ${qi('from')} FROM ${qi(hostileDb)}.${qi('select')}`),
      ).resolves.toBeDefined();
      await expect(
        c.query(`SELECT a FROM ${qi(hostileDb)}.${qi('sélect ☃ `x`')}`),
      ).resolves.toBeDefined();
      await expect(c.query(`SELECT a FROM ${qi(likeDb)}.t`)).resolves.toBeDefined();
      // `_` is not a wildcard in our database-level grant.
      expect(await errnoOf(c.query(`SELECT a FROM ${qi(likeTwin)}.t`))).toBe(1142);
    });
    const [dbs] = await f.admin.query(
      'SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
      ['mysql'],
    );
    expect(dbs).toHaveLength(1);

    const hostileRole = `lkt_${f.suffix}_r\`o'l;e ☃`;
    await f.admin.query(`CREATE ROLE ${qi(hostileRole)}`);
    await f.admin.query(`GRANT SELECT ON ${qi(hostileDb)}.${qi('select')} TO ${qi(hostileRole)}`);
    await f.admin.query(
      `GRANT ${qi(hostileRole)} TO ${qi(f.serviceUser)}@${qi('%')} WITH ADMIN OPTION`,
    );
    const viaRole = await driver.grant(f.ctx(), {
      grantId: `g-hrole-${f.suffix}`,
      grantee: { email: f.email('hostile-role') },
      resources: [{ type: 'role', id: roleId(hostileRole) }],
      permission: `role:${hostileRole}`,
    });
    await withLogin(viaRole.username, passwordOf(viaRole), async (c) => {
      await expect(
        c.query(`SELECT ${qi('from')} FROM ${qi(hostileDb)}.${qi('select')}`),
      ).resolves.toBeDefined();
    });

    const backslash = await codeOf(
      driver.grant(f.ctx(), {
        grantId: `g-bs-${f.suffix}`,
        grantee: { email: f.email('hostile') },
        resources: [db('a\\b')],
        permission: 'read',
      }),
    );
    expect(backslash).toBe('E_INVALID');
    const tooLong = await codeOf(
      driver.grant(f.ctx(), {
        grantId: `g-long-${f.suffix}`,
        grantee: { email: f.email('hostile') },
        resources: [db('x'.repeat(65))],
        permission: 'read',
      }),
    );
    expect(tooLong).toBe('E_INVALID');
  });
});

describe('rotate', () => {
  it('rotates a grantee: the old password fails, the new one works', async () => {
    const grantee = { email: f.email('rotor') };
    const out = await driver.grant(f.ctx(), {
      grantId: `g-rot-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'orders')],
      permission: 'read',
    });
    const old = passwordOf(out);
    const rotated = await driver.rotate(f.ctx(), { target: { grantee } });
    const c = rotated.credentials;
    if (!c || !('plaintext' in c)) throw new Error('expected credentials');
    const fresh = c.plaintext.password ?? '';
    expect(fresh).not.toBe(old);
    expect(await errnoOf(mysqlLogin(out.username, old))).toBe(1045);
    await withLogin(out.username, fresh, async (conn) => {
      await expect(
        conn.query(`SELECT 1 FROM ${qi(f.database)}.orders LIMIT 1`),
      ).resolves.toBeDefined();
    });
  });

  it('rotates the service account in two phases through the secret store', async () => {
    const d = f.driver();
    await d.discover(f.ctx()); // a pool with the old password exists
    const old = f.secrets.current.password;
    const out = await d.rotate(f.ctx(), { target: { serviceAccount: true } });
    expect(out.phases.map((p) => p.phase)).toEqual([
      'put-pending',
      'set-password',
      'verify-login',
      'promote',
    ]);
    expect(f.secrets.pending).toBeNull();
    expect(f.secrets.current.password).not.toBe(old);
    expect(await errnoOf(mysqlLogin(f.serviceUser, old))).toBe(1045);
    await withLogin(f.serviceUser, f.secrets.current.password, (c) => c.query('SELECT 1'));
    // The driver keeps working with the new secret.
    await expect(d.discover(f.ctx())).resolves.toBeDefined();
    await expect(driver.discover(f.ctx())).resolves.toBeDefined();
  });
});

describe('rotate, interrupted', () => {
  it('finishes a service-account rotation that crashed after changing the password', async () => {
    // The crash: AWSPENDING holds the new password and the server already uses it.
    const next = `Next-${f.suffix}-pass-1`;
    f.secrets.pending = { ...f.secrets.current, password: next, versionId: 'crashed' };
    await f.admin.query(`ALTER USER ${qi(f.serviceUser)}@${qi('%')} IDENTIFIED BY ?`, [next]);
    const d = f.driver();
    // Meanwhile the driver still works, with the pending secret.
    await expect(d.discover(f.ctx())).resolves.toBeDefined();
    const out = await d.rotate(f.ctx(), { target: { serviceAccount: true } });
    expect(out.phases[0]).toMatchObject({ phase: 'put-pending', status: 'skipped' });
    expect(out.phases.map((p) => p.phase)).toEqual([
      'put-pending',
      'set-password',
      'verify-login',
      'promote',
    ]);
    expect(f.secrets.current.password).toBe(next);
    expect(f.secrets.pending).toBeNull();
    await expect(d.discover(f.ctx())).resolves.toBeDefined();
  });
});

describe('cleanup and markers', () => {
  it('drops only our users with no grant left; keeps the rest with a reason', async () => {
    const grantee = { email: f.email('leaver') };
    const out = await driver.grant(f.ctx(), {
      grantId: `g-leave-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'orders')],
      permission: 'read',
    });
    const foreign = `${f.prefix}foreign`;
    await f.admin.query(`CREATE USER ${qi(foreign)}@${qi('%')} IDENTIFIED BY 'x-Foreign-1'`);

    const first = await driver.cleanup(f.ctx(), {
      usernames: [out.username, foreign, f.serviceUser, 'root'],
    });
    expect(first.dropped).toEqual([]);
    expect(first.kept).toEqual([
      {
        username: out.username,
        reason: expect.stringContaining('live grant') as string,
        code: 'E_GUARDRAIL',
      },
      { username: foreign, reason: expect.any(String) as string, code: 'E_NOT_MANAGED' },
      { username: f.serviceUser, reason: expect.any(String) as string, code: 'E_NOT_MANAGED' },
      { username: 'root', reason: expect.any(String) as string, code: 'E_NOT_MANAGED' },
    ]);

    // An unmarked user with our prefix is never granted to, revoked or dropped.
    expect(
      await codeOf(
        driver.grant(f.ctx(), {
          grantId: `g-foreign-${f.suffix}`,
          grantee: { email: f.email('nobody') },
          resources: [db(f.database)],
          permission: 'read',
        }),
      ),
    ).toBeUndefined(); // (a different, derived user name: fine)

    await driver.revoke(f.ctx(), {
      grantId: `g-leave-${f.suffix}`,
      grantee,
      resources: [],
      permission: 'read',
    });
    const second = await driver.cleanup(f.ctx(), { usernames: [out.username] });
    expect(second).toEqual({ dropped: [out.username], kept: [] });
    const [left] = await f.admin.query('SELECT User FROM mysql.global_priv WHERE User = ?', [
      out.username,
    ]);
    expect(left).toEqual([]);
    const again = await driver.cleanup(f.ctx(), { usernames: [out.username] });
    expect(again.dropped).toEqual([out.username]);
  });

  it('keeps a user who is the DEFINER of views unless ownedObjects is drop', async () => {
    const grantee = { email: f.email('definer') };
    const out = await driver.grant(f.ctx(), {
      grantId: `g-def-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'orders')],
      permission: 'read',
    });
    await driver.revoke(f.ctx(), {
      grantId: `g-def-${f.suffix}`,
      grantee,
      resources: [],
      permission: 'read',
    });
    await f.admin.query(
      `CREATE DEFINER = ${qi(out.username)}@${qi('%')} SQL SECURITY DEFINER VIEW ${qi(f.database)}.v_def AS SELECT id FROM ${qi(f.database)}.orders`,
    );
    const kept = await driver.cleanup(f.ctx(), { usernames: [out.username] });
    expect(kept.dropped).toEqual([]);
    expect(kept.kept[0]).toMatchObject({ username: out.username, code: 'E_GUARDRAIL' });
    expect(kept.kept[0]?.reason).toContain(`VIEW ${f.database}.v_def`);

    const dropping = { ...f.integration(), settings: { ownedObjects: 'drop' } };
    const dropped = await driver.cleanup(f.ctx(dropping), { usernames: [out.username] });
    expect(dropped.dropped).toEqual([out.username]);
    const [views] = await f.admin.query(
      'SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?',
      [f.database],
    );
    expect(views).toEqual([]);
  });

  it('refuses to grant to an existing user that does not carry the marker', async () => {
    const grantee = { email: f.email('squatter') };
    const username = deriveUsername(grantee.email, { prefix: f.prefix, maxLength: 80 });
    await f.admin.query(`CREATE USER ${qi(username)}@${qi('%')} IDENTIFIED BY 'x-Squat-1'`);
    const code = await codeOf(
      driver.grant(f.ctx(), {
        grantId: `g-squat-${f.suffix}`,
        grantee,
        resources: [db(f.database)],
        permission: 'read',
      }),
    );
    expect(code).toBe('E_NOT_MANAGED');
    expect(
      await codeOf(
        driver.revoke(f.ctx(), {
          grantId: `g-squat-${f.suffix}`,
          grantee,
          resources: [],
          permission: 'read',
        }),
      ),
    ).toBe('E_NOT_MANAGED');
    const cleaned = await driver.cleanup(f.ctx(), { usernames: [username] });
    expect(cleaned.kept).toEqual([
      { username, reason: expect.any(String) as string, code: 'E_NOT_MANAGED' },
    ]);
    const [still] = await f.admin.query('SELECT User FROM mysql.global_priv WHERE User = ?', [
      username,
    ]);
    expect(still).toHaveLength(1);
    const [roles] = await f.admin.query('SELECT User FROM mysql.global_priv WHERE User LIKE ?', [
      `${f.prefix.replace(/_/g, '\\_')}g\\_g-squat%`,
    ]);
    expect(roles).toEqual([]);
  });
});

describe('expiry', () => {
  it('records expiresAt and the sweep revokes the grant once it has passed', async () => {
    const grantee = { email: f.email('temp') };
    const expiresAt = new Date(f.clock.now.getTime() + 3600_000).toISOString();
    const out = await driver.grant(f.ctx(), {
      grantId: `g-exp-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'orders')],
      permission: 'read',
      expiresAt,
    });
    expect(out.expiresAt).toBe(expiresAt);
    const [rows] = await f.admin.query(
      `SELECT record FROM ${qi(f.metaDatabase)}.grants WHERE username = ?`,
      [out.username],
    );
    expect(JSON.parse((rows as { record: string }[])[0]?.record ?? '{}')).toMatchObject({
      expiresAt,
      grantId: `g-exp-${f.suffix}`,
    });

    const sweep = driver.sweep?.bind(driver);
    if (!sweep) throw new Error('sweep expected');
    expect((await sweep(f.ctx())).revoked).not.toContain(`g-exp-${f.suffix}`);
    const saved = f.clock.now;
    f.clock.now = new Date(saved.getTime() + 2 * 3600_000);
    try {
      const report = await sweep(f.ctx());
      expect(report.revoked).toContain(`g-exp-${f.suffix}`);
      expect(report.errors).toEqual([]);
    } finally {
      f.clock.now = saved;
    }
    expect([4151, 3118]).toContain(await errnoOf(mysqlLogin(out.username, passwordOf(out))));
  });
});

describe('concurrency', () => {
  it('two driver instances granting to one user at once are serialized', async () => {
    const a = f.driver();
    const b = f.driver();
    const grantee = { email: f.email('busy') };
    const [ra, rb] = await Promise.all([
      a.grant(f.ctx(), {
        grantId: `g-ca-${f.suffix}`,
        grantee,
        resources: [table(f.database, 'orders')],
        permission: 'read',
      }),
      b.grant(f.ctx(), {
        grantId: `g-cb-${f.suffix}`,
        grantee,
        resources: [table(f.database, 'customers')],
        permission: 'read',
      }),
    ]);
    expect(ra.username).toBe(rb.username);
    const withPassword = [ra, rb].filter((r) => r.credentials !== undefined);
    expect(withPassword).toHaveLength(1);
    const password = passwordOf(withPassword[0] as GrantOutput);
    await withLogin(ra.username, password, async (c) => {
      await expect(
        c.query(`SELECT 1 FROM ${qi(f.database)}.orders LIMIT 1`),
      ).resolves.toBeDefined();
      await expect(
        c.query(`SELECT 1 FROM ${qi(f.database)}.customers LIMIT 1`),
      ).resolves.toBeDefined();
    });
  });
});

describe('locks and deadlines', () => {
  it('waits for the per-user GET_LOCK: E_CONFLICT after lockTimeoutSeconds, E_TIMEOUT when the deadline passes first', async () => {
    const grantee = { email: f.email('locked') };
    const username = deriveUsername(grantee.email, { prefix: f.prefix, maxLength: 80 });
    const params = {
      grantId: `g-lock-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'orders')],
      permission: 'read',
    };
    const [got] = await f.admin.query('SELECT GET_LOCK(?, 0) AS got', [
      userLockName(username, '%'),
    ]);
    expect(got).toEqual([{ got: 1 }]);
    try {
      expect(
        await codeOf(driver.grant(f.ctx(f.integration({ lockTimeoutSeconds: 1 })), params)),
      ).toBe('E_CONFLICT');
      const late = f.ctx(undefined, AbortSignal.timeout(300));
      expect(await codeOf(driver.grant(late, params))).toBe('E_TIMEOUT');
    } finally {
      await f.admin.query('SELECT RELEASE_LOCK(?)', [userLockName(username, '%')]);
    }
    const [rows] = await f.admin.query('SELECT User FROM mysql.global_priv WHERE User = ?', [
      username,
    ]);
    expect(rows).toEqual([]);
    // The pool is still usable after a connection was destroyed by the abort.
    const out = await driver.grant(f.ctx(), params);
    expect(out.alreadyGranted).toBe(false);
  });
});

describe('check', () => {
  it('passes for the prepared service account', async () => {
    const out = await driver.check(f.ctx());
    expect(out.checks.filter((c) => !c.ok)).toEqual([]);
    expect(out.ok).toBe(true);
    expect(out.serverVersion).toMatch(/MariaDB/);
    // EVENT on the metadata database (server-side expiry) is asked for and held.
    expect(out.checks.find((c) => c.name === `privilege EVENT ON ${f.metaDatabase}.*`)?.ok).toBe(
      true,
    );
    // The event scheduler, as the server has it (a warning in words, never a failure).
    const [rows] = await f.admin.query('SELECT @@GLOBAL.event_scheduler AS s');
    const state = String((rows as { s: string }[])[0]?.s).toUpperCase();
    const sched = out.checks.find((c) => c.name === 'event scheduler (server-side expiry)');
    expect(sched?.ok).toBe(true);
    expect(sched?.detail.startsWith(`${state}:`)).toBe(true);
    if (state !== 'ON') expect(sched?.detail).toContain('event_scheduler=ON');
  });

  it('names what a weak service account lacks, with the statement to fix it', async () => {
    const weak = `lkt_${f.suffix}_weak`;
    await f.admin.query(`CREATE USER ${qi(weak)}@${qi('%')} IDENTIFIED BY 'Weak-pass-1'`);
    const d = createMysqlDriver({
      ...f.services,
      secrets: {
        resolve: () =>
          Promise.resolve({
            ...f.secrets.current,
            username: weak,
            password: 'Weak-pass-1',
            extra: {},
          }),
      },
    });
    const integration = { ...f.integration(), id: `weak-${f.suffix}` };
    try {
      const out = await d.check(f.ctx(integration));
      expect(out.ok).toBe(false);
      const missing = out.checks.find((c) => c.name === 'privilege CREATE USER ON *.*');
      expect(missing?.ok).toBe(false);
      expect(missing?.detail).toContain(`GRANT CREATE USER ON *.* TO \`${weak}\`@\`%\``);
      expect(out.checks.find((c) => c.name === 'privilege CONNECTION ADMIN ON *.*')?.ok).toBe(
        false,
      );
      expect(out.checks.find((c) => c.name === 'privilege GRANT OPTION ON *.*')?.ok).toBe(false);
      expect(
        out.checks.find((c) => c.name === `privilege EVENT ON ${f.metaDatabase}.*`),
      ).toMatchObject({
        ok: false,
        detail: expect.stringContaining(
          `GRANT EVENT ON \`${f.metaDatabase}\`.* TO \`${weak}\`@\`%\``,
        ) as string,
      });
    } finally {
      await d.close();
    }
  });

  it('names exactly the one missing privilege (CONNECTION ADMIN) and its GRANT, which fixes it', async () => {
    const partial = `lkt_${f.suffix}_nokill`;
    const account = `${qi(partial)}@${qi('%')}`;
    await f.admin.query(`CREATE USER ${account} IDENTIFIED BY 'Nokill-pass-1'`);
    for (const g of serviceAccountGrants(account, f.database, f.metaDatabase)) {
      await f.admin.query(g.replace('PROCESS, CONNECTION ADMIN,', 'PROCESS,'));
    }
    const d = createMysqlDriver({
      ...f.services,
      secrets: {
        resolve: () =>
          Promise.resolve({
            ...f.secrets.current,
            username: partial,
            password: 'Nokill-pass-1',
            extra: {},
          }),
      },
    });
    const integration = { ...f.integration(), id: `nokill-${f.suffix}` };
    try {
      const out = await d.check(f.ctx(integration));
      const failed = out.checks.filter((c) => !c.ok);
      expect(failed).toHaveLength(1);
      expect(failed[0]?.name).toBe('privilege CONNECTION ADMIN ON *.*');
      const fix = /Run: (GRANT .*)$/.exec(failed[0]?.detail ?? '')?.[1];
      expect(fix).toBe(`GRANT CONNECTION ADMIN ON *.* TO \`${partial}\`@\`%\``);
      // The statement check gave, run as is, is the whole fix.
      await f.admin.query(fix ?? '');
      const again = await d.check(f.ctx(integration));
      expect(again.checks.filter((c) => !c.ok)).toEqual([]);
      expect(again.ok).toBe(true);
    } finally {
      await d.close();
    }
  });

  it('reports an unreachable server as a failed connect check', async () => {
    const out = await driver.check(f.ctx(f.integration({ port: 1, connectTimeoutMs: 1000 })));
    expect(out.ok).toBe(false);
    expect(out.checks[0]).toMatchObject({ name: 'connect', ok: false });
    expect(out.checks[0]?.detail).toContain('E_CONNECT');
  });
});
