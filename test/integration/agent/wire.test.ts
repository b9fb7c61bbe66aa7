/**
 * Wire behaviour of the agent against the reference control plane (real sockets): binary
 * and non-UTF-8 frames, nesting bombs, and how refusals are logged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startAgentHarness, type AgentHarness } from '../../helpers/agent-harness.js';

let h: AgentHarness;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  const logger = pino(
    { level: 'info' },
    { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) },
  );
  h = await startAgentHarness({ logger, env: { LATCHKEY_LOG_LEVEL: 'info' } });
});

afterAll(async () => {
  await h.close();
});

const refusalLines = (): Record<string, unknown>[] =>
  lines.filter((l) => l.component === 'refusals' && l.msg === 'command refused');

function deepFrame(bytes: number): string {
  const n = Math.floor(bytes / 2) - 64;
  return `{"type":"command","envelope":{"id":"deep","params":${'['.repeat(n)}${']'.repeat(n)}}}`;
}

describe('binary and non-UTF-8 frames', () => {
  it('refuses a command in a binary frame with E_SCHEMA without running it, and keeps the link', async () => {
    let disconnects = 0;
    const off = h.agent.events.on('link:disconnected', () => disconnects++);
    const env = h.envelope('check');
    const id = env.id as string;
    const text = JSON.stringify(h.frame(env));
    const since = h.cp.received.length;
    h.cp.sendRaw(h.connectorId, Buffer.from(text, 'utf8'));
    const rejected = await h.cp.waitFor('rejected', () => true, 10_000, since);
    expect(rejected).toEqual({
      type: 'rejected',
      commandId: null,
      error: {
        code: 'E_SCHEMA',
        message: 'binary frames are not accepted: send each message as JSON in a text frame',
        retryable: false,
      },
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(h.driver.callsFor(id)).toHaveLength(0);
    expect(h.cp.received.slice(since).some((m) => 'commandId' in m && m.commandId === id)).toBe(
      false,
    );
    // the same command as a text frame runs: the link stayed up
    h.sendRaw(text);
    expect((await h.cp.waitForResult(id, 10_000)).status).toBe('ok');
    expect(h.driver.callsFor(id)).toHaveLength(1);
    expect(disconnects).toBe(0);
    off();
  });

  it('fails the connection on a text frame that is not UTF-8 (1007 to the peer), then reconnects', async () => {
    // The close code the peer receives is asserted in test/integration/controlplane/link.test.ts;
    // here: no rejected, the agent logs why, reconnects and serves again.
    const closed = new Promise<void>((resolve) => {
      const off = h.agent.events.on('link:disconnected', () => {
        off();
        resolve();
      });
    });
    const since = h.cp.received.length;
    h.cp.sendRaw(h.connectorId, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), {
      binary: false,
    });
    await closed;
    expect(lines.some((l) => l.code === 'WS_ERR_INVALID_UTF8')).toBe(true);
    await expect.poll(() => h.agent.status, { timeout: 10_000 }).toBe('ready');
    await expect.poll(() => h.cp.connectedAgents().length, { timeout: 10_000 }).toBe(1);
    expect(h.cp.received.slice(since).filter((m) => m.type === 'rejected')).toHaveLength(0);
    const id = await h.send('check');
    expect((await h.cp.waitForResult(id, 10_000)).status).toBe('ok');
  });
});

describe('nesting bombs', () => {
  it('refuses deeply nested frames under the size limit fast, without delaying a valid command', async () => {
    expect(h.config.maxFrameBytes).toBe(1024 * 1024);
    const bomb = deepFrame(h.config.maxFrameBytes - 1024);
    expect(Buffer.byteLength(bomb)).toBeLessThan(h.config.maxFrameBytes);
    const since = h.cp.received.length;
    const t0 = Date.now();
    for (let i = 0; i < 10; i += 1) h.sendRaw(bomb);
    const id = await h.send('check');
    const result = await h.cp.waitForResult(id, 30_000);
    const elapsed = Date.now() - t0;
    expect(result.status).toBe('ok');
    await expect
      .poll(() => h.cp.received.slice(since).filter((m) => m.type === 'rejected').length)
      .toBe(10);
    for (const m of h.cp.received.slice(since)) {
      if (m.type !== 'rejected') continue;
      expect(m.commandId).toBeNull();
      expect(m.error.code).toBe('E_SCHEMA');
      expect(m.error.message).toBe('frame nests arrays or objects deeper than 64 levels');
    }
    // JSON.parse of one such frame blocks ~0.8 s; ten of them used to delay the command
    // by 8 s. Loose: the machine is shared.
    expect(elapsed).toBeLessThan(4000);
  });
});

describe('refusal logging', () => {
  it('logs each refusal once, with only known-safe fields', async () => {
    const before = lines.length;
    const bad = h.envelope('check', {}, { connectorId: 'someone-else' });
    const since = h.cp.received.length;
    h.sendRaw('not json');
    h.cp.sendRaw(h.connectorId, Buffer.from('{}'));
    h.sendRaw(h.frame(bad));
    await expect
      .poll(() => h.cp.received.slice(since).filter((m) => m.type === 'rejected').length)
      .toBe(3);
    await expect.poll(() => refusalLines().length - 0).toBeGreaterThan(0);
    const mine = lines.slice(before).filter((l) => l.component === 'refusals');
    expect(mine.map((l) => [l.code, l.commandId, l.stage])).toEqual([
      ['E_SCHEMA', null, 'frame'],
      ['E_SCHEMA', null, 'frame'],
      ['E_CONNECTOR', bad.id, 'command'],
    ]);
    for (const l of mine) {
      expect(
        Object.keys(l)
          .filter((k) => !['level', 'time', 'pid', 'hostname'].includes(k))
          .sort(),
      ).toEqual(
        (l.stage === 'frame'
          ? ['bytes', 'code', 'commandId', 'component', 'msg', 'reason', 'stage']
          : ['code', 'commandId', 'component', 'msg', 'reason', 'stage']
        ).sort(),
      );
    }
    // nothing else at warn or above about them (once, not twice)
    const others = lines
      .slice(before)
      .filter((l) => l.component !== 'refusals' && Number(l.level) >= 40);
    expect(others).toEqual([]);
  });

  it('rate limits refusal lines in a flood and counts what it suppressed', async () => {
    const before = lines.length;
    const suppressedBefore = await h.metricValue('latchkey_refusal_logs_suppressed_total', {
      code: 'E_SCHEMA',
    });
    const since = h.cp.received.length;
    const t0 = Date.now();
    const n = 500;
    for (let i = 0; i < n; i += 1) h.sendRaw(`junk ${i}`);
    await expect
      .poll(() => h.cp.received.slice(since).filter((m) => m.type === 'rejected').length, {
        timeout: 20_000,
      })
      .toBe(n);
    const seconds = (Date.now() - t0) / 1000;
    const logged = lines
      .slice(before)
      .filter((l) => l.component === 'refusals' && l.msg === 'command refused').length;
    // a burst of 20 (what is left of it), then 5 a second
    expect(logged).toBeLessThanOrEqual(20 + Math.ceil(5 * seconds) + 1);
    const suppressed =
      (await h.metricValue('latchkey_refusal_logs_suppressed_total', { code: 'E_SCHEMA' })) -
      suppressedBefore;
    expect(suppressed + logged).toBe(n);
    expect(
      await h.metricValue('latchkey_rejections_total', { code: 'E_SCHEMA' }),
    ).toBeGreaterThanOrEqual(n);
  });
});
