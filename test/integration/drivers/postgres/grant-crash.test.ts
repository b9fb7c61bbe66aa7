/**
 * A crash (kill -9) at any point of a grant, then the same grant re-delivered: the re-run
 * succeeds, its result carries a password that works, the user is marked, and nothing
 * half-created blocks later grants. A grant whose result was delivered is not rotated by
 * another grant's re-run. Real PostgreSQL; crashes close the run's connections for real.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDialect } from '../../../../src/drivers/postgres/dialect.js';
import type { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { grantFlow, type SqlCoreOptions } from '../../../../src/drivers/sql/core.js';
import type { SqlScope, SqlSession } from '../../../../src/drivers/sql/dialect.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import { deriveUsername } from '../../../../src/drivers/sql/username.js';
import type { GrantParams } from '../../../../src/protocol/messages.js';
import { createSealer } from '../../../../src/protocol/seal.js';
import { CrashSwitch, type CrashPlan } from '../../../helpers/crash.js';
import { createPgTestEnv, ctxFor, q, serviceDriver } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let db: string;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  await env.asService(db, async (c) => {
    await c.query('CREATE TABLE public.items (id int, name text)');
    await c.query('CREATE TABLE public.extra (id int)');
  });
  driver = serviceDriver(env);
});

afterAll(async () => {
  await driver?.close();
  await env?.teardown();
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function params(grantId: string, email: string, table = 'items'): GrantParams {
  return {
    grantId,
    grantee: { email },
    resources: [{ type: 'table', id: tableId(db, 'public', table) }],
    permission: 'read',
    recipientKey: env.recipient.publicKey,
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  };
}

function userOf(email: string): string {
  return deriveUsername(email, { prefix: env.prefix, maxLength: 63 });
}

/** Runs one grant through the core on its own connections, crashing as planned. */
async function crashedGrant(plan: CrashPlan, p: GrantParams): Promise<void> {
  const sw = new CrashSwitch(plan);
  const clients: pg.Client[] = [];
  const open = async (database: string): Promise<SqlSession> => {
    const c = await env.connectAs(env.serviceAccount, database);
    clients.push(c);
    sw.onKill(() => void c.end().catch(() => undefined));
    return sw.session({
      query: async (sql, values) =>
        (await c.query<Record<string, unknown>>(sql, values as unknown[])).rows,
    });
  };
  const main = await open(db);
  const lock = await open(db);
  const scope: SqlScope = {
    session: main,
    onDatabase: (d, fn) => (d === db ? fn(main) : open(d).then(fn)),
    withLockSession: (fn) => fn(lock),
    signal: new AbortController().signal,
    serviceAccount: env.serviceAccount,
    prefix: env.prefix,
    databases: env.databases,
  };
  const opts: SqlCoreOptions = {
    dialect: sw.dialect(new PostgresDialect()),
    iamAuth: false,
    ownedObjects: 'reassign',
    sealer: createSealer({ allowPlaintext: true }),
    now: () => new Date(),
    access: { host: '127.0.0.1', port: 5432, defaultDatabase: db },
  };
  try {
    const { recipientKey: _unused, ...plain } = p;
    await grantFlow(opts, scope, plain);
  } catch {
    // the crash, or the error injected before it
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
  // A planned crash point was reached (a statement pattern that no longer matches fails here).
  expect(sw.dead || (plan.beforeMethod === undefined && plan.atStatement === undefined)).toBe(true);
}

async function userMarker(user: string): Promise<Record<string, unknown> | null> {
  const r = await env.asAdmin(undefined, (a) =>
    a.query<{ d: string | null }>(
      `SELECT shobj_description(oid, 'pg_authid') AS d FROM pg_roles WHERE rolname = $1`,
      [user],
    ),
  );
  const d = r.rows[0]?.d;
  return d ? (JSON.parse(d) as Record<string, unknown>) : null;
}

/** The re-delivered grant: succeeds, carries a working password, the user is marked. */
async function expectRedeliveryWorks(p: GrantParams): Promise<string> {
  const out = await driver.grant(ctxFor(env.integration), p);
  const user = userOf(p.grantee.email);
  expect(out.username).toBe(user);
  expect(out.credentials).toBeDefined();
  const password = env.openCredentials(out.credentials).password ?? '';
  expect(await env.passwordMatches(user, password)).toBe(true);
  expect(await userMarker(user)).toEqual({
    managedBy: 'latchkey',
    kind: 'user',
    v: 1,
    issuedFor: p.grantId,
  });
  const c = await env.connectAs(user, db, password);
  try {
    await expect(c.query('SELECT count(*) FROM public.items')).resolves.toBeDefined();
  } finally {
    await c.end();
  }
  return password;
}

describe('postgres: a crash at any point of a grant, then the same grant again', () => {
  const steps: { name: string; plan: (user: string) => CrashPlan }[] = [
    {
      // CREATE ROLE and its marker are one simple query (one implicit transaction): the
      // crash comes as it is sent, and nothing of it stays.
      name: 'inside createUser, as CREATE ROLE and its marker are sent',
      plan: (user) => ({ atStatement: new RegExp(`^CREATE ROLE ${escapeRe(q(user))}`) }),
    },
    // The user and the grant role are read together before createUser: the grant role's
    // creation is what comes next.
    { name: 'after createUser', plan: () => ({ beforeMethod: 'createGrantRole' }) },
    {
      name: 'after the grant role was created',
      plan: () => ({ beforeMethod: 'grantPrivilegesAndRole' }),
    },
    {
      // This run's scope names no maintenance database, so the membership is its own
      // statement (with one, it rides in the privileges' query: one implicit transaction).
      name: 'after the privileges were granted',
      plan: () => ({ atStatement: /^GRANT "[^"]+" TO "[^"]+"$/ }),
    },
    // A new user's login expiry is set with the user: the membership is the last change,
    // then the lock's COMMIT.
    { name: 'after the membership was granted', plan: () => ({ atStatement: /^COMMIT$/ }) },
    { name: 'after the last step (the result was lost)', plan: () => ({}) },
    {
      name: 'inside the undo of a failed grant, before the user is dropped',
      plan: (user) => ({
        failMethod: 'grantPrivilegesAndRole',
        atStatement: new RegExp(`^DROP ROLE IF EXISTS ${escapeRe(q(user))}`),
      }),
    },
  ];

  steps.forEach((step, i) => {
    it(`${step.name}: the re-run returns working credentials`, async () => {
      const email = `crash${i}@example.com`;
      const p = params(`gc${i}`, email);
      await crashedGrant(step.plan(userOf(email)), p);
      const password = await expectRedeliveryWorks(p);

      // Another grant to the same user: its result carries no password and changes none,
      // also when it is delivered twice.
      const other = params(`go${i}`, email, 'extra');
      const o1 = await driver.grant(ctxFor(env.integration), other);
      const o2 = await driver.grant(ctxFor(env.integration), other);
      expect(o1.credentials).toBeUndefined();
      expect(o2.credentials).toBeUndefined();
      expect(o2.alreadyGranted).toBe(true);
      expect(await env.passwordMatches(userOf(email), password)).toBe(true);
    });
  });

  it('a crash inside the re-run’s password change leaves the old one; the next re-run issues one', async () => {
    const email = 'crash-rerun@example.com';
    const user = userOf(email);
    const p = params('gcr', email);
    await crashedGrant({}, p); // done, result lost
    // The re-run dies as ALTER ROLE … PASSWORD and the marker (one implicit transaction) are sent.
    await crashedGrant(
      { atStatement: new RegExp(`^ALTER ROLE ${escapeRe(q(user))} WITH PASSWORD`) },
      p,
    );
    expect((await userMarker(user))?.issuedFor).toBe('gcr');
    await expectRedeliveryWorks(p);
  });

  it('after a rotate, a re-delivered grant issues no password (the rotate’s result has it)', async () => {
    const email = 'crash-rotate@example.com';
    const p = params('gct', email);
    await driver.grant(ctxFor(env.integration), p);
    const r = await driver.rotate(ctxFor(env.integration), {
      target: { grantee: { email } },
      recipientKey: env.recipient.publicKey,
    });
    const rotated = env.openCredentials(r.credentials).password ?? '';
    expect(await userMarker(userOf(email))).toEqual({ managedBy: 'latchkey', kind: 'user', v: 1 });
    const again = await driver.grant(ctxFor(env.integration), p);
    expect(again.credentials).toBeUndefined();
    expect(await env.passwordMatches(userOf(email), rotated)).toBe(true);
  });
});
