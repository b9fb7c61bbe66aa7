/**
 * The PostgreSQL access inventory and standing cleanup on the real server: known
 * standing access (direct grants, roles nested three deep, PUBLIC, default privileges, a
 * protected role, an agent grant) and the exact inventory, chains included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { databaseId, roleId, schemaId, tableId } from '../../../../src/drivers/sql/resources.js';
import type { InventoryEntry, StandingTarget } from '../../../../src/protocol/messages.js';
import { collectingSink, inSinkOrder } from '../../../helpers/discover-sink.js';
import {
  createPgTestEnv,
  ctxFor,
  dropPrefixed,
  q,
  staticSecrets,
  testServices,
} from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let driver: PostgresDriver;
let db: string;
let p: string;
const n = (name: string): string => `${p}${name}`;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  p = `lkinv${env.suffix}_`;
  await env.asService(db, async (c) => {
    await c.query('CREATE SCHEMA app');
    await c.query('CREATE TABLE app.orders (id int)');
    await c.query('CREATE TABLE app.items (id int)');
  });
  await env.asAdmin(undefined, async (a) => {
    for (const u of ['alice', 'bob']) await a.query(`CREATE ROLE ${q(n(u))} LOGIN`);
    for (const r of ['r1', 'r2', 'r3', 'prot']) await a.query(`CREATE ROLE ${q(n(r))} NOLOGIN`);
    await a.query(`COMMENT ON ROLE ${q(n('prot'))} IS 'break-glass; latchkey:protected'`);
    await a.query(`GRANT ${q(n('r1'))} TO ${q(n('alice'))}`);
    await a.query(`GRANT ${q(n('r2'))} TO ${q(n('r1'))}`);
    await a.query(`GRANT ${q(n('r3'))} TO ${q(n('r2'))}`);
    await a.query(`GRANT ${q(n('prot'))} TO ${q(n('bob'))}`);
    await a.query(`GRANT CONNECT ON DATABASE ${q(db)} TO ${q(n('alice'))}`);
  });
  await env.asAdmin(db, async (a) => {
    await a.query(`GRANT SELECT ON app.orders TO ${q(n('r3'))}`);
    await a.query(`GRANT SELECT ON app.orders TO PUBLIC`);
    await a.query(`GRANT SELECT, INSERT ON app.items TO ${q(n('bob'))}`);
    await a.query(`GRANT SELECT ON app.items TO ${q(n('prot'))}`);
    await a.query(`GRANT USAGE ON SCHEMA app TO ${q(n('bob'))}`);
    await a.query(
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${q(env.serviceAccount)} IN SCHEMA app GRANT SELECT ON TABLES TO ${q(n('bob'))}`,
    );
  });
  driver = new PostgresDriver(
    testServices(staticSecrets({ username: env.serviceAccount, password: '' })),
  );
  await driver.grant(ctxFor(env.integration), {
    grantId: 'g-inv',
    grantee: { email: 'carol@example.com' },
    resources: [{ type: 'table', id: tableId(db, 'app', 'orders') }],
    permission: 'read',
    recipientKey: env.recipient.publicKey,
  });
});

afterAll(async () => {
  await driver?.close();
  await env?.teardown();
  if (p !== undefined) await dropPrefixed(p, []);
});

const ours = (e: InventoryEntry): boolean =>
  e.principalId.includes(`:${p}`) ||
  (e.principalId === 'public:PUBLIC' && e.resourceId.includes(`:${encodeURIComponent(db)}`));

function sortEntries(list: InventoryEntry[]): InventoryEntry[] {
  const key = (e: InventoryEntry): string =>
    [e.principalId, e.resourceId, e.via, e.permission, (e.chain ?? []).join('>')].join('|');
  return [...list].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

async function inventory(): Promise<{
  principals: Awaited<ReturnType<PostgresDriver['discover']>>['inventory'];
}> {
  const out = await driver.discover(ctxFor(env.integration), { include: ['privileges'] });
  return { principals: out.inventory };
}

function entry(
  principalId: string,
  resourceId: string,
  permission: string,
  privileges: string[],
  via: InventoryEntry['via'],
  extra: Partial<InventoryEntry> = {},
): InventoryEntry {
  return { principalId, resourceId, permission, privileges, via, managedByAgent: false, ...extra };
}

describe('postgres access inventory', () => {
  it('lists the exact standing access of known principals, chains included', async () => {
    const inv = (await inventory()).principals;
    expect(inv).toBeDefined();
    const orders = tableId(db, 'app', 'orders');
    const items = tableId(db, 'app', 'items');
    const [alice, bob, r1, r2, r3, prot] = ['alice', 'bob', 'r1', 'r2', 'r3', 'prot'].map(n) as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const expected = [
      entry('public:PUBLIC', databaseId(db), 'connect', ['CONNECT', 'TEMPORARY'], 'public'),
      entry('public:PUBLIC', schemaId(db, 'public'), 'read', ['USAGE'], 'public'),
      entry('public:PUBLIC', orders, 'read', ['SELECT'], 'public'),
      entry(`user:${alice}`, databaseId(db), 'connect', ['CONNECT'], 'direct'),
      entry(`user:${alice}`, roleId(r1), `role:${r1}`, ['MEMBER'], 'direct'),
      entry(`user:${alice}`, roleId(r2), `role:${r2}`, ['MEMBER'], 'role', { chain: [r1, r2] }),
      entry(`user:${alice}`, roleId(r3), `role:${r3}`, ['MEMBER'], 'role', {
        chain: [r1, r2, r3],
      }),
      entry(`user:${alice}`, orders, 'read', ['SELECT'], 'role', { chain: [r1, r2, r3] }),
      entry(`role:${r1}`, roleId(r2), `role:${r2}`, ['MEMBER'], 'direct'),
      entry(`role:${r1}`, roleId(r3), `role:${r3}`, ['MEMBER'], 'role', { chain: [r2, r3] }),
      entry(`role:${r1}`, orders, 'read', ['SELECT'], 'role', { chain: [r2, r3] }),
      entry(`role:${r2}`, roleId(r3), `role:${r3}`, ['MEMBER'], 'direct'),
      entry(`role:${r2}`, orders, 'read', ['SELECT'], 'role', { chain: [r3] }),
      entry(`role:${r3}`, orders, 'read', ['SELECT'], 'direct'),
      entry(`user:${bob}`, schemaId(db, 'app'), 'read', ['USAGE'], 'direct'),
      entry(`user:${bob}`, schemaId(db, 'app'), 'read', ['SELECT'], 'default-privileges', {
        source: `default privileges of ${env.serviceAccount} on tables`,
      }),
      entry(`user:${bob}`, items, 'write', ['INSERT', 'SELECT'], 'direct'),
      entry(`user:${bob}`, roleId(prot), `role:${prot}`, ['MEMBER'], 'direct'),
      entry(`user:${bob}`, items, 'read', ['SELECT'], 'role', { chain: [prot] }),
      entry(`role:${prot}`, items, 'read', ['SELECT'], 'direct'),
    ];
    expect(sortEntries(inv!.entries.filter(ours))).toEqual(sortEntries(expected));

    const principal = (id: string) => inv!.principals.find((x) => x.id === id);
    expect(principal(`user:${alice}`)).toEqual({
      id: `user:${alice}`,
      kind: 'user',
      name: alice,
      canLogin: true,
      managedByAgent: false,
      flags: [],
    });
    expect(principal(`role:${prot}`)?.flags).toEqual(['protected']);
    expect(principal(`user:${env.serviceAccount}`)?.flags).toEqual([
      'createrole',
      'service-account',
    ]);
    expect(principal('user:postgres')?.flags).toEqual(
      expect.arrayContaining(['superuser', 'createrole', 'bypassrls', 'replication']),
    );
    expect(principal('public:PUBLIC')).toMatchObject({ kind: 'public', managedByAgent: false });
    // A superuser holds admin on every database by its attribute.
    expect(inv!.entries).toContainEqual(
      entry('user:postgres', databaseId(db), 'admin', ['SUPERUSER'], 'attribute', {
        source: 'SUPERUSER',
      }),
    );
    // The service account owns what it created: listed as ownership.
    expect(inv!.entries).toContainEqual(
      expect.objectContaining({
        principalId: `user:${env.serviceAccount}`,
        resourceId: orders,
        via: 'direct',
        source: 'owner',
        permission: 'admin',
      }),
    );
  });

  it("matches the agent's grant role and user to the grant id", async () => {
    const inv = (await inventory()).principals!;
    const grantRole = inv.principals.find((x) => x.grantId === 'g-inv');
    expect(grantRole).toMatchObject({ kind: 'role', managedByAgent: true, grantId: 'g-inv' });
    const user = inv.principals.find(
      (x) => x.kind === 'user' && x.managedByAgent && x.name.startsWith(env.prefix),
    );
    expect(user).toBeDefined();
    const orders = tableId(db, 'app', 'orders');
    expect(inv.entries).toContainEqual(
      entry(grantRole!.id, orders, 'read', ['SELECT'], 'direct', {
        managedByAgent: true,
        grantId: 'g-inv',
      }),
    );
    expect(inv.entries).toContainEqual(
      entry(user!.id, orders, 'read', ['SELECT'], 'role', {
        chain: [grantRole!.name],
        managedByAgent: true,
        grantId: 'g-inv',
      }),
    );
    expect(inv.entries).toContainEqual(
      entry(user!.id, roleId(grantRole!.name), `role:${grantRole!.name}`, ['MEMBER'], 'direct', {
        managedByAgent: true,
        grantId: 'g-inv',
      }),
    );
  });
});

describe('postgres standing cleanup', () => {
  const t = (
    principal: string,
    resourceId: string,
    permission: string,
    via: StandingTarget['via'],
    source?: string,
  ): StandingTarget => ({
    principalId: principal,
    resourceId,
    permission,
    via,
    ...(source === undefined ? {} : { source }),
  });

  it('plans exactly the statements, refuses what it must, and says absent for the rest', async () => {
    const orders = tableId(db, 'app', 'orders');
    const items = tableId(db, 'app', 'items');
    const inv = (await inventory()).principals!;
    const grantRole = inv.principals.find((x) => x.grantId === 'g-inv')!;
    const targets = [
      t(`user:${n('alice')}`, orders, 'read', 'role'),
      t(`user:${n('bob')}`, items, 'write', 'direct'),
      t('public:PUBLIC', orders, 'read', 'public'),
      t(`user:${n('bob')}`, schemaId(db, 'app'), 'read', 'default-privileges'),
      t(`user:${n('bob')}`, roleId(n('prot')), `role:${n('prot')}`, 'direct'),
      t(`user:${env.serviceAccount}`, orders, 'admin', 'direct'),
      t(`role:${n('prot')}`, items, 'read', 'direct'),
      t(`user:${n('bob')}`, items, 'read', 'role'),
      t(grantRole.id, orders, 'read', 'direct'),
      t('user:postgres', databaseId(db), 'admin', 'attribute'),
      t(`user:${n('alice')}`, items, 'read', 'direct'),
    ];
    const out = await driver.removeStanding(ctxFor(env.integration), {
      standing: targets,
    });
    expect(out.dryRun).toBe(true);
    const svc = q(env.serviceAccount);
    expect(out.standing?.map((o) => [o.status, o.actions, o.code])).toEqual([
      ['planned', [`REVOKE ${q(n('r1'))} FROM ${q(n('alice'))}`], undefined],
      ['planned', [`REVOKE INSERT, SELECT ON TABLE "app"."items" FROM ${q(n('bob'))}`], undefined],
      ['planned', ['REVOKE SELECT ON TABLE "app"."orders" FROM PUBLIC'], undefined],
      [
        'planned',
        [
          `ALTER DEFAULT PRIVILEGES FOR ROLE ${svc} IN SCHEMA "app" REVOKE SELECT ON TABLES FROM ${q(n('bob'))}`,
        ],
        undefined,
      ],
      ['planned', [`REVOKE ${q(n('prot'))} FROM ${q(n('bob'))}`], undefined],
      ['refused', [], 'E_GUARDRAIL'],
      ['refused', [], 'E_GUARDRAIL'],
      ['refused', [], 'E_GUARDRAIL'],
      ['refused', [], 'E_GUARDRAIL'],
      ['refused', [], 'E_GUARDRAIL'],
      ['absent', [], undefined],
    ]);
    // Nothing changed.
    const again = (await inventory()).principals!;
    expect(sortEntries(again.entries.filter(ours))).toEqual(sortEntries(inv.entries.filter(ours)));
  });

  it('applies nothing when one target is refused, and everything in one go otherwise', async () => {
    const orders = tableId(db, 'app', 'orders');
    const items = tableId(db, 'app', 'items');
    const allowed = [
      t(`user:${n('alice')}`, orders, 'read', 'role'),
      t(`user:${n('bob')}`, items, 'write', 'direct'),
      t('public:PUBLIC', orders, 'read', 'public'),
      t(`user:${n('bob')}`, schemaId(db, 'app'), 'read', 'default-privileges'),
    ];
    const before = (await inventory()).principals!.entries.filter(ours);
    const mixed = await driver.removeStanding(ctxFor(env.integration), {
      standing: [...allowed, t(`role:${n('prot')}`, items, 'read', 'direct')],
      apply: true,
    });
    expect(mixed.dryRun).toBe(true);
    expect(mixed.standing?.map((o) => o.status)).toEqual([
      'planned',
      'planned',
      'planned',
      'planned',
      'refused',
    ]);
    expect(sortEntries((await inventory()).principals!.entries.filter(ours))).toEqual(
      sortEntries(before),
    );

    const applied = await driver.removeStanding(ctxFor(env.integration), {
      standing: allowed,
      apply: true,
    });
    expect(applied.dryRun).toBe(false);
    expect(applied.standing?.map((o) => o.status)).toEqual([
      'removed',
      'removed',
      'removed',
      'removed',
    ]);
    const after = (await inventory()).principals!.entries.filter(ours);
    const gone = (e: InventoryEntry): boolean =>
      (e.principalId === `user:${n('alice')}` && e.resourceId !== databaseId(db)) ||
      (e.principalId === `user:${n('bob')}` && e.resourceId === items && e.via === 'direct') ||
      (e.principalId === 'public:PUBLIC' && e.resourceId === orders) ||
      (e.principalId === `user:${n('bob')}` && e.via === 'default-privileges');
    expect(sortEntries(after)).toEqual(sortEntries(before.filter((e) => !gone(e))));
    // Idempotent: the same targets again are absent.
    const rerun = await driver.removeStanding(ctxFor(env.integration), {
      standing: allowed,
      apply: true,
    });
    expect(rerun.standing?.map((o) => o.status)).toEqual(['absent', 'absent', 'absent', 'absent']);
  });

  it('refuses targets in two databases at once', async () => {
    await expect(
      driver.removeStanding(ctxFor(env.integration), {
        standing: [
          t(`user:${n('bob')}`, tableId(db, 'app', 'items'), 'write', 'direct'),
          t(`user:${n('bob')}`, tableId('other', 'app', 'items'), 'write', 'direct'),
        ],
      }),
    ).rejects.toMatchObject({ code: 'E_INVALID' });
  });

  it('written page by page to a sink (the agent spool path), the inventory and resources are the same as returned whole', async () => {
    const { sink, got } = collectingSink();
    const streamed = await driver.discover(
      { ...ctxFor(env.integration), sink },
      { include: ['privileges'] },
    );
    const whole = await driver.discover(ctxFor(env.integration), { include: ['privileges'] });
    // Streamed arrays are not returned: resources empty, no inventory.
    expect(streamed.resources).toEqual([]);
    expect(streamed.inventory).toBeUndefined();
    expect(streamed.warnings).toEqual(whole.warnings);
    expect(got.order).toContain('entries');
    // Resources first, then the inventory once, then its entries.
    expect(inSinkOrder(got.order)).toBe(true);
    const mine = (r: unknown): boolean => JSON.stringify(r).includes(encodeURIComponent(db));
    expect(got.resources.filter(mine)).toEqual(whole.resources.filter(mine));
    expect(got.principals.filter((x) => x.name.startsWith(p))).toEqual(
      whole.inventory?.principals.filter((x) => x.name.startsWith(p)),
    );
    const theirs = sortEntries(got.entries.filter(ours));
    expect(theirs.length).toBeGreaterThan(10);
    expect(theirs).toEqual(sortEntries((whole.inventory?.entries ?? []).filter(ours)));
  });
});
