/**
 * One probe of a driver's `check`: it runs, and its outcome becomes one line of the
 * report. A cancelled check stops instead of being reported as a failed probe.
 */
import { LatchkeyError, toWireError } from '../errors.js';
import type { CheckOutput } from '../protocol/messages.js';

export type CheckLine = CheckOutput['checks'][number];

export interface ProbeOptions {
  /** Also stop (E_CANCELLED) when this signal has fired, whatever error the probe saw. */
  signal?: AbortSignal;
  /** How a failure is reported; default a failed line with the wire error's message. */
  onError?: (message: string) => { ok: boolean; detail: string };
}

/**
 * Runs `fn` (which returns the line's detail) and appends its line to `checks`.
 * @returns whether the probe passed.
 */
export async function probe(
  checks: CheckLine[],
  name: string,
  fn: () => Promise<string>,
  opts: ProbeOptions = {},
): Promise<boolean> {
  try {
    checks.push({ name, ok: true, detail: await fn() });
    return true;
  } catch (err) {
    if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
    if (opts.signal?.aborted) {
      throw new LatchkeyError('E_CANCELLED', 'check aborted', { cause: err });
    }
    const message = toWireError(err).message;
    const line = opts.onError ? opts.onError(message) : { ok: false, detail: message };
    checks.push({ name, ...line });
    return line.ok;
  }
}
