/** Key generation for operators (`latchkey keygen`), the dev control plane and tests. */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { rawPublicKey } from './der.js';

export interface SigningKeyPair {
  /** First 16 hex characters of sha256 of the raw public key. */
  keyId: string;
  /** base64url of the 32 raw Ed25519 public-key bytes. */
  publicKey: string;
  /** SPKI PEM. */
  publicKeyPem: string;
  /** PKCS#8 PEM. Secret. */
  privateKeyPem: string;
}

export interface RecipientKeyPair {
  /** base64url of the 32 raw X25519 public-key bytes (the `recipientKey` of a grant). */
  publicKey: string;
  /** PKCS#8 PEM. Secret. */
  privateKeyPem: string;
}

/** The key id of an Ed25519 public key: first 16 hex of sha256 of its 32 raw bytes. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('hex').slice(0, 16);
}

export function generateSigningKeyPair(): SigningKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    keyId: keyIdOf(publicKey),
    publicKey: rawPublicKey(publicKey).toString('base64url'),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

export function generateRecipientKeyPair(): RecipientKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return {
    publicKey: rawPublicKey(publicKey).toString('base64url'),
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}
