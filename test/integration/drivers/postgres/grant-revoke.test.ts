import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { deriveUsername } from '../../../../src/drivers/sql/username.js';
import { tableId, schemaId, databaseId } from '../../../../src/drivers/sql/resources.js';
import type { GrantParams } from '../../../../src/protocol/messages.js';
import { createPgTestEnv, ctxFor, q, serviceDriver } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let db: string;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  await env.asService(db, async (c) => {
    await c.query('CREATE SCHEMA sales');
    await c.query('CREATE TABLE sales.orders (id serial primary key, item text)');
    await c.query(`INSERT INTO sales.orders (item) VALUES ('apple'), ('pear')`);
    await c.query('CREATE TABLE sales.customers (id int, name text)');
    await c.query('CREATE SCHEMA hr');
    await c.query('CREATE TABLE hr.salaries (id int, amount int)');
  });
  driver = serviceDriver(env);
});

afterAll(async () => {
  await driver?.close();
  await env?.teardown();
});

function grantParams(over: Partial<GrantParams> & { grantId: string; email: string }): GrantParams {
  const { email, ...rest } = over;
  return {
    grantee: { email },
    resources: [{ type: 'table', id: tableId(db, 'sales', 'orders') }],
    permission: 'read',
    recipientKey: env.recipient.publicKey,
    ...rest,
  };
}

