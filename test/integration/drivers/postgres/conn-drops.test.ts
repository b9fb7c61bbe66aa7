/**
 * The postgres driver survives any connection the server ends (issue 10, item 1).
 *
 * Each test makes the agent's work wait at a known point, then ends one of its sessions
 * from the database side with `pg_terminate_backend`, exactly as a failover, a crash or
 * `idle_in_transaction_session_timeout` would:
 *
 * - the *lock session* (idle in transaction, holding the per-user advisory lock while the
 *   main session works) during a grant and during a sweep;
 * - the *main session* while it runs a statement, during a revoke;
 * - both during a rotation;
 * - idle connections in the pool between commands;
 * - and a server that is not there at connect time.
 *
 * A statement is made to wait by a row lock the test holds: an open transaction of the
 * test that altered the grantee's role makes the agent's `ALTER ROLE` of that role wait.
 * Only sessions of this file's own service account are ever terminated.
 *
 * Before the fix a checked-out `pg` client had no `error` listener: the terminated session
 * became an uncaught exception (vitest reports it and fails the file; the agent exited).
 * Now the command concerned fails with a retryable `E_CONNECT`, the broken connection is
 * discarded, and the next command on the same integration succeeds.
 */
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isLatchkeyError, type LatchkeyError } from '../../../../src/errors.js';
import { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import type { GrantParams, Integration } from '../../../../src/protocol/messages.js';
import {
  adminClient,
  createPgTestEnv,
  ctxFor,
  q,
  staticSecrets,
  testServices,
} from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let db: string;
let now = Date.now();
/** Admin clients holding a blocking transaction; rolled back and ended after each test. */
const blockers: pg.Client[] = [];

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  await env.asService(db, async (c) => {
    await c.query('CREATE SCHEMA shop');
    await c.query('CREATE TABLE shop.orders (id int PRIMARY KEY, item text)');
  });
  driver = new PostgresDriver(
    testServices(
      staticSecrets({ username: env.serviceAccount, password: '' }),
      () => new Date(now),
    ),
  );
});

afterEach(async () => {
  now = Date.now();
  for (const b of blockers.splice(0)) {
    await b.query('ROLLBACK').catch(() => undefined);
    await b.end().catch(() => undefined);
  }
});

afterAll(async () => {
  await driver?.close();
  await env?.teardown();
});

function grantParams(grantId: string, email: string, expiresAt?: string): GrantParams {
  return {
    grantId,
    grantee: { email },
    resources: [{ type: 'table', id: tableId(db, 'shop', 'orders') }],
    permission: 'read',
    recipientKey: env.recipient.publicKey,
    ...(expiresAt === undefined ? {} : { expiresAt }),
  };
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` (as admin) until it returns a row, and returns that row. */
async function waitForRow<T extends pg.QueryResultRow>(
  what: string,
  sql: string,
  params: unknown[],
): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const rows = await env.asAdmin(undefined, (a) => a.query<T>(sql, params));
    if (rows.rows[0]) return rows.rows[0];
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Opens a transaction (as admin) that has altered `username`: the agent's ALTER ROLE of it waits. */
async function blockAlterRole(username: string): Promise<void> {
  const b = await adminClient();
  blockers.push(b);
  await b.query('BEGIN');
  await b.query(`ALTER ROLE ${q(username)} CONNECTION LIMIT -1`);
}

async function unblock(): Promise<void> {
  for (const b of blockers.splice(0)) {
    await b.query('ROLLBACK');
    await b.end();
  }
}

/** The pid of the agent's session waiting on a (row or object) lock: its main session. */
async function waitingMainSession(): Promise<number> {
  const row = await waitForRow<{ pid: number }>(
    'the agent to wait on the blocked role',
    `SELECT pid FROM pg_stat_activity
      WHERE usename = $1 AND wait_event_type = 'Lock' AND wait_event <> 'advisory'`,
    [env.serviceAccount],
  );
  return row.pid;
}

/** The pid of the agent's session holding a per-user advisory lock: its lock session. */
async function lockSession(): Promise<number> {
  const row = await waitForRow<{ pid: number }>(
    'the agent to hold the advisory lock',
    `SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND a.usename = $1`,
    [env.serviceAccount],
  );
  return row.pid;
}

async function terminate(pids: number[]): Promise<void> {
  await env.asAdmin(undefined, async (a) => {
    // Only ever this file's own service account.
    const r = await a.query<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
        WHERE pid = ANY($1::int[]) AND usename = $2`,
      [pids, env.serviceAccount],
    );
    expect(r.rows.map((x) => x.ok)).toEqual(pids.map(() => true));
  });
}

