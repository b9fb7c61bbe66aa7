import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { applyHeapGrowing } from '../../../src/cli/heap.js';

describe('applyHeapGrowing', () => {
  it('sets V8 --heap-growing-percent to the configured value and reports the heap limit', () => {
    const flags: string[] = [];
    const tuning = applyHeapGrowing(30, (f) => flags.push(f));
    expect(flags).toEqual(['--heap-growing-percent=30']);
    expect(tuning.flag).toBe('--heap-growing-percent=30');
    expect(tuning.heapLimitMiB).toBe(Math.round(getHeapStatistics().heap_size_limit / 1048576));
  });

  it('0 leaves V8 alone', () => {
    const flags: string[] = [];
    expect(applyHeapGrowing(0, (f) => flags.push(f)).flag).toBeNull();
    expect(flags).toEqual([]);
  });

  it('refuses values outside 0…300 (never reaches V8)', () => {
    const flags: string[] = [];
    for (const bad of [-1, 301, 1.5, Number.NaN]) {
      expect(() => applyHeapGrowing(bad, (f) => flags.push(f))).toThrow(RangeError);
    }
    expect(flags).toEqual([]);
  });
});
