/**
 * Benchmark: grant+revoke pairs per second against the local MariaDB, through the agent's
 * Dispatcher and through the mysql driver alone, next to the same SQL sent directly with
 * mysql2 at the same concurrency; and what one grant and one revoke send (round trips and
 * statements, counted by wrapping mysql2's query functions: bench/sql-count.ts).
 *
 *   npx tsx bench/mysql.bench.ts [pairs=200] [concurrency=4] [rounds=4]
 *
 * Each pair is a first grant (new user, default role, grant role and record) and the
 * revoke of that last grant (lock, session scan, role drop). The direct path sends the
 * statements the driver sends for that pair on MariaDB, reads included, written out by
 * hand (see `directPair`), through a pool of the same size. The ratio Dispatcher/direct
 * says what the agent's own work costs (target ≥ 0.9). Server: LATCHKEY_TEST_MYSQL_URL or
 * mysql://root@127.0.0.1:3306. Everything created is dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import mysql from 'mysql2/promise';
import pino from 'pino';
import { Dispatcher } from '../src/dispatch/dispatcher.js';
import type { DriverServices } from '../src/drivers/driver.js';
import { createMysqlDriver } from '../src/drivers/mysql/driver.js';
import { driverFactory } from '../src/drivers/mysql/index.js';
import { createDriverRegistry } from '../src/drivers/registry.js';
import { AgentEvents } from '../src/events.js';
import type { Envelope, Integration, Result } from '../src/protocol/messages.js';
import { mariadbDefaultRole } from '../src/drivers/mysql/dialect-mariadb.js';
import { userLockName } from '../src/drivers/mysql/sql-dialect.js';
import { generatePassword } from '../src/drivers/sql/password.js';
import { grantMarker } from '../src/drivers/sql/marker.js';
import { tableId } from '../src/drivers/sql/resources.js';
import { deriveUsername, grantRoleName } from '../src/drivers/sql/username.js';
import { createSealer } from '../src/protocol/seal.js';
import { loadLine } from './machine.js';
import { countSql, describeTally, installSqlCounter, type SqlTally } from './sql-count.js';

export interface MysqlBenchReport {
  pairs: number;
  concurrency: number;
  dispatcherPairsPerSecond: number;
  driverPairsPerSecond: number;
  directPairsPerSecond: number;
  /** dispatcher / direct (the figure). */
  ratio: number;
  /** driver alone / direct. */
  driverRatio: number;
  grant: SqlTally;
  revoke: SqlTally;
  /** One direct pair (grant and revoke together). */
  direct: SqlTally;
  load: { start: string; end: string };
}

