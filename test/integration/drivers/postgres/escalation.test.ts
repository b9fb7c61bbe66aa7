/**
 * Issue 9 (PostgreSQL half) on the real PostgreSQL 15: a grant is never a path to the
 * service account's rights or to superuser, nor to access after it ended.
 * - cleanup hands a grantee's objects to a powerless holding role, made inert first;
 * - role:<name> looks at the whole membership closure (and ADMIN OPTION);
 * - system catalogs and the agent's own records are never a grant target;
 * - grant records are not readable by other logins (minimal role comment + journal).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { grantMarker } from '../../../../src/drivers/sql/marker.js';
import { databaseId, roleId, schemaId, tableId } from '../../../../src/drivers/sql/resources.js';
import type { GrantParams } from '../../../../src/protocol/messages.js';
import { createPgTestEnv, ctxFor, q, serviceDriver } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let db: string;
/** Roles outside the driver's prefix (so not "managed by Latchkey"), dropped in afterAll. */
let ext: (name: string) => string;
const extRoles: string[] = [];
/** A login that never got anything from Latchkey: "any other user" of the server. */
let other: string;

async function adminSql(sql: string, database?: string): Promise<void> {
  await env.asAdmin(database, (a) => a.query(sql));
}

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  ext = (name) => `${env.prefix.slice(0, -1)}x_${name}`;
  other = `${env.prefix}other`;
  await adminSql(`CREATE ROLE ${q(other)} LOGIN`);
  await env.asService(db, async (c) => {
    await c.query('CREATE SCHEMA app');
    await c.query('GRANT USAGE ON SCHEMA app TO PUBLIC');
    await c.query('CREATE TABLE app.orders (id int)');
    await c.query('CREATE SCHEMA vault');
    await c.query('CREATE TABLE vault.secret (v text)');
    await c.query(`INSERT INTO vault.secret VALUES ('s3cr3t')`);
  });
  driver = serviceDriver(env);
});

afterAll(async () => {
  await driver?.close();
  await env?.asAdmin(undefined, async (a) => {
    for (const r of extRoles.reverse()) await a.query(`DROP ROLE IF EXISTS ${q(r)}`);
  });
  await env?.teardown();
});

function params(p: Partial<GrantParams> & { grantId: string; email: string }): GrantParams {
  const { email, ...rest } = p;
  return {
    grantee: { email },
    resources: [{ type: 'schema', id: schemaId(db, 'app') }],
    permission: 'read',
    recipientKey: env.recipient.publicKey,
    ...rest,
  };
}

async function userExists(name: string): Promise<boolean> {
  const r = await env.asAdmin(undefined, (a) =>
    a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name]),
  );
  return r.rowCount === 1;
}

