/**
 * The mysql driver on MariaDB survives any connection the server ends (issue 10, item 1).
 *
 * Each test makes the agent's work wait at a known point, then `KILL`s the agent's
 * connection from the server side, as a failover, a crash or `wait_timeout` would:
 *
 * - grant: the session holds the per-user `GET_LOCK` and waits to write its grant record
 *   (the test holds `LOCK TABLES <meta>.grants READ`);
 * - revoke: the session holds the `GET_LOCK` and waits to read the grant records
 *   (`LOCK TABLES … WRITE`);
 * - rotate: the session waits for the `GET_LOCK`, which the test holds;
 * - sweep: an expiry revoke holds the `GET_LOCK` and waits to delete its grant record;
 * - idle pooled connections between commands; a server down at connect time.
 *
 * Only connections of this file's own service account are killed, and the tables locked
 * are in this file's own metadata database. The command concerned must fail with a
 * retryable `E_CONNECT`, the connection must be discarded, and the next command on the
 * same integration must succeed.
 */
import type mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Driver } from '../../../../src/drivers/driver.js';
import { parseMysqlConfig } from '../../../../src/drivers/mysql/config.js';
import { MysqlPools } from '../../../../src/drivers/mysql/connection.js';
import { userLockName } from '../../../../src/drivers/mysql/sql-dialect.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import { isLatchkeyError, LatchkeyError } from '../../../../src/errors.js';
import type { GrantParams, Integration } from '../../../../src/protocol/messages.js';
import { createMysqlFixture, mysqlAdmin, qi, type MysqlFixture } from '../../../helpers/mysql.js';

let f: MysqlFixture;
let driver: Driver;
/** Admin connections holding a table lock or a GET_LOCK; released after each test. */
const blockers: mysql.Connection[] = [];

beforeAll(async () => {
  f = await createMysqlFixture();
  driver = f.driver();
  // The first grant creates the metadata database and its table.
  await driver.grant(f.ctx(), grantParams('warm', 'drop.warm@example.com'));
});

afterEach(() => {
  f.clock.now = new Date();
  for (const b of blockers.splice(0)) b.destroy();
});

afterAll(async () => {
  await f?.teardown();
});

function grantParams(grantId: string, email: string, expiresAt?: string): GrantParams {
  return {
    grantId,
    grantee: { email },
    resources: [{ type: 'table', id: tableId(f.database, null, 'orders') }],
    permission: 'read',
    ...(expiresAt === undefined ? {} : { expiresAt }),
  };
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function blocker(): Promise<mysql.Connection> {
  const b = await mysqlAdmin();
  b.on('error', () => undefined);
  blockers.push(b);
  return b;
}

async function lockMeta(mode: 'READ' | 'WRITE'): Promise<void> {
  const b = await blocker();
  await b.query(`LOCK TABLES ${qi(f.metaDatabase)}.${qi('grants')} ${mode}`);
}

async function unblock(): Promise<void> {
  for (const b of blockers.splice(0)) {
    await b.query('UNLOCK TABLES');
    await b.query('SELECT RELEASE_ALL_LOCKS()');
    await b.end();
  }
}

/** Ids of the service account's connections in `state` (a LIKE pattern), once there are any. */
async function agentConnections(state: string): Promise<number[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const [rows] = await f.admin.query(
      'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND STATE LIKE ?',
      [f.serviceUser, state],
    );
    const ids = (rows as { id: number }[]).map((r) => Number(r.id));
    if (ids.length > 0) return ids;
    if (Date.now() > deadline) throw new Error(`no agent connection in state ${state}`);
    await sleep(25);
  }
}

async function kill(ids: number[]): Promise<void> {
  for (const id of ids) {
    // Only ever this file's own service account.
    const [rows] = await f.admin.query(
      'SELECT USER AS u FROM information_schema.PROCESSLIST WHERE ID = ?',
      [id],
    );
    expect((rows as { u: string }[])[0]?.u).toBe(f.serviceUser);
    await f.admin.query(`KILL CONNECTION ${Number(id)}`);
  }
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
  expect({ code: err.code, retryable: err.retryable, message: err.message }).toEqual({
    code: 'E_CONNECT',
    retryable: true,
    message: expect.any(String) as string,
  });
  expect(err.message).not.toContain(f.servicePassword);
}

