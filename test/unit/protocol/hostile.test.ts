/**
 * Hostile input to the frame parser and the verifier: whatever arrives, the answer is a
 * rejection with a precise code (never a throw), and what a driver would see is exactly
 * what was signed.
 */
import { describe, expect, it } from 'vitest';
import { parseControlPlaneFrame } from '../../../src/protocol/frame.js';
import { signEnvelope } from '../../../src/protocol/signing.js';
import { createCommandVerifier, envelopeDigest } from '../../../src/protocol/verify.js';
import { CONNECTOR_ID, NOW, grantEnvelope, makeSigner } from './helpers.js';

const signer = makeSigner();
const verifier = createCommandVerifier({
  connectorId: CONNECTOR_ID,
  trustedKeys: new Map([[signer.keyId, signer.publicKey]]),
  maxClockSkewMs: 30_000,
  maxCommandLifetimeMs: 15 * 60_000,
  now: () => NOW,
});
const FAKE_SIG = { alg: 'ed25519', keyId: signer.keyId, value: 'A'.repeat(86) };

/** Frame text → parse → verify; returns the code of the first refusal, or 'ok'. */
function pipeline(text: string): string {
  const frame = parseControlPlaneFrame(text, 8 * 1024 * 1024);
  if (!frame.ok) return frame.error.code;
  if (frame.message.type !== 'command') return `not a command: ${frame.message.type}`;
  const out = verifier.verify(frame.message);
  return out.ok ? 'ok' : out.error.code;
}

function frameOf(envelope: unknown, signature: unknown = FAKE_SIG): string {
  return JSON.stringify({ type: 'command', envelope, signature });
}

function signed(envelope: Record<string, unknown>): string {
  return frameOf(envelope, signEnvelope(envelope, signer.privateKey, signer.keyId));
}

describe('hostile frames', () => {
  it('refuses deep nesting without overflowing the stack', () => {
    const depth = 50_000;
    const deepArray = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const deepObject = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    for (const deep of [deepArray, deepObject]) {
      const text = frameOf(grantEnvelope()).replace('"config":{', `"config":{"d":${deep},`);
      expect(() => pipeline(text)).not.toThrow();
      expect(['E_SCHEMA', 'E_SIGNATURE']).toContain(pipeline(text));
    }
  });

  it('refuses values with no canonical JSON form (huge numbers, lone surrogates)', () => {
    const huge = frameOf(grantEnvelope()).replace('"port":5432', '"port":1e400');
    expect(pipeline(huge)).toBe('E_SCHEMA');
    const lone = frameOf(grantEnvelope()).replace('"sales.db.internal"', '"\\ud800"');
    expect(pipeline(lone)).toBe('E_SCHEMA');
  });

  it('refuses non-string ids and kinds as E_SCHEMA without recovering an id', () => {
    const frame = parseControlPlaneFrame(frameOf(grantEnvelope({ id: 12 })), 1 << 20);
    expect(frame.ok).toBe(true);
    if (!frame.ok || frame.message.type !== 'command') return;
    const out = verifier.verify(frame.message);
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.error.code).toBe('E_SCHEMA');
      expect(out.commandId).toBeNull();
    }
    expect(pipeline(frameOf(grantEnvelope({ kind: ['grant'] })))).toBe('E_SCHEMA');
  });

  it('with duplicate keys, what is verified, digested and used is the same (last) value', () => {
    const envelope = grantEnvelope({ id: 'cmd-real' });
    const text = signed(envelope).replace('"id":"cmd-real"', '"id":"cmd-decoy","id":"cmd-real"');
    const frame = parseControlPlaneFrame(text, 1 << 20);
    expect(frame.ok && frame.message.type === 'command').toBe(true);
    if (!frame.ok || frame.message.type !== 'command') return;
    const out = verifier.verify(frame.message);
    expect(out.ok).toBe(true);
    if (out.ok) {
      expect(out.envelope.id).toBe('cmd-real');
      expect(out.digest).toBe(envelopeDigest(envelope));
    }
    // The reverse order is another envelope: its signature does not verify.
    const swapped = signed(envelope).replace('"id":"cmd-real"', '"id":"cmd-real","id":"cmd-decoy"');
    expect(pipeline(swapped)).toBe('E_SIGNATURE');
  });

  it('refuses timestamps outside strict RFC 3339 (leap seconds, no seconds, bad offsets)', () => {
    for (const issuedAt of [
      '2026-11-25T19:59:60Z',
      '2026-11-25T20:00Z',
      '2026-11-25T20:00:00+25:00',
      '2026-11-25t20:00:00z',
      '2026-02-30T20:00:00Z',
      '2026-11-25T24:00:00Z',
      '+002026-11-25T20:00:00Z',
    ]) {
      expect(pipeline(signed(grantEnvelope({ issuedAt }))), issuedAt).toBe('E_SCHEMA');
    }
  });

  it('reads offsets as instants: the same window in another zone is accepted, far future is not', () => {
    const shifted = grantEnvelope({
      issuedAt: '2026-11-26T10:00:00+14:00', // 20:00:00Z
      expiresAt: '2026-11-25T10:05:00-10:00', // 20:05:00Z
    });
    expect(pipeline(signed(shifted))).toBe('ok');
    const farFuture = grantEnvelope({ expiresAt: '9999-12-31T23:59:59Z' });
    expect(pipeline(signed(farFuture))).toBe('E_EXPIRED');
    const farPast = grantEnvelope({ issuedAt: '0000-01-01T00:00:00Z' });
    expect(pipeline(signed(farPast))).toBe('E_EXPIRED');
  });

  it('never lets an own __proto__ member reach the schema, even when signed', () => {
    const text = signed(grantEnvelope()).replace(
      '"config":{',
      '"config":{"__proto__":{"isAdmin":true},',
    );
    expect(pipeline(text)).toBe('E_SCHEMA');
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });
});
