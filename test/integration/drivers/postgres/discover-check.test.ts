import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { databaseId, roleId, schemaId, tableId } from '../../../../src/drivers/sql/resources.js';
import { createPgTestEnv, ctxFor, q, staticSecrets, testServices } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let db: string;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  await env.asService(db, async (c) => {
    await c.query('CREATE SCHEMA app');
    await c.query(
      `DO $$ BEGIN FOR i IN 1..23 LOOP EXECUTE format('CREATE TABLE app.t%s (id int)', lpad(i::text, 2, '0')); END LOOP; END $$`,
    );
    await c.query('CREATE VIEW app.v AS SELECT 1 AS one');
    await c.query(`CREATE ROLE ${q(`${env.prefix.slice(0, -1)}x_readers`)} NOLOGIN`);
  });
  // Small pages, so the keyset pagination is exercised.
  driver = new PostgresDriver(
    testServices(staticSecrets({ username: env.serviceAccount, password: '' })),
    {
      discoverPageSize: 5,
    },
  );
});

afterAll(async () => {
  await driver?.close();
  await env?.asAdmin(undefined, (a) =>
    a.query(`DROP ROLE IF EXISTS ${q(`${env.prefix.slice(0, -1)}x_readers`)}`),
  );
  await env?.teardown();
});

describe('postgres discover and check', () => {
  it('lists databases, schemas, tables and views with parent links, page by page, and roles', async () => {
    const out = await driver.discover(ctxFor(env.integration));
    expect(out.resources.find((r) => r.id === databaseId(db))).toMatchObject({
      type: 'database',
      name: db,
    });
    expect(out.resources.find((r) => r.id === schemaId(db, 'app'))).toMatchObject({
      type: 'schema',
      parentId: databaseId(db),
    });
    const tables = out.resources.filter(
      (r) => r.type === 'table' && r.parentId === schemaId(db, 'app'),
    );
    expect(tables.map((t) => t.name)).toEqual([
      ...Array.from({ length: 23 }, (_, i) => `t${String(i + 1).padStart(2, '0')}`),
      'v',
    ]);
    expect(tables.find((t) => t.name === 'v')?.metadata).toMatchObject({ kind: 'view' });
    expect(new Set(out.resources.map((r) => r.id)).size).toBe(out.resources.length);
    const readers = `${env.prefix.slice(0, -1)}x_readers`;
    expect(out.resources.find((r) => r.id === roleId(readers))).toMatchObject({ type: 'role' });
    expect(out.permissions.map((p) => p.id)).toEqual(
      expect.arrayContaining(['connect', 'read', 'write', 'admin', `role:${readers}`]),
    );
    // Never the service account, never superusers, never our own users.
    expect(
      out.resources.some((r) => r.id === roleId(env.serviceAccount) || r.id === roleId('postgres')),
    ).toBe(false);
    expect(tables.every((t) => t.id === tableId(db, 'app', t.name))).toBe(true);
  });

  it('check reports the version and the privileges, in words an operator can act on', async () => {
    const ok = await driver.check(ctxFor(env.integration));
    expect(ok.ok).toBe(true);
    expect(ok.serverVersion).toMatch(/^\d+/);
    expect(ok.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining(['connect', 'create-role', 'terminate-sessions', 'journal-schema']),
    );
    expect(ok.checks.find((c) => c.name === 'journal-schema')?.ok).toBe(true);

    const weak = `${env.prefix}weak`;
    await env.asAdmin(undefined, (a) => a.query(`CREATE ROLE ${q(weak)} LOGIN`));
    const weakDriver = new PostgresDriver(
      testServices(staticSecrets({ username: weak, password: '' })),
    );
    try {
      const bad = await weakDriver.check(ctxFor(env.integration));
      expect(bad.ok).toBe(false);
      expect(bad.checks.find((c) => c.name === 'create-role')).toMatchObject({
        ok: false,
        detail: expect.stringContaining('CREATEROLE') as string,
      });
      expect(bad.checks.find((c) => c.name === 'terminate-sessions')?.detail).toContain(
        'pg_signal_backend',
      );
      // No CREATE on the maintenance database: no journal schema, hence no grant records.
      expect(bad.checks.find((c) => c.name === 'journal-schema')).toMatchObject({
        ok: false,
        detail: expect.stringContaining(
          `GRANT CREATE ON DATABASE ${q(db)} TO ${q(weak)}`,
        ) as string,
      });
    } finally {
      await weakDriver.close();
    }

    const unreachable = {
      ...env.integration,
      config: { ...env.integration.config, port: 1, connectTimeoutMs: 2000 },
    };
    const down = await driver.check(ctxFor(unreachable));
    expect(down.ok).toBe(false);
    expect(down.checks[0]).toMatchObject({
      name: 'connect',
      ok: false,
      detail: expect.stringMatching(/^E_CONNECT/) as string,
    });
  });

  it('honours the AbortSignal', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(driver.discover(ctxFor(env.integration, ac.signal))).rejects.toMatchObject({
      code: 'E_CANCELLED',
    });
    const timed = AbortSignal.timeout(1);
    await new Promise((r) => setTimeout(r, 5));
    await expect(driver.discover(ctxFor(env.integration, timed))).rejects.toMatchObject({
      code: 'E_TIMEOUT',
    });
  });
});
