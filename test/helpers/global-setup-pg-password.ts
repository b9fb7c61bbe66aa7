/**
 * vitest globalSetup: one password-checking PostgreSQL 15 for the whole run
 * (`pg-password-server.ts`), its URL provided to tests as `pgPasswordUrl`, stopped and
 * removed at teardown. Shared by every project of the run (`shared-server.ts`).
 */
import type { TestProject } from 'vitest/node';
import { startPgPasswordServer } from './pg-password-server.js';
import { acquireShared } from './shared-server.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { value: server, release } = await acquireShared(
    'pg-password',
    startPgPasswordServer,
    (s) => s.stop(),
  );
  project.provide('pgPasswordUrl', server.url);
  return release;
}
