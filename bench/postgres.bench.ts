/**
 * Benchmark: the postgres driver against the local PostgreSQL.
 *
 *   npx tsx bench/postgres.bench.ts [pairs=120] [concurrency=4] [tables=10000] [rounds=5]
 *
 * 1. grant+revoke pairs per second THROUGH THE AGENT'S DISPATCHER (`src/dispatch`, with
 *    the driver registry, priorities, per-key order and deadlines), next to the same SQL
 *    statements sent directly with `pg` at the same concurrency: the statements the driver
 *    sent for one grant and its revoke are recorded once (text, bound values, which
 *    connection: bench/sql-count.ts) and replayed for every pair with that pair's names
 *    and a fresh SCRAM verifier, over plain pooled connections (a connection per recorded
 *    one, taken at its first statement and released after its last, as the driver takes
 *    its main and lock sessions). So the reference cannot go stale: the ratio
 *    (dispatcher/direct) is what the agent's own work costs (queue, locks, pools, JS),
 *    never different SQL (target ≥ 0.9). The driver alone is measured too.
 *    First BENCH_SQL_WARMUP (default 5) untimed rounds of every path: the Dispatcher and
 *    the driver run far more JavaScript than the replay, and V8 optimizes it over the first
 *    few hundred pairs (on the cores the server needs too). Then rounds of `pairs` pairs
 *    per path, the paths' order rotating from round to round;
 *    each path's best round is its figure, and the ratio of the two paths' rounds run
 *    next to each other is printed for every round (the spread says how far one run's
 *    figure can be trusted). Before every path's round the users earlier rounds left are
 *    dropped (a revoke leaves the user, without login) and the shared catalogs the pairs
 *    churn (roles, memberships, comments, dependencies) are vacuumed, so that every round
 *    starts on the same server state: no path on the users and dead rows of the ones
 *    before it (this machine's server runs without autovacuum). With the server on this machine, the server's CPU per pair is printed
 *    too: on two cores it is most of the work, and what moves the figures between runs.
 *    Each pair: a first grant of read on one table to a new email (user, marker, grant
 *    role, record, privileges, membership, login expiry) and its revoke (NOLOGIN, session
 *    scan, privileges taken back, role dropped).
 * 2. discover on a database with `tables` tables (target < 2 s).
 *
 * Server: LATCHKEY_TEST_PG_URL or postgres://postgres@127.0.0.1:5432/postgres. Everything
 * created (a service account, two databases, users and roles `lkb<run>_*`) is dropped.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { Dispatcher } from '../src/dispatch/dispatcher.js';
import { createDriverRegistry } from '../src/drivers/registry.js';
import { driverFactory } from '../src/drivers/postgres/index.js';
import { PostgresDriver } from '../src/drivers/postgres/driver.js';
import { lockKey } from '../src/drivers/postgres/dialect.js';
import { retryConcurrentUpdate } from '../src/drivers/postgres/pool.js';
import { scramVerifier } from '../src/drivers/postgres/scram.js';
import { generatePassword } from '../src/drivers/sql/password.js';
import { tableId } from '../src/drivers/sql/resources.js';
import { deriveUsername, grantRoleName } from '../src/drivers/sql/username.js';
import { AgentEvents } from '../src/events.js';
import { createSealer } from '../src/protocol/seal.js';
import { generateRecipientKeyPair } from '../src/protocol/keys.js';
import type { Envelope, Integration, Result } from '../src/protocol/messages.js';
import type { DriverServices } from '../src/drivers/driver.js';
import type { SecretResolver } from '../src/secrets/types.js';
import { isLoopback, loadLine, parentPid, processCpuMs, processName } from './machine.js';
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

const [pairsArg, concArg, tablesArg, roundsArg] = process.argv.slice(2);
const PAIRS = Number(pairsArg ?? 120);
const CONCURRENCY = Number(concArg ?? 4);
const TABLES = Number(tablesArg ?? 10_000);
const ROUNDS = Number(roundsArg ?? 5);
/** Untimed rounds of every path before the timed ones (BENCH_SQL_WARMUP, default 5). */
const WARMUP_ROUNDS = Number(process.env.BENCH_SQL_WARMUP ?? 5);

