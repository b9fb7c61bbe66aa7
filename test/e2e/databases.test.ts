/**
 * The built agent (`node dist/src/main.js run`) as a child process, connected over a
 * loopback WebSocket to the reference control plane started here, against the REAL
 * PostgreSQL and the REAL MariaDB.
 *
 * Each engine gets its own database, service account (not superuser / not root; its
 * secret reaches the agent through the `env` secret store) and user prefix, all with a
 * random suffix and dropped in afterAll. For each engine: a signed `check`; `discover`
 * lists the sample table; `grant` read on one table, sealed to the test's recipient key,
 * then a real login as the grantee (SELECT works, INSERT refused); the same grant command
 * delivered twice more (while running and after it was acknowledged) gives one result
 * and one grant role; `revoke` ends the open session and refuses a new login. Finally
 * SIGTERM: exit 0 with every command answered, and nothing secret in the agent's logs.
 *
 * Tests in this file run in order and share the one agent process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import type { RowDataPacket } from 'mysql2/promise';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevControlPlane, type DevControlPlane } from '../../src/devcp/server.js';
import { tableId } from '../../src/drivers/sql/resources.js';
import {
  CheckOutputSchema,
  DiscoverOutputSchema,
  GrantOutputSchema,
  RevokeOutputSchema,
  generateRecipientKeyPair,
  generateSigningKeyPair,
  open,
  parsePrivateKey,
  signEnvelope,
  type CommandKind,
  type Integration,
  type RecipientKeyPair,
  type Result,
  type SigningKeyPair,
} from '../../src/protocol/index.js';
import { createMysqlFixture, mysqlLogin, qi, type MysqlFixture } from '../helpers/mysql.js';
import { createPgTestEnv, type PgTestEnv } from '../helpers/pg.js';
import { baseEnv, ensureBuilt, exited, MAIN, ROOT } from './build.js';

const WAIT_MS = 30_000;

/** A login as a granted user, over its own connection. */
interface Session {
  /** Rows of the granted table. */
  select(): Promise<number>;
  insert(): Promise<void>;
  ping(): Promise<void>;
  end(): Promise<void>;
}

/** What differs between the engines. */
interface Engine {
  name: 'postgres' | 'mysql';
  integration: Integration;
  /** The service account's secret, for the agent's environment (`env` store). */
  secretEnv: Record<string, string>;
  /** Id of the table the grant is on, as discover reports it. */
  sampleTableId: string;
  login(user: string, password: string): Promise<Session>;
  /** True when `password` is the user's password (PostgreSQL runs with trust auth). */
  passwordIsSet(user: string, password: string): Promise<boolean>;
  /** Grant roles (`<prefix>g_*`) in the database. */
  grantRoles(): Promise<string[]>;
  teardown(): Promise<void>;
}

async function postgresEngine(): Promise<Engine> {
  const env: PgTestEnv = await createPgTestEnv({ databases: 1 });
  const db = env.databases[0] ?? '';
  await env.asService(db, async (c) => {
    await c.query('CREATE SCHEMA shop');
    await c.query('CREATE TABLE shop.orders (id int PRIMARY KEY, item text)');
    await c.query(`INSERT INTO shop.orders VALUES (1, 'tea'), (2, 'scones'), (3, 'jam')`);
    await c.query('CREATE TABLE shop.payroll (employee text, salary int)');
  });
  const secretRef = env.integration.secret;
  if (secretRef?.store !== 'env') throw new Error('the pg test env uses the env secret store');
  return {
    name: 'postgres',
    integration: env.integration,
    secretEnv: {
      [`${secretRef.prefix}USERNAME`]: env.serviceAccount,
      // trust authentication ignores it; the env store wants it set
      [`${secretRef.prefix}PASSWORD`]: `Svc-${randomBytes(12).toString('hex')}`,
    },
    sampleTableId: tableId(db, 'shop', 'orders'),
    async login(user, password) {
      const c = await env.connectAs(user, db, password);
      return {
        async select() {
          return (await c.query('SELECT id FROM shop.orders')).rowCount ?? 0;
        },
        async insert() {
          await c.query(`INSERT INTO shop.orders VALUES (99, 'free lunch')`);
        },
        async ping() {
          await c.query('SELECT 1');
        },
        end: () => c.end().catch(() => undefined),
      };
    },
    passwordIsSet: (user, password) => env.passwordMatches(user, password),
    grantRoles: () =>
      env.asAdmin(undefined, async (a) =>
        (
          await a.query<{ rolname: string }>(
            'SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname',
            [`${env.prefix}g_`],
          )
        ).rows.map((r) => r.rolname),
      ),
    teardown: () => env.teardown(),
  };
}

