import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../../src/protocol/canonical.js';
import { parseControlPlaneFrame } from '../../../src/protocol/frame.js';
import type { CommandMessage } from '../../../src/protocol/messages.js';
import { createCommandVerifier, type VerifyOutcome } from '../../../src/protocol/verify.js';
import {
  CONNECTOR_ID,
  NOW,
  grantEnvelope,
  makeSigner,
  signedCommand,
  type TestSigner,
} from './helpers.js';

const SKEW = 30_000;
const LIFETIME = 15 * 60_000;

function verifierFor(signer: TestSigner, now: Date = NOW) {
  return createCommandVerifier({
    connectorId: CONNECTOR_ID,
    trustedKeys: new Map([[signer.keyId, signer.publicKey]]),
    maxClockSkewMs: SKEW,
    maxCommandLifetimeMs: LIFETIME,
    now: () => now,
  });
}

function rejection(outcome: VerifyOutcome): {
  code: string;
  commandId: string | null;
  message: string;
} {
  if (outcome.ok) throw new Error('expected a rejection');
  return { code: outcome.error.code, commandId: outcome.commandId, message: outcome.error.message };
}

function at(ms: number): string {
  return new Date(NOW.getTime() + ms).toISOString();
}

describe('createCommandVerifier', () => {
  const signer = makeSigner();
  const verifier = verifierFor(signer);

  it('accepts a valid signed command and returns the parsed envelope and its digest', () => {
    const env = grantEnvelope();
    const out = verifier.verify(signedCommand(env, signer));
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    expect(out.envelope.kind).toBe('grant');
    expect(out.envelope.id).toBe('cmd-1');
    expect(out.digest).toBe(createHash('sha256').update(canonicalJson(env)).digest('hex'));
  });

  it('verifies the envelope as received on the wire (frame → verify)', () => {
    const env = grantEnvelope();
    const cmd = signedCommand(env, signer);
    // Different key order and whitespace on the wire: canonical JSON makes it irrelevant.
    const wire = `{"signature":${JSON.stringify(cmd.signature)}, "type":"command", "envelope":${JSON.stringify(
      Object.fromEntries(Object.entries(env).reverse()),
      null,
      2,
    )}}`;
    const frame = parseControlPlaneFrame(wire, 65536);
    expect(frame.ok).toBe(true);
    if (frame.ok && frame.message.type === 'command') {
      expect(verifier.verify(frame.message).ok).toBe(true);
    }
  });

  it('rejects a field tampered in params with E_SIGNATURE', () => {
    const cmd = signedCommand(grantEnvelope(), signer);
    const params = cmd.envelope.params as Record<string, unknown>;
    cmd.envelope = { ...cmd.envelope, params: { ...params, permission: 'admin' } };
    expect(rejection(verifier.verify(cmd))).toMatchObject({
      code: 'E_SIGNATURE',
      commandId: 'cmd-1',
    });
  });

  it('rejects a field tampered in integration config with E_SIGNATURE', () => {
    const cmd = signedCommand(grantEnvelope(), signer);
    const integration = cmd.envelope.integration as Record<string, unknown>;
    cmd.envelope = {
      ...cmd.envelope,
      integration: {
        ...integration,
        config: { host: 'evil.example.com', port: 5432, database: 'sales' },
      },
    };
    expect(rejection(verifier.verify(cmd)).code).toBe('E_SIGNATURE');
  });

  it('rejects a signature by another key under a trusted key id with E_SIGNATURE', () => {
    const other = makeSigner();
    const cmd = signedCommand(grantEnvelope(), other, signer.keyId);
    const r = rejection(verifier.verify(cmd));
    expect(r.code).toBe('E_SIGNATURE');
    expect(r.message).toContain('does not verify');
    expect(r.message).not.toContain(cmd.signature.value);
  });

  it('answers a signature value that is not base64 or not 64 bytes with E_SIGNATURE, an empty or over-long one with E_SCHEMA (as docs/protocol.md says)', () => {
    const good = signedCommand(grantEnvelope(), signer);
    const raw = Buffer.from(good.signature.value, 'base64url');
    for (const value of [
      'not base64!',
      '%%%%',
      raw.subarray(0, 63).toString('base64url'),
      Buffer.concat([raw, Buffer.from([0])]).toString('base64url'),
    ]) {
      const r = rejection(verifier.verify({ ...good, signature: { ...good.signature, value } }));
      expect(r.code, value).toBe('E_SIGNATURE');
      expect(r.commandId).toBe(good.envelope.id);
    }
    // standard base64 of the same bytes verifies too
    expect(
      verifier.verify({ ...good, signature: { ...good.signature, value: raw.toString('base64') } })
        .ok,
    ).toBe(true);
    for (const value of ['', 'A'.repeat(257)]) {
      const frame = JSON.stringify({ ...good, signature: { ...good.signature, value } });
      const out = parseControlPlaneFrame(frame, 1 << 20);
      expect(out.ok).toBe(false);
      if (!out.ok) {
        expect(out.error.code).toBe('E_SCHEMA');
        expect(out.commandId).toBe(good.envelope.id);
      }
    }
  });

  it('rejects an unknown key id with E_SIGNATURE', () => {
    const other = makeSigner();
    const r = rejection(verifier.verify(signedCommand(grantEnvelope(), other)));
    expect(r.code).toBe('E_SIGNATURE');
    expect(r.message).toContain('not trusted');
  });

  it('rejects a command for another connector with E_CONNECTOR', () => {
    const r = rejection(
      verifier.verify(signedCommand(grantEnvelope({ connectorId: 'conn-us-1' }), signer)),
    );
    expect(r).toMatchObject({ code: 'E_CONNECTOR', commandId: 'cmd-1' });
  });

  it('rejects an expired command with E_EXPIRED, tolerating the clock skew', () => {
    const expired = grantEnvelope({ issuedAt: at(-120_000), expiresAt: at(-SKEW - 1) });
    expect(rejection(verifier.verify(signedCommand(expired, signer))).code).toBe('E_EXPIRED');
    const withinSkew = grantEnvelope({ issuedAt: at(-120_000), expiresAt: at(-SKEW + 1000) });
    expect(verifier.verify(signedCommand(withinSkew, signer)).ok).toBe(true);
  });

  it('rejects a command issued in the future beyond the skew with E_EXPIRED, accepts within', () => {
    const beyond = grantEnvelope({ issuedAt: at(SKEW + 1000), expiresAt: at(SKEW + 60_000) });
    const r = rejection(verifier.verify(signedCommand(beyond, signer)));
    expect(r.code).toBe('E_EXPIRED');
    expect(r.message).toContain('future');
    const within = grantEnvelope({ issuedAt: at(SKEW - 1000), expiresAt: at(SKEW + 60_000) });
    expect(verifier.verify(signedCommand(within, signer)).ok).toBe(true);
  });

  it('rejects a lifetime longer than allowed, or expiresAt not after issuedAt, with E_EXPIRED', () => {
    const tooLong = grantEnvelope({ issuedAt: at(-1000), expiresAt: at(LIFETIME) });
    const r = rejection(verifier.verify(signedCommand(tooLong, signer)));
    expect(r.code).toBe('E_EXPIRED');
    expect(r.message).toContain('lifetime');
    const exact = grantEnvelope({ issuedAt: at(-1000), expiresAt: at(LIFETIME - 1000) });
    expect(verifier.verify(signedCommand(exact, signer)).ok).toBe(true);
    const inverted = grantEnvelope({ issuedAt: at(0), expiresAt: at(0) });
    expect(rejection(verifier.verify(signedCommand(inverted, signer))).code).toBe('E_EXPIRED');
  });

  it('rejects an unknown kind with E_UNSUPPORTED', () => {
    const r = rejection(
      verifier.verify(signedCommand(grantEnvelope({ kind: 'teleport', params: {} }), signer)),
    );
    expect(r).toMatchObject({ code: 'E_UNSUPPORTED', commandId: 'cmd-1' });
  });

  it('rejects an extra unknown envelope field with E_SCHEMA even when signed', () => {
    const r = rejection(
      verifier.verify(signedCommand(grantEnvelope({ priority: 'high' }), signer)),
    );
    expect(r.code).toBe('E_SCHEMA');
    expect(r.message).toContain('priority');
    const params = { ...(grantEnvelope().params as Record<string, unknown>), sudo: true };
    expect(rejection(verifier.verify(signedCommand(grantEnvelope({ params }), signer))).code).toBe(
      'E_SCHEMA',
    );
  });

  it('rejects a "__proto__" member anywhere in the envelope with E_SCHEMA', () => {
    const wire = (envelopeText: string): CommandMessage => {
      const env = JSON.parse(envelopeText) as Record<string, unknown>;
      const text = JSON.stringify(signedCommand(env, signer)).replace(
        JSON.stringify(env),
        envelopeText,
      );
      const frame = parseControlPlaneFrame(text, 65536);
      if (!frame.ok || frame.message.type !== 'command') throw new Error('frame should parse');
      return frame.message;
    };
    const text = JSON.stringify(grantEnvelope());
    const inConfig = text.replace('"config":{', '"config":{"__proto__":{"host":"evil"},');
    expect(inConfig).not.toBe(text);
    expect(rejection(verifier.verify(wire(inConfig)))).toMatchObject({
      code: 'E_SCHEMA',
      message: expect.stringContaining('__proto__') as unknown,
    });
    expect(verifier.verify(wire(text)).ok).toBe(true);

    // at the top, and deep inside arrays and records
    const atTop = text.replace('{"id":', '{"__proto__":{"kind":"check"},"id":');
    const deep = text.replace(
      '"config":{',
      '"config":{"list":[1,{"x":[{"y":{"__proto__":{"host":"evil"}}}]}],',
    );
    // found in params (walked first) while the integration is still to be walked: what is
    // left of that walk must not reach the next envelope's
    const twice = text
      .replace('"resources":[{', '"resources":[{"__proto__":null,')
      .replace('"config":{', '"config":{"__proto__":{"host":"evil"},');
    for (const bad of [atTop, deep, twice]) {
      expect(bad).not.toBe(text);
      expect(rejection(verifier.verify(wire(bad)))).toMatchObject({
        code: 'E_SCHEMA',
        message: expect.stringContaining('__proto__') as unknown,
      });
      expect(verifier.verify(wire(text)).ok).toBe(true);
    }
  });

  it('refuses nonsensical options', () => {
    const base = {
      connectorId: CONNECTOR_ID,
      trustedKeys: new Map([[signer.keyId, signer.publicKey]]),
      maxClockSkewMs: SKEW,
      maxCommandLifetimeMs: LIFETIME,
    };
    expect(() => createCommandVerifier({ ...base, maxClockSkewMs: -1 })).toThrow(RangeError);
    expect(() => createCommandVerifier({ ...base, maxCommandLifetimeMs: Number.NaN })).toThrow(
      RangeError,
    );
    expect(() => createCommandVerifier({ ...base, connectorId: '' })).toThrow(RangeError);
  });

  it('rejects missing or malformed fields with E_SCHEMA', () => {
    const { expiresAt: _drop, ...noExpiry } = grantEnvelope();
    expect(rejection(verifier.verify(signedCommand(noExpiry, signer))).code).toBe('E_SCHEMA');
    expect(
      rejection(verifier.verify(signedCommand(grantEnvelope({ issuedAt: 'yesterday' }), signer)))
        .code,
    ).toBe('E_SCHEMA');
    const noKind = grantEnvelope();
    delete noKind.kind;
    expect(rejection(verifier.verify(signedCommand(noKind, signer))).code).toBe('E_SCHEMA');
  });

  it('checks in order: schema, signature, connector, time', () => {
    const other = makeSigner();
    // bad schema and bad signature → E_SCHEMA
    expect(rejection(verifier.verify(signedCommand(grantEnvelope({ extra: 1 }), other))).code).toBe(
      'E_SCHEMA',
    );
    // bad signature and wrong connector and expired → E_SIGNATURE
    const all = grantEnvelope({
      connectorId: 'x',
      issuedAt: at(-600_000),
      expiresAt: at(-500_000),
    });
    expect(rejection(verifier.verify(signedCommand(all, other))).code).toBe('E_SIGNATURE');
    // wrong connector and expired → E_CONNECTOR
    expect(rejection(verifier.verify(signedCommand(all, signer))).code).toBe('E_CONNECTOR');
  });

  it('signs over the raw envelope: a tampered copy cannot pass through a lenient parse', () => {
    const cmd: CommandMessage = signedCommand(grantEnvelope(), signer);
    const out = verifier.verify(cmd);
    expect(out.ok).toBe(true);
    // same content, another id → different digest
    const again = verifier.verify(signedCommand(grantEnvelope({ id: 'cmd-2' }), signer));
    expect(again.ok && out.ok && again.digest !== out.digest).toBe(true);
  });

  it('uses the real clock when none is injected', () => {
    const live = createCommandVerifier({
      connectorId: CONNECTOR_ID,
      trustedKeys: new Map([[signer.keyId, signer.publicKey]]),
      maxClockSkewMs: SKEW,
      maxCommandLifetimeMs: LIFETIME,
    });
    const now = Date.now();
    const env = grantEnvelope({
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 60_000).toISOString(),
    });
    expect(live.verify(signedCommand(env, signer)).ok).toBe(true);
    expect(rejection(live.verify(signedCommand(grantEnvelope(), signer))).code).toBe('E_EXPIRED');
  });
});
