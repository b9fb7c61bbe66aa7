import { describe, expect, it } from 'vitest';
import { parseControlPlaneFrame, type FrameOutcome } from '../../../src/protocol/frame.js';
import { ControlPlaneMessageSchema } from '../../../src/protocol/messages.js';
import { grantEnvelope, makeSigner, signedCommand } from './helpers.js';

const MAX = 64 * 1024;

function rejected(outcome: FrameOutcome): {
  code: string;
  commandId: string | null;
  message: string;
} {
  if (outcome.ok) throw new Error('expected a rejection');
  return { code: outcome.error.code, commandId: outcome.commandId, message: outcome.error.message };
}

describe('parseControlPlaneFrame', () => {
  const signer = makeSigner();

  it('reads every control-plane message type', () => {
    const cmd = signedCommand(grantEnvelope(), signer);
    const frames = [
      { type: 'welcome', serverTime: '2026-11-25T20:00:00.000Z' },
      cmd,
      { type: 'result-ack', commandId: 'cmd-1' },
      { type: 'cancel', commandId: 'cmd-1' },
    ];
    for (const frame of frames) {
      const out = parseControlPlaneFrame(JSON.stringify(frame), MAX);
      expect(out.ok).toBe(true);
      if (out.ok) expect(out.message.type).toBe(frame.type);
    }
  });

  it('keeps the command envelope exactly as received', () => {
    const text = JSON.stringify(signedCommand(grantEnvelope(), signer));
    const out = parseControlPlaneFrame(Buffer.from(text, 'utf8'), MAX);
    expect(out.ok).toBe(true);
    if (out.ok && out.message.type === 'command') {
      expect(JSON.stringify(out.message.envelope)).toBe(
        JSON.stringify((JSON.parse(text) as { envelope: unknown }).envelope),
      );
    }
  });

  it('lets a command with an unknown kind through (the verifier answers E_UNSUPPORTED)', () => {
    const cmd = signedCommand(grantEnvelope({ kind: 'teleport', params: {} }), signer);
    expect(parseControlPlaneFrame(JSON.stringify(cmd), MAX).ok).toBe(true);
  });

  it('refuses a frame larger than the limit with E_TOO_LARGE, counting UTF-8 bytes', () => {
    const text = JSON.stringify(signedCommand(grantEnvelope(), signer));
    const size = Buffer.byteLength(text);
    expect(parseControlPlaneFrame(text, size).ok).toBe(true);
    expect(rejected(parseControlPlaneFrame(text, size - 1)).code).toBe('E_TOO_LARGE');
    expect(rejected(parseControlPlaneFrame(Buffer.from(text), size - 1)).code).toBe('E_TOO_LARGE');
    // 10 euro signs are 10 characters but 30 bytes
    const euros = JSON.stringify({ type: 'cancel', commandId: '€'.repeat(10) });
    expect(Buffer.byteLength(euros)).toBe(euros.length + 20);
    expect(rejected(parseControlPlaneFrame(euros, euros.length))).toMatchObject({
      code: 'E_TOO_LARGE',
      commandId: null,
    });
    expect(parseControlPlaneFrame(euros, euros.length + 20).ok).toBe(true);
  });

  it('refuses malformed JSON and invalid UTF-8 with E_SCHEMA and no command id', () => {
    expect(rejected(parseControlPlaneFrame('{"type":"command",', MAX))).toMatchObject({
      code: 'E_SCHEMA',
      commandId: null,
    });
    expect(rejected(parseControlPlaneFrame(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), MAX)).code).toBe(
      'E_SCHEMA',
    );
    expect(rejected(parseControlPlaneFrame('', MAX)).code).toBe('E_SCHEMA');
  });

  it('refuses messages that do not match the schema with E_SCHEMA, recovering envelope.id', () => {
    for (const text of ['null', '[]', '"x"', '42', '{}', '{"type":"nope"}', '{"type":"welcome"}']) {
      expect(rejected(parseControlPlaneFrame(text, MAX))).toMatchObject({
        code: 'E_SCHEMA',
        commandId: null,
      });
    }
    const noSignature = JSON.stringify({
      type: 'command',
      envelope: grantEnvelope({ id: 'cmd-77' }),
    });
    const r = rejected(parseControlPlaneFrame(noSignature, MAX));
    expect(r).toMatchObject({ code: 'E_SCHEMA', commandId: 'cmd-77' });
    expect(r.message).toContain('signature');
    const badAlg = signedCommand(grantEnvelope({ id: 'cmd-78' }), signer);
    const text = JSON.stringify({ ...badAlg, signature: { ...badAlg.signature, alg: 'rsa' } });
    expect(rejected(parseControlPlaneFrame(text, MAX))).toMatchObject({
      code: 'E_SCHEMA',
      commandId: 'cmd-78',
    });
    expect(
      rejected(parseControlPlaneFrame('{"type":"command","envelope":{"id":5}}', MAX)).commandId,
    ).toBeNull();
  });

  it('reads commands and result-acks exactly as the message schema does', () => {
    const cmd = signedCommand(grantEnvelope(), signer);
    const sig = cmd.signature;
    const frames: unknown[] = [
      cmd,
      { ...cmd, extra: 1 },
      { ...cmd, signature: { ...sig, extra: 1 } },
      { ...cmd, signature: { ...sig, alg: 'rsa' } },
      { ...cmd, signature: { ...sig, keyId: '' } },
      { ...cmd, signature: { ...sig, keyId: 'k'.repeat(128) } },
      { ...cmd, signature: { ...sig, keyId: 'k'.repeat(129) } },
      { ...cmd, signature: { ...sig, value: 'v'.repeat(256) } },
      { ...cmd, signature: { ...sig, value: 'v'.repeat(257) } },
      { ...cmd, signature: { alg: sig.alg, keyId: sig.keyId } },
      { ...cmd, signature: [sig] },
      { ...cmd, signature: null },
      { ...cmd, envelope: [cmd.envelope] },
      { ...cmd, envelope: null },
      { ...cmd, envelope: 'x' },
      { type: 'result-ack', commandId: 'c-1' },
      { type: 'result-ack', commandId: 'c-1', extra: true },
      { type: 'result-ack', commandId: 7 },
      { type: 'result-ack' },
      [{ type: 'result-ack', commandId: 'c-1' }],
    ];
    for (const frame of frames) {
      const text = JSON.stringify(frame);
      const out = parseControlPlaneFrame(text, MAX);
      const want = ControlPlaneMessageSchema.safeParse(JSON.parse(text));
      expect(out.ok, text).toBe(want.success);
      if (out.ok && want.success) expect(out.message, text).toStrictEqual(want.data);
      if (!out.ok && !want.success) expect(out.error.code).toBe('E_SCHEMA');
    }
  });
});
