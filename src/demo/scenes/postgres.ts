/**
 * Demo scene "postgres": the SQL access model on the local PostgreSQL, end to end through
 * the reference control plane and the agent process.
 *
 * 1. creates a service account (CREATEROLE, pg_signal_backend, not superuser) and a
 *    sample database it owns (as the server admin);
 * 2. checks and discovers;
 * 3. grants read on one table; opens the sealed password with the requester's key;
 * 4. logs in as the new user: a permitted SELECT, a refused INSERT and a refused table;
 * 5. revokes; the open session is ended and a new login fails (NOLOGIN);
 * 6. cleans the user up, then drops what the scene created.
 *
 * The agent reads the service account from the environment (`LATCHKEY_DEMO_PG_*`, the
 * `env` secret store): the runner passes `postgresDemoAgentEnv` to the agent process.
 * The server admin comes from `LATCHKEY_DEMO_PG_URL` (default: `LATCHKEY_TEST_PG_URL`,
 * then `postgres://postgres@127.0.0.1:5432/postgres`).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  CheckOutputSchema,
  CleanupOutputSchema,
  DiscoverOutputSchema,
  GrantOutputSchema,
  RevokeOutputSchema,
  type Integration,
} from '../../protocol/messages.js';
import { tableId } from '../../drivers/sql/resources.js';
import { check, outputOf } from './expect.js';
import type { DemoContext, DemoScene } from '../types.js';

// A suffix per run: the demo never touches objects it did not create.
const RUN = randomBytes(3).toString('hex');
// Under LATCHKEY_SECRET_: the only env prefixes the agent reads secrets from by default.
const SECRET_PREFIX = 'LATCHKEY_SECRET_DEMO_PG_';
const SERVICE_USER = `latchkey_demo_svc_${RUN}`;
const SERVICE_PASSWORD = `Demo-${randomBytes(12).toString('base64url')}`;
const DEMO_DB = `latchkey_demo_shop_${RUN}`;
const USER_PREFIX = `lkd${RUN}_`;
const GRANTEE = 'ada@example.com';

/** Environment the agent process needs for this scene (its service-account secret). */
export const postgresDemoAgentEnv: Readonly<Record<string, string>> = Object.freeze({
  [`${SECRET_PREFIX}USERNAME`]: SERVICE_USER,
  [`${SECRET_PREFIX}PASSWORD`]: SERVICE_PASSWORD,
});

/** The server admin's URL the scene uses (read when called: the runner may set it). */
export function postgresDemoAdminUrl(): string {
  return (
    process.env.LATCHKEY_DEMO_PG_URL ??
    process.env.LATCHKEY_TEST_PG_URL ??
    'postgres://postgres@127.0.0.1:5432/postgres'
  );
}

