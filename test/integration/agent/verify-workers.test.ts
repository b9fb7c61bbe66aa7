/**
 * Signature checks on worker threads (`verifyWorkers`): commands still reach the queue,
 * and are answered, in the order they arrived, even when sent faster than they are
 * verified; a cancel right behind its command (still being verified) finds it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgentHarness, type AgentHarness } from '../../helpers/agent-harness.js';

let h: AgentHarness | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
});

const params = (email: string, grantId: string): Record<string, unknown> => ({
  grantId,
  grantee: { email },
  resources: [{ type: 'database', id: 'database:demo' }],
  permission: 'read',
});

describe.each(['2', '1', '0'])('verifyWorkers=%s', (workers) => {
  it('a burst is answered and run in arrival order; a cancel right behind its command cancels it', async () => {
    h = await startAgentHarness({ env: { LATCHKEY_VERIFY_WORKERS: workers } });
    const harness = h;
    const integration = harness.integration({ block: 'first' }, 'it-order');
    const plain = harness.integration({}, 'it-order');
    const other = generateKeyPairSync('ed25519').privateKey;
    const since = harness.cp.received.length;

    // One grantee (one order key): the dispatcher runs these strictly in submit order.
    const sent: { id: string; expect: 'accepted' | 'rejected' }[] = [];
    const frames: Record<string, unknown>[] = [];
    const first = harness.envelope('grant', params('ada@example.com', 'g-0'), { integration });
    frames.push(harness.frame(first));
    sent.push({ id: first.id as string, expect: 'accepted' });
    for (let i = 1; i <= 40; i += 1) {
      const kind = i % 2 === 1 ? 'revoke' : 'grant';
      const env = harness.envelope(kind, params('ada@example.com', `g-${i}`), {
        integration: plain,
      });
      // every seventh one forged: rejected in its place, never run
      const forged = i % 7 === 0;
      frames.push(forged ? harness.frame(env, other, harness.signing.keyId) : harness.frame(env));
      sent.push({ id: env.id as string, expect: forged ? 'rejected' : 'accepted' });
    }
    const last = sent.at(-1);
    if (last === undefined) throw new Error('nothing sent');
    for (const f of frames) harness.sendRaw(f);
    harness.sendRaw({ type: 'cancel', commandId: last.id });

    // answers (accepted / rejected) in arrival order
    for (const s of sent)
      await harness.cp.waitFor(s.expect, (m) => m.commandId === s.id, 10_000, since);
    const answers = harness.cp.received
      .slice(since)
      .filter((m) => m.type === 'accepted' || m.type === 'rejected')
      .map((m) => ('commandId' in m ? m.commandId : null));
    expect(answers).toEqual(sent.map((s) => s.id));
    for (const s of sent.filter((x) => x.expect === 'rejected')) {
      const r = harness.cp.received
        .slice(since)
        .find((m) => m.type === 'rejected' && m.commandId === s.id);
      expect(r && 'error' in r ? r.error?.code : undefined).toBe('E_SIGNATURE');
    }

    // the cancel found the last command queued behind the blocked first one
    harness.driver.release('first');
    const cancelled = await harness.cp.waitForResult(last.id, 10_000);
    expect(cancelled.status).toBe('error');
    expect(cancelled.error?.code).toBe('E_CANCELLED');

    const accepted = sent.filter((s) => s.expect === 'accepted' && s.id !== last.id);
    for (const s of accepted) await harness.cp.waitForResult(s.id, 10_000);
    // the driver ran them in arrival order, each once; the forged ones never
    expect(harness.driver.calls.map((c) => c.commandId)).toEqual(accepted.map((s) => s.id));
  });
});
