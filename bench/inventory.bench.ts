/**
 * Benchmark: the access inventory and large discover results, as the agent produces and
 * delivers them (issue 13, issue 17).
 *
 *   npx tsx bench/inventory.bench.ts [tables=10000] [principals=200] [discoverTables=100000] [frameBytes=1048576]
 *
 * 1. Inventory: `tables` tables in one schema, `principals` roles each granted SELECT on
 *    every table (tables × principals ACL items). A discover with `include: ["privileges"]`
 *    as the agent runs it: the driver writes its pages to the result spool
 *    (`src/controlplane/spool.ts`: each page schema-checked, serialized and hashed as it
 *    comes, on disk past `frameBytes`), the dispatcher's output check of the rest, then
 *    the `result-chunk` frames of at most `frameBytes` read back from the file (as the
 *    link does); their data is hashed and must match the announced sha256. Reports the
 *    time of each step, the result's size, the number of chunk frames and the peak RSS of
 *    this process (bounded: independent of the size).
 * 2. Discover of `discoverTables` tables spread over 3 schemas (no inventory): time, size,
 *    chunk frames, peak RSS (issue 17 asks < 2 s and < 250 MiB).
 *
 * Each case runs in its own child process so that one case's peak RSS is not the other's.
 * Server: LATCHKEY_TEST_PG_URL or postgres://postgres@127.0.0.1:5432/postgres. Everything
 * created (`lkbi<run>_*`) is dropped.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import pino from 'pino';
import { PostgresDriver } from '../src/drivers/postgres/driver.js';
import type { DriverServices } from '../src/drivers/driver.js';
import { createSealer } from '../src/protocol/seal.js';
import { DiscoverOutputSchema, type Integration } from '../src/protocol/messages.js';
import { ResultFrame, nextChunk, type HeldFrame } from '../src/protocol/result-frame.js';
import { ResultSpool } from '../src/controlplane/spool.js';
import type { SecretResolver } from '../src/secrets/types.js';

const [tablesArg, principalsArg, discoverArg, frameArg, caseArg, runArg] = process.argv.slice(2);
const TABLES = Number(tablesArg ?? 10_000);
const PRINCIPALS = Number(principalsArg ?? 200);
const DISCOVER_TABLES = Number(discoverArg ?? 100_000);
const FRAME = Number(frameArg ?? 1024 * 1024);

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

const MIB = 1024 * 1024;

interface CaseReport {
  case: string;
  discoverSeconds: number;
  checkSeconds: number;
  serializeSeconds: number;
  chunkSeconds: number;
  totalSeconds: number;
  resultBytes: number;
  frames: number;
  largestFrameBytes: number;
  entries: number;
  resources: number;
  peakRssMiB: number;
}

/** One case, in this (child) process: discover → output check → frame → chunk frames. */
async function runCase(which: 'inventory' | 'discover', run: string): Promise<void> {
  const prefix = `lkbi${run}_`;
  const svc = `${prefix}svc`;
  const db = which === 'inventory' ? `${prefix}inv` : `${prefix}big`;
  const secrets: SecretResolver = {
    resolve: () => Promise.resolve({ username: svc, password: '', extra: {} }),
  };
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
  const integration: Integration = {
    id: `bench-${which}-${run}`,
    type: 'postgres',
    config: {
      host: baseUrl.hostname,
      port: baseUrl.port ? Number(baseUrl.port) : 5432,
      database: db,
      sslMode: 'disable',
      userPrefix: prefix,
      databases: [db],
    },
    secret: { store: 'env', prefix: 'UNUSED_' },
  };
  const driver = new PostgresDriver(services);
  try {
    const ctx = {
      commandId: 'bench',
      integration,
      signal: AbortSignal.timeout(600_000),
      logger: services.logger,
    };
    await driver.check(ctx); // warm the pool, as a running agent would be
    // The agent's path: the driver writes pages to the spool (schema-checked, serialized
    // and hashed as they come), the rest of the output closes it, chunks are read back.
    const spool = await ResultSpool.open({ logger: services.logger, memoryBytes: FRAME });
    const writer = spool.begin('bench', 'discover');
    const t0 = performance.now();
    const out = await driver.discover(
      { ...ctx, sink: writer },
      which === 'inventory' ? { include: ['privileges'] } : {},
    );
    const t1 = performance.now();
    const checked = DiscoverOutputSchema.parse(out);
    let frame: HeldFrame;
    if (writer.used) {
      await writer.complete(checked);
    }
    const t2 = performance.now();
    const timings = {
      receivedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      queueMs: 0,
      runMs: Math.round(t2 - t0),
    };
    if (writer.used) {
      frame = writer.finish(timings);
    } else {
      await writer.discard();
      frame = ResultFrame.of({
        type: 'result',
        commandId: 'bench',
        kind: 'discover',
        status: 'ok',
        output: checked,
        timings,
      });
    }
    const bytes = frame.bytes;
    const sha = frame.sha256;
    const t3 = performance.now();
    let frames = 0;
    let largest = 0;
    let cutMs = 0;
    // What the control plane would reassemble: counted and hashed, not kept.
    const check = createHash('sha256');
    let entries = 0;
    let resources = 0;
    const count = (data: string): void => {
      check.update(data, 'utf8');
      entries += data.split('"principalId":').length - 1;
      resources += data.split('"parentId":').length - 1;
    };
    if (bytes <= FRAME) {
      frames = 1;
      largest = bytes;
      count(frame.spooled ? frame.readText() : frame.text);
    } else {
      let char = 0;
      let byte = 0;
      while (byte < bytes) {
        const c0 = performance.now();
        const piece = frame.spooled
          ? frame.chunkAt(byte, FRAME)
          : nextChunk(frame, char, byte, FRAME);
        cutMs += performance.now() - c0;
        frames++;
        largest = Math.max(largest, Buffer.byteLength(piece.text, 'utf8'));
        count((JSON.parse(piece.text) as { data: string }).data);
        char = piece.endChar;
        byte = piece.endByte;
      }
    }
    if (check.digest('hex') !== sha)
      throw new Error('reassembled result does not match its sha256');
    // Only the agent's part (cutting chunks from the file), not the control plane's checks.
    const t4 = t3 + cutMs;
    if (frame.spooled) frame.release();
    await spool.close();
    const report: CaseReport = {
      case: which,
      discoverSeconds: Number(((t1 - t0) / 1000).toFixed(2)),
      checkSeconds: Number(((t2 - t1) / 1000).toFixed(2)),
      serializeSeconds: Number(((t3 - t2) / 1000).toFixed(2)),
      chunkSeconds: Number(((t4 - t3) / 1000).toFixed(2)),
      totalSeconds: Number(((t4 - t0) / 1000).toFixed(2)),
      resultBytes: bytes,
      frames,
      largestFrameBytes: largest,
      // Counted in the reassembled text: entries by principalId, resources by parentId
      // (databases have none).
      entries,
      resources,
      // maxRSS is in KiB: the whole process's peak, pool buffers and all.
      peakRssMiB: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
    };
    console.log(JSON.stringify(report));
  } finally {
    await driver.close();
  }
}

