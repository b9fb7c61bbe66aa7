/**
 * Demo scene "mysql": the SQL access model on the local MariaDB, end to end through the
 * reference control plane and the agent process.
 *
 * 1. creates a sample database and a service account for the agent (as the server admin);
 * 2. discovers databases, tables and roles;
 * 3. grants read on one table; opens the sealed password with the requester's key;
 * 4. logs in as the new user: a permitted SELECT, a refused INSERT and a refused table;
 * 5. revokes; the open session is ended and a new login fails (account locked);
 * 6. cleans the user up, then drops what the scene created.
 *
 * The agent reads the service account from the environment (`LATCHKEY_DEMO_MYSQL_*`,
 * the `env` secret store): the runner passes `mysqlDemoAgentEnv` to the agent process.
 * The server admin comes from `LATCHKEY_DEMO_MYSQL_URL` (default: `LATCHKEY_TEST_MYSQL_URL`,
 * then `mysql://root@127.0.0.1:3306`).
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import {
  CleanupOutputSchema,
  DiscoverOutputSchema,
  GrantOutputSchema,
  RevokeOutputSchema,
  type Integration,
} from '../../protocol/messages.js';
import { check, outputOf } from './expect.js';
import type { DemoContext, DemoScene } from '../types.js';

// A suffix per run: the demo never touches objects it did not create (tests may share the server).
const RUN = randomBytes(3).toString('hex');
// Under LATCHKEY_SECRET_: the only env prefixes the agent reads secrets from by default.
const SECRET_PREFIX = 'LATCHKEY_SECRET_DEMO_MYSQL_';
const SERVICE_USER = `latchkey_demo_svc_${RUN}`;
const SERVICE_PASSWORD = `Demo-${randomBytes(12).toString('base64url')}`;
const DEMO_DB = `latchkey_demo_shop_${RUN}`;
const META_DB = `latchkey_demo_meta_${RUN}`;
const USER_PREFIX = `lkd${RUN}_`;

/** Environment the agent process needs for this scene (its service-account secret). */
export const mysqlDemoAgentEnv: Readonly<Record<string, string>> = Object.freeze({
  [`${SECRET_PREFIX}USERNAME`]: SERVICE_USER,
  [`${SECRET_PREFIX}PASSWORD`]: SERVICE_PASSWORD,
});

/** The server admin's URL the scene uses. */
export function mysqlDemoAdminUrl(): string {
  return (
    process.env.LATCHKEY_DEMO_MYSQL_URL ??
    process.env.LATCHKEY_TEST_MYSQL_URL ??
    'mysql://root@127.0.0.1:3306'
  );
}

function adminUrl(): URL {
  return new URL(mysqlDemoAdminUrl());
}

