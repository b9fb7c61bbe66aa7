/**
 * Reconnect backoff: exponential with full jitter, capped.
 *
 * The delay before attempt `n` (0-based) is uniform in `[0, min(maxMs, initialMs * 2^n))`
 * ("full jitter", which spreads many agents reconnecting after a control-plane outage).
 * The attempt counter resets only after a connection stayed up for `stableAfterMs`, so a
 * peer that accepts and immediately drops us is still backed off.
 */

export interface BackoffPolicy {
  /** Upper bound of the first delay. */
  initialMs: number;
  /** Cap of the upper bound. */
  maxMs: number;
  /** A connection that lived at least this long resets the attempt counter. */
  stableAfterMs: number;
}

/** Upper bound of the delay before attempt `attempt` (0-based). */
export function backoffCeiling(
  attempt: number,
  policy: Pick<BackoffPolicy, 'initialMs' | 'maxMs'>,
): number {
  const exp = Math.min(attempt, 52); // 2^52 keeps the arithmetic exact and finite
  return Math.min(policy.maxMs, policy.initialMs * 2 ** exp);
}

/** Full-jitter delay before attempt `attempt`; `random` returns a number in [0, 1). */
export function backoffDelay(
  attempt: number,
  policy: Pick<BackoffPolicy, 'initialMs' | 'maxMs'>,
  random: () => number = Math.random,
): number {
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * backoffCeiling(attempt, policy));
}

export class Backoff {
  private attemptCount = 0;
  private connectedAt: number | null = null;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
    private readonly now: () => number = Date.now,
  ) {}

  /** Number of delays handed out since the last reset. */
  get attempt(): number {
    return this.attemptCount;
  }

  /** The delay before the next attempt; increments the attempt counter. */
  next(): number {
    const delay = backoffDelay(this.attemptCount, this.policy, this.random);
    this.attemptCount += 1;
    return delay;
  }

  /** A connection was established (handshake complete). */
  connected(): void {
    this.connectedAt = this.now();
  }

  /** The connection ended; resets the counter when it had been stable long enough. */
  disconnected(): void {
    if (this.connectedAt !== null && this.now() - this.connectedAt >= this.policy.stableAfterMs) {
      this.attemptCount = 0;
    }
    this.connectedAt = null;
  }

  reset(): void {
    this.attemptCount = 0;
    this.connectedAt = null;
  }
}
