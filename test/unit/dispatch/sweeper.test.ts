import { describe, expect, it, vi } from 'vitest';
import { AgentEvents, type AgentEventMap } from '../../../src/events.js';
import { KnownIntegrations } from '../../../src/dispatch/known-integrations.js';
import { Sweeper } from '../../../src/dispatch/sweeper.js';
import type { Integration } from '../../../src/protocol/messages.js';
import { ALL_KINDS, FakeDriver, OK_OUTPUT, registryOf, silentLogger, sleep } from './fakes.js';

const integ = (id: string, type: string): Integration => ({ id, type, config: {} });

function setup(integrations: Integration[], drivers: FakeDriver[], timeoutMs = 5_000) {
  const events = new AgentEvents();
  const finished: AgentEventMap['sweep:finished'][] = [];
  events.on('sweep:finished', (e) => finished.push(e));
  const known = new KnownIntegrations({ initial: integrations, logger: silentLogger });
  const sweeper = new Sweeper({
    registry: registryOf(...drivers),
    known,
    intervalMs: 20,
    jitterRatio: 0.5,
    events,
    logger: silentLogger,
    timeoutMs,
  });
  return { sweeper, finished, known };
}

const driverOf = (type: string): FakeDriver =>
  new FakeDriver(type, ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));

describe('Sweeper', () => {
  it('calls sweep for every known integration whose driver has one', async () => {
    const pg = driverOf('postgres');
    const seen: string[] = [];
    pg.sweep = (ctx) => {
      seen.push(ctx.integration.id);
      expect(ctx.signal.aborted).toBe(false);
      return Promise.resolve({ revoked: ['g1', 'g2'], errors: [] });
    };
    const noSweep = driverOf('mysql');
    const { sweeper, finished } = setup(
      [
        integ('pg-1', 'postgres'),
        integ('pg-2', 'postgres'),
        integ('my-1', 'mysql'),
        integ('x', 'unknown'),
      ],
      [pg, noSweep],
    );
    await sweeper.runOnce();
    expect(seen).toEqual(['pg-1', 'pg-2']);
    expect(finished.map((f) => [f.integrationId, f.revoked, f.errors])).toEqual([
      ['pg-1', 2, 0],
      ['pg-2', 2, 0],
    ]);
  });

  it('survives a throwing driver and goes on with the next integration', async () => {
    const bad = driverOf('bad');
    bad.sweep = () => {
      throw new Error('boom');
    };
    const rejecting = driverOf('rejecting');
    rejecting.sweep = () => Promise.reject(new Error('async boom'));
    const good = driverOf('good');
    good.sweep = () =>
      Promise.resolve({ revoked: [], errors: [{ item: 'u1', code: 'E_CONNECT', message: 'x' }] });
    const { sweeper, finished } = setup(
      [integ('a', 'bad'), integ('b', 'rejecting'), integ('c', 'good')],
      [bad, rejecting, good],
    );
    await expect(sweeper.runOnce()).resolves.toBeUndefined();
    expect(finished.map((f) => [f.integrationId, f.errors])).toEqual([
      ['a', 1],
      ['b', 1],
      ['c', 1],
    ]);
  });

  it('times out a sweep that ignores its signal', async () => {
    const stuck = driverOf('stuck');
    stuck.sweep = () => new Promise(() => undefined);
    const { sweeper, finished } = setup([integ('s', 'stuck')], [stuck], 30);
    await sweeper.runOnce();
    expect(finished).toHaveLength(1);
    expect(finished[0]?.errors).toBe(1);
  });

  it('runs periodically once started, and stops', async () => {
    const pg = driverOf('postgres');
    let calls = 0;
    pg.sweep = () => {
      calls++;
      return Promise.resolve({ revoked: [], errors: [] });
    };
    const { sweeper } = setup([integ('pg-1', 'postgres')], [pg]);
    sweeper.start();
    for (let i = 0; i < 100 && calls < 2; i++) await sleep(10);
    await sweeper.stop();
    const after = calls;
    expect(after).toBeGreaterThanOrEqual(2);
    await sleep(60);
    expect(calls).toBe(after);
  });

  it('stop() aborts a sweep under way', async () => {
    const slow = driverOf('slow');
    let aborted = false;
    slow.sweep = (ctx) =>
      new Promise((_, reject) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = true;
          reject(new Error('aborted'));
        });
      });
    const { sweeper } = setup([integ('s', 'slow')], [slow]);
    const run = sweeper.runOnce();
    await sleep(5);
    await sweeper.stop();
    await run;
    expect(aborted).toBe(true);
  });

  it('the first sweep after start comes within one interval, whatever the jitter', async () => {
    vi.useFakeTimers();
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.999); // the largest jitter
    try {
      const pg = driverOf('postgres');
      let calls = 0;
      pg.sweep = () => {
        calls++;
        return Promise.resolve({ revoked: [], errors: [] });
      };
      const events = new AgentEvents();
      const sweeper = new Sweeper({
        registry: registryOf(pg),
        known: new KnownIntegrations({
          initial: [integ('pg-1', 'postgres')],
          logger: silentLogger,
        }),
        intervalMs: 60_000,
        jitterRatio: 0.5,
        events,
        logger: silentLogger,
        timeoutMs: 5_000,
      });
      sweeper.start();
      await vi.advanceTimersByTimeAsync(60_000);
      expect(calls).toBe(1);
      await sweeper.stop();
    } finally {
      random.mockRestore();
      vi.useRealTimers();
    }
  });
});