function child(which: string, run: string): Promise<CaseReport> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(import.meta.url),
        String(TABLES),
        String(PRINCIPALS),
        String(DISCOVER_TABLES),
        String(FRAME),
        which,
        run,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    proc.once('exit', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) reject(new Error(`${which} case failed (exit ${code})`));
      else resolve(JSON.parse(line) as CaseReport);
    });
  });
}

async function setup(run: string): Promise<void> {
  const prefix = `lkbi${run}_`;
  const svc = `${prefix}svc`;
  await admin(null, async (c) => {
    await c.query(`CREATE ROLE ${q(svc)} LOGIN CREATEROLE NOSUPERUSER`);
    await c.query(`CREATE DATABASE ${q(`${prefix}inv`)} OWNER ${q(svc)}`);
    await c.query(`CREATE DATABASE ${q(`${prefix}big`)} OWNER ${q(svc)}`);
    const roles = Array.from({ length: PRINCIPALS }, (_, i) => `${prefix}p${i}`);
    for (const r of roles) await c.query(`CREATE ROLE ${q(r)} NOLOGIN`);
  });
  await admin(`${prefix}inv`, async (c) => {
    await c.query(`CREATE SCHEMA app AUTHORIZATION ${q(svc)}`);
    await createTables(c, 'app', TABLES);
    const roles = Array.from({ length: PRINCIPALS }, (_, i) => q(`${prefix}p${i}`)).join(', ');
    // A few hundred tables per statement: one transaction must not lock them all.
    for (let i = 1; i <= TABLES; i += BATCH) {
      const names = Array.from(
        { length: Math.min(BATCH, TABLES - i + 1) },
        (_, k) => `app.t${i + k}`,
      );
      await c.query(`GRANT SELECT ON ${names.join(', ')} TO ${roles}`);
    }
  });
  await admin(`${prefix}big`, async (c) => {
    const per = Math.ceil(DISCOVER_TABLES / 3);
    for (const schema of ['s1', 's2', 's3']) {
      await c.query(`CREATE SCHEMA ${schema}`);
      await createTables(c, schema, per);
    }
  });
}

