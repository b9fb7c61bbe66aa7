/** The reference control plane takes chunked results: reassembles, checks, acks. */
import { afterEach, describe, expect, it } from 'vitest';
import type { DevControlPlane } from '../../../src/devcp/server.js';
import type { Result } from '../../../src/protocol/messages.js';
import { makeClient, result, startCp, type TestClient } from './helpers.js';

function big(commandId: string): Result {
  const r = result(commandId);
  r.output = {
    ok: true,
    checks: Array.from({ length: 400 }, (_, i) => ({
      name: `check ${i} "é" 🙂`,
      ok: true,
      detail: 'x'.repeat(50),
    })),
  };
  return r;
}

let cp: DevControlPlane | undefined;
let tc: TestClient | undefined;
afterEach(async () => {
  await tc?.client.stop({ flushTimeoutMs: 0 });
  await cp?.close();
  tc = undefined;
  cp = undefined;
});

describe('dev control plane: chunked results', () => {
  it('reassembles a chunked result and acknowledges it', async () => {
    ({ cp } = await startCp());
    tc = makeClient(cp.url, { maxResultFrameBytes: 4096 });
    tc.client.start();
    await tc.next('link:connected');
    const r = big('cmd-devcp-big');
    await tc.client.sendResult(r);
    expect(await cp.waitForResult('cmd-devcp-big')).toEqual(r);
    const chunks = cp.received.filter((m) => m.type === 'result-chunk');
    expect(chunks.length).toBeGreaterThan(4);
    await expect.poll(() => tc!.outbox.size).toBe(0);
  });

  it('holds at most the window while chunk acks are withheld, then finishes', async () => {
    ({ cp } = await startCp({ withholdChunkAcks: true }));
    tc = makeClient(cp.url, { maxResultFrameBytes: 4096, resultChunkWindow: 3 });
    tc.client.start();
    await tc.next('link:connected');
    await tc.client.sendResult(big('cmd-devcp-held'));
    await expect.poll(() => cp!.received.filter((m) => m.type === 'result-chunk').length).toBe(3);
    await new Promise((res) => setTimeout(res, 200));
    expect(cp.received.filter((m) => m.type === 'result-chunk')).toHaveLength(3);
    expect(cp.partialResults().get('cmd-devcp-held')).toBeGreaterThan(0);
    cp.setWithholdChunkAcks(false);
    // The next piece the agent sends after a reconnect gets acked, and it goes on.
    cp.dropConnections();
    await cp.waitForResult('cmd-devcp-held');
  });

  it('takes pieces cut differently by a restarted agent without a gap or an overlap', async () => {
    ({ cp } = await startCp({ withholdChunkAcks: true }));
    const first = makeClient(cp.url, { maxResultFrameBytes: 4096, resultChunkWindow: 3 });
    first.client.start();
    await first.next('link:connected');
    const r = big('cmd-devcp-restart');
    await first.client.sendResult(r);
    await expect
      .poll(() => cp!.partialResults().get('cmd-devcp-restart') ?? 0)
      .toBeGreaterThan(8000);
    await first.client.stop({ flushTimeoutMs: 0 });
    cp.setWithholdChunkAcks(false);
    // A new process with another frame size, the same outbox (as from the state journal).
    tc = makeClient(cp.url, { maxResultFrameBytes: 5000, outbox: first.outbox });
    tc.client.start();
    expect(await cp.waitForResult('cmd-devcp-restart')).toEqual(r);
    const offsets = cp.received.flatMap((m) => (m.type === 'result-chunk' ? [m.offset] : []));
    // Once from each process; never started over.
    expect(offsets.filter((o) => o === 0)).toHaveLength(2);
  });

  it('gives E_TOO_LARGE to a control plane that does not accept chunks', async () => {
    ({ cp } = await startCp({ acceptResultChunks: false }));
    tc = makeClient(cp.url, { maxResultFrameBytes: 4096 });
    tc.client.start();
    await tc.next('link:connected');
    await tc.client.sendResult(big('cmd-devcp-2big'));
    expect(await cp.waitForResult('cmd-devcp-2big')).toMatchObject({
      status: 'error',
      error: { code: 'E_TOO_LARGE', retryable: false },
    });
  });
});
