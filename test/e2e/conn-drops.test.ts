/**
 * The built agent stays up when PostgreSQL ends one of its sessions mid-command (issue 10,
 * item 1), at the process level: a grant is made to wait while its lock session holds the
 * per-user advisory lock, the test terminates that session from the database side, and
 *
 * - the process keeps running (before the fix it exited with `Connection terminated
 *   unexpectedly`, taking every in-flight command with it);
 * - that grant's result is a retryable `E_CONNECT`;
 * - the commands in flight beside it (a grant to another user on the same integration, a
 *   check of a MariaDB integration) complete;
 * - the same grant sent again succeeds; SIGTERM still exits 0.
 *
 * Only sessions of this file's own service account are terminated.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevControlPlane, type DevControlPlane } from '../../src/devcp/server.js';
import { lockKey } from '../../src/drivers/postgres/dialect.js';
import { tableId } from '../../src/drivers/sql/resources.js';
import {
  generateSigningKeyPair,
  type CommandKind,
  type Integration,
  type Result,
  type SigningKeyPair,
} from '../../src/protocol/index.js';
import { createMysqlFixture, type MysqlFixture } from '../helpers/mysql.js';
import { adminClient, createPgTestEnv, q, type PgTestEnv } from '../helpers/pg.js';
import { startAgentProcess, type AgentProcess } from './agent-process.js';
import { ensureBuilt } from './build.js';

const WAIT_MS = 30_000;

let cp: DevControlPlane;
let signing: SigningKeyPair;
let agent: AgentProcess | undefined;
let pgEnv: PgTestEnv;
let my: MysqlFixture;
let myIntegration: Integration;
const connectorId = `e2e-drop-${randomUUID().slice(0, 8)}`;
const token = `tok-${randomBytes(24).toString('base64url')}`;

beforeAll(async () => {
  const [, env, fixture] = await Promise.all([
    ensureBuilt(),
    createPgTestEnv({ databases: 1 }),
    createMysqlFixture(),
  ]);
  pgEnv = env;
  my = fixture;
  await pgEnv.asService(pgEnv.databases[0] ?? '', async (c) => {
    await c.query('CREATE SCHEMA shop');
    await c.query('CREATE TABLE shop.orders (id int PRIMARY KEY)');
  });
  const pgRef = pgEnv.integration.secret;
  if (pgRef?.store !== 'env') throw new Error('the pg test env uses the env secret store');
  const myPrefix = `LATCHKEY_SECRET_M${my.suffix.toUpperCase()}_`;
  myIntegration = { ...my.integration(), secret: { store: 'env', prefix: myPrefix } };
  signing = generateSigningKeyPair();
  cp = await startDevControlPlane({
    agents: [{ connectorId, token }],
    signingKey: { keyId: signing.keyId, privateKeyPem: signing.privateKeyPem },
    logger: pino({ level: 'silent' }),
  });
  agent = await startAgentProcess({
    cp,
    connectorId,
    token,
    signing,
    env: {
      [`${pgRef.prefix}USERNAME`]: pgEnv.serviceAccount,
      [`${pgRef.prefix}PASSWORD`]: `Svc-${randomBytes(12).toString('hex')}`, // trust auth
      [`${myPrefix}USERNAME`]: my.serviceUser,
      [`${myPrefix}PASSWORD`]: my.servicePassword,
    },
  });
}, 240_000);

afterAll(async () => {
  await agent?.stop('SIGKILL');
  await cp?.close();
  await pgEnv?.teardown();
  await my?.teardown();
}, 60_000);

async function send(
  kind: CommandKind,
  integration: Integration,
  params: Record<string, unknown>,
): Promise<string> {
  return (await cp.sendCommand(connectorId, { kind, integration, params })).commandId;
}

/** The result of a command, or an error naming the agent's state when none comes. */
async function resultOf(id: string): Promise<Result> {
  try {
    return await cp.waitForResult(id, WAIT_MS);
  } catch (err) {
    throw new Error(
      `no result for ${id} (agent alive: ${String(agent?.alive())}): ${String(err)}\n${agent?.logs().slice(-3000) ?? ''}`,
    );
  }
}

function grant(grantId: string, email: string): Record<string, unknown> {
  return {
    grantId,
    grantee: { email },
    resources: [{ type: 'table', id: tableId(pgEnv.databases[0] ?? '', 'shop', 'orders') }],
    permission: 'read',
    recipientKey: pgEnv.recipient.publicKey,
  };
}

async function waitForRow(sql: string, params: unknown[]): Promise<number> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await pgEnv.asAdmin(undefined, (a) => a.query<{ pid: number }>(sql, params));
    const pid = r.rows[0]?.pid;
    if (pid !== undefined) return pid;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${sql}`);
    await new Promise((res) => setTimeout(res, 25));
  }
}

describe('the agent process survives a PostgreSQL session ended mid-grant', () => {
  it('the grant gets a retryable E_CONNECT, the other in-flight commands complete, the process stays up', async () => {
    const email = 'dropped.grant@example.com';
    const first = await resultOf(await send('grant', pgEnv.integration, grant('ag1', email)));
    expect(first.status).toBe('ok');
    const username = String(first.output?.username);

    // An open transaction that altered the user: the agent's next ALTER ROLE of it waits,
    // while its lock session sits idle in transaction holding the user's advisory lock.
    const blocker: pg.Client = await adminClient();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`ALTER ROLE ${q(username)} CONNECTION LIMIT -1`);
      const dropped = await send('grant', pgEnv.integration, grant('ag2', email));
      await waitForRow(
        `SELECT pid FROM pg_stat_activity
          WHERE usename = $1 AND wait_event_type = 'Lock' AND wait_event <> 'advisory'`,
        [pgEnv.serviceAccount],
      );
      const others = [
        await send('grant', pgEnv.integration, grant('ao1', 'other.user@example.com')),
        await send('check', myIntegration, {}),
        await send('discover', pgEnv.integration, {}),
      ];
      // The session holding this user's advisory lock (not the other grant's).
      const lockPid = await waitForRow(
        `SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND a.usename = $1
            AND l.classid::bigint = ($2::bigint >> 32) & 4294967295
            AND l.objid::bigint = $2::bigint & 4294967295`,
        [pgEnv.serviceAccount, lockKey(username)],
      );
      await pgEnv.asAdmin(undefined, (a) =>
        a.query(
          'SELECT pg_terminate_backend($1) WHERE $2 = (SELECT usename FROM pg_stat_activity WHERE pid = $1)',
          [lockPid, pgEnv.serviceAccount],
        ),
      );
      await new Promise((res) => setTimeout(res, 300));
      expect(agent?.alive()).toBe(true);
      await blocker.query('ROLLBACK');

      const result = await resultOf(dropped);
      expect(result.status).toBe('error');
      expect(result.error).toMatchObject({ code: 'E_CONNECT', retryable: true });
      for (const id of others) expect((await resultOf(id)).status).toBe('ok');
      expect(agent?.alive()).toBe(true);
    } finally {
      await blocker.end().catch(() => undefined);
    }

    // The next command on the same integration gets a fresh connection.
    const again = await resultOf(await send('grant', pgEnv.integration, grant('ag2', email)));
    expect(again.status).toBe('ok');
    expect(agent?.logs()).toContain('PostgreSQL connection lost while in use');
  });

  it('SIGTERM afterwards still exits 0', async () => {
    expect(await agent?.stop('SIGTERM')).toBe(0);
  });
});
