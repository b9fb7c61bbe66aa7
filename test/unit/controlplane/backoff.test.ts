import { describe, expect, it } from 'vitest';
import { Backoff, backoffCeiling, backoffDelay } from '../../../src/controlplane/backoff.js';

const policy = { initialMs: 100, maxMs: 5000, stableAfterMs: 1000 };

describe('backoff', () => {
  it('doubles the ceiling per attempt up to the cap', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 10, 100, 5000].map((a) => backoffCeiling(a, policy))).toEqual([
      100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000,
    ]);
  });

  it('applies full jitter within [0, ceiling)', () => {
    expect(backoffDelay(3, policy, () => 0)).toBe(0);
    expect(backoffDelay(3, policy, () => 0.5)).toBe(400);
    expect(backoffDelay(3, policy, () => 0.999999)).toBe(799);
    expect(backoffDelay(20, policy, () => 0.5)).toBe(2500);
    // a misbehaving random source cannot leave the bounds
    expect(backoffDelay(2, policy, () => 7)).toBe(400);
    expect(backoffDelay(2, policy, () => -1)).toBe(0);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(i % 12, policy);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(backoffCeiling(i % 12, policy));
    }
  });

  it('counts attempts and resets only after a stable connection', () => {
    let now = 0;
    const b = new Backoff(
      policy,
      () => 0.5,
      () => now,
    );
    expect([b.next(), b.next(), b.next()]).toEqual([50, 100, 200]);
    expect(b.attempt).toBe(3);

    // connected, then dropped quickly: still backing off
    b.connected();
    now += 999;
    b.disconnected();
    expect(b.next()).toBe(400);

    // connected long enough: back to the first delay
    b.connected();
    now += 1000;
    b.disconnected();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(50);

    // a disconnect without a connection does not reset
    b.disconnected();
    expect(b.next()).toBe(100);
    b.reset();
    expect(b.attempt).toBe(0);
  });
});