const q = (n: string): string => `"${n.replace(/"/g, '""')}"`;
const baseUrl = new URL(
  process.env.LATCHKEY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
);
const urlFor = (db: string): string => {
  const u = new URL(baseUrl.toString());
  u.pathname = `/${encodeURIComponent(db)}`;
  return u.toString();
};

async function admin<T>(db: string | null, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: db === null ? baseUrl.toString() : urlFor(db) });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** This process's CPU time per pair (user + system, ms), lowest round of each path. */
const cpuPerPair = new Map<string, number>();
/** The server's CPU time per pair (ms), lowest round of each path (a local server only). */
const serverCpuPerPair = new Map<string, number>();
/** The postmaster, when the server runs on this machine and /proc shows it. */
let postmaster: number | undefined;

async function timed(
  path: string,
  items: number,
  concurrency: number,
  fn: (i: number) => Promise<void>,
): Promise<number> {
  const server0 = postmaster === undefined ? undefined : processCpuMs(postmaster, true);
  const started = performance.now();
  const cpu = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items) await fn(next++);
    }),
  );
  const used = process.cpuUsage(cpu);
  const seconds = (performance.now() - started) / 1000;
  const server1 = postmaster === undefined ? undefined : processCpuMs(postmaster, true);
  const ms = (used.user + used.system) / 1000 / items;
  cpuPerPair.set(path, Math.min(cpuPerPair.get(path) ?? Infinity, ms));
  if (server0 !== undefined && server1 !== undefined) {
    const perPair = (server1 - server0) / items;
    serverCpuPerPair.set(path, Math.min(serverCpuPerPair.get(path) ?? Infinity, perPair));
  }
  return seconds;
}

/**
 * Vacuums the shared catalogs that every pair writes and deletes rows of (run as the
 * benchmark's superuser; a server without autovacuum would otherwise hand each round the
 * dead rows of all rounds before it).
 */
async function vacuumCatalogs(): Promise<void> {
  await admin(null, (c) =>
    c.query('VACUUM pg_authid, pg_auth_members, pg_shdepend, pg_shdescription'),
  );
}

/**
 * Drops the users the rounds so far left (a revoke takes a user's login and its grant
 * role, not the user: the agent's `cleanup` drops it later), so that every round starts
 * with the same roles on the server instead of all earlier rounds' users.
 */
async function dropLeftUsers(): Promise<void> {
  await admin(null, async (c) => {
    const rows = await c.query<{ rolname: string }>(
      `SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) AND rolname <> $2`,
      [prefix, svc],
    );
    const names = rows.rows.map((r) => q(r.rolname));
    for (let i = 0; i < names.length; i += 500) {
      await c.query(`DROP ROLE IF EXISTS ${names.slice(i, i + 500).join(', ')}`);
    }
  });
}

/** The postmaster's pid when the server is on this machine (loopback) and /proc shows it. */
async function findPostmaster(): Promise<number | undefined> {
  if (!isLoopback(host)) return undefined;
  // Read while the backend is alive: it exits with its connection.
  const pm = await admin(null, async (c) => {
    const rows = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const backend = rows.rows[0]?.pid;
    // A server in a container answers with a pid of its own namespace: it must be a
    // postgres process here, and so must its parent.
    if (backend === undefined || processName(backend) !== 'postgres') return undefined;
    const parent = parentPid(backend);
    return parent !== undefined && processName(parent) === 'postgres' ? parent : undefined;
  });
  return pm !== undefined && processCpuMs(pm, true) !== undefined ? pm : undefined;
}

const run = randomBytes(3).toString('hex');
const prefix = `lkb${run}_`;
const svc = `${prefix}svc`;
const db = `${prefix}db`;
const bigDb = `${prefix}big`;
const host = baseUrl.hostname;
const port = baseUrl.port ? Number(baseUrl.port) : 5432;

const secrets: SecretResolver = {
  resolve: () => Promise.resolve({ username: svc, password: '', extra: {} }),
};
const recipient = generateRecipientKeyPair();
const services: DriverServices = {
  logger: pino({ level: 'silent' }),
  secrets,
  aws: {
    client: () => {
      throw new Error('no AWS in this benchmark');
    },
  },
  sealer: createSealer({ allowPlaintext: false }),
  tagPrefix: 'latchkey',
  now: () => new Date(),
};
const integration = (database: string, id: string): Integration => ({
  id,
  type: 'postgres',
  config: {
    host,
    port,
    database,
    sslMode: 'disable',
    userPrefix: prefix,
    databases: [database],
    maxConnections: CONCURRENCY + 1,
  },
  secret: { store: 'env', prefix: 'UNUSED_' },
});

