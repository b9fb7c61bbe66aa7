import { describe, expect, it } from 'vitest';
import { LatchkeyError } from '../../../src/errors.js';
import { probe, type CheckLine } from '../../../src/drivers/probe.js';

describe('probe', () => {
  it('appends a passed line with the detail, or a failed line with the wire message', async () => {
    const checks: CheckLine[] = [];
    expect(await probe(checks, 'a', () => Promise.resolve('fine'))).toBe(true);
    expect(
      await probe(checks, 'b', () => Promise.reject(new LatchkeyError('E_PRIVILEGE', 'denied'))),
    ).toBe(false);
    expect(await probe(checks, 'c', () => Promise.reject(new Error('SELECT secret')))).toBe(false);
    expect(checks).toEqual([
      { name: 'a', ok: true, detail: 'fine' },
      { name: 'b', ok: false, detail: 'denied' },
      { name: 'c', ok: false, detail: 'internal error (see agent log)' },
    ]);
  });

  it('re-throws a cancellation instead of reporting it', async () => {
    const checks: CheckLine[] = [];
    await expect(
      probe(checks, 'a', () => Promise.reject(new LatchkeyError('E_CANCELLED', 'stop'))),
    ).rejects.toMatchObject({ code: 'E_CANCELLED' });
    expect(checks).toEqual([]);
  });

  it('with a signal, stops once it has fired whatever the probe saw', async () => {
    const checks: CheckLine[] = [];
    const ac = new AbortController();
    ac.abort();
    await expect(
      probe(checks, 'a', () => Promise.reject(new Error('socket closed')), { signal: ac.signal }),
    ).rejects.toMatchObject({ code: 'E_CANCELLED' });
    expect(checks).toEqual([]);
  });

  it('reports a failure as onError says (e.g. a fallback that is not a failure)', async () => {
    const checks: CheckLine[] = [];
    const ok = await probe(
      checks,
      'optional',
      () => Promise.reject(new LatchkeyError('E_PRIVILEGE', 'denied')),
      { onError: (m) => ({ ok: true, detail: `skipped: ${m}` }) },
    );
    expect(ok).toBe(true);
    expect(checks).toEqual([{ name: 'optional', ok: true, detail: 'skipped: denied' }]);
  });
});
