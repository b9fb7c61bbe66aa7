/** `latchkey demo`: the end-to-end demo (`src/demo/runner.ts`). */
import { runDemo } from '../demo/runner.js';
import { parseCommandArgs, type CliIo } from './io.js';

export const DEMO_HELP = `Usage: latchkey demo

Runs the whole loop on this machine: generates keys, starts the reference control plane
in this process and a real agent as a child process, then sends signed commands and
prints what happens, step by step (hello and readiness, a tampered command refused, an
expired one refused, an unknown integration type refused, then the database scenes).
Exits 0 when every step behaved as expected.

  -h, --help   show this help`;

export async function demoCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, {});
  if (values.help === true) {
    io.out(DEMO_HELP);
    return 0;
  }
  return runDemo(io);
}