describe('postgres grant and revoke', () => {
  it('grants read on a table: SELECT works over a fresh connection, INSERT and other tables are refused', async () => {
    const email = 'Ann.Reader@example.com';
    const out = await driver.grant(ctxFor(env.integration), grantParams({ grantId: 'g1', email }));
    expect(out.alreadyGranted).toBe(false);
    expect(out.username).toBe(deriveUsername(email, { prefix: env.prefix, maxLength: 63 }));
    expect(out.access).toMatchObject({ database: db, port: expect.any(Number) as number });
    const creds = env.openCredentials(out.credentials);
    expect(creds.username).toBe(out.username);
    expect(await env.passwordMatches(out.username, creds.password ?? '')).toBe(true);

    const c = await env.connectAs(out.username, db, creds.password);
    try {
      const r = await c.query('SELECT item FROM sales.orders ORDER BY id');
      expect(r.rows.map((x: { item: string }) => x.item)).toEqual(['apple', 'pear']);
      await expect(c.query(`INSERT INTO sales.orders (item) VALUES ('x')`)).rejects.toMatchObject({
        code: '42501',
      });
      await expect(c.query('SELECT * FROM sales.customers')).rejects.toMatchObject({
        code: '42501',
      });
      await expect(c.query('SELECT * FROM hr.salaries')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.end();
    }
    // The user and the grant role carry the marker; the grant role records the grant.
    const marks = await env.asAdmin(undefined, (a) =>
      a.query<{ rolname: string; d: string }>(
        `SELECT rolname, shobj_description(oid, 'pg_authid') AS d FROM pg_roles WHERE rolname IN ($1, $2) ORDER BY rolname`,
        [out.username, `${env.prefix}g_g1`],
      ),
    );
    expect(marks.rows).toHaveLength(2);
    const grantMark = JSON.parse(
      marks.rows.find((r) => r.rolname === `${env.prefix}g_g1`)?.d ?? '{}',
    ) as Record<string, unknown>;
    // The comment, readable by every login, says only "ours" (issue 9, item 8); the
    // record itself is in the service account's journal.
    expect(grantMark).toEqual({ managedBy: 'latchkey', kind: 'grant', v: 2 });
    const journal = await env.asAdmin(db, (a) =>
      a.query<{ record: string }>(
        `SELECT record FROM ${q(`${env.prefix}meta`)}.grants WHERE role = $1`,
        [`${env.prefix}g_g1`],
      ),
    );
    expect(JSON.parse(journal.rows[0]?.record ?? '{}')).toMatchObject({
      managedBy: 'latchkey',
      grantId: 'g1',
      username: out.username,
      permission: 'read',
    });

    const rev = await driver.revoke(ctxFor(env.integration), {
      grantId: 'g1',
      grantee: { email },
      resources: [{ type: 'table', id: tableId(db, 'sales', 'orders') }],
      permission: 'read',
    });
    expect(rev.alreadyRevoked).toBe(false);
    expect(rev.revoked).toEqual(['g1']);
    expect(rev.phases.map((p) => [p.phase, p.status])).toEqual([
      ['lock-login', 'done'],
      ['terminate-sessions', 'done'],
      ['drop-grant-role', 'done'],
    ]);
    await expect(env.connectAs(out.username, db)).rejects.toMatchObject({ code: '28000' });
  });

  it('write on a schema covers existing and future tables and their sequences', async () => {
    const email = 'writer@example.com';
    const out = await driver.grant(
      ctxFor(env.integration),
      grantParams({
        grantId: 'w1',
        email,
        permission: 'write',
        resources: [{ type: 'schema', id: schemaId(db, 'sales') }],
      }),
    );
    await env.asService(db, (c) => c.query('CREATE TABLE sales.later (id serial, v text)'));
    const c = await env.connectAs(out.username, db);
    try {
      await c.query(`INSERT INTO sales.orders (item) VALUES ('plum')`);
      await c.query(`INSERT INTO sales.later (v) VALUES ('future')`);
      expect((await c.query('SELECT v FROM sales.later')).rows).toEqual([{ v: 'future' }]);
      await expect(c.query('SELECT * FROM hr.salaries')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('CREATE TABLE sales.nope (id int)')).rejects.toMatchObject({
        code: '42501',
      });
    } finally {
      await c.end();
    }
    await driver.revoke(ctxFor(env.integration), {
      grantId: 'w1',
      grantee: { email },
      resources: [{ type: 'schema', id: schemaId(db, 'sales') }],
      permission: 'write',
    });
    // Role dropped: no default-privilege entry or ACL left behind for it.
    const left = await env.asAdmin(db, (a) =>
      a.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [`${env.prefix}g_w1`]),
    );
    expect(left.rowCount).toBe(0);
  });

  it('overlapping grants: revoking one leaves the other working', async () => {
    const email = 'overlap@example.com';
    const ctx = ctxFor(env.integration);
    const a = await driver.grant(ctx, grantParams({ grantId: 'ov-a', email }));
    const b = await driver.grant(
      ctxFor(env.integration),
      grantParams({
        grantId: 'ov-b',
        email,
        resources: [{ type: 'database', id: databaseId(db) }],
      }),
    );
    expect(a.credentials).toBeDefined();
    // The second grant on a live login does not change the password.
    expect(b.credentials).toBeUndefined();
    const rev = await driver.revoke(ctxFor(env.integration), {
      grantId: 'ov-a',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
    expect(rev.phases[0]).toMatchObject({ phase: 'lock-login', status: 'skipped' });
    const c = await env.connectAs(a.username, db);
    try {
      // ov-b (read on the whole database) still grants SELECT on sales.orders and hr.
      expect((await c.query('SELECT count(*)::int AS n FROM sales.orders')).rows[0]).toMatchObject({
        n: expect.any(Number) as number,
      });
      expect((await c.query('SELECT count(*)::int AS n FROM hr.salaries')).rows[0]).toEqual({
        n: 0,
      });
    } finally {
      await c.end();
    }
    await driver.revoke(ctxFor(env.integration), {
      grantId: 'ov-b',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
    await expect(env.connectAs(a.username, db)).rejects.toMatchObject({ code: '28000' });
  });

  it('revoke terminates a session the grantee holds open', async () => {
    const email = 'session@example.com';
    const out = await driver.grant(
      ctxFor(env.integration),
      grantParams({ grantId: 'sess', email }),
    );
    const c = await env.connectAs(out.username, db);
    const errors: unknown[] = [];
    c.on('error', (e) => errors.push(e));
    await c.query('SELECT 1');
    const rev = await driver.revoke(ctxFor(env.integration), {
      grantId: 'sess',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
    expect(rev.sessionsTerminated).toBe(1);
    await expect(c.query('SELECT 1')).rejects.toBeDefined();
    await c.end().catch(() => undefined);
  });

  it('grant twice and revoke twice are no-ops', async () => {
    const email = 'twice@example.com';
    const first = await driver.grant(
      ctxFor(env.integration),
      grantParams({ grantId: 'tw', email }),
    );
    const second = await driver.grant(
      ctxFor(env.integration),
      grantParams({ grantId: 'tw', email }),
    );
    expect(first.alreadyGranted).toBe(false);
    expect(second.alreadyGranted).toBe(true);
    expect(second.username).toBe(first.username);
    // The same grant again is a re-delivery whose first result may be lost: it carries a
    // fresh password, and the first one stops matching.
    const creds = env.openCredentials(first.credentials);
    const fresh = env.openCredentials(second.credentials);
    expect(await env.passwordMatches(first.username, creds.password ?? '')).toBe(false);
    expect(await env.passwordMatches(first.username, fresh.password ?? '')).toBe(true);
    const r1 = await driver.revoke(ctxFor(env.integration), {
      grantId: 'tw',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
    const r2 = await driver.revoke(ctxFor(env.integration), {
      grantId: 'tw',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
    expect(r1.alreadyRevoked).toBe(false);
    expect(r2.alreadyRevoked).toBe(true);
    expect(r2.revoked).toEqual([]);
    // Revoking for someone who never had anything is fine too.
    const r3 = await driver.revoke(ctxFor(env.integration), {
      grantId: 'never',
      grantee: { email: 'nobody@example.com' },
      resources: [],
      permission: 'read',
    });
    expect(r3.alreadyRevoked).toBe(true);
  });

  it('a re-grant after a full revoke gives the login back with a new password', async () => {
    const email = 'again@example.com';
    const g1 = await driver.grant(ctxFor(env.integration), grantParams({ grantId: 'ag1', email }));
    await driver.revoke(ctxFor(env.integration), {
      grantId: 'ag1',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
    const g2 = await driver.grant(ctxFor(env.integration), grantParams({ grantId: 'ag2', email }));
    const p1 = env.openCredentials(g1.credentials).password ?? '';
    const p2 = env.openCredentials(g2.credentials).password ?? '';
    expect(p2).not.toBe(p1);
    expect(await env.passwordMatches(g2.username, p2)).toBe(true);
    const c = await env.connectAs(g2.username, db);
    await c.end();
    await driver.revoke(ctxFor(env.integration), {
      grantId: 'ag2',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
  });

  it('refuses unknown resources and permissions before changing anything', async () => {
    const email = 'refused@example.com';
    await expect(
      driver.grant(
        ctxFor(env.integration),
        grantParams({
          grantId: 'bad1',
          email,
          resources: [{ type: 'table', id: tableId(db, 'sales', 'missing') }],
        }),
      ),
    ).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await expect(
      driver.grant(
        ctxFor(env.integration),
        grantParams({
          grantId: 'bad5',
          email,
          resources: [{ type: 'database', id: databaseId('postgres') }],
        }),
      ),
    ).rejects.toMatchObject({ code: 'E_GUARDRAIL' });
    await expect(
      driver.grant(
        ctxFor(env.integration),
        grantParams({ grantId: 'bad2', email, permission: 'own' }),
      ),
    ).rejects.toMatchObject({
      code: 'E_INVALID',
    });
    await expect(
      driver.grant(
        ctxFor(env.integration),
        grantParams({ grantId: 'bad3', email, permission: 'connect' }),
      ),
    ).rejects.toMatchObject({ code: 'E_INVALID' });
    await expect(
      driver.grant(
        ctxFor(env.integration),
        grantParams({
          grantId: 'bad4',
          email,
          permission: 'role:pg_write_server_files',
          resources: [],
        }),
      ),
    ).rejects.toMatchObject({ code: 'E_GUARDRAIL' });
    const none = await env.asAdmin(undefined, (a) =>
      a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [
        deriveUsername(email, { prefix: env.prefix, maxLength: 63 }),
      ]),
    );
    expect(none.rowCount).toBe(0);
  });

  it('role:<name> grants membership of an existing role', async () => {
    const reporting = `${env.prefix.replace(/_$/, '')}x_reporting`; // not the managed prefix
    await env.asAdmin(db, async (a) => {
      await a.query(`CREATE ROLE ${q(reporting)} NOLOGIN`);
      await a.query(`GRANT USAGE ON SCHEMA hr TO ${q(reporting)}`);
      await a.query(`GRANT SELECT ON hr.salaries TO ${q(reporting)}`);
      await a.query(`GRANT ${q(reporting)} TO ${q(env.serviceAccount)} WITH ADMIN OPTION`);
    });
    try {
      const email = 'member@example.com';
      const out = await driver.grant(
        ctxFor(env.integration),
        grantParams({ grantId: 'rl', email, permission: `role:${reporting}`, resources: [] }),
      );
      const c = await env.connectAs(out.username, db);
      try {
        expect((await c.query('SELECT count(*)::int AS n FROM hr.salaries')).rows[0]).toEqual({
          n: 0,
        });
      } finally {
        await c.end();
      }
      await driver.revoke(ctxFor(env.integration), {
        grantId: 'rl',
        grantee: { email },
        resources: [],
        permission: `role:${reporting}`,
      });
    } finally {
      await env.asAdmin(db, async (a) => {
        await a.query(`DROP OWNED BY ${q(reporting)}`);
        await a.query(`DROP ROLE ${q(reporting)}`);
      });
    }
  });
});
