/**
 * What a result carries when the driver fails, times out or is cancelled by the
 * control plane: the code from the closed set, never the driver's internal text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentHarness, type AgentHarness } from '../../helpers/agent-harness.js';

let h: AgentHarness;

beforeAll(async () => {
  h = await startAgentHarness({ env: { LATCHKEY_TIMEOUT_CHECK: '1s' } });
});

afterAll(async () => {
  await h.close();
});

describe('results', () => {
  it('an ok result carries the driver output and timings', async () => {
    const id = await h.send('discover');
    const r = await h.cp.waitForResult(id, 10_000);
    expect(r).toMatchObject({ type: 'result', commandId: id, kind: 'discover', status: 'ok' });
    expect((r.output as { resources: unknown[] }).resources).toHaveLength(2);
    expect(r.timings.runMs).toBeGreaterThanOrEqual(0);
    expect(h.cp.received.some((m) => m.type === 'accepted' && m.commandId === id)).toBe(true);
  });

  it('a driver error keeps its code and message', async () => {
    const id = await h.send(
      'check',
      {},
      {
        integration: h.integration({ failCode: 'E_PRIVILEGE', failMessage: 'needs CREATEROLE' }),
      },
    );
    const r = await h.cp.waitForResult(id, 10_000);
    expect(r.status).toBe('error');
    expect(r.error).toEqual({ code: 'E_PRIVILEGE', message: 'needs CREATEROLE', retryable: false });
  });

  it('an unexpected driver exception becomes E_INTERNAL without its text', async () => {
    const id = await h.send('check', {}, { integration: h.integration({ throwPlain: true }) });
    const r = await h.cp.waitForResult(id, 10_000);
    expect(r.error?.code).toBe('E_INTERNAL');
    expect(r.error?.message).not.toContain('plain failure');
  });

  it('a command running past its kind timeout ends with E_TIMEOUT and its call is aborted', async () => {
    const id = await h.send('check', {}, { integration: h.integration({ block: 'never' }) });
    const r = await h.cp.waitForResult(id, 10_000);
    expect(r.error).toMatchObject({ code: 'E_TIMEOUT', retryable: true });
    await expect.poll(() => h.driver.callsFor(id)[0]?.outcome).toBe('aborted');
  });

  it('cancel from the control plane aborts a running command: E_CANCELLED', async () => {
    const id = await h.send('discover', {}, { integration: h.integration({ block: 'cancel-me' }) });
    await h.cp.waitFor('accepted', (m) => m.commandId === id, 10_000);
    await expect.poll(() => h.driver.callsFor(id).length).toBe(1);
    h.sendRaw({ type: 'cancel', commandId: id });
    const r = await h.cp.waitForResult(id, 10_000);
    expect(r.error).toMatchObject({ code: 'E_CANCELLED', retryable: true });
    await expect.poll(() => h.driver.callsFor(id)[0]?.outcome).toBe('aborted');
  });
});
