#!/usr/bin/env node
/**
 * Process entry: `latchkey <command>`. See `src/cli/index.ts` and docs/cli.md.
 */
import { runCli } from './cli/index.js';

try {
  const code = await runCli(process.argv.slice(2));
  process.exitCode = code;
  // Whatever handle a library may leave open must not keep a finished command alive.
  setTimeout(() => process.exit(code), 2000).unref();
} catch (err) {
  process.stderr.write(
    `latchkey: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
}
