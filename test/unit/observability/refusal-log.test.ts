import { afterEach, describe, expect, it, vi } from 'vitest';
import { AgentEvents } from '../../../src/events.js';
import { createLogger } from '../../../src/observability/logger.js';
import { createMetrics } from '../../../src/observability/metrics.js';
import { RefusalLog, type Refusal } from '../../../src/observability/refusal-log.js';

function setup(opts: { perSecond?: number; burst?: number; summaryIntervalMs?: number } = {}) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    destination: { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) },
  });
  const events = new AgentEvents();
  const metrics = createMetrics(events);
  let now = 0;
  const log = new RefusalLog({ logger, events, now: () => now, ...opts });
  const suppressed = async (code: string): Promise<number> => {
    const m = await metrics.registry
      .getSingleMetric('latchkey_refusal_logs_suppressed_total')
      ?.get();
    return m?.values.find((v) => v.labels.code === code)?.value ?? 0;
  };
  return {
    lines,
    log,
    suppressed,
    advance: (ms: number) => (now += ms),
    refusals: () => lines.filter((l) => l.msg === 'command refused'),
  };
}

const junk = (i: number): Refusal => ({
  code: 'E_SCHEMA',
  commandId: null,
  stage: 'frame',
  reason: 'frame is not valid JSON',
  bytes: 10 + i,
});

afterEach(() => {
  vi.useRealTimers();
});

describe('RefusalLog', () => {
  it('writes one line per refusal with only the known-safe fields', () => {
    const t = setup();
    t.log.log({
      code: 'E_SIGNATURE',
      commandId: 'cmd-1',
      stage: 'command',
      reason: 'signature does not verify with trusted key "k1"',
    });
    t.log.log(junk(0));
    expect(t.lines).toHaveLength(2);
    const [first, second] = t.lines;
    expect(Object.keys(first ?? {}).sort()).toEqual(
      [
        'code',
        'commandId',
        'component',
        'level',
        'msg',
        'reason',
        'service',
        'stage',
        'time',
      ].sort(),
    );
    expect(first).toMatchObject({
      level: 'warn',
      component: 'refusals',
      code: 'E_SIGNATURE',
      commandId: 'cmd-1',
      stage: 'command',
      reason: 'signature does not verify with trusted key "k1"',
      msg: 'command refused',
    });
    expect(second).toMatchObject({ code: 'E_SCHEMA', commandId: null, stage: 'frame', bytes: 10 });
  });

  it('keeps the key-name backstop and bounds the reason', () => {
    const t = setup();
    t.log.log({ ...junk(0), reason: 'x'.repeat(5000) });
    expect(String(t.lines[0]?.reason)).toHaveLength(300);
  });

  it('rate limits per code, counts what it suppressed and summarizes it once per interval', async () => {
    vi.useFakeTimers();
    const t = setup({ burst: 20, perSecond: 5, summaryIntervalMs: 10_000 });
    for (let i = 0; i < 1000; i += 1) t.log.log(junk(i));
    // another code has its own bucket
    for (let i = 0; i < 3; i += 1) {
      t.log.log({ code: 'E_EXPIRED', commandId: `c${i}`, stage: 'command', reason: 'expired' });
    }
    expect(t.refusals().filter((l) => l.code === 'E_SCHEMA')).toHaveLength(20);
    expect(t.refusals().filter((l) => l.code === 'E_EXPIRED')).toHaveLength(3);
    expect(await t.suppressed('E_SCHEMA')).toBe(980);
    expect(await t.suppressed('E_EXPIRED')).toBe(0);

    // refilled at 5 per second
    t.advance(1000);
    for (let i = 0; i < 100; i += 1) t.log.log(junk(i));
    expect(t.refusals()).toHaveLength(28);
    expect(await t.suppressed('E_SCHEMA')).toBe(1075);

    // one summary line per interval, not one per suppressed line
    expect(t.lines.filter((l) => l.total !== undefined)).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(10_000);
    const summaries = t.lines.filter((l) => l.total !== undefined);
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({
      suppressed: { E_SCHEMA: 1075 },
      total: 1075,
      msg: 'suppressed 1075 refusal log lines (rate limit); every refusal was still answered and counted',
    });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.lines.filter((l) => l.total !== undefined)).toHaveLength(1);

    // close() writes what is pending
    t.advance(60_000);
    for (let i = 0; i < 25; i += 1) t.log.log(junk(i));
    t.log.close();
    expect(t.lines.filter((l) => l.total !== undefined).at(-1)).toMatchObject({ total: 5 });
  });

  it('costs a fraction of a main-logger line per refusal (no wildcard redaction on this path)', () => {
    const sink = { write: () => undefined };
    const main = createLogger({ level: 'info', destination: sink });
    const log = new RefusalLog({
      logger: main,
      events: new AgentEvents(),
      burst: 1_000_000,
      perSecond: 1,
    });
    const fields = {
      code: 'E_SCHEMA',
      commandId: null,
      stage: 'frame',
      reason: 'frame is not valid JSON',
      bytes: 12,
    };
    const timeOf = (fn: () => void): number => {
      let best = Infinity;
      for (let round = 0; round < 3; round += 1) {
        const t0 = performance.now();
        for (let i = 0; i < 200; i += 1) fn();
        best = Math.min(best, performance.now() - t0);
      }
      return best;
    };
    const viaMain = timeOf(() => main.warn(fields, 'command refused'));
    const viaRefusalLog = timeOf(() => log.log(junk(0)));
    // the main logger pays for ~400 redaction paths on every line
    expect(viaRefusalLog * 5).toBeLessThan(viaMain);
  });
});