// ---------------------------------------------------------------------------------------
// Through the dispatcher

async function dispatcherRound(round: number): Promise<number> {
  const registry = createDriverRegistry({ postgres: driverFactory }, services);
  const dispatcher = new Dispatcher({
    registry,
    concurrency: { global: CONCURRENCY, perIntegration: CONCURRENCY, perAwsService: 1 },
    queueSize: 10_000,
    timeoutsMs: {
      discover: 60_000,
      grant: 30_000,
      revoke: 30_000,
      rotate: 30_000,
      cleanup: 60_000,
      check: 10_000,
    },
    events: new AgentEvents(),
    logger: pino({ level: 'silent' }),
  });
  const waiting = new Map<string, (r: Result) => void>();
  dispatcher.onResult((r) => waiting.get(r.commandId)?.(r));
  const integ = integration(db, `bench-${run}`);
  let seq = 0;
  const send = (kind: 'grant' | 'revoke', params: Record<string, unknown>): Promise<Result> => {
    const id = `b${run}-${round}-${seq++}`;
    const now = new Date();
    const envelope = {
      id,
      kind,
      connectorId: 'bench',
      issuedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + 60_000).toISOString(),
      integration: integ,
      params,
    } as Envelope;
    return new Promise<Result>((resolve, reject) => {
      waiting.set(id, resolve);
      const outcome = dispatcher.submit(envelope, id, now);
      if (outcome.status === 'rejected') reject(outcome.error);
    });
  };
  const secs = await timed('dispatcher', PAIRS, CONCURRENCY, async (i) => {
    const email = `d${round}x${i}@bench.example`;
    const resource = [{ type: 'table', id: tableId(db, 'public', 't') }];
    const g = await send('grant', {
      grantId: `d${round}_${i}`,
      grantee: { email },
      resources: resource,
      permission: 'read',
      recipientKey: recipient.publicKey,
    });
    if (g.status !== 'ok') throw new Error(`grant failed: ${JSON.stringify(g.error)}`);
    const r = await send('revoke', {
      grantId: `d${round}_${i}`,
      grantee: { email },
      resources: resource,
      permission: 'read',
    });
    if (r.status !== 'ok') throw new Error(`revoke failed: ${JSON.stringify(r.error)}`);
  });
  await dispatcher.drain(5000);
  await registry.closeAll();
  return PAIRS / secs;
}

/** The driver called directly (no dispatcher), to tell the two overheads apart. */
async function driverRound(round: number): Promise<number> {
  const driver = new PostgresDriver(services);
  const integ = integration(db, `bench-drv-${run}`);
  const ctx = () => ({
    commandId: 'c',
    integration: integ,
    signal: AbortSignal.timeout(30_000),
    logger: services.logger,
  });
  try {
    const secs = await timed('driver', PAIRS, CONCURRENCY, async (i) => {
      const email = `v${round}x${i}@bench.example`;
      const resources = [{ type: 'table', id: tableId(db, 'public', 't') }];
      await driver.grant(ctx(), {
        grantId: `v${round}_${i}`,
        grantee: { email },
        resources,
        permission: 'read',
        recipientKey: recipient.publicKey,
      });
      await driver.revoke(ctx(), {
        grantId: `v${round}_${i}`,
        grantee: { email },
        resources,
        permission: 'read',
      });
    });
    return PAIRS / secs;
  } finally {
    await driver.close();
  }
}

// ---------------------------------------------------------------------------------------
// The same statements, replayed directly with pg

/** The grantee and grant whose statements are recorded (then replayed with other names). */
const RECORDED = { email: 'recorded.zq@bench.example', grantId: 'recorded_zq' };

/** What differs between two pairs' statements: the user, its lock key, the grant and its role. */
function namesOf(email: string, grantId: string): string[] {
  const user = deriveUsername(email, { prefix, maxLength: 63 });
  const role = grantRoleName(grantId, { prefix, maxLength: 63 });
  return [user, role, lockKey(user), grantId];
}

