/**
 * At-least-once delivery as seen from the control plane: connection drops, withheld
 * acks, duplicate deliveries. Results arrive, and a command never runs twice.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAgent } from '../../../src/agent.js';
import { startAgentHarness, type AgentHarness } from '../../helpers/agent-harness.js';

const grantParams = (email: string, grantId: string): Record<string, unknown> => ({
  grantId,
  grantee: { email },
  resources: [{ type: 'database', id: 'database:demo' }],
  permission: 'read',
});

let h: AgentHarness | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Resolves when the control plane sees an agent again after a drop. */
async function reconnected(harness: AgentHarness, since: number): Promise<void> {
  await harness.cp.waitFor('hello', undefined, 10_000, since);
  await harness.agent.waitReady(10_000);
}

/** Waits until the agent's outbox is empty (every result acknowledged). */
async function outboxDrained(harness: AgentHarness): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    if ((await harness.metricValue('latchkey_outbox_size')) === 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('outbox never drained');
}

describe('delivery', () => {
  it('a command running while the connection drops: its result arrives after reconnect, exactly once', async () => {
    h = await startAgentHarness();
    const id = await h.send('grant', grantParams('ada@example.com', 'g-drop'), {
      integration: h.integration({ block: 'drop' }),
    });
    await h.driver.waitForCalls(1);
    const since = h.cp.received.length;
    h.cp.dropConnections();
    // The result is produced while the agent is (re)connecting; the control plane also
    // redelivers the still-pending command on reconnect.
    h.driver.release('drop');
    await reconnected(h, since);
    const result = await h.cp.waitForResult(id, 10_000);
    expect(result.status).toBe('ok');
    await outboxDrained(h);
    expect(h.cp.resultsFor(id)).toHaveLength(1);
    expect(h.driver.callsFor(id)).toHaveLength(1);
  });

  it('a command still running after reconnect (redelivered): runs once, one result', async () => {
    const harness = await startAgentHarness();
    h = harness;
    const id = await h.send('grant', grantParams('bob@example.com', 'g-run'), {
      integration: h.integration({ block: 'run' }),
    });
    await h.driver.waitForCalls(1);
    const since = h.cp.received.length;
    h.cp.dropConnections();
    await reconnected(h, since);
    h.driver.release('run');
    const result = await h.cp.waitForResult(id, 10_000);
    expect(result.status).toBe('ok');
    await outboxDrained(h);
    // The control plane redelivered it on reconnect; the agent recognises the duplicate
    // once its signature check (on a worker thread) is done, which may be after the
    // original finished. Only then is "one result, one run" final.
    await vi.waitFor(
      async () => expect(await harness.metricValue('latchkey_duplicates_total')).toBe(1),
      {
        timeout: 10_000,
        interval: 20,
      },
    );
    expect(h.cp.resultsFor(id)).toHaveLength(1);
    expect(h.driver.callsFor(id)).toHaveLength(1);
  });

  it('acks withheld: the result stays in the outbox and is re-sent after reconnect', async () => {
    h = await startAgentHarness({ withholdAcks: true });
    const id = await h.send('check');
    await h.cp.waitForResult(id, 10_000);
    expect(h.cp.resultsFor(id)).toHaveLength(1);
    expect(await h.metricValue('latchkey_outbox_size')).toBe(1);

    h.cp.setWithholdAcks(false);
    const since = h.cp.received.length;
    h.cp.dropConnections();
    await reconnected(h, since);
    await h.cp.waitFor('result', (r) => r.commandId === id, 10_000, since);
    await outboxDrained(h);
    expect(h.cp.resultsFor(id)).toHaveLength(2);
    expect(h.cp.resultsFor(id)[1]).toEqual(h.cp.resultsFor(id)[0]);
    expect(h.driver.callsFor(id)).toHaveLength(1);
  });

  it('the same command delivered twice runs once; a reused id with other content is E_REPLAY', async () => {
    h = await startAgentHarness();
    const env = h.envelope('grant', grantParams('cy@example.com', 'g-dup'), {
      integration: h.integration({ delayMs: 100 }),
    });
    const frame = h.frame(env);
    const id = env.id as string;
    h.sendRaw(frame);
    h.sendRaw(frame); // while running
    const result = await h.cp.waitForResult(id, 10_000);
    expect(result.status).toBe('ok');
    await outboxDrained(h);
    const since = h.cp.received.length;
    h.sendRaw(frame); // after done and acked: the stored result again
    const again = await h.cp.waitFor('result', (r) => r.commandId === id, 10_000, since);
    expect(again).toEqual(result);
    expect(h.driver.callsFor(id)).toHaveLength(1);
    expect(h.cp.received.filter((m) => m.type === 'accepted' && m.commandId === id)).toHaveLength(
      1,
    );
    expect(await h.metricValue('latchkey_duplicates_total')).toBe(2);

    const reused = h.frame({ ...env, params: grantParams('cy@example.com', 'g-other') });
    const since2 = h.cp.received.length;
    h.sendRaw(reused);
    const rejected = await h.cp.waitFor('rejected', (r) => r.commandId === id, 10_000, since2);
    expect(rejected.error.code).toBe('E_REPLAY');
    expect(h.driver.callsFor(id)).toHaveLength(1);
  });

  it('with a state directory, an unacknowledged result survives a restart and is re-sent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-state-'));
    try {
      h = await startAgentHarness({
        withholdAcks: true,
        env: { LATCHKEY_STATE_DIR: dir, LATCHKEY_SHUTDOWN_GRACE: '0' },
      });
      const id = await h.send('grant', grantParams('fay@example.com', 'g-state'), {
        integration: h.integration({}, 'it-state'),
      });
      await h.cp.waitForResult(id, 10_000);
      await h.agent.stop('restart');
      expect(existsSync(join(dir, 'state.journal'))).toBe(true);

      h.cp.setWithholdAcks(false);
      const since = h.cp.received.length;
      const again = await createAgent({
        config: h.config,
        logger: pino({ level: 'silent' }),
        driverFactories: { test: h.driver.factory },
      });
      try {
        await again.start();
        const resent = await h.cp.waitFor('result', (r) => r.commandId === id, 10_000, since);
        expect(resent.status).toBe('ok');
        expect(h.cp.resultsFor(id)).toHaveLength(2);
        expect(h.driver.callsFor(id)).toHaveLength(1);
      } finally {
        await again.stop('test end');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