describe('cleanup never hands a grantee\u2019s objects to the service account', () => {
  it('SECURITY DEFINER code and PUBLIC grants a grantee left behind are inert after cleanup', async () => {
    const email = 'mallory@example.com';
    const g = await driver.grant(
      ctxFor(env.integration),
      params({ grantId: 'own_1', email, permission: 'admin' }),
    );
    const c = await env.connectAs(g.username, db);
    try {
      await c.query(`CREATE FUNCTION app.steal() RETURNS text LANGUAGE plpgsql SECURITY DEFINER
                       AS $$ BEGIN RETURN (SELECT string_agg(v, ',') FROM vault.secret); END $$`);
      await c.query('GRANT EXECUTE ON FUNCTION app.steal() TO PUBLIC');
      await c.query('CREATE TABLE app.notes (t text)');
      await c.query(`INSERT INTO app.notes VALUES ('mine')`);
      await c.query('GRANT SELECT ON app.notes TO PUBLIC');
      // admin on a schema is not TRIGGER on tables the grantee does not own: a trigger
      // would run its code as whoever writes the table, after revoke.
      await c.query(
        `CREATE FUNCTION app.trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
      );
      await expect(
        c.query(
          'CREATE TRIGGER t BEFORE INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.trg()',
        ),
      ).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.end();
    }
    await driver.revoke(ctxFor(env.integration), {
      grantId: 'own_1',
      grantee: { email },
      resources: [],
      permission: 'admin',
    });
    const out = await driver.cleanup(ctxFor(env.integration), { usernames: [g.username] });
    expect(out).toEqual({ dropped: [g.username], kept: [] });

    const holding = `${env.prefix}holding`;
    const state = await env.asAdmin(db, (a) =>
      a.query<{ owner: string; secdef: boolean }>(
        `SELECT pg_get_userbyid(proowner) AS owner, prosecdef AS secdef FROM pg_proc WHERE proname = 'steal'`,
      ),
    );
    expect(state.rows[0]).toEqual({ owner: holding, secdef: false });
    // The holding role: no login, no attributes, member of nothing, marked as ours.
    const h = await env.asAdmin(undefined, (a) =>
      a.query<{ login: boolean; powers: boolean; memberships: number; marker: string }>(
        `SELECT rolcanlogin AS login, rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication AS powers,
                (SELECT count(*)::int FROM pg_auth_members WHERE member = r.oid) AS memberships,
                shobj_description(oid, 'pg_authid') AS marker
           FROM pg_roles r WHERE rolname = $1`,
        [holding],
      ),
    );
    expect(h.rows[0]).toMatchObject({ login: false, powers: false, memberships: 0 });
    expect(JSON.parse(h.rows[0]?.marker ?? '{}')).toMatchObject({ kind: 'holding' });

    // Any other login: the function no longer runs (and would run as nobody), the table
    // the grantee shared is no longer shared.
    const o = await env.connectAs(other, db);
    try {
      await expect(o.query('SELECT app.steal()')).rejects.toMatchObject({ code: '42501' });
      await expect(o.query('SELECT * FROM app.notes')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await o.end();
    }
    // Even where EXECUTE is given again, it runs with the caller's rights, not the service account's.
    await adminSql('GRANT EXECUTE ON FUNCTION app.steal() TO PUBLIC', db);
    const o2 = await env.connectAs(other, db);
    try {
      await expect(o2.query('SELECT app.steal()')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await o2.end();
    }
  });

  it('a holding role of that name that is not ours is refused, and nothing is dropped', async () => {
    const email = 'eve@example.com';
    const g = await driver.grant(ctxFor(env.integration), params({ grantId: 'own_2', email }));
    await driver.revoke(ctxFor(env.integration), {
      grantId: 'own_2',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
    const holding = `${env.prefix}holding`;
    const sneaky = ext('sneaky');
    extRoles.push(sneaky);
    await adminSql(`CREATE ROLE ${q(sneaky)} LOGIN`);
    await adminSql(`DROP ROLE IF EXISTS ${q(holding)}`).catch(() => undefined);
    // Still owning objects from the first test: take them away to drop it, then plant one.
    await env.asAdmin(db, async (a) => {
      await a.query(`DROP OWNED BY ${q(holding)}`).catch(() => undefined);
    });
    await adminSql(`DROP ROLE IF EXISTS ${q(holding)}`);
    await adminSql(`CREATE ROLE ${q(holding)} NOLOGIN`);
    await adminSql(`GRANT ${q(holding)} TO ${q(sneaky)}`);
    const out = await driver.cleanup(ctxFor(env.integration), { usernames: [g.username] });
    expect(out.dropped).toEqual([]);
    expect(out.kept[0]).toMatchObject({ username: g.username, code: 'E_GUARDRAIL' });
    expect(await userExists(g.username)).toBe(true);
    await adminSql(`DROP ROLE ${q(holding)}`);
    const again = await driver.cleanup(ctxFor(env.integration), { usernames: [g.username] });
    expect(again.dropped).toEqual([g.username]);
  });
});

describe('role:<name> looks at the whole membership closure', () => {
  beforeAll(async () => {
    const sql = [
      `CREATE ROLE ${q(ext('cr'))} NOLOGIN CREATEROLE`,
      `CREATE ROLE ${q(ext('mid'))} NOLOGIN IN ROLE ${q(ext('cr'))}`,
      `CREATE ROLE ${q(ext('leaf'))} NOLOGIN IN ROLE ${q(ext('mid'))}`,
      `CREATE ROLE ${q(ext('files'))} NOLOGIN IN ROLE pg_read_server_files`,
      `CREATE ROLE ${q(ext('alldata'))} NOLOGIN IN ROLE pg_read_all_data`,
      `CREATE ROLE ${q(ext('sa'))} NOLOGIN IN ROLE ${q(env.serviceAccount)}`,
      `CREATE ROLE ${q(ext('plain'))} NOLOGIN`,
      `CREATE ROLE ${q(ext('adm'))} NOLOGIN`,
      `GRANT ${q(ext('plain'))} TO ${q(ext('adm'))} WITH ADMIN OPTION`,
      `CREATE ROLE ${q(ext('managed'))} NOLOGIN IN ROLE ${q(`${env.prefix}other`)}`,
      // Each remaining attribute and server role the issue names, one level down.
      `CREATE ROLE ${q(ext('root'))} NOLOGIN SUPERUSER`,
      `CREATE ROLE ${q(ext('su'))} NOLOGIN IN ROLE ${q(ext('root'))}`,
      `CREATE ROLE ${q(ext('rls'))} NOLOGIN BYPASSRLS`,
      `CREATE ROLE ${q(ext('bypass'))} NOLOGIN IN ROLE ${q(ext('rls'))}`,
      `CREATE ROLE ${q(ext('rep'))} NOLOGIN REPLICATION`,
      `CREATE ROLE ${q(ext('repl'))} NOLOGIN IN ROLE ${q(ext('rep'))}`,
      `CREATE ROLE ${q(ext('exec'))} NOLOGIN IN ROLE pg_execute_server_program`,
      `CREATE ROLE ${q(ext('writes'))} NOLOGIN IN ROLE pg_write_server_files`,
    ];
    extRoles.push(
      ...[
        'cr',
        'mid',
        'leaf',
        'files',
        'alldata',
        'sa',
        'plain',
        'adm',
        'managed',
        'root',
        'su',
        'rls',
        'bypass',
        'rep',
        'repl',
        'exec',
        'writes',
      ].map(ext),
    );
    await env.asAdmin(undefined, async (a) => {
      for (const s of sql) await a.query(s);
    });
  });

  it.each([
    ['leaf', ['leaf', 'mid', 'cr', 'CREATEROLE']],
    ['files', ['files', 'pg_read_server_files']],
    ['alldata', ['alldata', 'pg_read_all_data']],
    ['sa', ['sa', 'the service account']],
    ['adm', ['adm', 'plain', 'ADMIN OPTION']],
    ['managed', ['managed', 'managed by Latchkey']],
    ['su', ['su', 'root', 'SUPERUSER']],
    ['bypass', ['bypass', 'rls', 'BYPASSRLS']],
    ['repl', ['repl', 'rep', 'REPLICATION']],
    ['exec', ['exec', 'pg_execute_server_program']],
    ['writes', ['writes', 'pg_write_server_files']],
  ])('refuses %s with E_GUARDRAIL naming the path, before any change', async (name, path) => {
    const role = ext(name);
    const email = `r-${name}@example.com`;
    const err = await driver
      .grant(
        ctxFor(env.integration),
        params({ grantId: `r_${name}`, email, resources: [], permission: `role:${role}` }),
      )
      .then(
        () => null,
        (e: unknown) => e as { code: string; message: string },
      );
    expect(err?.code).toBe('E_GUARDRAIL');
    for (const part of path) {
      expect(err?.message).toContain(part);
    }
    expect(await userExists(`${env.prefix}g_r_${name}`)).toBe(false);
  });

  it('grants a role whose closure is harmless; discovery marks the others not grantable', async () => {
    const plain = ext('plain');
    const out = await driver.grant(
      ctxFor(env.integration),
      params({
        grantId: 'r_plain',
        email: 'plain@example.com',
        resources: [],
        permission: `role:${plain}`,
      }),
    );
    expect(out.alreadyGranted).toBe(false);
    const d = await driver.discover(ctxFor(env.integration));
    expect(d.resources.find((r) => r.id === roleId(plain))?.metadata).toMatchObject({
      grantable: true,
    });
    expect(d.permissions.map((p) => p.id)).toContain(`role:${plain}`);
    const leaf = d.resources.find((r) => r.id === roleId(ext('leaf')));
    expect(leaf?.metadata).toMatchObject({ grantable: false });
    expect(String(leaf?.metadata.notGrantableBecause)).toContain('CREATEROLE');
    expect(d.permissions.map((p) => p.id)).not.toContain(`role:${ext('leaf')}`);
    expect(d.permissions.map((p) => p.id)).not.toContain(`role:${ext('adm')}`);
    // The journal schema is never offered.
    expect(d.resources.some((r) => r.id === schemaId(db, `${env.prefix}meta`))).toBe(false);
  });
});

describe('system catalogs and the agent\u2019s own records are never a grant target', () => {
  const targets = (): [string, GrantParams['resources']][] => [
    ['schema pg_catalog', [{ type: 'schema', id: schemaId(db, 'pg_catalog') }]],
    ['pg_authid', [{ type: 'table', id: tableId(db, 'pg_catalog', 'pg_authid') }]],
    ['pg_statistic', [{ type: 'table', id: tableId(db, 'pg_catalog', 'pg_statistic') }]],
    ['percent-encoded', [{ type: 'schema', id: `schema:${encodeURIComponent(db)}/pg%5Fcatalog` }]],
    ['information_schema', [{ type: 'table', id: tableId(db, 'information_schema', 'tables') }]],
    ['pg_toast', [{ type: 'schema', id: schemaId(db, 'pg_toast') }]],
    ['journal schema', [{ type: 'schema', id: schemaId(db, `${env.prefix}meta`) }]],
    ['journal table', [{ type: 'table', id: tableId(db, `${env.prefix}meta`, 'grants') }]],
  ];

  it('refuses each with E_GUARDRAIL, before any change', async () => {
    for (const [label, resources] of targets()) {
      const email = `sys-${label.replace(/\W/g, '')}@example.com`;
      const err = await driver
        .grant(ctxFor(env.integration), params({ grantId: 'sys', email, resources }))
        .then(
          () => null,
          (e: unknown) => e as { code: string },
        );
      expect({ label, code: err?.code }).toEqual({ label, code: 'E_GUARDRAIL' });
    }
    const holdingErr = await driver
      .grant(
        ctxFor(env.integration),
        params({
          grantId: 'sys_h',
          email: 'h@example.com',
          resources: [],
          permission: `role:${env.prefix}holding`,
        }),
      )
      .then(
        () => null,
        (e: unknown) => e as { code: string },
      );
    // The holding role may not exist now (a test above dropped it): refused either way.
    expect(['E_GUARDRAIL', 'E_NOT_FOUND']).toContain(holdingErr?.code);
    expect(await userExists(`${env.prefix}g_sys`)).toBe(false);
  });

  it('a database-wide read on the maintenance database does not reach the journal', async () => {
    const email = 'wide@example.com';
    const g = await driver.grant(
      ctxFor(env.integration),
      params({ grantId: 'wide', email, resources: [{ type: 'database', id: databaseId(db) }] }),
    );
    const c = await env.connectAs(g.username, db);
    try {
      await expect(c.query('SELECT count(*) FROM app.orders')).resolves.toBeDefined();
      await expect(c.query(`SELECT * FROM ${q(`${env.prefix}meta`)}.grants`)).rejects.toMatchObject(
        { code: '42501' },
      );
    } finally {
      await c.end();
    }
    await driver.revoke(ctxFor(env.integration), {
      grantId: 'wide',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
  });
});

describe('grant records are not readable by other logins', () => {
  it('the role comment says only "ours"; the journal is closed to every other login', async () => {
    const email = 'private.person@example.com';
    const g = await driver.grant(
      ctxFor(env.integration),
      params({ grantId: 'priv', email, expiresAt: new Date(Date.now() + 3_600_000).toISOString() }),
    );
    const o = await env.connectAs(other, db);
    try {
      const r = await o.query<{ d: string | null }>(
        `SELECT shobj_description(oid, 'pg_authid') AS d FROM pg_roles WHERE rolname = $1`,
        [`${env.prefix}g_priv`],
      );
      expect(JSON.parse(r.rows[0]?.d ?? '{}')).toEqual({
        managedBy: 'latchkey',
        kind: 'grant',
        v: 2,
      });
      expect(r.rows[0]?.d).not.toContain('app');
      expect(r.rows[0]?.d).not.toContain('private');
      await expect(o.query(`SELECT * FROM ${q(`${env.prefix}meta`)}.grants`)).rejects.toMatchObject(
        { code: '42501' },
      );
    } finally {
      await o.end();
    }
    const rev = await driver.revoke(ctxFor(env.integration), {
      grantId: 'priv',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
    expect(rev.revoked).toEqual(['priv']);
    const left = await env.asAdmin(db, (a) =>
      a.query(`SELECT 1 FROM ${q(`${env.prefix}meta`)}.grants WHERE role = $1`, [
        `${env.prefix}g_priv`,
      ]),
    );
    expect(left.rowCount).toBe(0);
    expect(g.username).toBeTruthy();
  });

  it('grants recorded the old way (whole record in the comment) are still revoked, swept and migrated', async () => {
    const email = 'old.timer@example.com';
    const g = await driver.grant(ctxFor(env.integration), params({ grantId: 'old_1', email }));
    const g2 = await driver.grant(ctxFor(env.integration), params({ grantId: 'old_2', email }));
    expect(g2.username).toBe(g.username);
    // Rewrite both as an older agent left them: full comment, no journal row.
    const past = new Date(Date.now() - 60_000).toISOString();
    for (const [id, expiresAt] of [
      ['old_1', past],
      ['old_2', undefined],
    ] as const) {
      const role = `${env.prefix}g_${id}`;
      const text = grantMarker({
        grantId: id,
        role,
        username: g.username,
        permission: { kind: 'read' },
        resources: [{ kind: 'schema', database: db, schema: 'app' }],
        ...(expiresAt === undefined ? {} : { expiresAt }),
      });
      await adminSql(`COMMENT ON ROLE ${q(role)} IS '${text.replace(/'/g, "''")}'`);
      await env.asAdmin(db, (a) =>
        a.query(`DELETE FROM ${q(`${env.prefix}meta`)}.grants WHERE role = $1`, [role]),
      );
    }
    // The sweep reads the old comment and revokes the expired one.
    const swept = await driver.sweep(ctxFor(env.integration));
    expect(swept.revoked).toEqual(['old_1']);
    // A re-grant of the other migrates it: minimal comment, record in the journal.
    const again = await driver.grant(
      ctxFor(env.integration),
      params({
        grantId: 'old_2',
        email,
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    );
    expect(again.alreadyGranted).toBe(true);
    const after = await env.asAdmin(db, (a) =>
      a.query<{ d: string; record: string | null }>(
        `SELECT shobj_description(r.oid, 'pg_authid') AS d,
                (SELECT record FROM ${q(`${env.prefix}meta`)}.grants j WHERE j.role = r.rolname) AS record
           FROM pg_roles r WHERE rolname = $1`,
        [`${env.prefix}g_old_2`],
      ),
    );
    expect(JSON.parse(after.rows[0]?.d ?? '{}')).toEqual({
      managedBy: 'latchkey',
      kind: 'grant',
      v: 2,
    });
    expect(JSON.parse(after.rows[0]?.record ?? '{}')).toMatchObject({ grantId: 'old_2' });
    const rev = await driver.revoke(ctxFor(env.integration), {
      grantId: 'old_2',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
    expect(rev.revoked).toEqual(['old_2']);
  });
});
