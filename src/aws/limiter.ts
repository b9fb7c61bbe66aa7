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

/**
 * Run `fn` through the limiter, honouring the signal. The abort race is ours, not
 * p-queue's: p-queue 8 adds an abort listener per task and never removes it, so a long
 * walk with one signal piled up listeners. Here the listener goes when the task settles,
 * and a task whose signal fired while it waited never starts its call.
 */
export function limited<T>(
  limiter: PQueue,
  fn: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  if (!signal) return limiter.add(fn, { throwOnTimeout: true });
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    limiter
      .add(
        () => {
          signal.throwIfAborted();
          return fn();
        },
        { throwOnTimeout: true },
      )
      .then(resolve, reject)
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
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
