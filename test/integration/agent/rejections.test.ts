/**
 * Every way a command can be refused before it reaches a driver: each yields a
 * `rejected` frame with its precise code, is counted in `latchkey_rejections_total{code}`
 * (scraped over HTTP), and the driver is never called.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../../src/errors.js';
import type { Rejected } from '../../../src/protocol/messages.js';
import { startAgentHarness, type AgentHarness } from '../../helpers/agent-harness.js';

let h: AgentHarness;

beforeAll(async () => {
  h = await startAgentHarness({
    env: {
      LATCHKEY_MAX_CLOCK_SKEW: '30s',
      LATCHKEY_MAX_COMMAND_LIFETIME: '1h',
      LATCHKEY_MAX_FRAME_BYTES: '65536',
    },
  });
});

afterAll(async () => {
  await h.close();
});

async function rejectionOf(commandId: string | null, since: number): Promise<Rejected> {
  return h.cp.waitFor('rejected', (m) => m.commandId === commandId, 10_000, since);
}

const iso = (ms: number): string => new Date(ms).toISOString();

describe('rejections', () => {
  const cases: {
    name: string;
    code: ErrorCode;
    frame: () => { id: string | null; frame: string | Record<string, unknown> };
  }[] = [
    {
      name: 'a field changed after signing',
      code: 'E_SIGNATURE',
      frame: () => {
        const env = h.envelope('check');
        const frame = h.frame(env);
        (frame.envelope as Record<string, unknown>).integration = h.integration({}, 'it-tampered');
        return { id: env.id as string, frame };
      },
    },
    {
      name: 'signed by another key under a trusted key id',
      code: 'E_SIGNATURE',
      frame: () => {
        const env = h.envelope('check');
        const other = generateKeyPairSync('ed25519').privateKey;
        return { id: env.id as string, frame: h.frame(env, other, h.signing.keyId) };
      },
    },
    {
      name: 'an unknown key id',
      code: 'E_SIGNATURE',
      frame: () => {
        const env = h.envelope('check');
        return { id: env.id as string, frame: h.frame(env, h.signingKey, 'not-a-trusted-key') };
      },
    },
    {
      name: 'addressed to another connector',
      code: 'E_CONNECTOR',
      frame: () => {
        const env = h.envelope('check', {}, { connectorId: 'someone-else' });
        return { id: env.id as string, frame: h.frame(env) };
      },
    },
    {
      name: 'expired',
      code: 'E_EXPIRED',
      frame: () => {
        const now = Date.now();
        const env = h.envelope(
          'check',
          {},
          { issuedAt: iso(now - 600_000), expiresAt: iso(now - 120_000) },
        );
        return { id: env.id as string, frame: h.frame(env) };
      },
    },
    {
      name: 'issued in the future beyond the clock skew',
      code: 'E_EXPIRED',
      frame: () => {
        const now = Date.now();
        const env = h.envelope(
          'check',
          {},
          { issuedAt: iso(now + 120_000), expiresAt: iso(now + 180_000) },
        );
        return { id: env.id as string, frame: h.frame(env) };
      },
    },
    {
      name: 'a lifetime longer than allowed',
      code: 'E_EXPIRED',
      frame: () => {
        const now = Date.now();
        const env = h.envelope(
          'check',
          {},
          { issuedAt: iso(now), expiresAt: iso(now + 2 * 3_600_000) },
        );
        return { id: env.id as string, frame: h.frame(env) };
      },
    },
    {
      name: 'an unknown kind',
      code: 'E_UNSUPPORTED',
      frame: () => {
        const env = h.envelope('explode');
        return { id: env.id as string, frame: h.frame(env) };
      },
    },
    {
      name: 'an envelope that does not match the schema',
      code: 'E_SCHEMA',
      frame: () => {
        const env = h.envelope('check', { unexpected: true });
        return { id: env.id as string, frame: h.frame(env) };
      },
    },
    {
      name: 'malformed JSON',
      code: 'E_SCHEMA',
      frame: () => ({ id: null, frame: '{"type":"command","envelope":' }),
    },
    {
      name: 'a frame larger than the limit',
      code: 'E_TOO_LARGE',
      frame: () => ({
        id: null,
        frame: JSON.stringify({ type: 'command', pad: 'x'.repeat(70_000) }),
      }),
    },
    {
      name: 'an integration type this agent does not serve',
      code: 'E_UNSUPPORTED',
      frame: () => {
        const env = h.envelope(
          'check',
          {},
          { integration: { id: 'it-x', type: 'no-such-type', config: {} } },
        );
        return { id: env.id as string, frame: h.frame(env) };
      },
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name} with ${c.code}, counts it, never calls the driver`, async () => {
      const before = await h.metricValue('latchkey_rejections_total', { code: c.code });
      const callsBefore = h.driver.calls.length;
      const since = h.cp.received.length;
      const { id, frame } = c.frame();
      h.sendRaw(frame);
      const rejected = await rejectionOf(id, since);
      expect(rejected.error.code).toBe(c.code);
      expect(rejected.error.retryable).toBe(false);
      expect(await h.metricValue('latchkey_rejections_total', { code: c.code })).toBe(before + 1);
      expect(h.driver.calls.length).toBe(callsBefore);
      if (id !== null) {
        expect(h.cp.received.some((m) => m.type === 'accepted' && m.commandId === id)).toBe(false);
      }
    });
  }

  it('still runs a valid command after all of that (the link survived)', async () => {
    const id = await h.send('check');
    const result = await h.cp.waitForResult(id, 10_000);
    expect(result.status).toBe('ok');
    expect(h.driver.callsFor(id)).toHaveLength(1);
  });
});
