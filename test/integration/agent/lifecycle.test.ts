/**
 * The agent's lifecycle and queue as seen from outside: readiness, graceful stop with a
 * command running, a full queue, per-grantee order, the expiry sweeper.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startAgentHarness, type AgentHarness } from '../../helpers/agent-harness.js';

let h: AgentHarness | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
});

const grantee = (email: string, grantId: string): Record<string, unknown> => ({
  grantId,
  grantee: { email },
  resources: [{ type: 'database', id: 'database:demo' }],
  permission: 'read',
});

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

describe('lifecycle', () => {
  it('announces its drivers in hello, is ready when connected, not ready when the link is down', async () => {
    h = await startAgentHarness();
    const hello = await h.cp.waitFor('hello');
    expect(hello.connectorId).toBe(h.connectorId);
    expect(hello.capabilities.integrationTypes).toEqual(['test']);
    expect([...hello.capabilities.kinds].sort()).toEqual([
      'check',
      'cleanup',
      'discover',
      'grant',
      'revoke',
      'rotate',
    ]);
    expect(h.agent.status).toBe('ready');
    expect((await get(h.agent.httpPort, '/healthz')).status).toBe(200);
    expect((await get(h.agent.httpPort, '/readyz')).status).toBe(200);
    expect(await h.metricValue('latchkey_connected')).toBe(1);

    await h.cp.close();
    for (let i = 0; i < 100 && h.agent.status === 'ready'; i += 1) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(h.agent.status).toBe('connecting');
    const ready = await get(h.agent.httpPort, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toContain('not connected');
  });

  it('a driver that fails to build is left out of hello; the agent still serves the others', async () => {
    h = await startAgentHarness({
      driverFactories: {
        broken: () => {
          throw new Error('cannot build');
        },
      },
    });
    const hello = await h.cp.waitFor('hello');
    expect(hello.capabilities.integrationTypes).toEqual(['test']);
    const bad = await h.send('check', {}, { integration: { id: 'b', type: 'broken', config: {} } });
    const rejected = await h.cp.waitFor('rejected', (m) => m.commandId === bad, 10_000);
    expect(rejected.error.code).toBe('E_INTERNAL');
    expect(rejected.error.message).not.toContain('cannot build');
    const ok = await h.send('check');
    expect((await h.cp.waitForResult(ok, 10_000)).status).toBe('ok');
  });

  it('stop while a command runs: its result is sent before stop resolves; new commands get E_BUSY', async () => {
    h = await startAgentHarness();
    // The grant is held until the refusal has been seen: with a fixed delay instead, a
    // slow first signature check (a cold worker on a loaded machine) let the grant finish
    // and the agent stop before the second command was even read.
    const id = await h.send('grant', grantee('dee@example.com', 'g-stop'), {
      integration: h.integration({ block: 'stop' }),
    });
    await h.driver.waitForCalls(1);
    const stopped = h.agent.stop('test');
    expect(h.agent.status).toBe('draining');
    const env = h.envelope('check');
    const since = h.cp.received.length;
    h.sendRaw(h.frame(env));
    const busy = await h.cp.waitFor('rejected', (r) => r.commandId === env.id, 10_000, since);
    expect(busy.error.code).toBe('E_BUSY');
    expect(busy.error.retryable).toBe(true);
    expect(h.agent.status).toBe('draining');
    h.driver.release('stop');
    await stopped;
    expect(h.agent.status).toBe('stopped');
    const results = h.cp.resultsFor(id);
    expect(results).toHaveLength(1);
    expect(results[0]?.status).toBe('ok');
    expect(h.driver.calls.filter((c) => c.commandId === env.id)).toHaveLength(0);
    expect(h.driver.closed).toBe(1);
  });

  it('a full queue refuses new commands with the retryable E_BUSY', async () => {
    h = await startAgentHarness({
      env: { LATCHKEY_QUEUE_SIZE: '2', LATCHKEY_CONCURRENCY_GLOBAL: '1' },
    });
    const blocked = h.integration({ block: 'full' });
    const a = await h.send('discover', {}, { integration: blocked });
    const b = await h.send('discover', {}, { integration: blocked });
    await h.cp.waitFor('accepted', (m) => m.commandId === b, 10_000);
    const c = await h.send('discover', {}, { integration: blocked });
    const rejected = await h.cp.waitFor('rejected', (m) => m.commandId === c, 10_000);
    expect(rejected.error).toMatchObject({ code: 'E_BUSY', retryable: true });
    expect(await h.metricValue('latchkey_rejections_total', { code: 'E_BUSY' })).toBe(1);
    h.driver.release('full');
    expect((await h.cp.waitForResult(a, 10_000)).status).toBe('ok');
    expect((await h.cp.waitForResult(b, 10_000)).status).toBe('ok');
    expect(h.driver.callsFor(c)).toHaveLength(0);
  });

  it('commands for one grantee run in arrival order, one at a time, under concurrency', async () => {
    h = await startAgentHarness({
      env: { LATCHKEY_CONCURRENCY_GLOBAL: '8', LATCHKEY_CONCURRENCY_PER_INTEGRATION: '8' },
    });
    // Ann's first grant holds until Ben's first grant has started: the order is per
    // grantee, so Ben's must start meanwhile (if it could not, the wait below times out).
    const held = h.integration({ block: 'ann-first' });
    const slow = h.integration({ delayMs: 40 });
    const fast = h.integration({});
    const sent: { id: string; email: string }[] = [];
    const plan: [string, 'grant' | 'revoke', 'held' | 'slow' | 'fast'][] = [
      ['ann@example.com', 'grant', 'held'],
      ['ben@example.com', 'grant', 'slow'],
      ['ann@example.com', 'revoke', 'fast'],
      ['ben@example.com', 'revoke', 'slow'],
      ['ann@example.com', 'grant', 'fast'],
      ['ben@example.com', 'grant', 'fast'],
      ['ann@example.com', 'revoke', 'slow'],
      ['ann@example.com', 'grant', 'fast'],
    ];
    const integrations = { held, slow, fast };
    for (const [i, [email, kind, speed]] of plan.entries()) {
      const id = await h.send(kind, grantee(email, `g-${i}`), {
        integration: integrations[speed],
      });
      sent.push({ id, email });
    }
    await h.driver.waitForCalls(2, 10_000);
    expect(h.driver.callsFor(sent[1]!.id)).toHaveLength(1);
    h.driver.release('ann-first');
    for (const s of sent) expect((await h.cp.waitForResult(s.id, 10_000)).status).toBe('ok');
    for (const email of ['ann@example.com', 'ben@example.com']) {
      const ids = sent.filter((s) => s.email === email).map((s) => s.id);
      const calls = ids.map((id) => {
        const [call] = h!.driver.callsFor(id);
        if (!call?.endSeq) throw new Error(`no finished call for ${id}`);
        return call;
      });
      for (let i = 1; i < calls.length; i += 1) {
        // strictly after the previous one of the same grantee ended
        expect(calls[i]!.startSeq).toBeGreaterThan(calls[i - 1]!.endSeq!);
      }
    }
    // and the two grantees did overlap (the order is per grantee, not global)
    const first = h.driver.callsFor(sent[0]!.id)[0]!;
    const second = h.driver.callsFor(sent[1]!.id)[0]!;
    expect(second.startSeq).toBeLessThan(first.endSeq!);
  });

  it('the sweeper sweeps an integration remembered from a command, not one no driver serves', async () => {
    h = await startAgentHarness({ env: { LATCHKEY_SWEEP_INTERVAL: '1s' } });
    const swept = new Promise<{ integrationId: string; revoked: number }>((resolve) => {
      h!.agent.events.on('sweep:finished', (e) => {
        if (e.integrationId === 'it-sweep') resolve(e);
      });
    });
    const id = await h.send('grant', grantee('eve@example.com', 'g-sweep'), {
      integration: h.integration({ sweepRevoked: ['g-old-1', 'g-old-2'] }, 'it-sweep'),
    });
    await h.cp.waitForResult(id, 10_000);
    const unknown = await h.send(
      'check',
      {},
      {
        integration: { id: 'it-unknown', type: 'no-such-type', config: {} },
      },
    );
    await h.cp.waitFor('rejected', (r) => r.commandId === unknown, 10_000);

    const event = await swept;
    expect(event.revoked).toBe(2);
    const sweeps = h.driver.calls.filter((c) => c.kind === 'sweep');
    expect(sweeps.length).toBeGreaterThanOrEqual(1);
    expect(sweeps.every((c) => c.integrationId === 'it-sweep')).toBe(true);
  });
});
