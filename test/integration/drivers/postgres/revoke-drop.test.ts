/**
 * A grant's privileges in the maintenance database go in the same query as the user's
 * membership of the grant role; a revoke takes them back in the same query as the grant
 * role's drop (each one implicit transaction). When the drop is refused because the role
 * holds something outside its record (here: another database), that query is undone as a
 * whole and the revoke goes on everywhere, then drops the role: nothing is left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { deriveUsername, grantRoleName } from '../../../../src/drivers/sql/username.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import { journalSchemaName } from '../../../../src/drivers/postgres/guardrails.js';
import { createPgTestEnv, ctxFor, q, serviceDriver } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';
import { countSql } from '../../../../bench/sql-count.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let main: string;
let other: string;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 2, label: 'rd' });
  main = env.databases[0] ?? '';
  other = env.databases[1] ?? '';
  await env.asService(main, (c) => c.query('CREATE TABLE public.items (id int)'));
  await env.asService(other, (c) => c.query('CREATE TABLE public.extra (id int)'));
  driver = serviceDriver(env);
});

afterAll(async () => {
  await driver?.close();
  await env?.teardown();
});

async function roleState(role: string): Promise<{ role: boolean; journal: number }> {
  return env.asAdmin(main, async (a) => {
    const r = await a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    const j = await a.query(
      `SELECT 1 FROM ${q(journalSchemaName(env.prefix))}.grants WHERE role = $1`,
      [role],
    );
    return { role: (r.rowCount ?? 0) > 0, journal: j.rowCount ?? 0 };
  });
}

describe('postgres grant and revoke: what goes together in one query', () => {
  it('a role holding rights outside its record is still emptied and dropped', async () => {
    const email = 'stray@example.com';
    const resources = [{ type: 'table', id: tableId(main, 'public', 'items') }];
    await driver.grant(ctxFor(env.integration), {
      grantId: 'rd1',
      grantee: { email },
      resources,
      permission: 'read',
      recipientKey: env.recipient.publicKey,
    });
    const role = grantRoleName('rd1', { prefix: env.prefix, maxLength: 63 });
    // Someone gave the grant role rights in a database its record does not name.
    await env.asService(other, async (c) => {
      await c.query(`GRANT CONNECT ON DATABASE ${q(other)} TO ${q(role)}`);
      await c.query(`GRANT SELECT ON public.extra TO ${q(role)}`);
    });
    expect(await roleState(role)).toEqual({ role: true, journal: 1 });

    const out = await driver.revoke(ctxFor(env.integration), {
      grantId: 'rd1',
      grantee: { email },
      resources,
      permission: 'read',
    });
    expect(out.revoked).toEqual(['rd1']);
    expect(await roleState(role)).toEqual({ role: false, journal: 0 });
    // Nothing names the role in either database any more.
    for (const db of [main, other]) {
      const left = await env.asAdmin(db, (a) =>
        a.query(`SELECT 1 FROM pg_class WHERE relacl::text LIKE $1`, [`%${role}=%`]),
      );
      expect(left.rowCount).toBe(0);
    }
  });

  it('grant: privileges with the membership; revoke: rights taken back with the role and its journal row', async () => {
    const email = 'plain@example.com';
    const resources = [{ type: 'table', id: tableId(main, 'public', 'items') }];
    const granted = await countSql(async () => {
      await driver.grant(ctxFor(env.integration), {
        grantId: 'rd2',
        grantee: { email },
        resources,
        permission: 'read',
        recipientKey: env.recipient.publicKey,
      });
    });
    const role = grantRoleName('rd2', { prefix: env.prefix, maxLength: 63 });
    const user = deriveUsername(email, { prefix: env.prefix, maxLength: 63 });
    // The grant's privileges in the maintenance database and the membership: one query.
    const membership = granted.texts.filter((t) => t.includes(`GRANT ${q(role)} TO ${q(user)}`));
    expect(membership).toHaveLength(1);
    expect(membership[0]).toMatch(
      /^GRANT CONNECT ON DATABASE .*; GRANT SELECT ON TABLE .*; GRANT /,
    );
    const sent = await countSql(async () => {
      await driver.revoke(ctxFor(env.integration), {
        grantId: 'rd2',
        grantee: { email },
        resources,
        permission: 'read',
      });
    });
    expect(await roleState(role)).toEqual({ role: false, journal: 0 });
    // One round trip takes back the table's rights, drops the role and forgets its record.
    const drop = sent.texts.filter((t) => t.includes('DROP ROLE'));
    expect(drop).toHaveLength(1);
    expect(drop[0]).toMatch(
      /^REVOKE ALL PRIVILEGES ON DATABASE .*; DROP ROLE IF EXISTS .*; DELETE FROM /,
    );
    expect(sent.steps.some((s) => s.failed)).toBe(false);
    const left = await env.asAdmin(main, (a) =>
      a.query(`SELECT 1 FROM pg_class WHERE relacl::text LIKE $1`, [`%${role}=%`]),
    );
    expect(left.rowCount).toBe(0);
  });
});
