/**
 * The log of refused frames and commands: one line per refusal, cheap, and rate limited.
 *
 * A control plane (or whoever holds its link) can send thousands of junk frames a second.
 * Refusing one costs microseconds; a log line through the agent's main logger costs about
 * a millisecond, almost all of it pino's redaction by ~400 wildcard paths. So refusals
 * are logged differently from everything else:
 *
 * - redacted by construction: a line carries only fields that cannot hold a secret (the
 *   error code, the command id if one was read, the stage, the frame size, the error's
 *   operator message, which by the `LatchkeyError` contract never holds one), written by a
 *   child logger without the path redaction. The key-name backstop of the logger
 *   (`formatters.log`) still runs, on these few fields only.
 * - rate limited per error code by a token bucket (`burst` lines at once, refilled at
 *   `perSecond`); a line over the limit is counted instead of written
 *   (`refusal:log-suppressed`, metric `latchkey_refusal_logs_suppressed_total{code}`), and
 *   one summary line per `summaryIntervalMs` says how many were suppressed, by code.
 *
 * Every refusal is still answered (`rejected`) and counted (`latchkey_rejections_total`):
 * only its log line is dropped.
 */
import type { Logger } from 'pino';
import type { ErrorCode } from '../errors.js';
import type { AgentEvents } from '../events.js';

export interface Refusal {
  code: ErrorCode;
  /** The envelope id when it could be read, else null. */
  commandId: string | null;
  /** `frame`: refused before it was a command (size, binary, JSON, schema); `command`: by verification. */
  stage: 'frame' | 'command';
  /** The operator message of the error (the same text the `rejected` frame carries). */
  reason: string;
  /** Size of the refused frame in bytes, when known. */
  bytes?: number;
}

export interface RefusalLogOptions {
  logger: Logger;
  events: AgentEvents;
  /** Lines per second per error code once the burst is spent. Default 5. */
  perSecond?: number;
  /** Lines per error code that may be written at once. Default 20. */
  burst?: number;
  /** How often a summary of suppressed lines is written (only when some were). Default 10 s. */
  summaryIntervalMs?: number;
  /** Monotonic clock in ms (tests). */
  now?: () => number;
}

const MAX_REASON = 300;
const MAX_ID = 256;

interface Bucket {
  tokens: number;
  at: number;
}

export class RefusalLog {
  private readonly logger: Logger;
  private readonly events: AgentEvents;
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly summaryIntervalMs: number;
  private readonly now: () => number;
  private readonly buckets = new Map<ErrorCode, Bucket>();
  private suppressed = new Map<ErrorCode, number>();
  private summaryTimer: NodeJS.Timeout | null = null;

  constructor(opts: RefusalLogOptions) {
    // Only known-safe fields reach this logger: no path redaction (see the file comment).
    this.logger = opts.logger.child({ component: 'refusals' }, { redact: { paths: [] } });
    this.events = opts.events;
    this.perSecond = opts.perSecond ?? 5;
    this.burst = opts.burst ?? 20;
    this.summaryIntervalMs = opts.summaryIntervalMs ?? 10_000;
    this.now = opts.now ?? (() => performance.now());
    if (!(this.perSecond > 0) || !(this.burst >= 1) || !(this.summaryIntervalMs > 0)) {
      throw new RangeError('refusal log rates must be positive');
    }
  }

  /** Logs one refusal, unless its code is over the rate limit (then it is counted). */
  log(r: Refusal): void {
    if (!this.take(r.code)) {
      this.suppressed.set(r.code, (this.suppressed.get(r.code) ?? 0) + 1);
      this.events.emit('refusal:log-suppressed', { code: r.code });
      this.summaryTimer ??= this.startSummaryTimer();
      return;
    }
    const fields: Record<string, unknown> = {
      code: r.code,
      commandId: r.commandId === null ? null : r.commandId.slice(0, MAX_ID),
      stage: r.stage,
      reason: r.reason.length > MAX_REASON ? `${r.reason.slice(0, MAX_REASON - 1)}…` : r.reason,
    };
    if (r.bytes !== undefined) fields.bytes = r.bytes;
    this.logger.warn(fields, 'command refused');
  }

  /** Writes the pending summary (if any) and stops the timer. */
  close(): void {
    if (this.summaryTimer !== null) {
      clearTimeout(this.summaryTimer);
      this.summaryTimer = null;
    }
    this.writeSummary();
  }

  private take(code: ErrorCode): boolean {
    const now = this.now();
    let b = this.buckets.get(code);
    if (b === undefined) {
      b = { tokens: this.burst, at: now };
      this.buckets.set(code, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private startSummaryTimer(): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.summaryTimer = null;
      this.writeSummary();
    }, this.summaryIntervalMs);
    timer.unref();
    return timer;
  }

  private writeSummary(): void {
    if (this.suppressed.size === 0) return;
    const byCode = Object.fromEntries(this.suppressed);
    let total = 0;
    for (const n of this.suppressed.values()) total += n;
    this.suppressed = new Map();
    this.logger.warn(
      { suppressed: byCode, total },
      `suppressed ${total} refusal log lines (rate limit); every refusal was still answered and counted`,
    );
  }
}
