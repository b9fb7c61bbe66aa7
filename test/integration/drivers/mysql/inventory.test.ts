/**
 * Issue 13, MariaDB: the access inventory (`discover` with `include: ["privileges"]`) and
 * the standing cleanup (`cleanup` with `standing`), on the real server. The test makes
 * known standing access (direct database and table grants, a wildcard database pattern,
 * nested roles with a default role, an anonymous account, PUBLIC, a locked account with a
 * global privilege, a protected account) and a Latchkey grant, and asserts the exact
 * inventory of its own principals, chains included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import type { Driver } from '../../../../src/drivers/driver.js';
import type {
  CleanupOutput,
  Inventory,
  InventoryEntry,
  StandingTarget,
} from '../../../../src/protocol/messages.js';
import { databaseId, tableId } from '../../../../src/drivers/sql/resources.js';
import { collectingSink, inSinkOrder } from '../../../helpers/discover-sink.js';
import {
  createMysqlFixture,
  mysqlEndpoint,
  qi,
  type MysqlFixture,
} from '../../../helpers/mysql.js';

let f: MysqlFixture;
let driver: Driver;
let svcConn: mysql.Connection;
let n: (tag: string) => string;
let anonHost: string;
let grantUser: string;
const grantId = (): string => `g-inv-${f.suffix}`;

beforeAll(async () => {
  f = await createMysqlFixture();
  driver = f.driver();
  n = (tag) => `lkt_${f.suffix}_${tag}`;
  anonHost = `lkt-${f.suffix}.invalid`;
  const e = mysqlEndpoint();
  // Roles made by the service account (it then holds ADMIN OPTION on them, as a customer's
  // administrator would, and may revoke them).
  svcConn = await mysql.createConnection({
    host: e.host,
    port: e.port,
    user: f.serviceUser,
    password: f.servicePassword,
  });
  const a = f.admin;
  const db = qi(f.database);
  const exactDb = qi(f.database.replace(/_/g, '\\_'));
  await svcConn.query(`CREATE ROLE ${qi(n('r1'))}`);
  await svcConn.query(`CREATE ROLE ${qi(n('r2'))}`);
  await svcConn.query(`GRANT ${qi(n('r2'))} TO ${qi(n('r1'))}`);
  await a.query(`GRANT SHOW VIEW ON ${db}.* TO ${qi(n('r1'))}`); // unescaped: a pattern
  await a.query(`GRANT UPDATE ON ${db}.customers TO ${qi(n('r2'))}`);
  await a.query(`CREATE USER ${qi(n('alice'))}@'%' IDENTIFIED BY 'Alice-pw-123'`);
  await a.query(`GRANT SELECT ON ${exactDb}.* TO ${qi(n('alice'))}@'%'`);
  await a.query(`GRANT INSERT ON ${db}.orders TO ${qi(n('alice'))}@'%'`);
  await svcConn.query(`GRANT ${qi(n('r1'))} TO ${qi(n('alice'))}@'%'`);
  await a.query(`SET DEFAULT ROLE ${qi(n('r1'))} FOR ${qi(n('alice'))}@'%'`);
  await a.query(`CREATE USER ${qi(n('bob'))}@'%' ACCOUNT LOCK`);
  await a.query(`GRANT PROCESS ON *.* TO ${qi(n('bob'))}@'%'`);
  await a.query(`CREATE USER ${qi(n('carol'))}@'%'`);
  await a.query(`GRANT SELECT ON ${db}.customers TO ${qi(n('carol'))}@'%'`);
  await a.query(`CREATE USER ''@${qi(anonHost)}`);
  await a.query(`GRANT SELECT ON ${db}.orders TO ''@${qi(anonHost)}`);
  await a.query(`GRANT SELECT ON ${db}.customers TO PUBLIC`);
  const out = await driver.grant(f.ctx(), {
    grantId: grantId(),
    grantee: { email: `inv.${f.suffix}@example.com` },
    resources: [{ type: 'table', id: tableId(f.database, null, 'orders') }],
    permission: 'read',
  });
  grantUser = out.username;
});

afterAll(async () => {
  const a = f.admin;
  await a.query(`REVOKE SELECT ON ${qi(f.database)}.customers FROM PUBLIC`).catch(() => undefined);
  await a.query(`DROP USER IF EXISTS ''@${qi(anonHost)}`);
  await a.query(`DROP ROLE IF EXISTS ${qi(n('r1'))}`);
  await a.query(`DROP ROLE IF EXISTS ${qi(n('r2'))}`);
  await svcConn.end();
  await f.teardown();
});

function integration() {
  return f.integration({ protectedAccounts: [n('carol')] });
}

async function inventory(): Promise<Inventory> {
  const out = await driver.discover(f.ctx(integration()), { include: ['privileges'] });
  if (!out.inventory) throw new Error('no inventory');
  return out.inventory;
}

/** Our principals only (the server is shared), and PUBLIC's entries on our database. */
function ours(inv: Inventory): Inventory {
  const mine = (id: string): boolean =>
    (id.includes(f.suffix) && !id.includes(f.serviceUser)) || id.includes(f.prefix);
  const onOurDb = (e: InventoryEntry): boolean =>
    e.resourceId === databaseId(f.database) || e.resourceId.startsWith(`table:${f.database}/`);
  return {
    principals: inv.principals.filter((p) => mine(p.id)),
    entries: inv.entries.filter(
      (e) => mine(e.principalId) || (e.principalId === 'public:PUBLIC' && onOurDb(e)),
    ),
  };
}

