/**
 * Issue 9, MariaDB/MySQL half: a grant is never a path upward. Runs against the shared
 * MariaDB (project `default`) and against a private MariaDB started with
 * `--sql-mode=NO_BACKSLASH_ESCAPES,ANSI_QUOTES` (project `mariadb-modes`), as a service
 * account with only the privileges the driver needs. Every grantee statement runs over a
 * fresh connection as the grantee.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import type { Driver } from '../../../../src/drivers/driver.js';
import { isLatchkeyError } from '../../../../src/errors.js';
import type { GrantOutput, ResourceRef } from '../../../../src/protocol/messages.js';
import { roleId } from '../../../../src/drivers/sql/resources.js';
import { deriveUsername } from '../../../../src/drivers/sql/username.js';
import { mariadbDefaultRole } from '../../../../src/drivers/mysql/dialect-mariadb.js';
import {
  createMysqlFixture,
  db,
  mysqlEndpoint,
  passwordOf,
  qi,
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

const svc = (): string => `${qi(f.serviceUser)}@${qi('%')}`;

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string } | null> {
  try {
    await p;
    return null;
  } catch (err) {
    return isLatchkeyError(err)
      ? { code: err.code, message: err.message }
      : { code: 'non-latchkey', message: String(err) };
  }
}
function hex(s: string): string {
  return '0x' + Buffer.from(s, 'utf8').toString('hex');
}

describe("the server's sql_mode (item 6)", () => {
  it('grants read on a table whose name holds a quote, whatever the server sql_mode', async () => {
    const quoted = "o'neil";
    await f.admin.query(`CREATE TABLE ${qi(f.database)}.${qi(quoted)} (a INT)`);
    await f.admin.query(`INSERT INTO ${qi(f.database)}.${qi(quoted)} VALUES (7)`);
    const out = await driver.grant(f.ctx(), {
      grantId: `g-quote-${f.suffix}`,
      grantee: { email: f.email('quote') },
      resources: [table(f.database, quoted)],
      permission: 'read',
    });
    await withLogin(out.username, passwordOf(out), async (c) => {
      const [rows] = await c.query(`SELECT a FROM ${qi(f.database)}.${qi(quoted)}`);
      expect(rows).toEqual([{ a: 7 }]);
    });
  });

  it('never runs SQL hidden in a table or database name', async () => {
    const lock = `lkinj_${f.suffix}`;
    // Under NO_BACKSLASH_ESCAPES a backslash-escaped quote ends the literal and the rest runs.
    const payload = `zz' OR GET_LOCK(${hex(lock)},0)#`;
    const onTable = await errorOf(
      driver.grant(f.ctx(), {
        grantId: `g-inj1-${f.suffix}`,
        grantee: { email: f.email('inject') },
        resources: [table(f.database, payload)],
        permission: 'read',
      }),
    );
    expect(onTable?.code).toBe('E_NOT_FOUND');
    const onDatabase = await errorOf(
      driver.grant(f.ctx(), {
        grantId: `g-inj2-${f.suffix}`,
        grantee: { email: f.email('inject') },
        resources: [db(payload)],
        permission: 'read',
      }),
    );
    expect(onDatabase?.code).toBe('E_NOT_FOUND');
    const [rows] = await f.admin.query(`SELECT IS_USED_LOCK(${hex(lock)}) AS holder`);
    expect(rows).toEqual([{ holder: null }]);
  });
});

describe('role:<name> guardrail (item 3)', () => {
  async function role(name: string, ...grants: string[]): Promise<string> {
    const r = `lkt_${f.suffix}_${name}`;
    await f.admin.query(`CREATE ROLE ${qi(r)}`);
    for (const g of grants) await f.admin.query(g.replace(/\$R/g, qi(r)));
    await f.admin.query(`GRANT ${qi(r)} TO ${svc()} WITH ADMIN OPTION`);
    return r;
  }
  function grantRole(r: string, tag: string): Promise<GrantOutput> {
    return driver.grant(f.ctx(), {
      grantId: `g-${tag}-${f.suffix}`,
      grantee: { email: f.email(tag) },
      resources: [],
      permission: `role:${r}`,
    });
  }

  it('refuses a role that reaches a dangerous privilege through nested roles, naming the path', async () => {
    const top = await role('admins', 'GRANT CREATE USER, RELOAD ON *.* TO $R');
    const mid = await role(
      'mid',
      `GRANT SELECT ON ${qi(f.database)}.orders TO $R`,
      `GRANT ${qi(top)} TO $R`,
    );
    const outer = await role(
      'outer',
      `GRANT SELECT ON ${qi(f.database)}.customers TO $R`,
      `GRANT ${qi(mid)} TO $R`,
    );
    const err = await errorOf(grantRole(outer, 'nested'));
    expect(err?.code).toBe('E_GUARDRAIL');
    expect(err?.message).toContain(`${outer} → ${mid} → ${top} holds RELOAD, CREATE USER ON *.*`);
    const [users] = await f.admin.query('SELECT User FROM mysql.global_priv WHERE User LIKE ?', [
      `${f.prefix}nested%`,
    ]);
    expect(users).toEqual([]);
  });

  it.each([
    ['global', 'GRANT SELECT ON *.* TO $R', 'holds SELECT ON *.*'],
    ['mysqldb', 'GRANT SELECT ON `mysql`.* TO $R', 'ON `mysql`.*'],
    ['mysqltable', 'GRANT SELECT ON `mysql`.`global_priv` TO $R', 'ON `mysql`.`global_priv`'],
    ['wildcard', 'GRANT SELECT ON `mysq_`.* TO $R', 'ON `mysq_`.*'],
    ['grantopt', 'GRANT SELECT ON `DB`.* TO $R WITH GRANT OPTION', 'holds GRANT OPTION'],
    ['meta', 'GRANT SELECT, DELETE ON `META`.* TO $R', 'ON `META`.*'],
  ])('refuses a role holding %s privileges', async (tag, grant, reason) => {
    const r = await role(
      tag,
      grant.replace('`DB`', qi(f.database)).replace('`META`', qi(f.metaDatabase)),
    );
    const err = await errorOf(grantRole(r, tag));
    expect(err?.code).toBe('E_GUARDRAIL');
    expect(err?.message).toContain(reason.replace('`META`', qi(f.metaDatabase)));
  });

  it('refuses a role that holds another role WITH ADMIN OPTION', async () => {
    const inner = await role('inner', `GRANT SELECT ON ${qi(f.database)}.orders TO $R`);
    const r = await role('adminopt', `GRANT ${qi(inner)} TO $R WITH ADMIN OPTION`);
    const err = await errorOf(grantRole(r, 'adminopt'));
    expect(err?.code).toBe('E_GUARDRAIL');
    expect(err?.message).toContain('WITH ADMIN OPTION');
  });

  it('grants a harmless nested role, and discover marks only the dangerous ones not grantable', async () => {
    const leaf = await role('leaf', `GRANT SELECT ON ${qi(f.database)}.orders TO $R`);
    const ok = await role('okay', `GRANT ${qi(leaf)} TO $R`);
    const out = await grantRole(ok, 'harmless');
    await withLogin(out.username, passwordOf(out), async (c) => {
      await expect(c.query(`SELECT * FROM ${qi(f.database)}.orders`)).resolves.toBeDefined();
    });
    const bad = await role('superish', 'GRANT SUPER ON *.* TO $R');
    const found = await driver.discover(f.ctx());
    const byId = new Map(found.resources.map((r) => [r.id, r]));
    expect(byId.get(roleId(ok))?.metadata).toMatchObject({ grantable: true });
    expect(byId.get(roleId(bad))?.metadata).toMatchObject({
      grantable: false,
      notGrantableBecause: expect.stringContaining('SUPER') as string,
    });
    const permissions = found.permissions.map((p) => p.id);
    expect(permissions).toContain(`role:${ok}`);
    expect(permissions).not.toContain(`role:${bad}`);
  });
});

describe("the agent's own records (item 5)", () => {
  it('never grants the grant-record database or its tables, in any spelling', async () => {
    // A first grant creates the record table.
    await driver.grant(f.ctx(), {
      grantId: `g-rec-${f.suffix}`,
      grantee: { email: f.email('records') },
      resources: [table(f.database, 'orders')],
      permission: 'read',
    });
    const attempts: ResourceRef[] = [
      db(f.metaDatabase),
      db(f.metaDatabase.toUpperCase()),
      table(f.metaDatabase, 'grants'),
      table(f.metaDatabase.toUpperCase(), 'grants'),
    ];
    for (const [i, resource] of attempts.entries()) {
      const err = await errorOf(
        driver.grant(f.ctx(), {
          grantId: `g-meta${i}-${f.suffix}`,
          grantee: { email: f.email('thief') },
          resources: [resource],
          permission: 'write',
        }),
      );
      expect(err?.code, resource.id).toBe('E_GUARDRAIL');
    }
    const [users] = await f.admin.query('SELECT User FROM mysql.global_priv WHERE User LIKE ?', [
      `${f.prefix}thief%`,
    ]);
    expect(users).toEqual([]);
  });
});

describe('connect (item 9)', () => {
  it('returns a database the grantee can select, and no data in it', async () => {
    const out = await driver.grant(f.ctx(), {
      grantId: `g-conn-${f.suffix}`,
      grantee: { email: f.email('connect') },
      resources: [db(f.database)],
      permission: 'connect',
    });
    expect(out.access.database).toBe(f.database);
    const e = mysqlEndpoint();
    const c = await mysql.createConnection({
      host: e.host,
      port: e.port,
      user: out.username,
      password: passwordOf(out),
      database: String(out.access.database),
    });
    try {
      const [rows] = await c.query('SELECT DATABASE() AS d');
      expect(rows).toEqual([{ d: f.database }]);
      await expect(c.query('SELECT * FROM orders')).rejects.toMatchObject({ errno: 1142 });
    } finally {
      await c.end();
    }
  });
});

describe('objects a grantee defines (item 1)', () => {
  it('DEFINER = CURRENT_ROLE objects run with the grant only while it lives, and cleanup never leaves them behind', async () => {
    const grantee = { email: f.email('builder') };
    const out = await driver.grant(f.ctx(), {
      grantId: `g-build-${f.suffix}`,
      grantee,
      resources: [db(f.database)],
      permission: 'admin',
    });
    const d = qi(f.database);
    await withLogin(out.username, passwordOf(out), async (c) => {
      // Never as the service account: that needs SET USER / SUPER.
      await expect(
        c.query(`CREATE DEFINER = ${svc()} SQL SECURITY DEFINER VIEW ${d}.v_svc AS SELECT 1 AS x`),
      ).rejects.toMatchObject({ errno: 1227 });
      await c.query(
        `CREATE DEFINER = CURRENT_ROLE SQL SECURITY DEFINER VIEW ${d}.v_role AS SELECT total FROM ${d}.orders`,
      );
      await c.query(
        `CREATE DEFINER = CURRENT_ROLE PROCEDURE ${d}.p_role() SQL SECURITY DEFINER SELECT total FROM ${d}.orders`,
      );
      await c.query(
        `CREATE DEFINER = CURRENT_ROLE EVENT ${d}.e_role ON SCHEDULE EVERY 1 HOUR DO DELETE FROM ${d}.orders`,
      );
    });
    // Another login that may only read the view gets the grantee's rights through it...
    const viewer = `lkt_${f.suffix}_viewer`;
    await f.admin.query(`CREATE USER ${qi(viewer)}@${qi('%')} IDENTIFIED BY 'Viewer-pass-1'`);
    await f.admin.query(`GRANT SELECT ON ${d}.v_role TO ${qi(viewer)}@${qi('%')}`);
    await withLogin(viewer, 'Viewer-pass-1', async (c) => {
      await expect(c.query(`SELECT * FROM ${d}.v_role`)).resolves.toBeDefined();
    });
    // ...until the grant ends: the rights went with the grant role.
    await driver.revoke(f.ctx(), {
      grantId: `g-build-${f.suffix}`,
      grantee,
      resources: [],
      permission: 'admin',
    });
    await withLogin(viewer, 'Viewer-pass-1', async (c) => {
      await expect(c.query(`SELECT * FROM ${d}.v_role`)).rejects.toMatchObject({ errno: 1356 });
    });

    // Cleanup does not drop the account out from under them (a later account of the same
    // email would bring them back to life); it says which objects to deal with...
    const kept = await driver.cleanup(f.ctx(), { usernames: [out.username] });
    expect(kept.dropped).toEqual([]);
    expect(kept.kept[0]).toMatchObject({ username: out.username, code: 'E_GUARDRAIL' });
    expect(kept.kept[0]?.reason).toContain(`VIEW ${f.database}.v_role`);
    expect(kept.kept[0]?.reason).toContain(`EVENT ${f.database}.e_role`);
    // ...and with ownedObjects: drop they go first.
    const dropping = { ...f.integration(), settings: { ownedObjects: 'drop' } };
    const dropped = await driver.cleanup(f.ctx(dropping), { usernames: [out.username] });
    expect(dropped.dropped).toEqual([out.username]);
    const [left] = await f.admin.query(
      "SELECT TABLE_NAME AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'v_role' " +
        "UNION ALL SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_NAME = 'p_role' " +
        "UNION ALL SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = 'e_role'",
      [f.database, f.database, f.database],
    );
    expect(left).toEqual([]);
  });
});

describe('objects left by an earlier account (item 1)', () => {
  it('refuses to create an account that would bring DEFINER objects of the same name back to life', async () => {
    const grantee = { email: f.email('reborn') };
    const username = deriveUsername(grantee.email, { prefix: f.prefix, maxLength: 80 });
    const d = qi(f.database);
    // What an account dropped by hand leaves behind: a view running as a user that is gone.
    await f.admin.query(
      `CREATE DEFINER = ${qi(username)}@${qi('%')} SQL SECURITY DEFINER VIEW ${d}.v_orphan AS SELECT total FROM ${d}.orders`,
    );
    const params = {
      grantId: `g-reborn-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'orders')],
      permission: 'read',
    };
    const err = await errorOf(driver.grant(f.ctx(), params));
    expect(err?.code).toBe('E_GUARDRAIL');
    expect(err?.message).toContain(`VIEW ${f.database}.v_orphan`);
    const [users] = await f.admin.query('SELECT User FROM mysql.global_priv WHERE User = ?', [
      username,
    ]);
    expect(users).toEqual([]);
    await f.admin.query(`DROP VIEW ${d}.v_orphan`);
    await expect(driver.grant(f.ctx(), params)).resolves.toMatchObject({ username });
  });
});

describe('objects left by an earlier account, of every kind (issue 17: the cheaper check)', () => {
  it('finds routines, triggers, events and views running as the account or its default role, in any schema, whatever the letter case of the DEFINER', async () => {
    const grantee = { email: f.email('reborn2') };
    const username = deriveUsername(grantee.email, { prefix: f.prefix, maxLength: 80 });
    const role = mariadbDefaultRole(username, '%', f.prefix);
    const d = qi(f.database);
    // A database where the service account holds no EVENT privilege: information_schema
    // hides its events from it, mysql.event does not.
    const other = `lkt_${f.suffix}_other`;
    f.extraDatabases.push(other);
    await f.admin.query(`CREATE DATABASE IF NOT EXISTS ${qi(other)}`);
    await f.admin.query(`CREATE TABLE IF NOT EXISTS ${d}.trig_target (a INT)`);
    const user = `${qi(username)}@${qi('%')}`;
    const upper = `${qi(username.toUpperCase())}@${qi('%')}`;
    const cases: { create: string; drop: string; shows: string }[] = [
      {
        create: `CREATE DEFINER = ${user} PROCEDURE ${d}.p_orphan() SELECT 1`,
        drop: `DROP PROCEDURE ${d}.p_orphan`,
        shows: `PROCEDURE ${f.database}.p_orphan`,
      },
      {
        create: `CREATE DEFINER = ${qi(role)} FUNCTION ${d}.f_orphan() RETURNS INT RETURN 1`,
        drop: `DROP FUNCTION ${d}.f_orphan`,
        shows: `FUNCTION ${f.database}.f_orphan`,
      },
      {
        create: `CREATE DEFINER = ${user} EVENT ${qi(other)}.e_orphan ON SCHEDULE EVERY 1 HOUR DO SELECT 1`,
        drop: `DROP EVENT ${qi(other)}.e_orphan`,
        shows: `EVENT ${other}.e_orphan`,
      },
      {
        create: `CREATE DEFINER = ${qi(role)} EVENT ${d}.e_orphan ON SCHEDULE EVERY 1 HOUR DO SELECT 1`,
        drop: `DROP EVENT ${d}.e_orphan`,
        shows: `EVENT ${f.database}.e_orphan`,
      },
      {
        create: `CREATE DEFINER = ${user} TRIGGER ${d}.t_orphan BEFORE INSERT ON ${d}.trig_target FOR EACH ROW SET @x = 1`,
        drop: `DROP TRIGGER ${d}.t_orphan`,
        shows: `TRIGGER ${f.database}.t_orphan`,
      },
      {
        create: `CREATE DEFINER = ${qi(role)} SQL SECURITY DEFINER VIEW ${d}.v_orphan_role AS SELECT 1 AS x`,
        drop: `DROP VIEW ${d}.v_orphan_role`,
        shows: `VIEW ${f.database}.v_orphan_role`,
      },
      {
        // information_schema compares DEFINER without regard to case; so does the check.
        create: `CREATE DEFINER = ${upper} PROCEDURE ${d}.p_orphan_upper() SELECT 1`,
        drop: `DROP PROCEDURE ${d}.p_orphan_upper`,
        shows: `PROCEDURE ${f.database}.p_orphan_upper`,
      },
    ];
    const params = {
      grantId: `g-reborn2-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'orders')],
      permission: 'read',
    };
    for (const c of cases) {
      // An object of the default role is created while the role exists (CURRENT_ROLE),
      // and outlives it.
      const asRole = c.create.includes(`DEFINER = ${qi(role)} `);
      if (asRole) await f.admin.query(`CREATE ROLE ${qi(role)}`);
      await f.admin.query(c.create);
      if (asRole) await f.admin.query(`DROP ROLE ${qi(role)}`);
      const err = await errorOf(driver.grant(f.ctx(), params));
      expect(err?.code, c.shows).toBe('E_GUARDRAIL');
      expect(err?.message, c.shows).toContain(c.shows);
      await f.admin.query(c.drop);
    }
    const [users] = await f.admin.query('SELECT User FROM mysql.global_priv WHERE User = ?', [
      username,
    ]);
    expect(users).toEqual([]);
    await expect(driver.grant(f.ctx(), params)).resolves.toMatchObject({ username });
  });

  it('a missing table or database of a grant is still E_NOT_FOUND, named, with nothing created', async () => {
    const grantee = { email: f.email('probe') };
    const username = deriveUsername(grantee.email, { prefix: f.prefix, maxLength: 80 });
    for (const [resources, named] of [
      [[table(f.database, 'orders'), table(f.database, 'no_such_table')], 'no_such_table'],
      [[db(f.database), db(`lkt_${f.suffix}_no_such_db`)], `lkt_${f.suffix}_no_such_db`],
      [[table(f.database, 'ORDERS')], 'ORDERS'],
    ] as const) {
      const err = await errorOf(
        driver.grant(f.ctx(), {
          grantId: `g-probe-${f.suffix}`,
          grantee,
          resources: [...resources],
          permission: 'read',
        }),
      );
      expect(err?.code, named).toBe('E_NOT_FOUND');
      expect(err?.message, named).toContain(named);
    }
    const [users] = await f.admin.query('SELECT User FROM mysql.global_priv WHERE User = ?', [
      username,
    ]);
    expect(users).toEqual([]);
  });
});