function adminUrl(database?: string): string {
  const url = new URL(postgresDemoAdminUrl());
  if (database !== undefined) url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

function qi(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A database error in words: SQLSTATE and the server's message (these carry no secret). */
function pgErr(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e.code ? `SQLSTATE ${e.code}: ${e.message ?? ''}` : (e.message ?? 'error');
}

async function withClient<T>(
  opts: pg.ClientConfig | string,
  fn: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client(typeof opts === 'string' ? { connectionString: opts } : opts);
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function dropEverything(): Promise<void> {
  await withClient(adminUrl(), async (a) => {
    await a.query(`DROP DATABASE IF EXISTS ${qi(DEMO_DB)} WITH (FORCE)`);
    const roles = await a.query<{ rolname: string }>(
      `SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname DESC`,
      [USER_PREFIX],
    );
    for (const r of [...roles.rows.map((x) => x.rolname), SERVICE_USER]) {
      await a.query(`DROP OWNED BY ${qi(r)}`).catch(() => undefined);
      await a.query(`DROP ROLE IF EXISTS ${qi(r)}`).catch(() => undefined);
    }
  });
}

export const postgresScene: DemoScene = {
  name: 'postgres',
  async run(ctx: DemoContext) {
    const url = new URL(adminUrl());
    const host = url.hostname;
    const port = url.port ? Number(url.port) : 5432;
    const integration: Integration = {
      id: `demo-postgres-${RUN}`,
      type: 'postgres',
      config: {
        host,
        port,
        database: DEMO_DB,
        sslMode: 'prefer',
        userPrefix: USER_PREFIX,
        databases: [DEMO_DB],
      },
      secret: { store: 'env', prefix: SECRET_PREFIX },
    };
    try {
      ctx.step('PostgreSQL: a service account for the agent and a sample database');
      await withClient(adminUrl(), async (a) => {
        await a.query(
          `CREATE ROLE ${qi(SERVICE_USER)} LOGIN CREATEROLE NOSUPERUSER PASSWORD '${SERVICE_PASSWORD}'`,
        );
        await a.query(`GRANT pg_signal_backend TO ${qi(SERVICE_USER)}`);
        await a.query(`CREATE DATABASE ${qi(DEMO_DB)} OWNER ${qi(SERVICE_USER)}`);
      });
      await withClient(
        { host, port, user: SERVICE_USER, password: SERVICE_PASSWORD, database: DEMO_DB },
        async (c) => {
          await c.query('CREATE SCHEMA shop');
          await c.query('CREATE TABLE shop.orders (id serial PRIMARY KEY, item text, qty int)');
          await c.query(
            `INSERT INTO shop.orders (item, qty) VALUES ('keyboard', 2), ('monitor', 1), ('cable', 5)`,
          );
          await c.query('CREATE TABLE shop.payroll (employee text, salary int)');
        },
      );
      ctx.info(`service account ${SERVICE_USER} (CREATEROLE, pg_signal_backend; not superuser)`);
      ctx.info(`database ${DEMO_DB} with shop.orders (3 rows) and shop.payroll`);

      ctx.step('check: can the agent do its job with this service account?');
      const checked = CheckOutputSchema.parse(
        outputOf(await ctx.send('check', integration, {}), 'check'),
      );
      ctx.info(
        `server ${checked.serverVersion ?? '?'}: ${checked.ok ? 'all checks pass' : 'problems'}`,
      );
      for (const c of checked.checks) ctx.info(`  ${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`);
      check(checked.ok, 'check reports problems');

      ctx.step('discover: databases, schemas, tables and roles');
      const found = DiscoverOutputSchema.parse(
        outputOf(await ctx.send('discover', integration, {}), 'discover'),
      );
      const count = (t: string) => found.resources.filter((r) => r.type === t).length;
      ctx.info(
        `${count('database')} database(s), ${count('schema')} schema(s), ${count('table')} table(s), ${count('role')} role(s)`,
      );
      const ordersId = tableId(DEMO_DB, 'shop', 'orders');
      check(
        found.resources.some((r) => r.id === ordersId),
        'shop.orders was not discovered',
      );

      ctx.step(`grant: read on shop.orders to ${GRANTEE}, credentials sealed to the requester`);
      const granted = GrantOutputSchema.parse(
        outputOf(
          await ctx.send('grant', integration, {
            grantId: `demo-${RUN}`,
            grantee: { email: GRANTEE },
            resources: [{ type: 'table', id: ordersId }],
            permission: 'read',
            expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
            recipientKey: ctx.recipientKey,
          }),
          'grant',
        ),
      );
      const creds = granted.credentials;
      const opened = creds && 'sealed' in creds ? ctx.open(creds.sealed) : {};
      check(typeof opened.password === 'string', 'no sealed password in the grant');
      ctx.info(
        `user ${granted.username}; the password arrived sealed and opened with the requester's key (${(opened.password ?? '').length} characters)`,
      );
      ctx.info(`login valid until ${granted.expiresAt ?? '(no expiry)'}`);

      ctx.step(`log in as ${granted.username}`);
      // Proves the issued password only where the server checks passwords: the embedded
      // server the demo starts does (LATCHKEY_DEMO_PG_CHECKS_PASSWORDS=1); a local server
      // that trusts 127.0.0.1 lets any password in, and the demo says so.
      try {
        await withClient(
          {
            host,
            port,
            user: granted.username,
            password: `not-${opened.password ?? ''}`,
            database: DEMO_DB,
          },
          () => Promise.resolve(),
        );
        if (process.env.LATCHKEY_DEMO_PG_CHECKS_PASSWORDS === '1') {
          throw new Error('unexpected: a wrong password logged in');
        }
        ctx.info(
          'a wrong password logs in too: this server trusts 127.0.0.1, so logins prove nothing here',
        );
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('unexpected')) throw err;
        ctx.info(`with a wrong password → refused: ${pgErr(err)}`);
      }
      const session = new pg.Client({
        host,
        port,
        user: granted.username,
        password: opened.password ?? '',
        database: DEMO_DB,
      });
      const sessionErrors: unknown[] = [];
      session.on('error', (e) => sessionErrors.push(e));
      await session.connect();
      try {
        const rows = await session.query('SELECT item, qty FROM shop.orders ORDER BY id');
        ctx.info(`SELECT … FROM shop.orders → ${JSON.stringify(rows.rows)}`);
        try {
          await session.query(`INSERT INTO shop.orders (item, qty) VALUES ('free lunch', 1)`);
          throw new Error('unexpected: INSERT was allowed');
        } catch (err) {
          if (err instanceof Error && err.message.startsWith('unexpected')) throw err;
          ctx.info(`INSERT INTO shop.orders → refused: ${pgErr(err)}`);
        }
        try {
          await session.query('SELECT * FROM shop.payroll');
          throw new Error('unexpected: payroll was readable');
        } catch (err) {
          if (err instanceof Error && err.message.startsWith('unexpected')) throw err;
          ctx.info(`SELECT … FROM shop.payroll → refused: ${pgErr(err)}`);
        }

        ctx.step('revoke: block the login, end open sessions, drop the grant role');
        const revoked = RevokeOutputSchema.parse(
          outputOf(
            await ctx.send('revoke', integration, {
              grantId: `demo-${RUN}`,
              grantee: { email: GRANTEE },
              resources: [{ type: 'table', id: ordersId }],
              permission: 'read',
            }),
            'revoke',
          ),
        );
        for (const p of revoked.phases) {
          ctx.info(`${p.phase}: ${p.status}${p.detail ? ` (${p.detail})` : ''}`);
        }
        try {
          await session.query('SELECT 1');
          throw new Error('unexpected: the open session survived the revoke');
        } catch (err) {
          if (err instanceof Error && err.message.startsWith('unexpected')) throw err;
          ctx.info(`the open session is gone: ${pgErr(err)}`);
        }
      } finally {
        await session.end().catch(() => undefined);
      }
      try {
        await withClient(
          {
            host,
            port,
            user: granted.username,
            password: opened.password ?? '',
            database: DEMO_DB,
          },
          () => Promise.resolve(),
        );
        throw new Error('unexpected: a new login still works');
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('unexpected')) throw err;
        ctx.info(`a new login fails: ${pgErr(err)}`);
      }

      ctx.step('cleanup: drop the user (ours, no grant left); the service account is refused');
      const cleaned = CleanupOutputSchema.parse(
        outputOf(
          await ctx.send('cleanup', integration, { usernames: [granted.username, SERVICE_USER] }),
          'cleanup',
        ),
      );
      ctx.info(`dropped: ${cleaned.dropped.join(', ') || '(none)'}`);
      for (const k of cleaned.kept) ctx.info(`kept ${k.username}: ${k.code} ${k.reason}`);
      check(cleaned.dropped.includes(granted.username), 'the user was not dropped');
    } finally {
      await dropEverything();
      ctx.info(`removed ${DEMO_DB}, ${SERVICE_USER} and every ${USER_PREFIX}* role`);
    }
  },
};
