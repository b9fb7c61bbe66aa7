/**
 * The service account's sessions search only pg_catalog: a grantee who may create objects
 * in `public` (admin on that schema here; every login on PostgreSQL 14 and older) plants
 * functions that match the agent's own calls more closely than the built-in ones
 * (`starts_with(name, text)`, `lower(name)`, `quote_ident(name)`, which PostgreSQL prefers
 * to the `text` versions for a `name` argument). With the default search_path they would
 * run as the service account; the agent never calls them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { schemaId } from '../../../../src/drivers/sql/resources.js';
import { createPgTestEnv, ctxFor, serviceDriver } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let db: string;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  await env.asService(db, (c) => c.query('CREATE TABLE public.orders (id int)'));
  driver = serviceDriver(env);
});

afterAll(async () => {
  await driver?.close();
  await env?.teardown();
});

/** Rows the planted functions wrote: who called which. */
async function loot(): Promise<{ who: string; fn: string }[]> {
  const r = await env.asAdmin(db, (a) =>
    a.query<{ who: string; fn: string }>('SELECT who, fn FROM public.loot ORDER BY fn'),
  );
  return r.rows;
}

describe('service sessions do not depend on the default search_path', () => {
  it('functions a grantee planted in public are never called by the agent', async () => {
    const email = 'planter@example.com';
    const g = await driver.grant(ctxFor(env.integration), {
      grantId: 'plant',
      grantee: { email },
      resources: [{ type: 'schema', id: schemaId(db, 'public') }],
      permission: 'admin',
      recipientKey: env.recipient.publicKey,
    });
    const c = await env.connectAs(g.username, db);
    try {
      await c.query('CREATE TABLE public.loot (who text, fn text)');
      await c.query('GRANT INSERT ON public.loot TO PUBLIC');
      const plant = (fn: string, args: string, returns: string, body: string): Promise<unknown> =>
        c.query(`CREATE FUNCTION public.${fn}(${args}) RETURNS ${returns} LANGUAGE plpgsql AS $$
                   BEGIN INSERT INTO public.loot VALUES (current_user, '${fn}'); RETURN ${body}; END $$`);
      await plant('starts_with', 'name, text', 'boolean', 'pg_catalog.starts_with($1::text, $2)');
      await plant('lower', 'name', 'text', 'pg_catalog.lower($1::text)');
      await plant('quote_ident', 'name', 'text', 'pg_catalog.quote_ident($1::text)');
    } finally {
      await c.end();
    }
    // The trap works: a service-account session with the default search_path walks into it.
    await env.asService(db, (s) =>
      s.query('SELECT count(*) FROM pg_roles r WHERE starts_with(r.rolname, $1)', [env.prefix]),
    );
    const caught = await loot();
    expect(caught.length).toBeGreaterThan(0);
    expect(new Set(caught.map((r) => `${r.who} ${r.fn}`))).toEqual(
      new Set([`${env.serviceAccount} starts_with`]),
    );
    await env.asAdmin(db, (a) => a.query('DELETE FROM public.loot'));

    // Every command of the driver, on the database where the functions wait.
    const ctx = (): ReturnType<typeof ctxFor> => ctxFor(env.integration);
    await driver.discover(ctx());
    await driver.check(ctx());
    const other = await driver.grant(ctx(), {
      grantId: 'other',
      grantee: { email: 'bystander@example.com' },
      resources: [{ type: 'schema', id: schemaId(db, 'public') }],
      permission: 'read',
      expiresAt: new Date(Date.now() + 1_000).toISOString(),
      recipientKey: env.recipient.publicKey,
    });
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await driver.sweep(ctx())).revoked).toEqual(['other']);
    await driver.cleanup(ctx(), { usernames: [other.username] });
    await driver.revoke(ctx(), {
      grantId: 'plant',
      grantee: { email },
      resources: [],
      permission: 'admin',
    });
    // Cleanup walks the planter's own objects (quote_ident over their names).
    expect(await driver.cleanup(ctx(), { usernames: [g.username] })).toEqual({
      dropped: [g.username],
      kept: [],
    });
    expect(await loot()).toEqual([]);
    const owner = await env.asAdmin(db, (a) =>
      a.query<{ o: string }>(
        `SELECT pg_get_userbyid(proowner) AS o FROM pg_proc WHERE proname = 'starts_with' AND pronamespace = 'public'::regnamespace`,
      ),
    );
    expect(owner.rows[0]?.o).toBe(`${env.prefix}holding`);
  });
});