async function grantRoles(username: string): Promise<string[]> {
  const [rows] = await f.admin.query(
    'SELECT Role AS r FROM mysql.roles_mapping WHERE User = ? ORDER BY Role',
    [username],
  );
  return (rows as { r: string }[]).map((r) => r.r);
}

describe('mariadb: a connection killed by the server fails the command concerned only', () => {
  it('grant: killed while it holds the user lock → E_CONNECT; the retry succeeds', async () => {
    const email = 'drop.grant@example.com';
    await lockMeta('READ');
    const running = failure(driver.grant(f.ctx(), grantParams('gd1', email)));
    await kill(await agentConnections('%metadata lock%'));
    expectRetryableConnect(await running);
    await unblock();

    const out = await driver.grant(f.ctx(), grantParams('gd1', email));
    expect(out.username.startsWith(f.prefix)).toBe(true);
    const [rows] = await f.admin.query(
      `SELECT role FROM ${qi(f.metaDatabase)}.${qi('grants')} WHERE role = ?`,
      [`${f.prefix}g_gd1`],
    );
    expect(rows).toHaveLength(1);
  });

  it('revoke: killed while it holds the user lock → E_CONNECT; the retry succeeds', async () => {
    const email = 'drop.revoke@example.com';
    const g = await driver.grant(f.ctx(), grantParams('gr1', email));
    expect((await grantRoles(g.username)).length).toBeGreaterThan(0);
    await lockMeta('WRITE');
    const running = failure(driver.revoke(f.ctx(), grantParams('gr1', email)));
    await kill(await agentConnections('%metadata lock%'));
    expectRetryableConnect(await running);
    await unblock();

    const out = await driver.revoke(f.ctx(), grantParams('gr1', email));
    expect(out.revoked).toEqual(['gr1']);
  });

  it('rotate: killed while it waits for the user lock → E_CONNECT; the retry succeeds', async () => {
    const email = 'drop.rotate@example.com';
    const g = await driver.grant(f.ctx(), grantParams('gt1', email));
    const b = await blocker();
    await b.query('SELECT GET_LOCK(?, 30)', [userLockName(g.username, '%')]);
    const rotate = (): Promise<unknown> =>
      driver.rotate(f.ctx(), { target: { grantee: { email } } });
    const running = failure(rotate());
    await kill(await agentConnections('%user lock%'));
    expectRetryableConnect(await running);
    await unblock();

    const out = (await rotate()) as { username: string };
    expect(out.username).toBe(g.username);
  });

  it('sweep: killed during an expiry revoke → an E_CONNECT item; the next sweep revokes it', async () => {
    const email = 'drop.sweep@example.com';
    const expiresAt = new Date(Date.now() + 60_000).toISOString();
    await driver.grant(f.ctx(), grantParams('gs1', email, expiresAt));
    f.clock.now = new Date(Date.now() + 120_000);
    await lockMeta('READ');
    const running = driver.sweep?.(f.ctx());
    if (!running) throw new Error('the mysql driver has no sweep');
    await kill(await agentConnections('%metadata lock%'));
    const report = await running;
    await unblock();
    expect(report.revoked).not.toContain('gs1');
    expect(report.errors).toContainEqual(
      expect.objectContaining({ item: 'gs1', code: 'E_CONNECT' }),
    );

    // The killed revoke got as far as dropping the role (its record row was locked); the
    // next sweep finds nothing left to do and nothing fails.
    const next = await driver.sweep?.(f.ctx());
    expect(next?.errors).toEqual([]);
    const [roles] = await f.admin.query(
      "SELECT User FROM mysql.global_priv WHERE User = ? AND Host = ''",
      [`${f.prefix}g_gs1`],
    );
    expect(roles).toEqual([]);
  });

  it('idle pooled connections killed by the server are discarded; the next command gets fresh ones', async () => {
    await driver.check(f.ctx());
    const [rows] = await f.admin.query(
      'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?',
      [f.serviceUser],
    );
    const ids = (rows as { id: number }[]).map((r) => Number(r.id));
    expect(ids.length).toBeGreaterThan(0);
    await kill(ids);
    await sleep(200);
    const out = await driver.check(f.ctx());
    expect(out.checks.find((c) => c.name === 'connect')?.ok).toBe(true);
    const g = await driver.grant(f.ctx(), grantParams('gi1', 'drop.idle@example.com'));
    expect(g.username.startsWith(f.prefix)).toBe(true);
  });

  it('a server that is down at connect time → E_CONNECT, and the same driver keeps working', async () => {
    const down: Integration = {
      ...f.integration({ port: 9, connectTimeoutMs: 2_000 }),
      id: `mysql-${f.suffix}-down`,
    };
    expectRetryableConnect(
      await failure(driver.grant(f.ctx(down), grantParams('gx1', 'drop.down@example.com'))),
    );
    expect((await driver.check(f.ctx())).ok).toBe(true);
  });

  it('a connection killed between two statements of one command: the second fails with E_CONNECT and the connection is not reused', async () => {
    const pools = new MysqlPools();
    const config = parseMysqlConfig(f.integration().config);
    const login = (): Promise<{ user: string; password: string }> =>
      Promise.resolve({ user: f.serviceUser, password: f.servicePassword });
    const key = `pools-${f.suffix}`;
    try {
      const killed = await pools.withSession(
        key,
        config,
        login,
        AbortSignal.timeout(20_000),
        async (session) => {
          const [row] = await session.query('SELECT CONNECTION_ID() AS id');
          const id = Number(row?.id);
          await kill([id]);
          await sleep(200); // the client has seen its socket close
          expectRetryableConnect(await failure(session.query('SELECT 1')));
          // and so does every later statement of the command
          expectRetryableConnect(await failure(session.query('SELECT 2')));
          return id;
        },
      );
      const next = await pools.withSession(
        key,
        config,
        login,
        AbortSignal.timeout(20_000),
        async (session) => Number((await session.query('SELECT CONNECTION_ID() AS id'))[0]?.id),
      );
      expect(next).not.toBe(killed);
    } finally {
      await pools.close();
    }
  });
  it('an abort between two statements ends the connection at once (its GET_LOCK freed); an abort after the command ended leaves the pooled connection alone', async () => {
    const pools = new MysqlPools();
    const config = parseMysqlConfig(f.integration().config);
    const login = (): Promise<{ user: string; password: string }> =>
      Promise.resolve({ user: f.serviceUser, password: f.servicePassword });
    const key = `pools-abort-${f.suffix}`;
    const lock = `lkt:abort:${f.suffix}`;
    const admin = await blocker();
    const isFree = async (): Promise<boolean> => {
      const [rows] = await admin.query('SELECT IS_FREE_LOCK(?) AS free', [lock]);
      return Number((rows as { free: unknown }[])[0]?.free) === 1;
    };
    try {
      const aborting = new AbortController();
      const aborted = await failure(
        pools.withSession(key, config, login, aborting.signal, async (session) => {
          await session.query('SELECT GET_LOCK(?, 5) AS got', [lock]);
          expect(await isFree()).toBe(false);
          aborting.abort(new LatchkeyError('E_CANCELLED', 'cancelled by the test'));
          // No statement is running: the connection ends all the same, and the lock with it.
          for (let i = 0; i < 50 && !(await isFree()); i++) await sleep(20);
          expect(await isFree()).toBe(true);
          return session.query('SELECT 1');
        }),
      );
      expect(aborted.code).toBe('E_CANCELLED');

      // A command that ended normally: its signal aborting later must not end the pooled
      // connection, which the next command uses.
      const late = new AbortController();
      const first = await pools.withSession(key, config, login, late.signal, async (session) =>
        Number((await session.query('SELECT CONNECTION_ID() AS id'))[0]?.id),
      );
      late.abort(new LatchkeyError('E_CANCELLED', 'after the end'));
      const second = await pools.withSession(
        key,
        config,
        login,
        AbortSignal.timeout(20_000),
        async (session) => Number((await session.query('SELECT CONNECTION_ID() AS id'))[0]?.id),
      );
      expect(second).toBe(first);
    } finally {
      await pools.close();
    }
  });
});