describe('access inventory', () => {
  it('is absent unless asked for', async () => {
    const out = await driver.discover(f.ctx(integration()));
    expect(out.inventory).toBeUndefined();
  });

  it('lists principals and their privileges with the path, chain, flags and grant ids', async () => {
    const inv = await inventory();
    const db = databaseId(f.database);
    const orders = tableId(f.database, null, 'orders');
    const customers = tableId(f.database, null, 'customers');
    const g = inv.principals.find((p) => p.grantId === grantId());
    expect(g).toBeDefined();
    const grantRole = g?.name ?? '';
    const defaultRole = inv.principals.find(
      (p) => p.kind === 'role' && p.name.startsWith(`${f.prefix}d_`),
    )?.name;
    expect(defaultRole).toBeDefined();
    const dRole = defaultRole ?? '';
    const base = { managedByAgent: false };
    const readOrders = {
      resourceId: orders,
      permission: 'read',
      privileges: ['SELECT', 'SHOW VIEW'],
    };
    const anon = `public:@${anonHost}`;
    const alice = `user:${n('alice')}@%`;
    const mine = ours(inv);
    expect(mine.principals).toEqual([
      {
        id: anon,
        kind: 'public',
        name: `@${anonHost}`,
        canLogin: true,
        flags: ['anonymous'],
        ...base,
      },
      { id: `role:${dRole}`, kind: 'role', name: dRole, flags: [], managedByAgent: true },
      {
        id: `role:${grantRole}`,
        kind: 'role',
        name: grantRole,
        flags: [],
        managedByAgent: true,
        grantId: grantId(),
      },
      { id: `role:${n('r1')}`, kind: 'role', name: n('r1'), flags: [], ...base },
      { id: `role:${n('r2')}`, kind: 'role', name: n('r2'), flags: [], ...base },
      {
        id: `user:${grantUser}@%`,
        kind: 'user',
        name: `${grantUser}@%`,
        canLogin: true,
        flags: [],
        managedByAgent: true,
      },
      { id: alice, kind: 'user', name: `${n('alice')}@%`, canLogin: true, flags: [], ...base },
      {
        id: `user:${n('bob')}@%`,
        kind: 'user',
        name: `${n('bob')}@%`,
        canLogin: false,
        flags: ['global-privileges', 'process'],
        ...base,
      },
      {
        id: `user:${n('carol')}@%`,
        kind: 'user',
        name: `${n('carol')}@%`,
        canLogin: true,
        flags: ['protected'],
        ...base,
      },
    ]);
    const pattern = `database pattern ${f.database}`;
    expect(mine.entries).toEqual([
      {
        principalId: anon,
        resourceId: orders,
        permission: 'read',
        privileges: ['SELECT'],
        via: 'public',
        ...base,
      },
      {
        principalId: 'public:PUBLIC',
        resourceId: customers,
        permission: 'read',
        privileges: ['SELECT'],
        via: 'public',
        ...base,
      },
      {
        principalId: `role:${dRole}`,
        ...readOrders,
        via: 'role',
        chain: [grantRole],
        managedByAgent: true,
        grantId: grantId(),
      },
      {
        principalId: `role:${grantRole}`,
        ...readOrders,
        via: 'direct',
        managedByAgent: true,
        grantId: grantId(),
      },
      {
        principalId: `role:${n('r1')}`,
        resourceId: db,
        permission: 'connect',
        privileges: ['SHOW VIEW'],
        via: 'direct',
        source: pattern,
        ...base,
      },
      {
        principalId: `role:${n('r1')}`,
        resourceId: customers,
        permission: 'write',
        privileges: ['UPDATE'],
        via: 'role',
        chain: [n('r2')],
        ...base,
      },
      {
        principalId: `role:${n('r2')}`,
        resourceId: customers,
        permission: 'write',
        privileges: ['UPDATE'],
        via: 'direct',
        ...base,
      },
      {
        principalId: `user:${grantUser}@%`,
        ...readOrders,
        via: 'role',
        chain: [dRole, grantRole],
        managedByAgent: true,
        grantId: grantId(),
      },
      {
        principalId: alice,
        resourceId: db,
        permission: 'read',
        privileges: ['SELECT'],
        via: 'direct',
        ...base,
      },
      {
        principalId: alice,
        resourceId: db,
        permission: 'connect',
        privileges: ['SHOW VIEW'],
        via: 'role',
        chain: [n('r1')],
        source: pattern,
        ...base,
      },
      {
        principalId: alice,
        resourceId: customers,
        permission: 'write',
        privileges: ['UPDATE'],
        via: 'role',
        chain: [n('r1'), n('r2')],
        ...base,
      },
      {
        principalId: alice,
        resourceId: orders,
        permission: 'write',
        privileges: ['INSERT'],
        via: 'direct',
        ...base,
      },
      {
        principalId: `user:${n('bob')}@%`,
        resourceId: '*',
        permission: 'admin',
        privileges: ['PROCESS'],
        via: 'direct',
        ...base,
      },
      {
        principalId: `user:${n('carol')}@%`,
        resourceId: customers,
        permission: 'read',
        privileges: ['SELECT'],
        via: 'direct',
        ...base,
      },
    ]);
    const svc = inv.principals.find((p) => p.id === `user:${f.serviceUser}@%`);
    expect(svc?.flags).toEqual(
      expect.arrayContaining(['service-account', 'create-user', 'grant-option', 'process']),
    );
    expect(inv.principals.find((p) => p.id === 'user:root@localhost')?.flags).toEqual(
      expect.arrayContaining(['protected', 'superuser']),
    );
  });

  it('written to a sink (the agent spool path), resources and inventory are those returned whole', async () => {
    const { sink, got } = collectingSink();
    const streamed = await driver.discover(
      { ...f.ctx(integration()), sink },
      { include: ['privileges'] },
    );
    const whole = await driver.discover(f.ctx(integration()), { include: ['privileges'] });
    // Streamed arrays are not returned: resources empty, no inventory.
    expect(streamed.resources).toEqual([]);
    expect(streamed.inventory).toBeUndefined();
    expect(streamed.permissions).toEqual(whole.permissions);
    expect(inSinkOrder(got.order)).toBe(true);
    const mine = (r: unknown): boolean => JSON.stringify(r).includes(f.database);
    expect(got.resources.filter(mine).length).toBeGreaterThan(1);
    expect(got.resources.filter(mine)).toEqual(whole.resources.filter(mine));
    const streamedInv = ours({ principals: got.principals, entries: got.entries });
    expect(streamedInv.entries.length).toBeGreaterThan(5);
    expect(streamedInv).toEqual(ours(whole.inventory ?? { principals: [], entries: [] }));
  });
});

