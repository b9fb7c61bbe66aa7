import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createServiceLimiter, limited } from '../../../src/aws/limiter.js';

describe('limited()', () => {
  it('leaves no abort listener behind after many calls with one signal', async () => {
    const limiter = createServiceLimiter({ concurrency: 4, perSecond: 10_000 });
    const controller = new AbortController();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        limited(limiter, () => Promise.resolve(i), controller.signal),
      ),
    );
    expect(results).toHaveLength(200);
    expect(results[199]).toBe(199);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('rejects waiting tasks with the signal reason and never starts their call', async () => {
    const limiter = createServiceLimiter({ concurrency: 1, perSecond: 10_000 });
    const controller = new AbortController();
    let release!: () => void;
    const first = limited(
      limiter,
      () => new Promise<string>((r) => (release = () => r('first'))),
      controller.signal,
    );
    let secondStarted = false;
    const second = limited(
      limiter,
      () => {
        secondStarted = true;
        return Promise.resolve('second');
      },
      controller.signal,
    );
    const reason = new Error('deadline');
    controller.abort(reason);
    await expect(second).rejects.toBe(reason);
    release();
    await expect(first).rejects.toBe(reason);
    await limiter.onIdle();
    expect(secondStarted).toBe(false);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const limiter = createServiceLimiter();
    const controller = new AbortController();
    controller.abort(new Error('gone'));
    await expect(limited(limiter, () => Promise.resolve(1), controller.signal)).rejects.toThrow(
      'gone',
    );
  });
});
