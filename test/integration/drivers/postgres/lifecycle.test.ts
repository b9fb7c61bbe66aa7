import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { databaseId, tableId } from '../../../../src/drivers/sql/resources.js';
import { deriveUsername, grantRoleName } from '../../../../src/drivers/sql/username.js';
import {
  createPgTestEnv,
  ctxFor,
  q,
  serviceDriver,
  staticSecrets,
  testServices,
} from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let db0: string;
let db1: string;
let clock = new Date();

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 2 });
  db0 = env.databases[0] ?? '';
  db1 = env.databases[1] ?? '';
  await env.asService(db0, (c) => c.query('CREATE TABLE public.items (id int, name text)'));
  driver = new PostgresDriver(
    testServices(staticSecrets({ username: env.serviceAccount, password: '' }), () => clock),
  );
});

afterAll(async () => {
  await driver?.close();
  await env?.teardown();
});

const ctx = () => ctxFor(env.integration);

describe('postgres rotate, cleanup, expiry, concurrency', () => {
  it('rotates a grantee password: the old one stops matching, the new one matches', async () => {
    const email = 'rotate@example.com';
    const g = await driver.grant(ctx(), {
      grantId: 'rot',
      grantee: { email },
      resources: [{ type: 'table', id: tableId(db0, 'public', 'items') }],
      permission: 'read',
      recipientKey: env.recipient.publicKey,
    });
    const oldPw = env.openCredentials(g.credentials).password ?? '';
    const r = await driver.rotate(ctx(), {
      target: { grantee: { email } },
      recipientKey: env.recipient.publicKey,
    });
    const newPw = env.openCredentials(r.credentials).password ?? '';
    expect(r.username).toBe(g.username);
    expect(newPw).not.toBe(oldPw);
    expect(await env.passwordMatches(g.username, oldPw)).toBe(false);
    expect(await env.passwordMatches(g.username, newPw)).toBe(true);
    await expect(
      driver.rotate(ctx(), {
        target: { grantee: { email: 'ghost@example.com' } },
        recipientKey: env.recipient.publicKey,
      }),
    ).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await driver.revoke(ctx(), {
      grantId: 'rot',
      grantee: { email },
      resources: [],
      permission: 'read',
    });
  });

  it('cleanup drops a user owning objects in two databases, reassigning them to the holding role (never the service account)', async () => {
    const email = 'owner@example.com';
    const g = await driver.grant(ctx(), {
      grantId: 'own-0',
      grantee: { email },
      resources: [
        { type: 'database', id: databaseId(db0) },
        { type: 'database', id: databaseId(db1) },
      ],
      permission: 'admin',
      recipientKey: env.recipient.publicKey,
    });
    for (const db of [db0, db1]) {
      const c = await env.connectAs(g.username, db);
      try {
        await c.query('CREATE TABLE public.mine (id int)');
      } finally {
        await c.end();
      }
    }
    // Live grant: cleanup keeps the user.
    const kept = await driver.cleanup(ctx(), { usernames: [g.username] });
    expect(kept.dropped).toEqual([]);
    expect(kept.kept[0]).toMatchObject({ username: g.username, code: 'E_GUARDRAIL' });

    await driver.revoke(ctx(), {
      grantId: 'own-0',
      grantee: { email },
      resources: [],
      permission: 'admin',
    });
    const out = await driver.cleanup(ctx(), { usernames: [g.username] });
    expect(out).toEqual({ dropped: [g.username], kept: [] });
    for (const db of [db0, db1]) {
      const owner = await env.asAdmin(db, (a) =>
        a.query<{ o: string }>(
          `SELECT pg_get_userbyid(relowner) AS o FROM pg_class WHERE relname = 'mine'`,
        ),
      );
      expect(owner.rows[0]?.o).toBe(`${env.prefix}holding`);
    }
    const gone = await env.asAdmin(undefined, (a) =>
      a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [g.username]),
    );
    expect(gone.rowCount).toBe(0);
    // Again: already gone is success.
    expect(await driver.cleanup(ctx(), { usernames: [g.username] })).toEqual({
      dropped: [g.username],
      kept: [],
    });
  });

  it('cleanup refuses an unmarked role and the service account', async () => {
    const foreign = `${env.prefix}foreign`;
    await env.asAdmin(undefined, (a) => a.query(`CREATE ROLE ${q(foreign)} LOGIN`));
    const out = await driver.cleanup(ctx(), { usernames: [foreign, env.serviceAccount] });
    expect(out.dropped).toEqual([]);
    expect(out.kept).toEqual([
      {
        username: foreign,
        reason: expect.stringMatching(/not created by Latchkey/) as string,
        code: 'E_NOT_MANAGED',
      },
      { username: env.serviceAccount, reason: expect.any(String) as string, code: 'E_NOT_MANAGED' },
    ]);
    const still = await env.asAdmin(undefined, (a) =>
      a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [foreign]),
    );
    expect(still.rowCount).toBe(1);
  });

  it('grant and revoke refuse a same-named user that Latchkey did not create', async () => {
    const email = 'squatter@example.com';
    const name = deriveUsername(email, { prefix: env.prefix, maxLength: 63 });
    await env.asAdmin(undefined, (a) => a.query(`CREATE ROLE ${q(name)} LOGIN`));
    const params = {
      grantId: 'sq',
      grantee: { email },
      resources: [{ type: 'table', id: tableId(db0, 'public', 'items') }],
      permission: 'read',
      recipientKey: env.recipient.publicKey,
    };
    await expect(driver.grant(ctx(), params)).rejects.toMatchObject({ code: 'E_NOT_MANAGED' });
    await expect(
      driver.revoke(ctx(), {
        grantId: 'sq',
        grantee: { email },
        resources: [],
        permission: 'read',
      }),
    ).rejects.toMatchObject({ code: 'E_NOT_MANAGED' });
    const untouched = await env.asAdmin(undefined, (a) =>
      a.query<{ l: boolean }>('SELECT rolcanlogin AS l FROM pg_roles WHERE rolname = $1', [name]),
    );
    expect(untouched.rows[0]?.l).toBe(true);
    // And no grant role was left behind by the refused grant.
    const roles = await env.asAdmin(undefined, (a) =>
      a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [
        grantRoleName('sq', { prefix: env.prefix, maxLength: 63 }),
      ]),
    );
    expect(roles.rowCount).toBe(0);
  });

  it('two concurrent grants to one user through two driver instances both succeed', async () => {
    const other = serviceDriver(env);
    try {
      const email = 'concurrent@example.com';
      const params = (grantId: string) => ({
        grantId,
        grantee: { email },
        resources: [{ type: 'table', id: tableId(db0, 'public', 'items') }],
        permission: 'read',
        recipientKey: env.recipient.publicKey,
      });
      const [a, b] = await Promise.all([
        driver.grant(ctx(), params('cc-a')),
        other.grant(ctx(), params('cc-b')),
      ]);
      expect(a.username).toBe(b.username);
      // Exactly one of them created the login and returned its password.
      expect([a.credentials, b.credentials].filter((c) => c !== undefined)).toHaveLength(1);
      const members = await env.asAdmin(undefined, (x) =>
        x.query<{ r: string }>(
          `SELECT g.rolname AS r FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
            JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1 ORDER BY 1`,
          [a.username],
        ),
      );
      expect(members.rows.map((r) => r.r)).toEqual(
        ['cc-a', 'cc-b']
          .map((id) => grantRoleName(id, { prefix: env.prefix, maxLength: 63 }))
          .sort(),
      );
      await Promise.all([
        driver.revoke(ctx(), {
          grantId: 'cc-a',
          grantee: { email },
          resources: [],
          permission: 'read',
        }),
        other.revoke(ctx(), {
          grantId: 'cc-b',
          grantee: { email },
          resources: [],
          permission: 'read',
        }),
      ]);
      const login = await env.asAdmin(undefined, (x) =>
        x.query<{ l: boolean }>('SELECT rolcanlogin AS l FROM pg_roles WHERE rolname = $1', [
          a.username,
        ]),
      );
      expect(login.rows[0]?.l).toBe(false);
    } finally {
      await other.close();
    }
  });

  it('expiry: VALID UNTIL is the latest live expiry, and sweep revokes what has expired', async () => {
    const email = 'expiring@example.com';
    const soon = new Date(Date.now() + 60_000);
    const later = new Date(Date.now() + 120_000);
    const base = {
      grantee: { email },
      resources: [{ type: 'table', id: tableId(db0, 'public', 'items') }],
      permission: 'read',
      recipientKey: env.recipient.publicKey,
    };
    const g1 = await driver.grant(ctx(), {
      ...base,
      grantId: 'exp-1',
      expiresAt: soon.toISOString(),
    });
    expect(g1.expiresAt).toBe(soon.toISOString());
    const validUntil = async () =>
      (
        await env.asAdmin(undefined, (a) =>
          a.query<{ v: Date | null; l: boolean }>(
            'SELECT rolvaliduntil AS v, rolcanlogin AS l FROM pg_roles WHERE rolname = $1',
            [g1.username],
          ),
        )
      ).rows[0];
    expect((await validUntil())?.v?.getTime()).toBe(soon.getTime());
    await driver.grant(ctx(), { ...base, grantId: 'exp-2', expiresAt: later.toISOString() });
    expect((await validUntil())?.v?.getTime()).toBe(later.getTime());

    // After the first expiry: the sweep revokes exp-1 only; the login now ends with exp-2.
    clock = new Date(soon.getTime() + 1000);
    const s1 = await driver.sweep(ctx());
    expect(s1).toEqual({ revoked: ['exp-1'], errors: [] });
    expect((await validUntil())?.v?.getTime()).toBe(later.getTime());
    // After the second: nothing left, the login is refused.
    clock = new Date(later.getTime() + 1000);
    const s2 = await driver.sweep(ctx());
    expect(s2).toEqual({ revoked: ['exp-2'], errors: [] });
    expect((await validUntil())?.l).toBe(false);
    await expect(env.connectAs(g1.username, db0)).rejects.toMatchObject({ code: '28000' });
    // A sweep with nothing expired does nothing.
    expect(await driver.sweep(ctx())).toEqual({ revoked: [], errors: [] });
    clock = new Date();
  });

  it('refuses a grant whose expiry is already past', async () => {
    await expect(
      driver.grant(ctx(), {
        grantId: 'past',
        grantee: { email: 'past@example.com' },
        resources: [{ type: 'database', id: databaseId(db0) }],
        permission: 'connect',
        expiresAt: new Date(Date.now() - 1000).toISOString(),
        recipientKey: env.recipient.publicKey,
      }),
    ).rejects.toMatchObject({ code: 'E_INVALID' });
  });
});
