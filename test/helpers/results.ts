/** A `check` result as the agent would send it, ok or failed (`E_CONNECT`), fixed timings. */
import type { Result } from '../../src/protocol/messages.js';

export function checkResult(commandId: string, status: 'ok' | 'error' = 'ok'): Result {
  return {
    type: 'result',
    commandId,
    kind: 'check',
    status,
    output: status === 'ok' ? { ok: true, checks: [] } : undefined,
    error: status === 'error' ? { code: 'E_CONNECT', message: 'down', retryable: true } : undefined,
    timings: {
      receivedAt: '2026-11-25T20:00:00.000Z',
      finishedAt: '2026-11-25T20:00:01.000Z',
      queueMs: 0,
      runMs: 1000,
    },
  };
}
