/**
 * Global setup of the `mariadb-modes` test project (vitest.config.ts): a PRIVATE MariaDB
 * server started with `--sql-mode=NO_BACKSLASH_ESCAPES,ANSI_QUOTES` and the event scheduler
 * on, so that the mysql driver's integration tests also run against a server whose SQL
 * mode would change how unprepared clients' literals and identifiers parse.
 *
 * - its own data directory (`mariadb-install-db` into a temp folder), own port (a free one)
 *   and socket, run as the `mysql` system user when we are root (mariadbd refuses root);
 * - its URL is handed to the test workers with `provide('mysqlModesUrl')`
 *   (test/helpers/mysql-modes-env.ts puts it into LATCHKEY_TEST_MYSQL_URL);
 * - stopped (SIGTERM to the pid it wrote) and its folder removed at the end.
 *
 * The shared server at 127.0.0.1:3306 is never touched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { freeLoopbackPort } from '../../src/demo/embedded-postgres.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import mysql from 'mysql2/promise';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    mysqlModesUrl: string;
  }
}

/** The server's global SQL mode: what used to let a `'` in a name end a literal. */
export const HOSTILE_SQL_MODE = 'NO_BACKSLASH_ESCAPES,ANSI_QUOTES';

function findBinary(names: string[]): string {
  for (const n of names) {
    for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin']) {
      const p = join(dir, n);
      if (existsSync(p)) return p;
    }
  }
  throw new Error(
    `the mariadb-modes tests need a local MariaDB server install (${names.join(' or ')}); install mariadb-server`,
  );
}

/** `[cmd, args]` running as the mysql system user when we are root. */
function asMysql(cmd: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'mysql', '--', cmd, ...args]] : [cmd, args];
}

async function waitReady(url: string, child: ChildProcess, errLog: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let last: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const c = await mysql.createConnection({ uri: url, connectTimeout: 2000 });
      await c.query('SELECT 1');
      await c.end();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const log = existsSync(errLog)
    ? readFileSync(errLog, 'utf8').split('\n').slice(-15).join('\n')
    : '';
  throw new Error(
    `the private MariaDB (${HOSTILE_SQL_MODE}) did not start: ${String(last)}\n${log}`,
  );
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const installDb = findBinary(['mariadb-install-db', 'mysql_install_db']);
  const mariadbd = findBinary(['mariadbd', 'mysqld']);
  const dir = mkdtempSync(join(tmpdir(), 'lk-mariadb-modes-'));
  const datadir = join(dir, 'data');
  const pidFile = join(dir, 'mariadbd.pid');
  const errLog = join(dir, 'error.log');
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'mysql']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'mysql']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const [icmd, iargs] = asMysql(installDb, [
    '--no-defaults',
    `--datadir=${datadir}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]);
  execFileSync(icmd, iargs, { stdio: 'ignore' });

  const port = await freeLoopbackPort();
  const [cmd, args] = asMysql(mariadbd, [
    '--no-defaults',
    `--datadir=${datadir}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${join(dir, 'mariadbd.sock')}`,
    `--pid-file=${pidFile}`,
    `--log-error=${errLog}`,
    '--skip-name-resolve',
    '--skip-log-bin',
    '--innodb-buffer-pool-size=32M',
    `--sql-mode=${HOSTILE_SQL_MODE}`,
    '--event-scheduler=ON',
  ]);
  const child = spawn(cmd, args, { stdio: 'ignore', detached: false });
  const url = `mysql://root@127.0.0.1:${port}`;

  const stop = async (): Promise<void> => {
    let pid: number | null = null;
    try {
      pid = Number(readFileSync(pidFile, 'utf8').trim());
    } catch {
      pid = null;
    }
    if (pid !== null && Number.isSafeInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const until = Date.now() + 30_000;
      while (Date.now() < until) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitReady(url, child, errLog);
  } catch (err) {
    await stop();
    throw err;
  }
  project.provide('mysqlModesUrl', url);
  return stop;
}
