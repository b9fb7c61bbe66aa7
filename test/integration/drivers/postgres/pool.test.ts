import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { PgPools } from '../../../../src/drivers/postgres/pool.js';
import type { PgConnectionSpec } from '../../../../src/drivers/postgres/pool.js';
import { createPgTestEnv, pgEndpoint } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let spec: PgConnectionSpec;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  const ep = pgEndpoint();
  spec = {
    key: `pool-${env.suffix}`,
    host: ep.host,
    port: ep.port,
    user: env.serviceAccount,
    password: () => Promise.resolve(''),
    sslMode: 'disable',
    ca: undefined,
    max: 2,
    idleTimeoutMs: 5_000,
    connectTimeoutMs: 5_000,
  };
});

afterAll(async () => {
  await env?.teardown();
});

describe('PgPools', () => {
  it('keeps one pool per (integration, database, purpose) and closes pools left idle', async () => {
    let now = 1_000_000;
    const pools = new PgPools(pino({ level: 'silent' }), {
      now: () => now,
      sweepIntervalMs: 3_600_000,
    });
    try {
      const db = env.databases[0] ?? '';
      const signal = AbortSignal.timeout(10_000);
      const one = await pools.withSession(spec, db, 'main', signal, (s) =>
        s.query('SELECT 1 AS x'),
      );
      expect(one).toEqual([{ x: 1 }]);
      await pools.withSession(spec, db, 'main', signal, (s) => s.query('SELECT 1'));
      await pools.withSession(spec, db, 'lock', signal, (s) => s.query('SELECT 1'));
      expect(pools.size).toBe(2);
      now += 4_000;
      await pools.closeIdle();
      expect(pools.size).toBe(2);
      now += 2_000;
      await pools.closeIdle();
      expect(pools.size).toBe(0);
      // A closed pool comes back on the next use.
      await pools.withSession(spec, db, 'main', signal, (s) => s.query('SELECT 1'));
      expect(pools.size).toBe(1);
    } finally {
      await pools.close();
    }
  });

  it('an abort mid-statement ends the statement, destroys the connection and says E_CANCELLED', async () => {
    const pools = new PgPools(pino({ level: 'silent' }));
    try {
      const db = env.databases[0] ?? '';
      const ac = new AbortController();
      const running = pools.withSession(spec, db, 'main', ac.signal, (s) =>
        s.query(`SELECT pg_sleep(30), 'latchkey-abort-test' AS tag`),
      );
      // Wait until the server runs it, then abort.
      for (let i = 0; i < 100; i++) {
        const seen = await env.asAdmin(undefined, (a) =>
          a.query(
            `SELECT 1 FROM pg_stat_activity WHERE query LIKE '%latchkey-abort-test%' AND usename = $1`,
            [env.serviceAccount],
          ),
        );
        if (seen.rowCount) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      ac.abort(new Error('cancelled by test'));
      await expect(running).rejects.toMatchObject({ code: 'E_CANCELLED' });
      // The pool is still usable with a fresh signal.
      const ok = await pools.withSession(spec, db, 'main', AbortSignal.timeout(10_000), (s) =>
        s.query('SELECT 2 AS y'),
      );
      expect(ok).toEqual([{ y: 2 }]);
    } finally {
      await pools.close();
    }
    // The backend of the aborted statement goes away with its socket.
    let left = 1;
    for (let i = 0; i < 100 && left > 0; i++) {
      left =
        (
          await env.asAdmin(undefined, (a) =>
            a.query(
              `SELECT 1 FROM pg_stat_activity WHERE query LIKE '%latchkey-abort-test%' AND usename = $1`,
              [env.serviceAccount],
            ),
          )
        ).rowCount ?? 0;
      if (left > 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(left).toBe(0);
  });
});
