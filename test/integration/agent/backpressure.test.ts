/**
 * Read backpressure as seen from outside: a burst larger than the agent checks at once is
 * read in steps (reading held, then released), and every command is still answered once.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgentHarness, type AgentHarness } from '../../helpers/agent-harness.js';

let h: AgentHarness | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('read backpressure', () => {
  it('holds reading during a burst beyond what it checks at once, and answers every command once', async () => {
    // One worker: at most 256 commands wait for their signature check before reading stops.
    h = await startAgentHarness({
      env: { LATCHKEY_VERIFY_WORKERS: '1', LATCHKEY_QUEUE_SIZE: '5000' },
    });
    await h.agent.waitReady(10_000);
    const held: boolean[] = [];
    h.agent.events.on('link:reading', (e) => held.push(e.held));

    const n = 3000;
    const ids: string[] = [];
    const frames: string[] = [];
    for (let i = 0; i < n; i += 1) {
      const id = `burst-${i}-${randomUUID()}`;
      ids.push(id);
      frames.push(
        JSON.stringify(h.frame(h.envelope('discover', {}, { id, integration: h.integration() }))),
      );
    }
    for (const f of frames) h.sendRaw(f);

    for (const id of ids) expect((await h.cp.waitForResult(id, 30_000)).status).toBe('ok');
    // Reading was held at least once, and released each time.
    expect(held.length).toBeGreaterThanOrEqual(2);
    expect(held.filter((x) => x)).toHaveLength(held.filter((x) => !x).length);
    expect(await h.metricValue('latchkey_link_read_holds_total')).toBe(held.length / 2);
    expect(await h.metricValue('latchkey_link_reading_held')).toBe(0);
    // One result each: none lost, none run twice.
    for (const id of ids) expect(h.cp.resultsFor(id)).toHaveLength(1);
    expect(h.driver.calls).toHaveLength(n);
    expect(await h.metricValue('latchkey_rejections_total', { code: 'E_BUSY' })).toBe(0);
  }, 60_000);
});
