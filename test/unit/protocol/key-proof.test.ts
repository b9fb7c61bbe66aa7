/**
 * Key proof at welcome: the control plane signs the agent's nonce with its command key;
 * the agent tells proved / failed / not offered. Published vector in docs/protocol.md.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '../../../src/protocol/keys.js';
import {
  checkKeyProof,
  keyProofInput,
  newKeyProofNonce,
  signKeyProof,
} from '../../../src/protocol/key-proof.js';
import { HelloSchema, WelcomeSchema } from '../../../src/protocol/messages.js';
import { parsePrivateKey, parsePublicKey } from '../../../src/protocol/signing.js';
import { SIGNING_KEY_ID, SIGNING_PUBLIC_KEY, SIGNING_SEED } from './vectors.js';

const NONCE = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8';
const PROOF =
  '0yqmJUoKFo5sjX55WwJHuULEtoM2bdQ46XfABhJmXXF0h1bU0YCXpd_ysZqYIS1JmfTsiaHOR4_xQ3XGbPleAA';

describe('welcome key proof', () => {
  const trusted = new Map([[SIGNING_KEY_ID, parsePublicKey(SIGNING_PUBLIC_KEY)]]);

  it('matches the published vector, and the document quotes it', () => {
    const proof = signKeyProof('conn-eu-1', NONCE, parsePrivateKey(SIGNING_SEED), SIGNING_KEY_ID);
    expect(proof).toEqual({ keyId: SIGNING_KEY_ID, value: PROOF });
    expect(keyProofInput('conn-eu-1', NONCE).toString('utf8')).toBe(
      `latchkey/welcome-key-proof/v1\nconn-eu-1\n${NONCE}`,
    );
    const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
    expect(doc).toContain(NONCE);
    expect(doc).toContain(PROOF);
    expect(checkKeyProof(proof, 'conn-eu-1', NONCE, trusted)).toEqual({
      status: 'proved',
      keyId: SIGNING_KEY_ID,
    });
  });

  it('fails for an untrusted key id, another key under a trusted id, another nonce or connector, a malformed value', () => {
    const other = generateSigningKeyPair();
    const byOther = signKeyProof(
      'conn-eu-1',
      NONCE,
      parsePrivateKey(other.privateKeyPem),
      other.keyId,
    );
    const untrusted = checkKeyProof(byOther, 'conn-eu-1', NONCE, trusted);
    expect(untrusted).toMatchObject({ status: 'failed', keyId: other.keyId });
    expect(untrusted.status === 'failed' && untrusted.detail).toContain(
      `key id "${other.keyId}", which is not among this agent's trusted keys (${SIGNING_KEY_ID})`,
    );
    // The control plane's key id is trusted but bound to another public key.
    const sameId = { keyId: SIGNING_KEY_ID, value: byOther.value };
    const wrongKey = checkKeyProof(sameId, 'conn-eu-1', NONCE, trusted);
    expect(wrongKey.status === 'failed' && wrongKey.detail).toContain(
      'does not verify with the trusted key "21fe31dfa154a261"',
    );
    const good = { keyId: SIGNING_KEY_ID, value: PROOF };
    expect(checkKeyProof(good, 'conn-eu-1', newKeyProofNonce(), trusted).status).toBe('failed');
    expect(checkKeyProof(good, 'conn-other', NONCE, trusted).status).toBe('failed');
    expect(
      checkKeyProof({ keyId: SIGNING_KEY_ID, value: 'not base64!' }, 'conn-eu-1', NONCE, trusted)
        .status,
    ).toBe('failed');
    expect(checkKeyProof(undefined, 'conn-eu-1', NONCE, trusted)).toEqual({
      status: 'not-offered',
    });
  });

  it('is optional in hello and welcome (an older peer sends none), with a 32-byte base64url nonce', () => {
    const hello = {
      type: 'hello',
      protocol: 1,
      connectorId: 'conn-eu-1',
      instanceId: 'i-1',
      version: '0.1.0',
      capabilities: { kinds: [], integrationTypes: [] },
    };
    expect(HelloSchema.safeParse(hello).success).toBe(true);
    expect(
      HelloSchema.safeParse({ ...hello, keyProof: { nonce: newKeyProofNonce() } }).success,
    ).toBe(true);
    expect(HelloSchema.safeParse({ ...hello, keyProof: { nonce: 'short' } }).success).toBe(false);
    const welcome = { type: 'welcome', serverTime: '2026-11-25T20:00:00.000Z' };
    expect(WelcomeSchema.safeParse(welcome).success).toBe(true);
    expect(
      WelcomeSchema.safeParse({ ...welcome, keyProof: { keyId: 'k', value: PROOF } }).success,
    ).toBe(true);
    expect(newKeyProofNonce()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(newKeyProofNonce()).not.toBe(newKeyProofNonce());
  });
});
