/**
 * A whole PostgreSQL server stops mid-burst (issue 10, item 1): a private server started
 * by this file (`initdb` + `pg_ctl` as the `postgres` system user, its own data directory
 * and port) takes a burst of concurrent grants and is stopped in `immediate` mode (as a
 * crash or failover would) while they run. Every grant of the burst ends with a result —
 * success, or a retryable error — the driver stays usable, grants fail with `E_CONNECT`
 * while the server is down, and once it is back the same driver grants again.
 *
 * Skipped where the PostgreSQL 15 server binaries or the `postgres` user are missing.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import { isLatchkeyError } from '../../../../src/errors.js';
import type { GrantParams, Integration } from '../../../../src/protocol/messages.js';
import { generateRecipientKeyPair } from '../../../../src/protocol/keys.js';
import { ctxFor, staticSecrets, testServices } from '../../../helpers/pg.js';

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';
const available =
  existsSync(join(BIN, 'initdb')) &&
  existsSync(join(BIN, 'pg_ctl')) &&
  process.getuid?.() === 0 &&
  (await run('id', ['-u', 'postgres']).then(
    () => true,
    () => false,
  ));

let dir = '';
let port = 0;
let driver: PostgresDriver | undefined;
let integration: Integration;
const recipient = generateRecipientKeyPair();

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function pgCtl(...args: string[]): Promise<void> {
  await run(
    'runuser',
    ['-u', 'postgres', '--', join(BIN, 'pg_ctl'), '-D', join(dir, 'data'), ...args],
    {
      timeout: 60_000,
    },
  );
}

async function startServer(): Promise<void> {
  await pgCtl(
    '-w',
    '-l',
    join(dir, 'log'),
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40`,
    'start',
  );
}

async function asSuperuser(sql: string[]): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    for (const s of sql) await c.query(s);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  if (!available) return;
  dir = mkdtempSync(join(tmpdir(), 'latchkey-pgstop-'));
  chownSync(
    dir,
    Number((await run('id', ['-u', 'postgres'])).stdout.trim()),
    Number((await run('id', ['-g', 'postgres'])).stdout.trim()),
  );
  port = await freePort();
  await run(
    'runuser',
    [
      '-u',
      'postgres',
      '--',
      join(BIN, 'initdb'),
      '-D',
      join(dir, 'data'),
      '-A',
      'trust',
      '-U',
      'postgres',
      '--no-sync',
    ],
    { timeout: 120_000 },
  );
  await startServer();
  await asSuperuser([
    'CREATE ROLE svc LOGIN CREATEROLE CREATEDB',
    'GRANT pg_signal_backend TO svc',
    'CREATE DATABASE app OWNER svc',
  ]);
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'svc', database: 'app' });
  await c.connect();
  await c.query('CREATE TABLE public.items (id int PRIMARY KEY)');
  await c.end();
  integration = {
    id: 'pg-private',
    type: 'postgres',
    config: {
      host: '127.0.0.1',
      port,
      database: 'app',
      sslMode: 'disable',
      userPrefix: 'lk_',
      databases: ['app'],
      connectTimeoutMs: 3_000,
    },
    secret: { store: 'env', prefix: 'LATCHKEY_SECRET_PRIVATE_' },
  };
  driver = new PostgresDriver(testServices(staticSecrets({ username: 'svc', password: '' })));
}, 180_000);

afterAll(async () => {
  await driver?.close();
  if (dir) {
    await pgCtl('-m', 'immediate', 'stop').catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

function grantParams(i: number): GrantParams {
  return {
    grantId: `b${i}`,
    grantee: { email: `burst${i}@example.com` },
    resources: [{ type: 'table', id: tableId('app', 'public', 'items') }],
    permission: 'read',
    recipientKey: recipient.publicKey,
  };
}

describe.runIf(available)('a private PostgreSQL server stopped mid-burst', () => {
  it('every grant of the burst ends (ok or a retryable E_CONNECT/E_CONFLICT), grants fail with E_CONNECT while it is down, and succeed once it is back', async () => {
    const d = driver;
    if (!d) throw new Error('no driver');
    // Warm the pools, then a burst of 24 grants (different users: no lock between them).
    await d.grant(ctxFor(integration), grantParams(0));
    const burst = Array.from({ length: 24 }, (_, i) =>
      d.grant(ctxFor(integration), grantParams(i + 1)).then(
        () => ({ ok: true as const }),
        (err: unknown) => ({ ok: false as const, err }),
      ),
    );
    await new Promise((r) => setTimeout(r, 30));
    await pgCtl('-m', 'immediate', 'stop');
    const outcomes = await Promise.all(burst);
    const failures = outcomes.flatMap((o) => (o.ok ? [] : [o.err]));
    expect(failures.length).toBeGreaterThan(0); // the stop landed inside the burst
    for (const err of failures) {
      expect(
        isLatchkeyError(err) ? { code: err.code, retryable: err.retryable } : err,
      ).toMatchObject({
        retryable: true,
      });
      if (isLatchkeyError(err)) expect(['E_CONNECT', 'E_CONFLICT']).toContain(err.code);
    }

    // Down: a clear, retryable E_CONNECT, not a hang and not a crash.
    const down = await d.grant(ctxFor(integration), grantParams(100)).then(
      () => null,
      (err: unknown) => err,
    );
    expect(isLatchkeyError(down) && { code: down.code, retryable: down.retryable }).toEqual({
      code: 'E_CONNECT',
      retryable: true,
    });

    // Back: the same driver works again (broken pooled connections were discarded). New
    // grantees: re-running a grant the crash cut in half is the kill -9 test's subject.
    await startServer();
    for (let i = 200; i < 210; i++) {
      const out = await d.grant(ctxFor(integration), grantParams(i));
      expect(out.username.startsWith('lk_')).toBe(true);
    }
  });
});
