/**
 * Ed25519 signatures over the canonical JSON (RFC 8785) of a command envelope.
 *
 * Signing input: the UTF-8 bytes of `canonicalJson(envelope)`, exactly the envelope
 * object as sent (and, on the agent, exactly as received: never a re-parsed copy).
 * Signature value: base64url (no padding) of the 64-byte Ed25519 signature; the
 * verifier accepts standard base64 too.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { LatchkeyError } from '../errors.js';
import { canonicalJson } from './canonical.js';
import { decodeBase64Any, privateKeyFromRaw, publicKeyFromRaw } from './der.js';

export interface EnvelopeSignature {
  alg: 'ed25519';
  keyId: string;
  value: string;
}

function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new LatchkeyError(
      'E_INVALID',
      `${what} is a ${key.asymmetricKeyType ?? 'non-asymmetric'} key, expected ed25519`,
    );
  }
  return key;
}

/**
 * An Ed25519 public key from PEM (SPKI, `-----BEGIN PUBLIC KEY-----`) or from base64 /
 * base64url of its 32 raw bytes.
 * @throws LatchkeyError E_INVALID when the text is neither.
 */
export function parsePublicKey(text: string): KeyObject {
  const t = text.trim();
  if (t.startsWith('-----BEGIN')) {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: t, format: 'pem' });
    } catch (err) {
      throw new LatchkeyError('E_INVALID', 'public key PEM cannot be read (expected SPKI)', {
        cause: err,
      });
    }
    return requireEd25519(key, 'public key');
  }
  const raw = decodeBase64Any(t);
  if (raw?.length !== 32) {
    throw new LatchkeyError(
      'E_INVALID',
      'public key must be PEM (SPKI) or base64/base64url of 32 raw Ed25519 bytes',
    );
  }
  return publicKeyFromRaw('ed25519', raw);
}

/**
 * An Ed25519 private key from PEM (PKCS#8, `-----BEGIN PRIVATE KEY-----`) or from
 * base64url (or base64) of its 32-byte seed. The error never echoes the key.
 * @throws LatchkeyError E_INVALID when the text is neither.
 */
export function parsePrivateKey(text: string): KeyObject {
  const t = text.trim();
  if (t.startsWith('-----BEGIN')) {
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: t, format: 'pem' });
    } catch (err) {
      throw new LatchkeyError('E_INVALID', 'private key PEM cannot be read (expected PKCS#8)', {
        cause: err,
      });
    }
    return requireEd25519(key, 'private key');
  }
  const seed = decodeBase64Any(t);
  if (seed?.length !== 32) {
    throw new LatchkeyError(
      'E_INVALID',
      'private key must be PEM (PKCS#8) or base64url of a 32-byte Ed25519 seed',
    );
  }
  return privateKeyFromRaw('ed25519', seed);
}

/** Signs the canonical JSON of `envelope` with an Ed25519 private key. */
export function signEnvelope(
  envelope: Record<string, unknown>,
  privateKey: KeyObject,
  keyId: string,
): EnvelopeSignature {
  requireEd25519(privateKey, 'signing key');
  const data = Buffer.from(canonicalJson(envelope), 'utf8');
  const value = sign(null, data, privateKey).toString('base64url');
  return { alg: 'ed25519', keyId, value };
}

/**
 * True when `signature` is a valid Ed25519 signature of the canonical JSON of `envelope`
 * by the key trusted under `signature.keyId`. False for an unknown key id, another alg,
 * a malformed value or a non-canonicalizable envelope. Never throws.
 */
export function verifyEnvelopeSignature(
  envelope: Record<string, unknown>,
  signature: { alg: string; keyId: string; value: string },
  trustedKeys: ReadonlyMap<string, KeyObject>,
): boolean {
  if (signature.alg !== 'ed25519') return false;
  const key = trustedKeys.get(signature.keyId);
  if (key?.asymmetricKeyType !== 'ed25519') return false;
  const sig = decodeBase64Any(signature.value);
  if (sig?.length !== 64) return false;
  try {
    const data = Buffer.from(canonicalJson(envelope), 'utf8');
    return verify(null, data, key, sig);
  } catch {
    return false;
  }
}
