/** What every demo scene checks as it goes: a failed check ends the demo with a non-zero exit. */
import type { Result } from '../../protocol/messages.js';

export function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`unexpected: ${what}`);
}

/** The output of an ok result; an error result ends the scene with its code and message. */
export function outputOf(result: Result, what: string): unknown {
  if (result.status !== 'ok') {
    throw new Error(`${what} failed: ${result.error?.code ?? '?'} ${result.error?.message ?? ''}`);
  }
  return result.output;
}