async function mysqlEngine(): Promise<Engine> {
  const f: MysqlFixture = await createMysqlFixture();
  const secretPrefix = `LATCHKEY_SECRET_M${f.suffix.toUpperCase()}_`;
  return {
    name: 'mysql',
    integration: { ...f.integration(), secret: { store: 'env', prefix: secretPrefix } },
    secretEnv: {
      [`${secretPrefix}USERNAME`]: f.serviceUser,
      [`${secretPrefix}PASSWORD`]: f.servicePassword,
    },
    sampleTableId: tableId(f.database, null, 'orders'),
    async login(user, password) {
      const c = await mysqlLogin(user, password);
      c.on('error', () => undefined); // a killed session reports here too
      return {
        async select() {
          const [rows] = await c.query<RowDataPacket[]>(`SELECT id FROM ${qi(f.database)}.orders`);
          return rows.length;
        },
        async insert() {
          await c.query(`INSERT INTO ${qi(f.database)}.orders VALUES (99, 1)`);
        },
        async ping() {
          await c.query('SELECT 1');
        },
        end: () => {
          c.destroy();
          return Promise.resolve();
        },
      };
    },
    // MariaDB checks the password at login, which the test does anyway.
    passwordIsSet: async (user, password) => {
      const s = await mysqlLogin(user, password).catch(() => null);
      if (s === null) return false;
      await s.end();
      return true;
    },
    async grantRoles() {
      const [rows] = await f.admin.query<RowDataPacket[]>(
        'SELECT User AS u FROM mysql.global_priv WHERE User LIKE ? ORDER BY User',
        [`${f.prefix.replace(/_/g, '\\_')}g\\_%`],
      );
      return rows.map((r) => String(r.u));
    },
    teardown: () => f.teardown(),
  };
}

let cp: DevControlPlane;
let signing: SigningKeyPair;
let recipient: RecipientKeyPair;
let agent: ChildProcess | undefined;
let logs = '';
const engines = new Map<Engine['name'], Engine>();
/** Outside CI without a MariaDB/MySQL (vitest.config.ts says so once), PostgreSQL only. */
const ENGINE_NAMES: readonly Engine['name'][] =
  process.env.LATCHKEY_TEST_MYSQL_ABSENT === '1' ? ['postgres'] : ['postgres', 'mysql'];
const connectorId = `e2e-db-${randomUUID().slice(0, 8)}`;
const token = `tok-${randomBytes(24).toString('base64url')}`;
/** Every command id sent to the agent, to prove none is lost at shutdown. */
const sent: string[] = [];
/** Every password a grant handed out, to prove none reaches the logs. */
const grantedPasswords: string[] = [];

function engine(name: Engine['name']): Engine {
  const e = engines.get(name);
  if (!e) throw new Error(`engine ${name} was not set up`);
  return e;
}

/** Sends a signed command and resolves with its result; a `rejected` answer throws. */
async function run(
  kind: CommandKind,
  integration: Integration,
  params: Record<string, unknown>,
  opts: { id?: string; issuedAt?: Date } = {},
): Promise<Result> {
  const since = cp.received.length;
  const { commandId } = await cp.sendCommand(connectorId, { kind, integration, params, ...opts });
  sent.push(commandId);
  const rejected = cp
    .waitFor('rejected', (m) => m.commandId === commandId, WAIT_MS, since)
    .then((m) => {
      throw new Error(`${kind} ${commandId} rejected: ${m.error.code} ${m.error.message}`);
    });
  rejected.catch(() => undefined);
  return Promise.race([cp.waitForResult(commandId, WAIT_MS), rejected]);
}

