/**
 * Exactly one result per command id across a restart of the agent on the same state
 * directory (issue 10 item 3), and a restarted agent sweeping the integrations it knew
 * (issue 9 item 10).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../../src/agent.js';
import type { AgentEventMap } from '../../../src/events.js';
import { startAgentHarness, type AgentHarness } from '../../helpers/agent-harness.js';

const grantParams = (email: string, grantId: string): Record<string, unknown> => ({
  grantId,
  grantee: { email },
  resources: [{ type: 'database', id: 'database:demo' }],
  permission: 'read',
});

let h: AgentHarness | undefined;
let again: Agent | undefined;
const dirs: string[] = [];

afterEach(async () => {
  await again?.stop('test end');
  again = undefined;
  await h?.close();
  h = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const stateDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'latchkey-restart-'));
  dirs.push(d);
  return d;
};

async function outboxDrained(harness: AgentHarness): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    if ((await harness.metricValue('latchkey_outbox_size')) === 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('outbox never drained');
}

describe('restart with the same state directory', () => {
  it('a re-delivered command that finished before the restart gets its original result, byte for byte, and never runs again', async () => {
    const dir = stateDir();
    h = await startAgentHarness({
      env: { LATCHKEY_STATE_DIR: dir, LATCHKEY_SHUTDOWN_GRACE: '0' },
    });
    const integration = h.integration({}, 'it-restart');
    // B: finished and acknowledged before the restart.
    const envB = h.envelope('grant', grantParams('bo@example.com', 'g-b'), { integration });
    const frameB = h.frame(envB);
    h.sendRaw(frameB);
    const idB = envB.id as string;
    const firstB = await h.cp.waitForResult(idB, 10_000);
    await outboxDrained(h);
    // A: finished, its result not acknowledged (still in the outbox) when the agent stops.
    h.cp.setWithholdAcks(true);
    const envA = h.envelope('grant', grantParams('al@example.com', 'g-a'), { integration });
    const frameA = h.frame(envA);
    h.sendRaw(frameA);
    const idA = envA.id as string;
    const firstA = await h.cp.waitForResult(idA, 10_000);
    await h.agent.stop('restart');

    h.cp.setWithholdAcks(false);
    const since = h.cp.received.length;
    again = await createAgent({
      config: h.config,
      logger: pino({ level: 'silent' }),
      driverFactories: { test: h.driver.factory },
    });
    await again.start();
    await again.waitReady(10_000);
    // The control plane delivers both commands again (it never saw an ack of A go through,
    // and B is a retry storm's late copy).
    h.sendRaw(frameA);
    h.sendRaw(frameB);
    await h.cp.waitFor('result', (r) => r.commandId === idB, 10_000, since);
    await h.cp.waitFor('result', (r) => r.commandId === idA, 10_000, since);
    await new Promise((r) => setTimeout(r, 300)); // anything more would have come by now

    // Never run again: one driver call each, and every copy is the original result.
    expect(h.driver.callsFor(idA)).toHaveLength(1);
    expect(h.driver.callsFor(idB)).toHaveLength(1);
    const copiesA = h.cp.resultsFor(idA);
    const copiesB = h.cp.resultsFor(idB);
    expect(copiesA.length).toBeGreaterThanOrEqual(2);
    expect(copiesB).toHaveLength(2);
    for (const copy of copiesA) expect(JSON.stringify(copy)).toBe(JSON.stringify(firstA));
    for (const copy of copiesB) expect(JSON.stringify(copy)).toBe(JSON.stringify(firstB));
    // Not even an `accepted` for either after the restart.
    expect(
      h.cp.received.slice(since).filter((m) => m.type === 'accepted' || m.type === 'rejected'),
    ).toEqual([]);
  });

  it('a restarted agent sweeps the integrations it knew within one sweep interval', async () => {
    const dir = stateDir();
    h = await startAgentHarness({
      env: { LATCHKEY_STATE_DIR: dir, LATCHKEY_SHUTDOWN_GRACE: '0' },
    });
    const id = await h.send('grant', grantParams('sy@example.com', 'g-sweep'), {
      integration: h.integration({}, 'it-swept'),
    });
    await h.cp.waitForResult(id, 10_000);
    await h.agent.stop('restart');

    const config = { ...h.config, sweepIntervalMs: 1_500 };
    again = await createAgent({
      config,
      logger: pino({ level: 'silent' }),
      driverFactories: { test: h.driver.factory },
    });
    const swept: AgentEventMap['sweep:finished'][] = [];
    again.events.on('sweep:finished', (e) => swept.push(e));
    const started = Date.now();
    await again.start();
    for (let i = 0; i < 120 && swept.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(swept.map((s) => s.integrationId)).toEqual(['it-swept']);
    expect(Date.now() - started).toBeLessThan(1_500 + 1_000); // one interval (+ a loaded machine)
  });
});
