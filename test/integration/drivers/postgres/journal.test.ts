/**
 * The grant journal (`"<prefix>meta".grants`) is written in one round trip once it exists:
 * the write itself checks that the journal is still the service account's and private,
 * and falls back to creating, repairing or refusing it. These tests change the journal
 * behind the driver's back (as a superuser) and check each case.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import type { GrantParams } from '../../../../src/protocol/messages.js';
import { createPgTestEnv, ctxFor, q, serviceDriver } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let db: string;
let meta: string;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  meta = `${env.prefix}meta`;
  await env.asService(db, (c) => c.query('CREATE TABLE public.t (id int)'));
  driver = serviceDriver(env);
});

afterAll(async () => {
  await driver?.close();
  await env?.teardown();
});

function params(grantId: string): GrantParams {
  return {
    grantId,
    grantee: { email: `${grantId}@example.com` },
    resources: [{ type: 'table', id: tableId(db, 'public', 't') }],
    permission: 'read',
    recipientKey: env.recipient.publicKey,
  };
}

const admin = <T>(sql: string): Promise<T[]> =>
  env.asAdmin(db, async (a) => (await a.query(sql)).rows as T[]);

async function journalRoles(): Promise<string[]> {
  const rows = await admin<{ role: string }>(`SELECT role FROM ${q(meta)}.grants ORDER BY role`);
  return rows.map((r) => r.role);
}

/** Whether PUBLIC holds anything on the journal schema or its table. */
async function publicOnJournal(): Promise<boolean> {
  const rows = await admin<{ p: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a
                     WHERE n.nspname = '${meta}' AND a.grantee = 0)
         OR EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
                           aclexplode(c.relacl) a
                     WHERE n.nspname = '${meta}' AND c.relname = 'grants' AND a.grantee = 0) AS p`,
  );
  return rows[0]?.p === true;
}

describe('postgres grant journal', () => {
  it("a user's login expiry counts only that user's grants, not another's", async () => {
    const soon = new Date(Date.now() + 3_600_000);
    const later = new Date(Date.now() + 7_200_000);
    // Another user's later grant first: it must not stretch this user's login.
    await driver.grant(ctxFor(env.integration), {
      ...params('jb'),
      expiresAt: later.toISOString(),
    });
    const a = await driver.grant(ctxFor(env.integration), {
      ...params('ja'),
      expiresAt: soon.toISOString(),
    });
    const rows = await admin<{ until: Date }>(
      `SELECT rolvaliduntil AS until FROM pg_roles WHERE rolname = '${a.username}'`,
    );
    expect(rows[0]?.until.getTime()).toBe(soon.getTime());
    for (const g of ['ja', 'jb']) await driver.revoke(ctxFor(env.integration), params(g));
  });

  it('a journal opened to PUBLIC after its creation is closed again by the next grant', async () => {
    await driver.grant(ctxFor(env.integration), params('j1'));
    expect(await publicOnJournal()).toBe(false);
    await admin(`GRANT USAGE ON SCHEMA ${q(meta)} TO PUBLIC`);
    await admin(`GRANT SELECT ON ${q(meta)}.grants TO PUBLIC`);
    expect(await publicOnJournal()).toBe(true);
    await driver.grant(ctxFor(env.integration), params('j2'));
    expect(await publicOnJournal()).toBe(false);
    expect(await journalRoles()).toEqual([`${env.prefix}g_j1`, `${env.prefix}g_j2`]);
  });

  it('a journal dropped behind the driver is created again by the next grant; revokes still work', async () => {
    await admin(`DROP SCHEMA ${q(meta)} CASCADE`);
    // The grant roles of j1 and j2 have lost their records: revoke still takes them away.
    const r1 = await driver.revoke(ctxFor(env.integration), params('j1'));
    expect(r1.revoked).toEqual(['j1']);
    await driver.grant(ctxFor(env.integration), params('j3'));
    expect(await journalRoles()).toEqual([`${env.prefix}g_j3`]);
    expect(await publicOnJournal()).toBe(false);
    const r3 = await driver.revoke(ctxFor(env.integration), params('j3'));
    expect(r3.revoked).toEqual(['j3']);
    expect(await journalRoles()).toEqual([]);
  });

  it('a journal replaced by one another role owns is refused, and nothing is written to it', async () => {
    const other = `${env.prefix}intruder`;
    await admin(`CREATE ROLE ${q(other)} NOLOGIN`);
    await admin(`DROP SCHEMA ${q(meta)} CASCADE`);
    await admin(`CREATE SCHEMA ${q(meta)} AUTHORIZATION ${q(other)}`);
    await admin(
      `CREATE TABLE ${q(meta)}.grants (role VARCHAR(128), username VARCHAR(128), record VARCHAR(65535))`,
    );
    await admin(`ALTER TABLE ${q(meta)}.grants OWNER TO ${q(other)}`);
    await admin(`GRANT USAGE ON SCHEMA ${q(meta)} TO PUBLIC`);
    await admin(`GRANT ALL ON ${q(meta)}.grants TO PUBLIC`);
    await expect(driver.grant(ctxFor(env.integration), params('j4'))).rejects.toMatchObject({
      code: 'E_GUARDRAIL',
    });
    expect(await journalRoles()).toEqual([]);
    const roles = await admin<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_roles WHERE rolname = '${env.prefix}g_j4'`,
    );
    expect(roles[0]?.n).toBe(0);
  });
});
