/**
 * Raw 32-byte Ed25519 / X25519 keys <-> node:crypto KeyObjects, through the fixed DER
 * prefixes of SPKI (public) and PKCS#8 (private) for these curves (RFC 8410).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

const PREFIX = {
  ed25519: {
    spki: Buffer.from('302a300506032b6570032100', 'hex'),
    pkcs8: Buffer.from('302e020100300506032b657004220420', 'hex'),
  },
  x25519: {
    spki: Buffer.from('302a300506032b656e032100', 'hex'),
    pkcs8: Buffer.from('302e020100300506032b656e04220420', 'hex'),
  },
} as const;

export type Curve = keyof typeof PREFIX;

const B64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** Decodes base64 or base64url (padding optional); null when not valid base64 of either alphabet. */
export function decodeBase64Any(text: string): Buffer | null {
  const t = text.trim();
  if (t.length === 0 || !B64.test(t)) return null;
  // Node's base64 decoder reads both alphabets (`-_` as `+/`): no translated copy of the text
  // (this runs for every command's signature).
  return Buffer.from(t, 'base64');
}

export function publicKeyFromRaw(curve: Curve, raw: Buffer): KeyObject {
  return createPublicKey({
    key: Buffer.concat([PREFIX[curve].spki, raw]),
    format: 'der',
    type: 'spki',
  });
}

export function privateKeyFromRaw(curve: Curve, seed: Buffer): KeyObject {
  return createPrivateKey({
    key: Buffer.concat([PREFIX[curve].pkcs8, seed]),
    format: 'der',
    type: 'pkcs8',
  });
}

/**
 * The 32 raw bytes of an Ed25519 or X25519 public key: the JWK `x` member (RFC 8037), which
 * OpenSSL gives in about 2 µs where a DER export takes about 70 (it is paid once per sealed
 * credential).
 */
export function rawPublicKey(key: KeyObject): Buffer {
  const type = key.asymmetricKeyType;
  if (key.type !== 'public' || (type !== 'ed25519' && type !== 'x25519')) {
    throw new TypeError(`not an Ed25519 or X25519 public key: ${type ?? key.type}`);
  }
  const { x } = key.export({ format: 'jwk' });
  const raw = typeof x === 'string' ? Buffer.from(x, 'base64url') : Buffer.alloc(0);
  if (raw.length !== 32) throw new TypeError(`${type} public key without 32 raw bytes`);
  return raw;
}
