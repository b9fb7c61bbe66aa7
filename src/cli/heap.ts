/**
 * V8 heap tuning for the daemon (`latchkey run`).
 *
 * The agent's live data is small (tens of MiB even after a burst of thousands of
 * commands), but it allocates fast while a burst lasts. V8 then lets the heap grow to a
 * multiple of the live data before a full collection: up to 4× on a host with several
 * GiB of memory and no container limit, and it keeps those pages afterwards. A fixed
 * growing factor keeps the resident size near what the agent really holds, at no
 * measurable cost in throughput (`npm run bench`, docs/operations.md "Memory").
 *
 * `--heap-growing-percent` is read by V8 each time it recomputes the heap limits, so it
 * takes effect when set at start-up with `v8.setFlagsFromString`; the flag cannot be given
 * through NODE_OPTIONS.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

export interface HeapTuning {
  /** The V8 flag applied, or null (percent 0: V8's own heuristics). */
  flag: string | null;
  /** V8's heap size limit in MiB (from the container memory limit or the host's memory). */
  heapLimitMiB: number;
}

/**
 * @param percent `LATCHKEY_HEAP_GROWING_PERCENT` (an integer 0…300; 0 changes nothing)
 * @param setFlags injectable for tests
 */
export function applyHeapGrowing(
  percent: number,
  setFlags: (flags: string) => void = setFlagsFromString,
): HeapTuning {
  if (!Number.isInteger(percent) || percent < 0 || percent > 300) {
    throw new RangeError('heap growing percent must be an integer from 0 to 300');
  }
  const flag = percent === 0 ? null : `--heap-growing-percent=${percent}`;
  if (flag !== null) setFlags(flag);
  return { flag, heapLimitMiB: Math.round(getHeapStatistics().heap_size_limit / 1048576) };
}