async function failure(p: Promise<unknown>): Promise<LatchkeyError> {
  const err = await p.then(
    () => new Error('expected the command to fail'),
    (e: unknown) => e,
  );
  if (!isLatchkeyError(err)) throw err;
  return err;
}

function expectRetryableConnect(err: LatchkeyError): void {
  expect({ code: err.code, retryable: err.retryable }).toEqual({
    code: 'E_CONNECT',
    retryable: true,
  });
  expect(err.toWire().message).not.toMatch(/password|SCRAM/i);
}

describe('postgres: a session ended by the server fails the command concerned only', () => {
  it('grant: the lock session is terminated while it holds the advisory lock → E_CONNECT; the retry succeeds', async () => {
    const email = 'drop.grant@example.com';
    const first = await driver.grant(ctxFor(env.integration), grantParams('gd1', email));
    const username = first.username;
    // A second grant to the same user updates its login expiry (ALTER ROLE), which waits.
    await blockAlterRole(username);
    const running = failure(driver.grant(ctxFor(env.integration), grantParams('gd2', email)));
    await waitingMainSession();
    await terminate([await lockSession()]);
    await sleep(100); // the client sees its socket end while the main session still waits
    await unblock();
    expectRetryableConnect(await running);

    const again = await driver.grant(ctxFor(env.integration), grantParams('gd2', email));
    expect(again.username).toBe(username);
    const roles = await env.asAdmin(undefined, (a) =>
      a.query<{ r: string }>(
        `SELECT g.rolname AS r FROM pg_auth_members m
           JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
          WHERE u.rolname = $1 ORDER BY 1`,
        [username],
      ),
    );
    expect(roles.rows.map((r) => r.r)).toEqual([`${env.prefix}g_gd1`, `${env.prefix}g_gd2`]);
  });

  it('grant: once the lock session is gone, no later statement of the command runs unlocked', async () => {
    const email = 'drop.unlocked@example.com';
    const first = await driver.grant(ctxFor(env.integration), grantParams('gu1', email));
    // The journal write of the second grant waits on a lock the test holds on the journal
    // table; the lock session is ended meanwhile. The waiting INSERT may still finish, but
    // the CREATE ROLE and GRANTs after it must not run without the per-user lock.
    const journal = `${q(`${env.prefix}meta`)}.grants`;
    const b = await adminClient(db); // the integration's maintenance database holds the journal
    blockers.push(b);
    await b.query('BEGIN');
    await b.query(`LOCK TABLE ${journal} IN SHARE MODE`);
    const running = failure(driver.grant(ctxFor(env.integration), grantParams('gu2', email)));
    await waitingMainSession();
    await terminate([await lockSession()]);
    await sleep(100);
    await unblock();
    expectRetryableConnect(await running);
    const role = await env.asAdmin(undefined, (a) =>
      a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [`${env.prefix}g_gu2`]),
    );
    expect(role.rowCount).toBe(0);

    const again = await driver.grant(ctxFor(env.integration), grantParams('gu2', email));
    expect(again.username).toBe(first.username);
  });

  it('revoke: the main session is terminated mid-statement → E_CONNECT; the retry succeeds', async () => {
    const email = 'drop.revoke@example.com';
    const g = await driver.grant(ctxFor(env.integration), grantParams('gr1', email));
    await blockAlterRole(g.username);
    const running = failure(driver.revoke(ctxFor(env.integration), grantParams('gr1', email)));
    const main = await waitingMainSession();
    await terminate([main]);
    expectRetryableConnect(await running);
    await unblock();

    const out = await driver.revoke(ctxFor(env.integration), grantParams('gr1', email));
    expect(out.revoked).toEqual(['gr1']);
    const login = await env.asAdmin(undefined, (a) =>
      a.query<{ l: boolean }>('SELECT rolcanlogin AS l FROM pg_roles WHERE rolname = $1', [
        g.username,
      ]),
    );
    expect(login.rows[0]?.l).toBe(false);
  });

  it('rotate: both sessions are terminated → E_CONNECT; the retry sets a password that works', async () => {
    const email = 'drop.rotate@example.com';
    const g = await driver.grant(ctxFor(env.integration), grantParams('gt1', email));
    await blockAlterRole(g.username);
    const rotate = (): Promise<unknown> =>
      driver.rotate(ctxFor(env.integration), {
        target: { grantee: { email } },
        recipientKey: env.recipient.publicKey,
      });
    const running = failure(rotate());
    const main = await waitingMainSession();
    await terminate([await lockSession(), main]);
    expectRetryableConnect(await running);
    await unblock();

    const out = (await rotate()) as { credentials?: unknown };
    const creds = env.openCredentials(out.credentials);
    expect(await env.passwordMatches(g.username, creds.password ?? '')).toBe(true);
  });

  it('sweep: the lock session is terminated during an expiry revoke → an E_CONNECT item; the next sweep revokes it', async () => {
    const email = 'drop.sweep@example.com';
    const expiresAt = new Date(Date.now() + 60_000).toISOString();
    const g = await driver.grant(ctxFor(env.integration), grantParams('gs1', email, expiresAt));
    now = Date.now() + 120_000; // the driver's clock: the grant has expired
    await blockAlterRole(g.username);
    const running = driver.sweep(ctxFor(env.integration));
    await waitingMainSession();
    await terminate([await lockSession()]);
    await sleep(100);
    await unblock();
    const report = await running;
    expect(report.revoked).not.toContain('gs1');
    expect(report.errors).toContainEqual(
      expect.objectContaining({ item: 'gs1', code: 'E_CONNECT' }),
    );

    const next = await driver.sweep(ctxFor(env.integration));
    expect(next.revoked).toContain('gs1');
    expect(next.errors).toEqual([]);
  });

  it('idle pooled connections ended by the server are discarded; the next command gets fresh ones', async () => {
    await driver.check(ctxFor(env.integration));
    const idle = await env.asAdmin(undefined, (a) =>
      a.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE usename = $1`, [
        env.serviceAccount,
      ]),
    );
    expect(idle.rows.length).toBeGreaterThan(0);
    await terminate(idle.rows.map((r) => r.pid));
    await sleep(200);
    const out = await driver.check(ctxFor(env.integration));
    expect(out.checks.find((c) => c.name === 'connect')?.ok).toBe(true);
    const g = await driver.grant(
      ctxFor(env.integration),
      grantParams('gi1', 'drop.idle@example.com'),
    );
    expect(g.credentials).toBeDefined();
  });

  it('a server that is down at connect time → E_CONNECT, and the same driver keeps working', async () => {
    const down: Integration = {
      ...env.integration,
      id: `${env.integration.id}-down`,
      // A port nothing listens on (the discard port).
      config: { ...env.integration.config, port: 9, connectTimeoutMs: 2_000 },
    };
    expectRetryableConnect(
      await failure(driver.grant(ctxFor(down), grantParams('gx1', 'drop.down@example.com'))),
    );
    const ok = await driver.check(ctxFor(env.integration));
    expect(ok.ok).toBe(true);
  });
});
