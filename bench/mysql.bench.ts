/**
 * Benchmark: grant+revoke pairs per second against the local MariaDB, through the agent's
 * Dispatcher and through the mysql driver alone, next to the same SQL sent directly with
 * mysql2 at the same concurrency; and what one grant and one revoke send (round trips and
 * statements, counted by wrapping mysql2's query functions: bench/sql-count.ts).
 *
 *   npx tsx bench/mysql.bench.ts [pairs=600] [concurrency=4] [rounds=6]
 *
 * Each pair is a first grant (new user, default role, grant role and record) and the
 * revoke of that last grant (lock, session scan, role drop). The direct path replays the
 * statements the driver sent for one such pair (recorded with their bound values by
 * bench/sql-count.ts; each pair with its own names and a fresh password hash) through a
 * plain mysql2 pool of the same size and with the driver's client options (CLIENT_OPTIONS:
 * no stack capture per statement, …), so it cannot go stale. The ratio Dispatcher/direct
 * says what the agent's own work costs (target ≥ 0.9), never different SQL. Server: LATCHKEY_TEST_MYSQL_URL or
 * mysql://root@127.0.0.1:3306. Everything created is dropped at the end.
 *
 * First BENCH_SQL_WARMUP (default 5) untimed rounds of every path (the Dispatcher and the
 * driver run far more JavaScript than the replay, and V8 optimizes it over the first few
 * hundred pairs, on the cores the server needs too). Then
 * `pairs` are split into `rounds` interleaved rounds, each starting with the accounts
 * earlier rounds left dropped (a revoke keeps its locked user); each path's best round is its
 * figure, and the Dispatcher/direct ratio of every round is printed too (the spread says
 * how far one run's figure can be trusted). With the server on this machine, its CPU per
 * pair is printed as well (on two cores it is much of the work).
 *
 * LATCHKEY_BENCH_PROFILE_DIR=<dir>: a V8 CPU profile of each path's last round,
 * `<dir>/mysql-{dispatcher,driver,direct}.cpuprofile` (that round is slower; the figures
 * are the best rounds).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
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
import { CLIENT_OPTIONS, prepareSession } from '../src/drivers/mysql/connection.js';
import { authFingerprint, mariadbDefaultRole } from '../src/drivers/mysql/dialect-mariadb.js';
import { expiryEventName } from '../src/drivers/mysql/dialect.js';
import { mysqlNativePasswordHash } from '../src/drivers/mysql/password-hash.js';
import { userLockName } from '../src/drivers/mysql/sql-dialect.js';
import { generatePassword } from '../src/drivers/sql/password.js';
import { tableId } from '../src/drivers/sql/resources.js';
import { deriveUsername, grantRoleName } from '../src/drivers/sql/username.js';
import { createSealer } from '../src/protocol/seal.js';
import { BENCH_TIMEOUTS_MS, isLoopback, loadLine, processCpuMs, processName } from './machine.js';
import {
  assertSubstituted,
  countSql,
  describeTally,
  findInSteps,
  installSqlCounter,
  replaySql,
  substituteSteps,
  type ReplayConnection,
  type SqlStep,
  type SqlTally,
} from './sql-count.js';

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
  /** This process's CPU time per pair (ms), lowest round of each path. */
  cpuMsPerPair: { dispatcher: number; driver: number; direct: number };
  /** The server's CPU time per pair (ms), lowest round of each path; a local server only. */
  serverCpuMsPerPair?: { dispatcher: number; driver: number; direct: number };
  /** Each round's Dispatcher rate over its direct rate, lowest first. */
  roundRatios: number[];
}

