import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LatchkeyError } from '../../../src/errors.js';
import { canonicalJson } from '../../../src/protocol/canonical.js';
import {
  generateRecipientKeyPair,
  generateSigningKeyPair,
  keyIdOf,
} from '../../../src/protocol/keys.js';
import { RecipientKeySchema } from '../../../src/protocol/messages.js';
import {
  parsePrivateKey,
  parsePublicKey,
  signEnvelope,
  verifyEnvelopeSignature,
} from '../../../src/protocol/signing.js';
import { envelopeDigest } from '../../../src/protocol/verify.js';
import { grantEnvelope, makeSigner } from './helpers.js';
import {
  SIGNING_KEY_ID,
  SIGNING_PUBLIC_KEY,
  SIGNING_SEED,
  VECTOR_CANONICAL,
  VECTOR_DIGEST,
  VECTOR_ENVELOPE,
  VECTOR_SIGNATURE,
} from './vectors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof LatchkeyError ? err.code : 'not-a-LatchkeyError';
  }
  return undefined;
}

describe('key parsing', () => {
  const kp = generateSigningKeyPair();

  it('reads a public key from PEM, base64url and standard base64 of the raw bytes', () => {
    const raw = Buffer.from(kp.publicKey, 'base64url');
    for (const text of [
      kp.publicKeyPem,
      kp.publicKey,
      raw.toString('base64'),
      `  ${kp.publicKey}\n`,
    ]) {
      const key = parsePublicKey(text);
      expect(key.asymmetricKeyType).toBe('ed25519');
      expect(keyIdOf(key)).toBe(kp.keyId);
    }
  });

  it('reads a private key from PEM and from the base64url seed', () => {
    const fromPem = parsePrivateKey(kp.privateKeyPem);
    const seed = fromPem
      .export({ format: 'der', type: 'pkcs8' })
      .subarray(-32)
      .toString('base64url');
    const fromSeed = parsePrivateKey(seed);
    const env = grantEnvelope();
    expect(signEnvelope(env, fromSeed, 'k').value).toBe(signEnvelope(env, fromPem, 'k').value);
  });

  it('refuses malformed or wrong-type keys with E_INVALID and never echoes the key', () => {
    expect(codeOf(() => parsePublicKey('not a key'))).toBe('E_INVALID');
    expect(codeOf(() => parsePublicKey(Buffer.alloc(31).toString('base64url')))).toBe('E_INVALID');
    expect(
      codeOf(() => parsePublicKey('-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----')),
    ).toBe('E_INVALID');
    const x = generateKeyPairSync('x25519');
    expect(
      codeOf(() => parsePublicKey(x.publicKey.export({ format: 'pem', type: 'spki' }).toString())),
    ).toBe('E_INVALID');
    expect(
      codeOf(() =>
        parsePrivateKey(x.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()),
      ),
    ).toBe('E_INVALID');
    const secretish = 'c2VjcmV0LXNlZWQtdGhhdC1pcy10b28tc2hvcnQ';
    try {
      parsePrivateKey(secretish);
      expect.unreachable();
    } catch (err) {
      expect((err as LatchkeyError).code).toBe('E_INVALID');
      expect((err as Error).message).not.toContain(secretish);
    }
  });
});

describe('signEnvelope / verifyEnvelopeSignature', () => {
  it('round-trips and verifies regardless of key order', () => {
    const signer = makeSigner();
    const env = grantEnvelope();
    const sig = signEnvelope(env, signer.privateKey, signer.keyId);
    expect(sig.alg).toBe('ed25519');
    expect(sig.keyId).toBe(signer.keyId);
    expect(Buffer.from(sig.value, 'base64url')).toHaveLength(64);
    const trusted = new Map([[signer.keyId, signer.publicKey]]);
    expect(verifyEnvelopeSignature(env, sig, trusted)).toBe(true);
    const reordered = JSON.parse(
      JSON.stringify(Object.fromEntries(Object.entries(env).reverse())),
    ) as Record<string, unknown>;
    expect(verifyEnvelopeSignature(reordered, sig, trusted)).toBe(true);
    // standard base64 with padding is accepted too
    const std = Buffer.from(sig.value, 'base64url').toString('base64');
    expect(verifyEnvelopeSignature(env, { ...sig, value: std }, trusted)).toBe(true);
  });

  it('returns false for a changed envelope, another key, an unknown key id, another alg or a malformed value', () => {
    const signer = makeSigner();
    const other = makeSigner();
    const env = grantEnvelope();
    const sig = signEnvelope(env, signer.privateKey, signer.keyId);
    const trusted = new Map([[signer.keyId, signer.publicKey]]);
    expect(verifyEnvelopeSignature({ ...env, id: 'cmd-2' }, sig, trusted)).toBe(false);
    expect(
      verifyEnvelopeSignature(env, signEnvelope(env, other.privateKey, signer.keyId), trusted),
    ).toBe(false);
    expect(verifyEnvelopeSignature(env, { ...sig, keyId: other.keyId }, trusted)).toBe(false);
    expect(verifyEnvelopeSignature(env, { ...sig, alg: 'rsa' }, trusted)).toBe(false);
    expect(verifyEnvelopeSignature(env, { ...sig, value: '!!!' }, trusted)).toBe(false);
    expect(verifyEnvelopeSignature(env, { ...sig, value: sig.value.slice(0, 84) }, trusted)).toBe(
      false,
    );
    expect(verifyEnvelopeSignature({ bad: Number.NaN }, sig, trusted)).toBe(false);
  });

  it('reproduces the published test vector (docs/protocol.md)', () => {
    const priv = parsePrivateKey(SIGNING_SEED);
    const pub = parsePublicKey(SIGNING_PUBLIC_KEY);
    expect(keyIdOf(pub)).toBe(SIGNING_KEY_ID);
    expect(
      createHash('sha256')
        .update(Buffer.from(SIGNING_PUBLIC_KEY, 'base64url'))
        .digest('hex')
        .slice(0, 16),
    ).toBe(SIGNING_KEY_ID);
    expect(canonicalJson(VECTOR_ENVELOPE)).toBe(VECTOR_CANONICAL);
    const sig = signEnvelope(VECTOR_ENVELOPE, priv, SIGNING_KEY_ID);
    expect(sig).toEqual({ alg: 'ed25519', keyId: SIGNING_KEY_ID, value: VECTOR_SIGNATURE });
    expect(verifyEnvelopeSignature(VECTOR_ENVELOPE, sig, new Map([[SIGNING_KEY_ID, pub]]))).toBe(
      true,
    );
    expect(envelopeDigest(VECTOR_ENVELOPE)).toBe(VECTOR_DIGEST);
  });
});

describe('key generation', () => {
  it('makes an Ed25519 signing pair whose key id is the sha256 prefix of the raw public key', () => {
    const kp = generateSigningKeyPair();
    expect(kp.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(kp.keyId).toBe(
      createHash('sha256')
        .update(Buffer.from(kp.publicKey, 'base64url'))
        .digest('hex')
        .slice(0, 16),
    );
    expect(kp.publicKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(kp.privateKeyPem).toContain('BEGIN PRIVATE KEY');
    expect(keyIdOf(parsePublicKey(kp.publicKeyPem))).toBe(kp.keyId);
    expect(generateSigningKeyPair().keyId).not.toBe(kp.keyId);
  });

  it('makes an X25519 recipient pair whose public key is a valid recipientKey', () => {
    const kp = generateRecipientKeyPair();
    expect(RecipientKeySchema.safeParse(kp.publicKey).success).toBe(true);
    expect(kp.privateKeyPem).toContain('BEGIN PRIVATE KEY');
  });
});
