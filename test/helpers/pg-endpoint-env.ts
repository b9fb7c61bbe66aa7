/**
 * vitest setup file (every test file, every project): when the global setup fell back to
 * an embedded PostgreSQL (no PostgreSQL answered at LATCHKEY_TEST_PG_URL, outside CI), the
 * tests and everything they start (the demo scenes, agent child processes) use it.
 */
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Set only when the run uses an embedded PostgreSQL instead of LATCHKEY_TEST_PG_URL. */
    pgEmbeddedUrl: string | undefined;
  }
}

const embedded = inject('pgEmbeddedUrl');
if (embedded) process.env.LATCHKEY_TEST_PG_URL = embedded;