const qi = (n: string): string => '`' + n.replace(/`/g, '``') + '`';

/** This process's CPU time per item (user + system, ms) of the last `pool` run. */
let lastCpuMs = NaN;

/**
 * `LATCHKEY_BENCH_PROFILE_DIR`: where `pool` writes a V8 CPU profile of a run it is given a
 * `profile` name for (`<dir>/<name>.cpuprofile`, for Chrome DevTools or speedscope).
 */
const PROFILE_DIR = process.env.LATCHKEY_BENCH_PROFILE_DIR;
/** Untimed rounds of every path before the timed ones (BENCH_SQL_WARMUP, default 5). */
const WARMUP_ROUNDS = Number(process.env.BENCH_SQL_WARMUP ?? 5);

async function pool<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
  profile?: string,
): Promise<number> {
  let session: Session | undefined;
  if (PROFILE_DIR !== undefined && profile !== undefined) {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  }
  const started = performance.now();
  const cpu = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await fn(item);
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  const seconds = (performance.now() - started) / 1000;
  lastCpuMs = (used.user + used.system) / 1000 / Math.max(1, items.length);
  if (session !== undefined && PROFILE_DIR !== undefined && profile !== undefined) {
    const { profile: taken } = await session.post('Profiler.stop');
    session.disconnect();
    await writeFile(join(PROFILE_DIR, `${profile}.cpuprofile`), JSON.stringify(taken));
  }
  return seconds;
}

export async function runMysqlBench(
  pairs = 600,
  concurrency = 4,
  rounds = 6,
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
  const silent = pino({ level: 'silent' });
  const ctx = () => ({
    commandId: 'bench',
    integration,
    signal: AbortSignal.timeout(60_000),
    logger: silent,
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
    // Also the direct path's workload: these statements, replayed with other names.
    const recorded = { email: `recorded.zq@${run}.io`, grantId: 'recorded_zq' };
    const countParams = {
      grantId: recorded.grantId,
      grantee: { email: recorded.email },
      resources,
    };
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
      timeoutsMs: BENCH_TIMEOUTS_MS,
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

    // Interleaved rounds (each path once per round, in an order that rotates) so that
    // load from elsewhere on the machine hits the paths alike; each path's best round is
    // reported.
    // The driver's own client options (charset, no stack capture per statement, …): only
    // the agent's work differs between the two paths, not mysql2's.
    const direct = mysql.createPool({
      host,
      port,
      user: svcUser,
      password: svcPassword,
      connectionLimit: concurrency,
      ...CLIENT_OPTIONS,
    });
    const openDirect = async (): Promise<ReplayConnection> => {
      const conn = await direct.getConnection();
      await prepareSession(conn); // as the driver's pool does once per connection
      return {
        query: (text, values) => conn.query(text, values === undefined ? undefined : [...values]),
        release: () => conn.release(),
      };
    };
    const workload = pairWorkload(
      { grant: grantTally, revoke: revokeTally },
      (email, grantId) => namesOf(prefix, email, grantId),
      namesOf(prefix, recorded.email, recorded.grantId),
    );
    const perRound = Math.max(1, Math.ceil(pairs / rounds));
    const cpu = { dispatcher: Infinity, driver: Infinity, direct: Infinity };
    // The three paths, run in an order that rotates from round to round (as the
    // postgres bench does), so that none always follows the same path or takes the same
    // place in a round.
    const paths = [
      {
        name: 'dispatcher',
        run: async (i: string): Promise<void> => {
          const p = { grantId: `q${i}`, grantee: { email: `q${i}@${run}.io` }, resources };
          await send('grant', { ...p, permission: 'read' });
          await send('revoke', { ...p, permission: 'read' });
        },
      },
      {
        name: 'driver',
        run: async (i: string): Promise<void> => {
          const grantee = { email: `d${i}@${run}.io` };
          await driver.grant(ctx(), { grantId: `d${i}`, grantee, resources, permission: 'read' });
          await driver.revoke(ctx(), { grantId: `d${i}`, grantee, resources, permission: 'read' });
        },
      },
      {
        name: 'direct',
        run: async (i: string): Promise<void> => {
          await replaySql(workload(`x${i}@${run}.io`, `x${i}`), openDirect);
        },
      },
    ] as const;
    const seconds = { dispatcher: Infinity, driver: Infinity, direct: Infinity };
    const serverCpu = { dispatcher: Infinity, driver: Infinity, direct: Infinity };
    const server = await serverPid(admin, host);
    const roundRatios: number[] = [];
    // Untimed rounds of every path first: the Dispatcher and the driver run far more
    // JavaScript than the replay, and V8 optimizes it over the first few hundred pairs.
    for (let w = 1; w <= WARMUP_ROUNDS; w++) {
      const ids = Array.from({ length: perRound }, (_, i) => `w${w}_${i}`);
      for (const path of paths) {
        await dropAccounts(admin, prefix, meta);
        await pool(ids, concurrency, path.run, undefined);
      }
    }
    for (let round = 0; round < rounds; round++) {
      const ids = Array.from({ length: perRound }, (_, i) => `${round}_${i}`);
      const last = round === rounds - 1; // profiled when LATCHKEY_BENCH_PROFILE_DIR is set
      const taken = { dispatcher: NaN, driver: NaN, direct: NaN };
      for (let k = 0; k < paths.length; k++) {
        const path = paths[(round + k) % paths.length];
        if (path === undefined) continue;
        // The same server state for every round: a revoke locks its user and keeps it and
        // its default role (the agent's cleanup drops them later); drop what earlier
        // rounds left, so that no path works against all the accounts before it.
        await dropAccounts(admin, prefix, meta);
        const server0 = server === undefined ? undefined : processCpuMs(server);
        const t = await pool(ids, concurrency, path.run, last ? `mysql-${path.name}` : undefined);
        const server1 = server === undefined ? undefined : processCpuMs(server);
        taken[path.name] = t;
        seconds[path.name] = Math.min(seconds[path.name], t);
        cpu[path.name] = Math.min(cpu[path.name], lastCpuMs);
        if (server0 !== undefined && server1 !== undefined) {
          serverCpu[path.name] = Math.min(serverCpu[path.name], (server1 - server0) / perRound);
        }
      }
      roundRatios.push(taken.direct / taken.dispatcher);
    }
    const directSteps = workload(`xc@${run}.io`, 'xc');
    const directTally = await countSql(() => replaySql(directSteps, openDirect));
    await direct.end();
    await dispatcher.drain(10_000);
    await registry.closeAll();

    const dispatcherPairsPerSecond = perRound / seconds.dispatcher;
    const driverPairsPerSecond = perRound / seconds.driver;
    const directPairsPerSecond = perRound / seconds.direct;
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
      cpuMsPerPair: cpu,
      ...(server === undefined ? {} : { serverCpuMsPerPair: serverCpu }),
      roundRatios: roundRatios.sort((a, b) => a - b),
    };
  } finally {
    await driver.close();
    await dropAccounts(admin, prefix, undefined);
    await admin.query(`DROP USER IF EXISTS ${svc}`);
    await admin.query(`DROP DATABASE IF EXISTS ${qi(db)}`);
    await admin.query(`DROP DATABASE IF EXISTS ${qi(meta)}`);
    await admin.end();
  }
}