const qi = (n: string): string => '`' + n.replace(/`/g, '``') + '`';

async function pool<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await fn(item);
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

export async function runMysqlBench(
  pairs = 200,
  concurrency = 4,
  rounds = 4,
): Promise<MysqlBenchReport> {
  installSqlCounter();
  const loadStart = loadLine();
  const url = new URL(process.env.LATCHKEY_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306');
  const host = url.hostname;
  const port = url.port ? Number(url.port) : 3306;
  const admin = await mysql.createConnection({
    host,
    port,
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
  });
  const run = randomBytes(3).toString('hex');
  const prefix = `lkb${run}_`;
  const db = `lkb_${run}_db`;
  const meta = `lkb_${run}_meta`;
  const svcUser = `lkb_${run}_svc`;
  const svcPassword = `Bench-${randomBytes(10).toString('hex')}`;
  const svc = `${qi(svcUser)}@${qi('%')}`;
  await admin.query(`CREATE DATABASE ${qi(db)}`);
  await admin.query(`CREATE TABLE ${qi(db)}.t (a INT)`);
  await admin.query(`CREATE USER ${svc} IDENTIFIED BY ?`, [svcPassword]);
  await admin.query(
    `GRANT CREATE USER, SHOW DATABASES, PROCESS, CONNECTION ADMIN, SELECT, INSERT, UPDATE, DELETE, SHOW VIEW ON *.* TO ${svc} WITH GRANT OPTION`,
  );
  await admin.query(`GRANT CREATE, EVENT ON ${qi(meta)}.* TO ${svc}`);

  const services: DriverServices = {
    logger: pino({ level: 'silent' }),
    secrets: {
      // Bound to its target like a real service-account secret (the binding guardrail).
      resolve: () =>
        Promise.resolve({ username: svcUser, password: svcPassword, host, port, extra: {} }),
    },
    aws: {
      client() {
        throw new Error('no AWS in this bench');
      },
    },
    sealer: createSealer({ allowPlaintext: true }),
    tagPrefix: 'latchkey',
    now: () => new Date(),
  };
  const driver = createMysqlDriver(services);
  const integration = {
    id: `bench-${run}`,
    type: 'mysql',
    config: {
      host,
      port,
      userPrefix: prefix,
      metaDatabase: meta,
      poolSize: concurrency,
      lockTimeoutSeconds: 30,
    },
    secret: { store: 'aws-secrets-manager' as const, secretId: 'bench' },
  };
  const ctx = () => ({
    commandId: 'bench',
    integration,
    signal: AbortSignal.timeout(60_000),
    logger: pino({ level: 'silent' }),
  });
  const resources = [{ type: 'table', id: tableId(db, null, 't') }];

  try {
    // Warm-up (pool, metadata table) outside the measurement.
    await driver.grant(ctx(), {
      grantId: 'warm',
      grantee: { email: `warm@${run}.io` },
      resources,
      permission: 'read',
    });
    await driver.revoke(ctx(), {
      grantId: 'warm',
      grantee: { email: `warm@${run}.io` },
      resources,
      permission: 'read',
    });
    // What one grant and its revoke send (a new grantee, after the warm-up).
    const countParams = { grantId: 'count', grantee: { email: `count@${run}.io` }, resources };
    const grantTally = await countSql(async () => {
      await driver.grant(ctx(), { ...countParams, permission: 'read' });
    });
    const revokeTally = await countSql(async () => {
      await driver.revoke(ctx(), { ...countParams, permission: 'read' });
    });

    // The same pairs through the agent's Dispatcher (registry, priorities, per-key order,
    // deadlines) with its own driver instance, as in the agent.
    const registry = createDriverRegistry({ mysql: driverFactory }, services);
    const dispatcher = new Dispatcher({
      registry,
      concurrency: { global: concurrency, perIntegration: concurrency, perAwsService: 1 },
      queueSize: 10_000,
      timeoutsMs: {
        discover: 60_000,
        grant: 60_000,
        revoke: 60_000,
        rotate: 60_000,
        cleanup: 60_000,
        check: 60_000,
      },
      events: new AgentEvents(),
      logger: pino({ level: 'silent' }),
    });
    const waiting = new Map<string, (r: Result) => void>();
    dispatcher.onResult((r) => waiting.get(r.commandId)?.(r));
    let seq = 0;
    const asIntegration: Integration = integration;
    const send = async (
      kind: 'grant' | 'revoke',
      params: Record<string, unknown>,
    ): Promise<void> => {
      const id = `mb${run}-${seq++}`;
      const now = new Date();
      const envelope = {
        id,
        kind,
        connectorId: 'bench',
        issuedAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + 120_000).toISOString(),
        integration: asIntegration,
        params,
      } as Envelope;
      const r = await new Promise<Result>((resolve, reject) => {
        waiting.set(id, resolve);
        const outcome = dispatcher.submit(envelope, id, now);
        if (outcome.status === 'rejected') reject(new Error(outcome.error.code));
      });
      waiting.delete(id);
      if (r.status !== 'ok') throw new Error(`${kind} failed: ${JSON.stringify(r.error)}`);
    };
    await send('grant', {
      grantId: 'warm2',
      grantee: { email: `warm2@${run}.io` },
      resources,
      permission: 'read',
    });
    await send('revoke', {
      grantId: 'warm2',
      grantee: { email: `warm2@${run}.io` },
      resources,
      permission: 'read',
    });

    // Interleaved rounds (driver, direct, driver, …) so that load from elsewhere on the
    // machine hits both paths alike; each path's best round is reported.
    const direct = mysql.createPool({
      host,
      port,
      user: svcUser,
      password: svcPassword,
      connectionLimit: concurrency,
    });
    const perRound = Math.max(1, Math.ceil(pairs / rounds));
    let driverSeconds = Infinity;
    let directSeconds = Infinity;
    let dispatcherSeconds = Infinity;
    for (let round = 0; round < rounds; round++) {
      const ids = Array.from({ length: perRound }, (_, i) => `${round}_${i}`);
      const pt = await pool(ids, concurrency, async (i) => {
        const p = { grantId: `q${i}`, grantee: { email: `q${i}@${run}.io` }, resources };
        await send('grant', { ...p, permission: 'read' });
        await send('revoke', { ...p, permission: 'read' });
      });
      dispatcherSeconds = Math.min(dispatcherSeconds, pt);
      const dt = await pool(ids, concurrency, async (i) => {
        const grantee = { email: `d${i}@${run}.io` };
        await driver.grant(ctx(), { grantId: `d${i}`, grantee, resources, permission: 'read' });
        await driver.revoke(ctx(), { grantId: `d${i}`, grantee, resources, permission: 'read' });
      });
      driverSeconds = Math.min(driverSeconds, dt);
      const xt = await pool(ids, concurrency, async (i) => {
        const conn = await direct.getConnection();
        try {
          await directPair(conn, { prefix, db, meta, email: `x${i}@${run}.io`, grantId: `x${i}` });
        } finally {
          conn.release();
        }
      });
      directSeconds = Math.min(directSeconds, xt);
    }
    const directConn = await direct.getConnection();
    const directTally = await countSql(async () => {
      await directPair(directConn, {
        prefix,
        db,
        meta,
        email: `xc@${run}.io`,
        grantId: 'xc',
      });
    }).finally(() => directConn.release());
    await direct.end();
    await dispatcher.drain(10_000);
    await registry.closeAll();

    const dispatcherPairsPerSecond = perRound / dispatcherSeconds;
    const driverPairsPerSecond = perRound / driverSeconds;
    const directPairsPerSecond = perRound / directSeconds;
    return {
      pairs: perRound * rounds,
      concurrency,
      dispatcherPairsPerSecond,
      driverPairsPerSecond,
      directPairsPerSecond,
      ratio: dispatcherPairsPerSecond / directPairsPerSecond,
      driverRatio: driverPairsPerSecond / directPairsPerSecond,
      grant: grantTally,
      revoke: revokeTally,
      direct: directTally,
      load: { start: loadStart, end: loadLine() },
    };
  } finally {
    await driver.close();
    const [rows] = await admin.query(
      'SELECT User AS u, Host AS h FROM mysql.global_priv WHERE User LIKE ?',
      [`${prefix.replace(/_/g, '\\_')}%`],
    );
    for (const r of rows as { u: string; h: string }[]) {
      await admin.query(
        r.h === '' ? `DROP ROLE IF EXISTS ${qi(r.u)}` : `DROP USER IF EXISTS ${qi(r.u)}@${qi(r.h)}`,
      );
    }
    await admin.query(`DROP USER IF EXISTS ${svc}`);
    await admin.query(`DROP DATABASE IF EXISTS ${qi(db)}`);
    await admin.query(`DROP DATABASE IF EXISTS ${qi(meta)}`);
    await admin.end();
  }
}

/** The driver's statements for a first grant and the revoke of that last grant, on MariaDB. */
async function directPair(
  c: mysql.PoolConnection,
  p: { prefix: string; db: string; meta: string; email: string; grantId: string },
): Promise<void> {
  const user = deriveUsername(p.email, { prefix: p.prefix, maxLength: 80 });
  const role = grantRoleName(p.grantId, { prefix: p.prefix, maxLength: 80 });
  const d = mariadbDefaultRole(user, '%', p.prefix);
  const a = `${qi(user)}@${qi('%')}`;
  const lock = userLockName(user, '%');
  const metaT = `${qi(p.meta)}.${qi('grants')}`;
  const record = grantMarker({
    grantId: p.grantId,
    role,
    username: user,
    permission: { kind: 'read' },
    resources: [{ kind: 'table', database: p.db, schema: null, table: 't' }],
  });
  const q = (sql: string, values?: unknown[]) => c.query(sql, values);
  const getUser = async () => {
    await q(
      "SELECT User AS name, JSON_VALUE(Priv, '$.account_locked') AS locked FROM mysql.global_priv WHERE User = ? AND Host = ?",
      [user, '%'],
    );
  };
  const getRole = async () => {
    await q("SELECT User AS name FROM mysql.global_priv WHERE User = ? AND Host = ''", [role]);
    await q(`SELECT record FROM ${metaT} WHERE role = ?`, [role]);
  };
  // grant
  await q(
    'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
    [p.db, 't'],
  );
  await q('SELECT GET_LOCK(?, ?) AS got', [lock, 30]);
  await getUser();
  await q(`CREATE USER IF NOT EXISTS ${a} IDENTIFIED BY ?`, [generatePassword()]);
  await q(`CREATE ROLE IF NOT EXISTS ${qi(d)}`);
  await q(`GRANT ${qi(d)} TO ${a}`);
  await q(`SET DEFAULT ROLE ${qi(d)} FOR ${a}`);
  await q("SELECT User AS name FROM mysql.global_priv WHERE User = ? AND Host = ''", [role]);
  await q(
    `INSERT INTO ${metaT} (role, username, record) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE username = VALUES(username), record = VALUES(record)`,
    [role, user, record],
  );
  await q(`CREATE ROLE IF NOT EXISTS ${qi(role)}`);
  await q(`GRANT SELECT, SHOW VIEW ON ${qi(p.db)}.${qi('t')} TO ${qi(role)}`);
  await q(`GRANT ${qi(role)} TO ${qi(d)}`);
  await q('SELECT RELEASE_LOCK(?) AS released', [lock]);
  // revoke
  await q('SELECT GET_LOCK(?, ?) AS got', [lock, 30]);
  await getUser();
  await q('SELECT 1 AS ok FROM mysql.roles_mapping WHERE User = ? AND Host = ? AND Role = ?', [
    user,
    '%',
    d,
  ]);
  await getRole();
  await q(
    `SELECT r.role AS role, r.record AS record FROM ${metaT} r JOIN mysql.global_priv g ON g.User = r.role AND g.Host = '' WHERE r.role LIKE ? AND r.username = ? ORDER BY r.role`,
    [`${p.prefix.replace(/_/g, '\\_')}g\\_%`, user],
  );
  await q(`ALTER USER ${a} ACCOUNT LOCK`);
  await q('SELECT RELEASE_LOCK(?) AS released', [lock]);
  await q(
    'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()',
    [user],
  );
  await q('SELECT GET_LOCK(?, ?) AS got', [lock, 30]);
  await getRole();
  await q(`DROP ROLE IF EXISTS ${qi(role)}`);
  await q(`DELETE FROM ${metaT} WHERE role = ?`, [role]);
  await getUser();
  await q('SELECT 1 AS ok FROM mysql.roles_mapping WHERE User = ? AND Host = ? AND Role = ?', [
    user,
    '%',
    d,
  ]);
  await q('SELECT RELEASE_LOCK(?) AS released', [lock]);
}

export function formatMysqlBench(r: MysqlBenchReport): string {
  return [
    `mysql driver bench (MariaDB): ${r.pairs} grant+revoke pairs per path at concurrency ${r.concurrency} (best of interleaved rounds)`,
    `  machine            : at the start ${r.load.start}; at the end ${r.load.end}`,
    `  through Dispatcher : ${r.dispatcherPairsPerSecond.toFixed(1)} pairs/s`,
    `  the driver alone   : ${r.driverPairsPerSecond.toFixed(1)} pairs/s (ratio to direct ${r.driverRatio.toFixed(2)})`,
    `  same SQL, direct   : ${r.directPairsPerSecond.toFixed(1)} pairs/s`,
    `  ratio Dispatcher / direct: ${r.ratio.toFixed(2)} (target ≥ 0.9: ${r.ratio >= 0.9 ? 'met' : 'NOT met'})`,
    ...describeTally('one grant (first grant of a new grantee, read on one table)', r.grant),
    ...describeTally('its revoke', r.revoke),
    ...describeTally(
      'the direct path, grant and revoke together (its hand-written copy of the statements)',
      r.direct,
      false,
    ),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const pairs = Number(process.argv[2] ?? 200);
  const concurrency = Number(process.argv[3] ?? 4);
  const rounds = Number(process.argv[4] ?? 4);
  runMysqlBench(pairs, concurrency, rounds)
    .then((r) => {
      console.log(formatMysqlBench(r));
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}
