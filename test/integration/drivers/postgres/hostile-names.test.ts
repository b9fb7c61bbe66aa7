import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { databaseId, schemaId, tableId } from '../../../../src/drivers/sql/resources.js';
import { createPgTestEnv, ctxFor, q, serviceDriver } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

/** Names that would do damage if ever concatenated into SQL. */
const SCHEMA = `we"ird'; DROP SCHEMA public CASCADE; --`;
const TABLE = `Ünïcödé "select" table; DROP TABLE x`;
const TABLE2 = 'select';

let env: PgTestEnv;
let driver: PostgresDriver;
let db: string;
let hostileDb: string;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  hostileDb = `${env.prefix}d"b; DROP DATABASE postgres; --`;
  await env.asAdmin(undefined, (a) =>
    a.query(`CREATE DATABASE ${q(hostileDb)} OWNER ${q(env.serviceAccount)}`),
  );
  env.databases.push(hostileDb);
  for (const d of [db, hostileDb]) {
    await env.asService(d, async (c) => {
      await c.query(`CREATE SCHEMA ${q(SCHEMA)}`);
      await c.query(`CREATE TABLE ${q(SCHEMA)}.${q(TABLE)} (id int)`);
      await c.query(`INSERT INTO ${q(SCHEMA)}.${q(TABLE)} VALUES (42)`);
      await c.query(`CREATE TABLE public.${q(TABLE2)} (id int)`);
    });
  }
  const integration = {
    ...env.integration,
    config: { ...env.integration.config, databases: [db, hostileDb] },
  };
  env.integration = integration;
  driver = serviceDriver(env);
});

afterAll(async () => {
  await driver?.close();
  await env?.teardown();
});

describe('postgres with hostile names', () => {
  it('discovers, grants, uses and revokes on names with quotes, semicolons, spaces, unicode and keywords', async () => {
    const found = await driver.discover(ctxFor(env.integration));
    const ids = found.resources.map((r) => r.id);
    expect(ids).toContain(tableId(hostileDb, SCHEMA, TABLE));
    expect(ids).toContain(tableId(db, 'public', TABLE2));
    expect(found.resources.find((r) => r.id === tableId(hostileDb, SCHEMA, TABLE))).toMatchObject({
      name: TABLE,
      parentId: schemaId(hostileDb, SCHEMA),
    });

    const email = 'o.brien+test@example.com';
    const g = await driver.grant(ctxFor(env.integration), {
      grantId: 'Hostile.Grant:1',
      grantee: { email },
      resources: [
        { type: 'table', id: tableId(hostileDb, SCHEMA, TABLE) },
        { type: 'schema', id: schemaId(db, SCHEMA) },
        { type: 'table', id: tableId(db, 'public', TABLE2) },
      ],
      permission: 'read',
      recipientKey: env.recipient.publicKey,
    });
    expect(g.username).toMatch(/^[a-z0-9_]+$/);
    for (const d of [hostileDb, db]) {
      const c = await env.connectAs(g.username, d);
      try {
        expect((await c.query(`SELECT id FROM ${q(SCHEMA)}.${q(TABLE)}`)).rows).toEqual([
          { id: 42 },
        ]);
      } finally {
        await c.end();
      }
    }
    const rev = await driver.revoke(ctxFor(env.integration), {
      grantId: 'Hostile.Grant:1',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
    expect(rev.revoked).toEqual(['Hostile.Grant:1']);
    // Nothing was executed as SQL: every object is still there.
    const still = await env.asAdmin(undefined, (a) =>
      a.query(`SELECT datname FROM pg_database WHERE datname IN ('postgres', $1)`, [hostileDb]),
    );
    expect(still.rowCount).toBe(2);
    await env.asService(db, async (c) => {
      expect(
        (await c.query(`SELECT count(*)::int AS n FROM ${q(SCHEMA)}.${q(TABLE)}`)).rows,
      ).toEqual([{ n: 1 }]);
    });
  });

  it('refuses cleanly what cannot be a name', async () => {
    const base = {
      grantee: { email: 'x@example.com' },
      permission: 'read',
      recipientKey: env.recipient.publicKey,
    };
    // Does not exist (the name is data, never SQL).
    await expect(
      driver.grant(ctxFor(env.integration), {
        ...base,
        grantId: 'h1',
        resources: [
          { type: 'table', id: tableId(db, 'public', `x"; DROP TABLE public."select"; --`) },
        ],
      }),
    ).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    // Longer than PostgreSQL's 63-byte identifiers (would be silently truncated).
    await expect(
      driver.grant(ctxFor(env.integration), {
        ...base,
        grantId: 'h2',
        resources: [{ type: 'database', id: databaseId('ü'.repeat(40)) }],
      }),
    ).rejects.toMatchObject({ code: 'E_INVALID' });
    // Malformed id and mismatched type.
    await expect(
      driver.grant(ctxFor(env.integration), {
        ...base,
        grantId: 'h3',
        resources: [{ type: 'table', id: 'table:%E0%A4%A' }],
      }),
    ).rejects.toMatchObject({ code: 'E_INVALID' });
    await expect(
      driver.grant(ctxFor(env.integration), {
        ...base,
        grantId: 'h4',
        resources: [{ type: 'schema', id: databaseId(db) }],
      }),
    ).rejects.toMatchObject({ code: 'E_INVALID' });
    await expect(
      driver.grant(ctxFor(env.integration), {
        ...base,
        grantId: 'h5',
        resources: [],
        permission: `role:x"; DROP ROLE ${env.serviceAccount}; --`,
      }),
    ).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await expect(
      driver.cleanup(ctxFor(env.integration), {
        usernames: [`'; DROP ROLE ${env.serviceAccount}; --`],
      }),
    ).resolves.toMatchObject({ kept: [] });
    const svc = await env.asAdmin(undefined, (a) =>
      a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [env.serviceAccount]),
    );
    expect(svc.rowCount).toBe(1);
  });
});