const BATCH = 500;

/** `count` tables `<schema>.t1…`, in batches (each DO block is one transaction). */
async function createTables(c: pg.Client, schema: string, count: number): Promise<void> {
  for (let i = 1; i <= count; i += BATCH) {
    const last = Math.min(count, i + BATCH - 1);
    await c.query(
      `DO $$ BEGIN FOR i IN ${i}..${last} LOOP EXECUTE format('CREATE TABLE ${schema}.t%s (id int)', i); END LOOP; END $$`,
    );
  }
}

async function cleanup(run: string): Promise<void> {
  const prefix = `lkbi${run}_`;
  await admin(null, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${q(`${prefix}inv`)} WITH (FORCE)`);
    await c.query(`DROP DATABASE IF EXISTS ${q(`${prefix}big`)} WITH (FORCE)`);
    const roles = await c.query<{ rolname: string }>(
      `SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname`,
      [prefix],
    );
    for (const r of roles.rows) {
      await c.query(`DROP OWNED BY ${q(r.rolname)}`).catch(() => undefined);
      await c.query(`DROP ROLE IF EXISTS ${q(r.rolname)}`).catch(() => undefined);
    }
    // Two million grants leave as many dead rows in the cluster-wide catalogs
    // (pg_shdepend above all: 237 MiB, 4 million dead rows measured), which autovacuum
    // takes its time over: every later CREATE/DROP ROLE on this server pays for them, the
    // postgres bench after this one included (56 pairs/s before this vacuum, 87 after).
    await c.query('VACUUM pg_shdepend, pg_authid, pg_auth_members').catch(() => undefined);
  });
}

async function main(): Promise<void> {
  const run = randomBytes(3).toString('hex');
  const setupStarted = performance.now();
  try {
    await setup(run);
    console.log(
      `inventory: set up ${TABLES} tables × ${PRINCIPALS} principals and ${DISCOVER_TABLES} tables in 3 schemas in ${((performance.now() - setupStarted) / 1000).toFixed(0)} s`,
    );
    const inv = await child('inventory', run);
    console.log(
      `inventory: ${TABLES} tables × ${PRINCIPALS} principals: ${inv.entries} entries, ${(inv.resultBytes / MIB).toFixed(1)} MiB result in ${inv.frames} frames (≤ ${FRAME} bytes, largest ${inv.largestFrameBytes}); discover with its pages checked, serialized and spooled ${inv.discoverSeconds} s + the rest checked and the spool closed ${inv.checkSeconds} s + frame ${inv.serializeSeconds} s + cutting the chunks from the file ${inv.chunkSeconds} s = ${inv.totalSeconds} s; peak RSS ${inv.peakRssMiB} MiB (bounded: compare two sizes)`,
    );
    const disc = await child('discover', run);
    console.log(
      `inventory: discover ${DISCOVER_TABLES} tables × 3 schemas: ${disc.resources} resources, ${(disc.resultBytes / MIB).toFixed(1)} MiB in ${disc.frames} frames (≤ ${FRAME} bytes); ${disc.totalSeconds} s (target < 2 s), peak RSS ${disc.peakRssMiB} MiB (target < 250 MiB)`,
    );
    console.log(JSON.stringify({ inventory: inv, discover: disc }));
  } finally {
    await cleanup(run);
  }
}

if (caseArg === 'inventory' || caseArg === 'discover') {
  await runCase(caseArg, runArg ?? '');
} else {
  await main();
}