/**
 * What one grant and its revoke send, through the driver (the dispatcher adds no SQL),
 * recorded with bound values and connections: one warm pair first, then the grant and the
 * revoke of `RECORDED`. These are both the figures reported and the direct path's workload.
 */
async function recordPair(): Promise<{ grant: SqlTally; revoke: SqlTally }> {
  const driver = new PostgresDriver(services);
  const integ = integration(db, `bench-count-${run}`);
  const ctx = () => ({
    commandId: 'count',
    integration: integ,
    signal: AbortSignal.timeout(30_000),
    logger: services.logger,
  });
  const resources = [{ type: 'table', id: tableId(db, 'public', 't') }];
  const pair = async (
    email: string,
    grantId: string,
  ): Promise<{ grant: SqlTally; revoke: SqlTally }> => {
    const params = { grantId, grantee: { email }, resources };
    const grant = await countSql(async () => {
      await driver.grant(ctx(), {
        ...params,
        permission: 'read',
        recipientKey: recipient.publicKey,
      });
    });
    const revoke = await countSql(async () => {
      await driver.revoke(ctx(), { ...params, permission: 'read' });
    });
    return { grant, revoke };
  };
  try {
    await pair('warm.zq@bench.example', 'warm_zq');
    return await pair(RECORDED.email, RECORDED.grantId);
  } finally {
    await driver.close();
  }
}

/**
 * The recorded grant and revoke as one pair for another grantee: the recorded names
 * replaced, and a fresh SCRAM verifier computed for each password the driver set (the
 * driver computes one per new user too).
 */
