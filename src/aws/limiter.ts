/**
 * Per-service rate limiting for bulk listings (discover, sweep): a few calls at a time and
 * at most `perSecond` per second, so a large account is walked without tripping AWS's
 * throttles (the SDK's adaptive retry handles the rest).
 */
import PQueue from 'p-queue';

export interface LimiterOptions {
  concurrency?: number;
  perSecond?: number;
}

export function createServiceLimiter(opts: LimiterOptions = {}): PQueue {
  return new PQueue({
    concurrency: opts.concurrency ?? 4,
    intervalCap: opts.perSecond ?? 10,
    interval: 1000,
  });
}

/** Run `fn` through the limiter, honouring the signal. */
export function limited<T>(
  limiter: PQueue,
  fn: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  return limiter.add(fn, { throwOnTimeout: true, ...(signal ? { signal } : {}) });
}

/** A map of limiters by service name, created on first use. */
export class ServiceLimiters {
  private readonly queues = new Map<string, PQueue>();
  constructor(private readonly opts: LimiterOptions = {}) {}

  for(service: string): PQueue {
    let q = this.queues.get(service);
    if (!q) {
      q = createServiceLimiter(this.opts);
      this.queues.set(service, q);
    }
    return q;
  }

  run<T>(service: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return limited(this.for(service), fn, signal);
  }
}