/**
 * Drops every account and role named with `prefix` (users and the roles of this run), in
 * batches, and with `meta` the journal's rows of the users dropped.
 */
async function dropAccounts(
  admin: mysql.Connection,
  prefix: string,
  meta: string | undefined,
): Promise<void> {
  const [rows] = await admin.query(
    'SELECT User AS u, Host AS h FROM mysql.global_priv WHERE User LIKE ?',
    [`${prefix.replace(/_/g, '\\_')}%`],
  );
  const all = rows as { u: string; h: string }[];
  const users = all.filter((r) => r.h !== '').map((r) => `${qi(r.u)}@${qi(r.h)}`);
  const roles = all.filter((r) => r.h === '').map((r) => qi(r.u));
  for (let i = 0; i < users.length; i += 200) {
    await admin.query(`DROP USER IF EXISTS ${users.slice(i, i + 200).join(', ')}`);
  }
  for (let i = 0; i < roles.length; i += 200) {
    await admin.query(`DROP ROLE IF EXISTS ${roles.slice(i, i + 200).join(', ')}`);
  }
  if (meta !== undefined && users.length > 0) {
    await admin.query(`DELETE FROM ${qi(meta)}.${qi('users')}`).catch(() => undefined);
  }
}

/** The server's process id when it runs on this machine (loopback) and /proc shows it. */
async function serverPid(admin: mysql.Connection, host: string): Promise<number | undefined> {
  if (!isLoopback(host)) return undefined;
  try {
    const [rows] = await admin.query('SELECT @@pid_file AS f');
    const file = (rows as { f?: unknown }[])[0]?.f;
    if (typeof file !== 'string') return undefined;
    const pid = Number(readFileSync(file, 'utf8').trim());
    // The pid file of a server in a container names a pid of its namespace, not ours.
    const name = Number.isInteger(pid) ? processName(pid) : undefined;
    return name === 'mariadbd' || name === 'mysqld' ? pid : undefined;
  } catch {
    return undefined; // not readable here: no server CPU figure
  }
}

