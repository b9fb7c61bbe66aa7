/**
 * vitest globalSetup: one password-checking PostgreSQL 15 for the whole run
 * (`pg-password-server.ts`), its URL provided to tests as `pgPasswordUrl`, stopped and
 * removed at teardown.
 */
import type { TestProject } from 'vitest/node';
import { startPgPasswordServer } from './pg-password-server.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPgPasswordServer();
  project.provide('pgPasswordUrl', server.url);
  return () => server.stop();
}