function pairWorkload(recorded: {
  grant: SqlTally;
  revoke: SqlTally;
}): (email: string, grantId: string) => Promise<SqlStep[]> {
  // The revoke's connections are its own (the grant's were released).
  const offset = Math.max(-1, ...recorded.grant.steps.map((s) => s.connection)) + 1;
  const steps = [
    ...recorded.grant.steps,
    ...recorded.revoke.steps.map((s) => ({ ...s, connection: s.connection + offset })),
  ];
  const from = namesOf(RECORDED.email, RECORDED.grantId);
  const verifiers = findInSteps(steps, /SCRAM-SHA-256\$[^'\s]+/g);
  return async (email, grantId) => {
    const to = namesOf(email, grantId);
    const subs: [string, string][] = from.map((f, i) => [f, to[i] ?? f]);
    for (const v of verifiers) subs.push([v, await scramVerifier(generatePassword())]);
    const out = substituteSteps(steps, subs);
    assertSubstituted(out, [...from, ...verifiers]);
    return out;
  };
}

/** Plain pg pools (one per database), as many connections as the driver's main and lock pools. */
function directPools(): {
  open: (n: number, database: string | undefined) => Promise<ReplayConnection>;
  end: () => Promise<void>;
} {
  const pools = new Map<string, pg.Pool>();
  return {
    open: async (_n, database) => {
      const name = database ?? db;
      let pool = pools.get(name);
      if (!pool) {
        pool = new pg.Pool({ host, port, user: svc, database: name, max: 2 * (CONCURRENCY + 1) });
        pools.set(name, pool);
      }
      const client = await pool.connect();
      return {
        // The same retry on `tuple concurrently updated` as the driver's sessions.
        query: (text, values) =>
          retryConcurrentUpdate(text, () =>
            client.query({ text, values: values === undefined ? [] : [...values] }),
          ),
        release: () => client.release(),
      };
    },
    end: async () => {
      await Promise.all([...pools.values()].map((p) => p.end()));
    },
  };
}

async function directRound(
  round: number,
  workload: (email: string, grantId: string) => Promise<SqlStep[]>,
): Promise<number> {
  const pools = directPools();
  try {
    const secs = await timed('direct', PAIRS, CONCURRENCY, async (i) =>
      replaySql(await workload(`p${round}x${i}@bench.example`, `p${round}_${i}`), pools.open),
    );
    return PAIRS / secs;
  } finally {
    await pools.end();
  }
}

/** What one replayed pair sends (it must be what the driver sent: same round trips). */
async function countDirectPair(
  workload: (email: string, grantId: string) => Promise<SqlStep[]>,
): Promise<SqlTally> {
  const pools = directPools();
  try {
    const steps = await workload('cd@bench.example', 'cd');
    return await countSql(() => replaySql(steps, pools.open));
  } finally {
    await pools.end();
  }
}

async function discoverBig(): Promise<{ seconds: number; resources: number }> {
  await admin(bigDb, async (c) => {
    await c.query(`SET ROLE ${q(svc)}`);
    await c.query(
      `DO $$ BEGIN FOR s IN 1..10 LOOP EXECUTE format('CREATE SCHEMA s%s', s); END LOOP; END $$`,
    );
    const perSchema = Math.ceil(TABLES / 10);
    for (let s = 1; s <= 10; s++) {
      await c.query(
        `DO $$ BEGIN FOR i IN 1..${perSchema} LOOP EXECUTE format('CREATE TABLE s${s}.t%s (id int, v text)', i); END LOOP; END $$`,
      );
    }
  });
  const driver = new PostgresDriver(services);
  try {
    const ctx = {
      commandId: 'disc',
      integration: integration(bigDb, `bench-big-${run}`),
      signal: AbortSignal.timeout(120_000),
      logger: services.logger,
    };
    await driver.check(ctx); // warm the pool, as a running agent would be
    const started = performance.now();
    const out = await driver.discover(ctx);
    return { seconds: (performance.now() - started) / 1000, resources: out.resources.length };
  } finally {
    await driver.close();
  }
}

async function cleanup(): Promise<void> {
  await admin(null, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${q(db)} WITH (FORCE)`);
    await c.query(`DROP DATABASE IF EXISTS ${q(bigDb)} WITH (FORCE)`);
    const roles = await c.query<{ rolname: string }>(
      `SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname <> $2, rolname`,
      [prefix, svc],
    );
    for (const r of roles.rows.reverse()) {
      await c.query(`DROP OWNED BY ${q(r.rolname)}`).catch(() => undefined);
      await c.query(`DROP ROLE IF EXISTS ${q(r.rolname)}`).catch(() => undefined);
    }
  });
}

async function main(): Promise<void> {
  installSqlCounter();
  const loadStart = loadLine();
  await admin(null, async (c) => {
    await c.query(`CREATE ROLE ${q(svc)} LOGIN CREATEROLE NOSUPERUSER`);
    await c.query(`GRANT pg_signal_backend TO ${q(svc)}`);
    await c.query(`CREATE DATABASE ${q(db)} OWNER ${q(svc)}`);
    await c.query(`CREATE DATABASE ${q(bigDb)} OWNER ${q(svc)}`);
  });
  await admin(db, (c) =>
    c.query(`CREATE TABLE public.t (id int); ALTER TABLE public.t OWNER TO ${q(svc)}`),
  );
  try {
    // The direct path replays what the driver sends (recorded here, after a warm pair).
    const counted = await recordPair();
    const workload = pairWorkload(counted);
    const dispatcherRates: number[] = [];
    const directRates: number[] = [];
    const driverRates: number[] = [];
    // Each path's round and where its timed rates go.
    const paths: { run: (round: number) => Promise<number>; rates: number[] }[] = [
      { run: (r) => directRound(r, workload), rates: directRates },
      { run: (r) => dispatcherRound(r), rates: dispatcherRates },
      { run: (r) => driverRound(r), rates: driverRates },
    ];
    // Every round starts on the same server state (see dropLeftUsers, vacuumCatalogs).
    const onFreshState = async (run: () => Promise<number>): Promise<number> => {
      await dropLeftUsers();
      await vacuumCatalogs();
      return run();
    };
    // Warm-up: WARMUP_ROUNDS untimed rounds of every path. The Dispatcher and driver paths
    // run far more JavaScript than the replay, and V8 was still optimizing it (TurboFan, on
    // the two cores the server needs too) through their first timed rounds: 0.4 ms of
    // compiler CPU per pair in rounds 3–8 against 0.16 for the replay (perf, this
    // machine), when only the direct path was warmed.
    for (let w = 1; w <= WARMUP_ROUNDS; w++) {
      for (const path of paths) await onFreshState(() => path.run(100 + w));
    }
    cpuPerPair.clear();
    // Then the timed rounds, the order of the three paths rotating so that none always
    // gets the quieter moment of a shared machine. Best of each is reported.
    postmaster = await findPostmaster();
    for (let round = 1; round <= ROUNDS; round++) {
      for (let k = 0; k < paths.length; k++) {
        const path = paths[(round + k) % paths.length];
        if (path !== undefined) path.rates.push(await onFreshState(() => path.run(round)));
      }
    }
    const best = (xs: number[]): number => Math.max(...xs);
    // Each round's Dispatcher rate over its direct rate (run seconds apart).
    const roundRatios = dispatcherRates
      .map((x, i) => x / (directRates[i] ?? NaN))
      .sort((a, b) => a - b);
    const d = best(dispatcherRates);
    const p = best(directRates);
    const loadRates = loadLine();
    const countedDirect = await countDirectPair(workload);
    const disc = await discoverBig();
    const report = {
      path: 'agent Dispatcher (src/dispatch) → postgres driver',
      pairs: PAIRS,
      concurrency: CONCURRENCY,
      dispatcherPairsPerSecond: Number(d.toFixed(1)),
      directPgPairsPerSecond: Number(p.toFixed(1)),
      ratio: Number((d / p).toFixed(2)),
      roundRatios: roundRatios.map((x) => Number(x.toFixed(2))),
      rounds: ROUNDS,
      grantRoundTrips: counted.grant.roundTrips,
      grantStatements: counted.grant.statements,
      revokeRoundTrips: counted.revoke.roundTrips,
      revokeStatements: counted.revoke.statements,
      driverOnlyPairsPerSecond: Number(best(driverRates).toFixed(1)),
      ratioTarget: 0.9,
      discoverTables: TABLES,
      discoverResources: disc.resources,
      discoverSeconds: Number(disc.seconds.toFixed(2)),
      discoverTargetSeconds: 2,
    };
    console.log(
      `postgres: grant+revoke pairs/s through the agent's Dispatcher: ${report.dispatcherPairsPerSecond}`,
    );
    console.log(
      `postgres: the same SQL sent directly with pg (replayed):      ${report.directPgPairsPerSecond}`,
    );
    console.log(
      `postgres: ratio ${report.ratio} (target ≥ 0.9) at concurrency ${CONCURRENCY}, ${PAIRS} pairs, best of ${ROUNDS}`,
    );
    console.log(
      `postgres: each round's Dispatcher/direct ratio, lowest to highest: ${report.roundRatios.map((x) => x.toFixed(2)).join(', ')}`,
    );
    console.log(`postgres: machine at the start ${loadStart}; after the rates ${loadRates}`);
    const cpu = (m: Map<string, number>, path: string): string =>
      `${(m.get(path) ?? NaN).toFixed(2)} ms`;
    console.log(
      `postgres: this process's CPU per pair: Dispatcher ${cpu(cpuPerPair, 'dispatcher')}, driver alone ${cpu(cpuPerPair, 'driver')}, direct ${cpu(cpuPerPair, 'direct')}`,
    );
    if (serverCpuPerPair.size > 0) {
      console.log(
        `postgres: the server's CPU per pair (all backends): Dispatcher ${cpu(serverCpuPerPair, 'dispatcher')}, driver alone ${cpu(serverCpuPerPair, 'driver')}, direct ${cpu(serverCpuPerPair, 'direct')}`,
      );
    }
    for (const line of [
      ...describeTally(
        'one grant (first grant of a new grantee, read on one table)',
        counted.grant,
      ),
      ...describeTally('its revoke', counted.revoke),
      ...describeTally(
        `the direct path, grant and revoke together (the recorded statements replayed; ${
          countedDirect.roundTrips === counted.grant.roundTrips + counted.revoke.roundTrips
            ? 'same round trips as the driver'
            : 'NOT the same round trips as the driver'
        })`,
        countedDirect,
        false,
      ),
    ]) {
      console.log(`postgres:${line}`);
    }
    console.log(
      `postgres: discover ${TABLES} tables (${disc.resources} resources) in ${report.discoverSeconds} s (target < 2 s)`,
    );
    console.log(JSON.stringify(report));
  } finally {
    await cleanup();
  }
}

await main();
