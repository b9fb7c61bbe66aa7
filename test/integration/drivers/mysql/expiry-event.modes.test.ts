/**
 * Issue 9 item 10, MariaDB: an expired grant stops working on the server itself, with no
 * agent running. Only in the `mariadb-modes` project: its private MariaDB runs the event
 * scheduler (the shared server does not, and its global settings are not ours to change).
 * No sweep runs in this file: what ends the grants is the EVENT each grant created.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Driver } from '../../../../src/drivers/driver.js';
import { mariadbExpiryEvent } from '../../../../src/drivers/mysql/dialect-mariadb.js';
import { grantRoleName } from '../../../../src/drivers/sql/username.js';
import {
  createMysqlFixture,
  loginErrno,
  mysqlLogin,
  passwordOf,
  qi,
  table,
  type MysqlFixture,
} from '../../../helpers/mysql.js';

let f: MysqlFixture;
let driver: Driver;

beforeAll(async () => {
  f = await createMysqlFixture();
  driver = f.driver();
  const [rows] = await f.admin.query('SELECT @@GLOBAL.event_scheduler AS s');
  expect(rows).toEqual([{ s: 'ON' }]);
});

afterAll(async () => {
  await f.teardown();
});

function roleOf(grantId: string): string {
  return grantRoleName(grantId, { prefix: f.prefix, maxLength: 80 });
}
async function eventsOf(grantId: string): Promise<{ at: string }[]> {
  const [rows] = await f.admin.query(
    "SELECT DATE_FORMAT(EXECUTE_AT, '%Y-%m-%d %H:%i:%s') AS at FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = ?",
    [f.metaDatabase, mariadbExpiryEvent(roleOf(grantId), f.prefix)],
  );
  return rows as { at: string }[];
}
async function until(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for: ${what}`);
}
const soon = (seconds: number): string => new Date(Date.now() + seconds * 1000).toISOString();

describe('server-side expiry on MariaDB (no agent running)', () => {
  it('check says the event scheduler is on', async () => {
    const out = await driver.check(f.ctx());
    expect(out.ok).toBe(true);
    const c = out.checks.find((x) => x.name === 'event scheduler (server-side expiry)');
    expect(c?.detail).toMatch(/^ON/);
  });

  it('at expiry the server locks the account, ends its sessions and drops the grant', async () => {
    f.clock.now = new Date();
    const grantId = `g-ev1-${f.suffix}`;
    const out = await driver.grant(f.ctx(), {
      grantId,
      grantee: { email: f.email('expiring') },
      resources: [table(f.database, 'orders')],
      permission: 'read',
      expiresAt: soon(3),
    });
    expect(await eventsOf(grantId)).toHaveLength(1);
    const password = passwordOf(out);
    const open = await mysqlLogin(out.username, password);
    try {
      await open.query(`SELECT * FROM ${qi(f.database)}.orders`);
      await driver.close(); // the agent is gone
      await until('the account to be locked', async () =>
        [4151].includes((await loginErrno(out.username, password)) ?? 0),
      );
      await until('the open session to end', async () => {
        try {
          await open.query('SELECT 1');
          return false;
        } catch {
          return true;
        }
      });
    } finally {
      open.destroy();
    }
    const [roles] = await f.admin.query(
      "SELECT User FROM mysql.global_priv WHERE User = ? AND Host = ''",
      [roleOf(grantId)],
    );
    expect(roles).toEqual([]);
    const [records] = await f.admin.query(
      `SELECT role FROM ${qi(f.metaDatabase)}.grants WHERE role = ?`,
      [roleOf(grantId)],
    );
    expect(records).toEqual([]);
    expect(await eventsOf(grantId)).toEqual([]);
    driver = f.driver();
    // The agent coming back finds nothing left to do, and a revoke says so.
    const sweep = await driver.sweep?.(f.ctx());
    expect(sweep?.revoked).toEqual([]);
    const again = await driver.revoke(f.ctx(), {
      grantId,
      grantee: { email: f.email('expiring') },
      resources: [],
      permission: 'read',
    });
    expect(again.alreadyRevoked).toBe(true);
  });

  it('ends only the expired grant when another one keeps the login', async () => {
    f.clock.now = new Date();
    const grantee = { email: f.email('two') };
    const lasting = await driver.grant(f.ctx(), {
      grantId: `g-ev2a-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'customers')],
      permission: 'read',
    });
    await driver.grant(f.ctx(), {
      grantId: `g-ev2b-${f.suffix}`,
      grantee,
      resources: [table(f.database, 'orders')],
      permission: 'read',
      expiresAt: soon(2),
    });
    const password = passwordOf(lasting);
    await until(
      'the expired grant to go',
      async () => (await eventsOf(`g-ev2b-${f.suffix}`)).length === 0,
    );
    await until('its role to go', async () => {
      const [rows] = await f.admin.query(
        "SELECT 1 FROM mysql.global_priv WHERE User = ? AND Host = ''",
        [roleOf(`g-ev2b-${f.suffix}`)],
      );
      return (rows as unknown[]).length === 0;
    });
    const c = await mysqlLogin(lasting.username, password);
    try {
      await expect(c.query(`SELECT * FROM ${qi(f.database)}.customers`)).resolves.toBeDefined();
      await expect(c.query(`SELECT * FROM ${qi(f.database)}.orders`)).rejects.toMatchObject({
        errno: 1142,
      });
    } finally {
      await c.end();
    }
  });

  it('a re-grant with a new expiry moves the event; one without expiry, or a revoke, removes it', async () => {
    f.clock.now = new Date();
    const grantId = `g-ev3-${f.suffix}`;
    const params = {
      grantId,
      grantee: { email: f.email('moved') },
      resources: [table(f.database, 'orders')],
      permission: 'read',
    };
    const first = new Date(Date.now() + 3600_000);
    await driver.grant(f.ctx(), { ...params, expiresAt: first.toISOString() });
    const later = new Date(Date.now() + 7200_000);
    await driver.grant(f.ctx(), { ...params, expiresAt: later.toISOString() });
    const moved = await eventsOf(grantId);
    expect(moved).toHaveLength(1);
    expect(new Date(`${moved[0]?.at ?? ''}Z`).getTime()).toBeGreaterThanOrEqual(
      Math.floor(later.getTime() / 1000) * 1000,
    );
    await driver.grant(f.ctx(), params);
    expect(await eventsOf(grantId)).toEqual([]);
    await driver.grant(f.ctx(), { ...params, expiresAt: first.toISOString() });
    expect(await eventsOf(grantId)).toHaveLength(1);
    await driver.revoke(f.ctx(), { ...params, resources: [] });
    expect(await eventsOf(grantId)).toEqual([]);
  });

  it('a re-run of the grant puts back an event a crash left missing (role created, event not)', async () => {
    f.clock.now = new Date();
    const grantId = `g-ev4-${f.suffix}`;
    const params = {
      grantId,
      grantee: { email: f.email('mended') },
      resources: [table(f.database, 'orders')],
      permission: 'read',
      expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    };
    await driver.grant(f.ctx(), params);
    expect(await eventsOf(grantId)).toHaveLength(1);
    // What a crash between CREATE ROLE and the event leaves: the role and record, no event.
    await f.admin.query(
      `DROP EVENT ${qi(f.metaDatabase)}.${qi(mariadbExpiryEvent(roleOf(grantId), f.prefix))}`,
    );
    const again = await driver.grant(f.ctx(), params);
    expect(again.alreadyGranted).toBe(true);
    expect(await eventsOf(grantId)).toHaveLength(1);
    await driver.revoke(f.ctx(), { ...params, resources: [] });
  });
});