describe('standing cleanup', () => {
  const cleanup = (standing: StandingTarget[], apply?: boolean): Promise<CleanupOutput> => {
    if (!driver.removeStanding) throw new Error('no removeStanding');
    return driver.removeStanding(f.ctx(integration()), {
      standing,
      ...(apply === undefined ? {} : { apply }),
    });
  };
  const grantsOf = async (account: string): Promise<string[]> => {
    const [rows] = await f.admin.query(`SHOW GRANTS FOR ${account}`);
    // Without the password hash MariaDB prints after `IDENTIFIED BY PASSWORD`, and with
    // backticks where a server in ANSI_QUOTES mode (project mariadb-modes) prints `"`.
    return (rows as Record<string, string>[]).map((r) =>
      (Object.values(r)[0] ?? '').replace(/ IDENTIFIED BY PASSWORD '[^']*'/, '').replace(/"/g, '`'),
    );
  };

  it('a dry run says exactly which statements it would run, and changes nothing', async () => {
    const alice = `user:${n('alice')}@%`;
    const before = await grantsOf(`${qi(n('alice'))}@'%'`);
    const direct: StandingTarget = {
      principalId: alice,
      resourceId: databaseId(f.database),
      permission: 'read',
      via: 'direct',
    };
    const viaRole: StandingTarget = {
      principalId: alice,
      resourceId: tableId(f.database, null, 'customers'),
      permission: 'write',
      via: 'role',
    };
    const out = await cleanup([direct, viaRole]);
    expect(out.dryRun).toBe(true);
    expect(out.standing).toEqual([
      {
        target: direct,
        status: 'planned',
        actions: [
          `REVOKE SELECT ON \`${f.database.replace(/_/g, '\\_')}\`.* FROM \`${n('alice')}\`@\`%\``,
        ],
      },
      {
        target: viaRole,
        status: 'planned',
        actions: [
          `REVOKE \`${n('r1')}\` FROM \`${n('alice')}\`@\`%\``,
          `SET DEFAULT ROLE NONE FOR \`${n('alice')}\`@\`%\``,
        ],
        reason: `everything role ${n('r1')} brings is removed from ${n('alice')}`,
      },
    ]);
    expect(await grantsOf(`${qi(n('alice'))}@'%'`)).toEqual(before);
  });

  it('refuses the service account, protected and built-in accounts, Latchkey objects and its metadata database; applies nothing then', async () => {
    await f.admin.query(`GRANT SELECT ON ${qi(f.metaDatabase)}.* TO ${qi(n('bob'))}@'%'`);
    const targets: StandingTarget[] = [
      {
        principalId: `user:${f.serviceUser}@%`,
        resourceId: '*',
        permission: 'admin',
        via: 'direct',
      },
      {
        principalId: `user:${n('carol')}@%`,
        resourceId: tableId(f.database, null, 'customers'),
        permission: 'read',
        via: 'direct',
      },
      { principalId: 'user:root@localhost', resourceId: '*', permission: 'admin', via: 'direct' },
      {
        principalId: `user:${grantUser}@%`,
        resourceId: tableId(f.database, null, 'orders'),
        permission: 'read',
        via: 'role',
      },
      {
        principalId: `user:${n('bob')}@%`,
        resourceId: databaseId(f.metaDatabase),
        permission: 'read',
        via: 'direct',
      },
      { principalId: `user:${n('bob')}@%`, resourceId: '*', permission: 'admin', via: 'direct' },
    ];
    const out = await cleanup(targets, true);
    expect(out.dryRun).toBe(true);
    expect(out.standing?.map((s) => [s.status, s.code])).toEqual([
      ['refused', 'E_GUARDRAIL'],
      ['refused', 'E_GUARDRAIL'],
      ['refused', 'E_GUARDRAIL'],
      ['refused', 'E_NOT_MANAGED'],
      ['refused', 'E_GUARDRAIL'],
      ['planned', undefined],
    ]);
    expect(await grantsOf(`${qi(n('bob'))}@'%'`)).toContain(
      `GRANT PROCESS ON *.* TO \`${n('bob')}\`@\`%\``,
    );
    await f.admin.query(`REVOKE SELECT ON ${qi(f.metaDatabase)}.* FROM ${qi(n('bob'))}@'%'`);
  });

  it('applies: direct, anonymous, PUBLIC and role paths are gone; a re-run finds them absent', async () => {
    const alice = `user:${n('alice')}@%`;
    const customers = tableId(f.database, null, 'customers');
    const targets: StandingTarget[] = [
      {
        principalId: alice,
        resourceId: tableId(f.database, null, 'orders'),
        permission: 'write',
        via: 'direct',
      },
      { principalId: alice, resourceId: customers, permission: 'write', via: 'role' },
      {
        principalId: `public:@${anonHost}`,
        resourceId: tableId(f.database, null, 'orders'),
        permission: 'read',
        via: 'public',
      },
      { principalId: 'public:PUBLIC', resourceId: customers, permission: 'read', via: 'public' },
    ];
    const out = await cleanup(targets, true);
    expect(out.dryRun).toBe(false);
    expect(out.standing?.map((s) => s.status)).toEqual([
      'removed',
      'removed',
      'removed',
      'removed',
    ]);
    expect(out.standing?.[2]?.actions).toEqual([
      `REVOKE SELECT ON \`${f.database}\`.\`orders\` FROM \`\`@\`${anonHost}\``,
    ]);
    expect(out.standing?.[3]?.actions).toEqual([
      `REVOKE SELECT ON \`${f.database}\`.\`customers\` FROM PUBLIC`,
    ]);
    const mine = ours(await inventory());
    const left = mine.entries
      .filter((e) => e.principalId === alice || e.principalId.startsWith('public:'))
      .map((e) => [e.principalId, e.resourceId, e.via]);
    expect(left).toEqual([[alice, databaseId(f.database), 'direct']]);
    expect(await grantsOf(`${qi(n('alice'))}@'%'`)).toEqual([
      `GRANT USAGE ON *.* TO \`${n('alice')}\`@\`%\``,
      `GRANT SELECT ON \`${f.database.replace(/_/g, '\\_')}\`.* TO \`${n('alice')}\`@\`%\``,
    ]);
    const again = await cleanup(targets, true);
    expect(again.standing?.map((s) => s.status)).toEqual(['absent', 'absent', 'absent', 'absent']);
  });
});