/**
 * What differs between two pairs' statements on MariaDB: the user, its default role and
 * lock, the grant, its role and its expiry event.
 */
function namesOf(prefix: string, email: string, grantId: string): string[] {
  const user = deriveUsername(email, { prefix, maxLength: 80 });
  const role = grantRoleName(grantId, { prefix, maxLength: 80 });
  return [
    user,
    mariadbDefaultRole(user, '%', prefix),
    userLockName(user, '%'),
    role,
    expiryEventName(role, prefix),
    grantId,
  ];
}

/**
 * The recorded grant and revoke as one pair for another grantee: the recorded names
 * replaced, and for each password hash the driver set, a fresh one (and the fingerprint of
 * it the driver records), as the driver computes one per new user.
 */
function pairWorkload(
  recorded: { grant: SqlTally; revoke: SqlTally },
  names: (email: string, grantId: string) => string[],
  from: string[],
): (email: string, grantId: string) => SqlStep[] {
  const steps = [...recorded.grant.steps, ...recorded.revoke.steps];
  const hashes = findInSteps(steps, /\*[0-9A-F]{40}/g);
  return (email, grantId) => {
    const to = names(email, grantId);
    const subs: [string, string][] = from.map((f, i) => [f, to[i] ?? f]);
    for (const h of hashes) {
      const fresh = mysqlNativePasswordHash(generatePassword());
      subs.push([h, fresh], [authFingerprint(h), authFingerprint(fresh)]);
    }
    const out = substituteSteps(steps, subs);
    assertSubstituted(out, [...from, ...hashes, ...hashes.map(authFingerprint)]);
    return out;
  };
}

export function formatMysqlBench(r: MysqlBenchReport): string {
  return [
    `mysql driver bench (MariaDB): ${r.pairs} grant+revoke pairs per path at concurrency ${r.concurrency} (best of interleaved rounds)`,
    `  machine            : at the start ${r.load.start}; at the end ${r.load.end}`,
    `  through Dispatcher : ${r.dispatcherPairsPerSecond.toFixed(1)} pairs/s`,
    `  the driver alone   : ${r.driverPairsPerSecond.toFixed(1)} pairs/s (ratio to direct ${r.driverRatio.toFixed(2)})`,
    `  same SQL, direct   : ${r.directPairsPerSecond.toFixed(1)} pairs/s`,
    `  ratio Dispatcher / direct: ${r.ratio.toFixed(2)} (target ≥ 0.9: ${r.ratio >= 0.9 ? 'met' : 'NOT met'})`,
    `  each round's ratio Dispatcher / direct, lowest to highest: ${r.roundRatios.map((x) => x.toFixed(2)).join(', ')}`,
    `  this process's CPU per pair: Dispatcher ${r.cpuMsPerPair.dispatcher.toFixed(2)} ms, driver alone ${r.cpuMsPerPair.driver.toFixed(2)} ms, direct ${r.cpuMsPerPair.direct.toFixed(2)} ms`,
    ...(r.serverCpuMsPerPair === undefined
      ? []
      : [
          `  the server's CPU per pair: Dispatcher ${r.serverCpuMsPerPair.dispatcher.toFixed(2)} ms, driver alone ${r.serverCpuMsPerPair.driver.toFixed(2)} ms, direct ${r.serverCpuMsPerPair.direct.toFixed(2)} ms`,
        ]),
    ...describeTally('one grant (first grant of a new grantee, read on one table)', r.grant),
    ...describeTally('its revoke', r.revoke),
    ...describeTally(
      `the direct path, grant and revoke together (the recorded statements replayed; ${
        r.direct.roundTrips === r.grant.roundTrips + r.revoke.roundTrips
          ? 'same round trips as the driver'
          : 'NOT the same round trips as the driver'
      })`,
      r.direct,
      false,
    ),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const pairs = Number(process.argv[2] ?? 600);
  const concurrency = Number(process.argv[3] ?? 4);
  const rounds = Number(process.argv[4] ?? 6);
  runMysqlBench(pairs, concurrency, rounds)
    .then((r) => {
      console.log(formatMysqlBench(r));
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}
