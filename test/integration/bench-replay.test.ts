/**
 * The SQL benchmarks' direct reference (bench/sql-count.ts): what the driver sends for a
 * grant and its revoke is recorded with bound values and connections, and replayed for
 * another grantee over plain connections. The replay must send exactly as many round trips
 * and statements as the driver did (the figures the bench reports) and really do the same
 * work on its own names, never touching the recorded grantee.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresDriver } from '../../src/drivers/postgres/driver.js';
import { lockKey } from '../../src/drivers/postgres/dialect.js';
import { scramVerifier } from '../../src/drivers/postgres/scram.js';
import { generatePassword } from '../../src/drivers/sql/password.js';
import { tableId } from '../../src/drivers/sql/resources.js';
import { deriveUsername, grantRoleName } from '../../src/drivers/sql/username.js';
import {
  assertSubstituted,
  countSql,
  findInSteps,
  replaySql,
  substituteSteps,
  type ReplayConnection,
  type SqlStep,
} from '../../bench/sql-count.js';
import { createPgTestEnv, ctxFor, pgEndpoint, serviceDriver } from '../helpers/pg.js';
import type { PgTestEnv } from '../helpers/pg.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let db: string;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  await env.asService(db, (c) => c.query('CREATE TABLE public.t (id int)'));
  driver = serviceDriver(env);
});

afterAll(async () => {
  await driver?.close();
  await env?.teardown();
});

const names = (email: string, grantId: string): string[] => {
  const user = deriveUsername(email, { prefix: env.prefix, maxLength: 63 });
  return [
    user,
    grantRoleName(grantId, { prefix: env.prefix, maxLength: 63 }),
    lockKey(user),
    grantId,
  ];
};

async function pair(
  email: string,
  grantId: string,
): Promise<{ grant: SqlStep[]; revoke: SqlStep[] }> {
  const params = {
    grantId,
    grantee: { email },
    resources: [{ type: 'table', id: tableId(db, 'public', 't') }],
    permission: 'read',
  };
  const grant = await countSql(async () => {
    await driver.grant(ctxFor(env.integration), {
      ...params,
      recipientKey: env.recipient.publicKey,
    });
  });
  const revoke = await countSql(async () => {
    await driver.revoke(ctxFor(env.integration), params);
  });
  expect(grant.steps).toHaveLength(grant.roundTrips);
  return { grant: grant.steps, revoke: revoke.steps };
}

async function roleState(name: string): Promise<{ login: boolean; member: string[] } | null> {
  return env.asAdmin(db, async (c) => {
    const r = await c.query<{ login: boolean; member: string[] }>(
      `SELECT r.rolcanlogin AS login,
              ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                     WHERE m.member = r.oid ORDER BY 1)::text[] AS member
         FROM pg_roles r WHERE r.rolname = $1`,
      [name],
    );
    return r.rows[0] ?? null;
  });
}

describe('the benches replay what the driver sent', () => {
  it('replays a recorded grant and revoke for another grantee: same round trips and statements, same effect', async () => {
    await pair('warm@example.com', 'warm');
    const recorded = await pair('recorded@example.com', 'recorded');
    const from = names('recorded@example.com', 'recorded');
    const to = names('replayed@example.com', 'replayed');
    const verifiers = findInSteps(recorded.grant, /SCRAM-SHA-256\$[^'\s]+/g);
    expect(verifiers).toHaveLength(1); // the new user's password
    const subs: [string, string][] = from.map((f, i) => [f, to[i] ?? f]);
    subs.push([verifiers[0] ?? '', await scramVerifier(generatePassword())]);
    const grant = substituteSteps(recorded.grant, subs);
    const revoke = substituteSteps(recorded.revoke, subs);
    assertSubstituted([...grant, ...revoke], [...from, ...verifiers]);

    const ep = pgEndpoint();
    const pool = new pg.Pool({
      host: ep.host,
      port: ep.port,
      user: env.serviceAccount,
      database: db,
      max: 4,
    });
    const open = async (): Promise<ReplayConnection> => {
      const c = await pool.connect();
      return {
        query: (text, values) => c.query({ text, values: values === undefined ? [] : [...values] }),
        release: () => c.release(),
      };
    };
    try {
      const grantTally = await countSql(() => replaySql(grant, open));
      expect(grantTally.roundTrips).toBe(recorded.grant.length);
      expect(grantTally.texts).toEqual(grant.map((s) => s.text.replace(/\s+/g, ' ').trim()));
      // The replayed grant did the driver's work on its own names: a login member of its role.
      const [user, role] = to;
      expect(await roleState(user ?? '')).toEqual({ login: true, member: [role] });
      expect(await roleState(from[0] ?? '')).toMatchObject({ login: false, member: [] });

      const revokeTally = await countSql(() => replaySql(revoke, open));
      expect(revokeTally.roundTrips).toBe(recorded.revoke.length);
      expect(grantTally.statements + revokeTally.statements).toBe(
        [...recorded.grant, ...recorded.revoke].reduce(
          (n, s) => n + Math.max(1, s.text.split(';').filter((p) => p.trim() !== '').length),
          0,
        ),
      );
      expect(await roleState(role ?? '')).toBeNull();
      expect(await roleState(user ?? '')).toEqual({ login: false, member: [] });
    } finally {
      await pool.end();
    }
  });

  it('refuses a replay that still names the recorded grantee', () => {
    const step: SqlStep = {
      connection: 0,
      database: undefined,
      text: 'ALTER ROLE "lk_x_ann" NOLOGIN',
      values: undefined,
      failed: false,
    };
    expect(() => assertSubstituted([step], ['lk_x_ann'])).toThrow(/still names "lk_x_ann"/);
    expect(() =>
      assertSubstituted(substituteSteps([step], [['lk_x_ann', 'lk_x_bob']]), ['lk_x_ann']),
    ).not.toThrow();
  });
});