function okOutput(result: Result): Record<string, unknown> {
  expect(result.error).toBeUndefined();
  expect(result.status).toBe('ok');
  return result.output ?? {};
}

beforeAll(async () => {
  const [, pgEngine, myEngine] = await Promise.all([
    ensureBuilt(),
    postgresEngine(),
    ENGINE_NAMES.includes('mysql') ? mysqlEngine() : Promise.resolve(null),
  ]);
  engines.set('postgres', pgEngine);
  if (myEngine) engines.set('mysql', myEngine);

  signing = generateSigningKeyPair();
  recipient = generateRecipientKeyPair();
  cp = await startDevControlPlane({
    agents: [{ connectorId, token }],
    signingKey: { keyId: signing.keyId, privateKeyPem: signing.privateKeyPem },
    logger: pino({ level: 'silent' }),
  });
  agent = spawn(process.execPath, [MAIN, 'run'], {
    cwd: ROOT,
    env: baseEnv({
      ...pgEngine.secretEnv,
      ...myEngine?.secretEnv,
      LATCHKEY_CONTROL_PLANE_URL: cp.url,
      LATCHKEY_CONNECTOR_ID: connectorId,
      LATCHKEY_CONNECTOR_TOKEN: token,
      LATCHKEY_TRUSTED_KEYS: JSON.stringify({ [signing.keyId]: signing.publicKey }),
      LATCHKEY_HTTP_HOST: '127.0.0.1',
      LATCHKEY_HTTP_PORT: '0',
      LATCHKEY_LOG_LEVEL: 'debug',
      LATCHKEY_SHUTDOWN_GRACE: '20s',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  agent.stdout?.on('data', (b: Buffer) => (logs += b.toString('utf8')));
  agent.stderr?.on('data', (b: Buffer) => (logs += b.toString('utf8')));
  const child = agent;
  const early = exited(child).then((code) => {
    throw new Error(`the agent exited early with code ${String(code)}:\n${logs.slice(-4000)}`);
  });
  early.catch(() => undefined);
  await Promise.race([cp.waitFor('hello', (m) => m.connectorId === connectorId, WAIT_MS), early]);
}, 240_000);

afterAll(async () => {
  if (agent && agent.exitCode === null && agent.signalCode === null) {
    agent.kill('SIGKILL');
    await exited(agent);
  }
  await cp?.close();
  await Promise.all([...engines.values()].map((e) => e.teardown()));
}, 60_000);

for (const name of ENGINE_NAMES) {
  describe(`${name}: the agent process against the real database`, () => {
    const grantId = `g-${randomBytes(4).toString('hex')}`;
    const grantee = { email: `ada.${randomBytes(3).toString('hex')}@example.com` };
    let username = '';
    let password = '';
    let session: Session | undefined;

    afterAll(async () => {
      await session?.end();
    });

    it('check: signed by the control plane, verified by the agent, all checks pass', async () => {
      const out = CheckOutputSchema.parse(
        okOutput(await run('check', engine(name).integration, {})),
      );
      expect(out.checks.filter((c) => !c.ok)).toEqual([]);
      expect(out.ok).toBe(true);
    });

    it('discover lists the sample table', async () => {
      const e = engine(name);
      const out = DiscoverOutputSchema.parse(okOutput(await run('discover', e.integration, {})));
      const tables = out.resources.filter((r) => r.type === 'table');
      expect(tables.map((t) => t.id)).toContain(e.sampleTableId);
      expect(tables.find((t) => t.id === e.sampleTableId)?.name).toBe('orders');
    });

    it('grant read on one table, sealed: the grantee can SELECT but not INSERT', async () => {
      const e = engine(name);
      const params = {
        grantId,
        grantee,
        resources: [{ type: 'table', id: e.sampleTableId }],
        permission: 'read',
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
        recipientKey: recipient.publicKey,
      };
      // The same command (same id, same signed envelope) arrives three times: right after
      // the first (still running), then again once its result was acknowledged.
      const id = `cmd-${randomUUID()}`;
      const issuedAt = new Date();
      const since = cp.received.length;
      const { envelope } = await cp.sendCommand(connectorId, {
        kind: 'grant',
        integration: e.integration,
        params,
        id,
        issuedAt,
      });
      sent.push(id);
      const signature = signEnvelope(
        envelope,
        parsePrivateKey(signing.privateKeyPem),
        signing.keyId,
      );
      cp.sendRaw(connectorId, JSON.stringify({ type: 'command', envelope, signature }));
      const first = await cp.waitForResult(id, WAIT_MS);
      const afterFirst = cp.received.length;
      await cp.sendCommand(connectorId, {
        kind: 'grant',
        integration: e.integration,
        params,
        id,
        issuedAt,
      });
      await cp.waitFor('result', (m) => m.commandId === id, WAIT_MS, afterFirst);

      const copies = cp.resultsFor(id);
      expect(copies).toHaveLength(2);
      expect(copies[1]).toEqual(first);
      const accepted = cp.received
        .slice(since)
        .filter((m) => m.type === 'accepted' && m.commandId === id);
      expect(accepted).toHaveLength(1);
      expect(
        cp.received.slice(since).filter((m) => m.type === 'rejected' && m.commandId === id),
      ).toEqual([]);
      expect(await e.grantRoles()).toHaveLength(1);

      const out = GrantOutputSchema.parse(okOutput(first));
      username = out.username;
      expect(username.startsWith(String(e.integration.config.userPrefix))).toBe(true);
      const creds = out.credentials;
      if (!creds || !('sealed' in creds)) throw new Error('the grant did not seal credentials');
      expect(JSON.stringify(first)).not.toContain('"password"');
      const opened = open(recipient.privateKeyPem, creds.sealed);
      password = opened.password ?? '';
      expect(password.length).toBeGreaterThanOrEqual(16);
      grantedPasswords.push(password);
      expect(await e.passwordIsSet(username, password)).toBe(true);

      session = await e.login(username, password);
      expect(await session.select()).toBeGreaterThan(0);
      await expect(session.insert()).rejects.toThrow(/denied/i);
    });

    it('revoke ends the open session and a new login fails', async () => {
      const e = engine(name);
      if (!session) throw new Error('no grantee session (the grant test failed)');
      const open1 = session;
      await open1.ping(); // still alive before the revoke
      RevokeOutputSchema.parse(
        okOutput(
          await run('revoke', e.integration, {
            grantId,
            grantee,
            resources: [{ type: 'table', id: e.sampleTableId }],
            permission: 'read',
          }),
        ),
      );
      await expect(open1.ping()).rejects.toThrow();
      await expect(e.login(username, password)).rejects.toThrow();
    });
  });
}

describe('shutdown', () => {
  it('SIGTERM: in-flight commands finish, every command has a result, exit code 0', async () => {
    const child = agent;
    if (!child) throw new Error('no agent');
    const since = cp.received.length;
    const burst: string[] = [];
    for (const e of engines.values()) {
      for (const kind of ['check', 'discover'] as const) {
        const { commandId } = await cp.sendCommand(connectorId, {
          kind,
          integration: e.integration,
          params: {},
        });
        sent.push(commandId);
        burst.push(commandId);
      }
    }
    // Accepted by the agent (queued or running) before the signal arrives.
    await Promise.all(
      burst.map((id) => cp.waitFor('accepted', (m) => m.commandId === id, WAIT_MS, since)),
    );
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);

    const missing = sent.filter((id) => cp.resultsFor(id).length === 0);
    expect(missing).toEqual([]);
    expect(cp.pendingCommands().filter((id) => sent.includes(id))).toEqual([]);
    for (const id of burst) expect(cp.resultsFor(id)[0]?.status).toBe('ok');
    expect(logs).toContain('"msg":"shutdown complete"');
  });

  it("the agent's log output contains no grantee password and no connector token", () => {
    // The logs are complete: the process has exited (previous test).
    expect(agent?.exitCode).toBe(0);
    expect(grantedPasswords).toHaveLength(ENGINE_NAMES.length);
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).toContain(connectorId);
    for (const p of grantedPasswords) expect(logs).not.toContain(p);
    expect(logs).not.toContain(token);
    for (const e of engines.values()) {
      for (const [k, v] of Object.entries(e.secretEnv)) {
        if (k.endsWith('PASSWORD')) expect(logs).not.toContain(v);
      }
    }
  });
});