function qi(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** A database error in words: the server's own message (these carry no secret), or the client's. */
function errnoOf(err: unknown): string {
  const e = err as { code?: string; errno?: number; sqlMessage?: string; message?: string };
  if (e.errno !== undefined && e.sqlMessage !== undefined)
    return `MySQL error ${e.errno}: ${e.sqlMessage}`;
  return e.code ?? e.message ?? 'error';
}

export const mysqlScene: DemoScene = {
  name: 'mysql',
  async run(ctx: DemoContext) {
    const url = adminUrl();
    const host = url.hostname;
    const port = url.port ? Number(url.port) : 3306;
    const admin = await mysql.createConnection({
      host,
      port,
      user: decodeURIComponent(url.username || 'root'),
      password: decodeURIComponent(url.password),
    });
    const svc = `${qi(SERVICE_USER)}@${qi('%')}`;
    const integration: Integration = {
      id: 'demo-mariadb',
      type: 'mysql',
      config: { host, port, sslMode: 'prefer', userPrefix: USER_PREFIX, metaDatabase: META_DB },
      secret: { store: 'env', prefix: SECRET_PREFIX },
    };
    try {
      ctx.step('MariaDB: a sample database and a service account for the agent');
      await admin.query(`DROP DATABASE IF EXISTS ${qi(DEMO_DB)}`);
      await admin.query(`CREATE DATABASE ${qi(DEMO_DB)}`);
      await admin.query(
        `CREATE TABLE ${qi(DEMO_DB)}.orders (id INT PRIMARY KEY, item VARCHAR(40), total DECIMAL(8,2))`,
      );
      await admin.query(
        `CREATE TABLE ${qi(DEMO_DB)}.customers (id INT PRIMARY KEY, email VARCHAR(80))`,
      );
      await admin.query(
        `INSERT INTO ${qi(DEMO_DB)}.orders VALUES (1, 'tea', 4.50), (2, 'scones', 7.25)`,
      );
      await admin.query(`INSERT INTO ${qi(DEMO_DB)}.customers VALUES (1, 'someone@example.com')`);
      await admin.query(`DROP USER IF EXISTS ${svc}`);
      await admin.query(`CREATE USER ${svc} IDENTIFIED BY ?`, [SERVICE_PASSWORD]);
      await admin.query(
        `GRANT CREATE USER, SHOW DATABASES, PROCESS, CONNECTION ADMIN, SELECT, INSERT, UPDATE, DELETE, SHOW VIEW ON *.* TO ${svc} WITH GRANT OPTION`,
      );
      await admin.query(`GRANT SELECT, UPDATE ON mysql.* TO ${svc}`);
      await admin.query(`GRANT CREATE, EVENT ON ${qi(META_DB)}.* TO ${svc}`);
      ctx.info(
        `database ${DEMO_DB} (orders, customers); service account ${SERVICE_USER} (not root)`,
      );

      ctx.step('check: can the agent do its job with this service account?');
      const checked = outputOf(await ctx.send('check', integration, {}), 'check') as {
        ok: boolean;
        serverVersion?: string;
        checks: { name: string; ok: boolean; detail: string }[];
      };
      ctx.info(
        `server ${checked.serverVersion ?? '?'}: ${checked.ok ? 'all checks pass' : 'some checks fail'}`,
      );
      for (const c of checked.checks.filter((x) => !x.ok)) ctx.info(`  ✗ ${c.name}: ${c.detail}`);

      ctx.step('discover: databases, tables and roles');
      const discovered = DiscoverOutputSchema.parse(
        outputOf(await ctx.send('discover', integration, {}), 'discover'),
      );
      const tables = discovered.resources.filter(
        (r) => r.type === 'table' && r.parentId === `database:${DEMO_DB}`,
      );
      ctx.info(
        `${discovered.resources.length} resources; in ${DEMO_DB}: ${tables.map((t) => t.name).join(', ')}`,
      );
      const orders = tables.find((t) => t.name === 'orders');
      check(orders !== undefined, 'orders table discovered');

      ctx.step('grant: read on orders to ann@example.com, credentials sealed to the requester');
      const grantee = { email: 'ann@example.com' };
      const grantId = `demo-${randomBytes(3).toString('hex')}`;
      const granted = GrantOutputSchema.parse(
        outputOf(
          await ctx.send('grant', integration, {
            grantId,
            grantee,
            resources: [{ type: 'table', id: orders?.id }],
            permission: 'read',
            recipientKey: ctx.recipientKey,
          }),
          'grant',
        ),
      );
      const creds = granted.credentials;
      check(creds !== undefined && 'sealed' in creds, 'sealed credentials');
      const opened = creds && 'sealed' in creds ? ctx.open(creds.sealed) : {};
      const password = opened.password ?? '';
      ctx.info(
        `user ${granted.username}; password opened with the requester's key (${password.length} characters)`,
      );

      ctx.step(`log in as ${granted.username}`);
      const user = await mysql.createConnection({ host, port, user: granted.username, password });
      const [rows] = await user.query(
        `SELECT id, item, total FROM ${qi(DEMO_DB)}.orders ORDER BY id`,
      );
      ctx.info(`SELECT … FROM orders → ${JSON.stringify(rows)}`);
      try {
        await user.query(`INSERT INTO ${qi(DEMO_DB)}.orders VALUES (3, 'cake', 3.00)`);
        throw new Error('unexpected: INSERT was allowed');
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('unexpected')) throw err;
        ctx.info(`INSERT INTO orders → refused: ${errnoOf(err)}`);
      }
      try {
        await user.query(`SELECT * FROM ${qi(DEMO_DB)}.customers`);
        throw new Error('unexpected: customers was readable');
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('unexpected')) throw err;
        ctx.info(`SELECT … FROM customers → refused: ${errnoOf(err)}`);
      }

      ctx.step('revoke: lock the login, end open sessions, drop the grant role');
      const revoked = RevokeOutputSchema.parse(
        outputOf(
          await ctx.send('revoke', integration, {
            grantId,
            grantee,
            resources: [],
            permission: 'read',
          }),
          'revoke',
        ),
      );
      for (const p of revoked.phases)
        ctx.info(`${p.phase}: ${p.status}${p.detail ? ` (${p.detail})` : ''}`);
      try {
        await user.query('SELECT 1');
        throw new Error('unexpected: the open session survived the revoke');
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('unexpected')) throw err;
        ctx.info(`the open session is gone: ${errnoOf(err)}`);
      } finally {
        user.destroy();
      }
      try {
        const again = await mysql.createConnection({
          host,
          port,
          user: granted.username,
          password,
        });
        await again.end();
        throw new Error('unexpected: login still works after revoke');
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('unexpected')) throw err;
        ctx.info(`a new login fails: ${errnoOf(err)}`);
      }

      ctx.step('cleanup: drop the user (ours, no grant left)');
      const cleaned = CleanupOutputSchema.parse(
        outputOf(
          await ctx.send('cleanup', integration, { usernames: [granted.username, 'root'] }),
          'cleanup',
        ),
      );
      ctx.info(`dropped: ${cleaned.dropped.join(', ') || '(none)'}`);
      for (const k of cleaned.kept) ctx.info(`kept ${k.username}: ${k.code} ${k.reason}`);
      check(cleaned.dropped.includes(granted.username), 'user dropped');
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${qi(DEMO_DB)}`).catch(() => undefined);
      await admin.query(`DROP DATABASE IF EXISTS ${qi(META_DB)}`).catch(() => undefined);
      const [left] = await admin
        .query('SELECT User AS u, Host AS h FROM mysql.global_priv WHERE User LIKE ?', [
          `${USER_PREFIX.replace(/_/g, '\\_')}%`,
        ])
        .catch(() => [[]]);
      for (const r of left as { u: string; h: string }[]) {
        const stmt =
          r.h === ''
            ? `DROP ROLE IF EXISTS ${qi(r.u)}`
            : `DROP USER IF EXISTS ${qi(r.u)}@${qi(r.h)}`;
        await admin.query(stmt).catch(() => undefined);
      }
      await admin.query(`DROP USER IF EXISTS ${svc}`).catch(() => undefined);
      await admin.end();
    }
  },
};
