/**
 * Sealing credentials to the requester's X25519 key, so the control plane relays them
 * but cannot read them.
 *
 * Algorithm `X25519-HKDF-SHA256-A256GCM`:
 * 1. generate an ephemeral X25519 key pair (`epk` = its 32 raw public bytes);
 * 2. `shared = X25519(ephemeralPrivate, recipientPublic)` (all-zero result is refused);
 * 3. `key = HKDF-SHA256(ikm = shared, salt = epk || recipientPublic, info = "latchkey/seal/v1", L = 32)`;
 * 4. `iv` = 12 random bytes; AES-256-GCM over the UTF-8 JSON of the credentials, with
 *    the alg string as additional authenticated data; 16-byte tag;
 * 5. `{alg, epk, iv, ct, tag}`, each binary field base64url without padding.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { z } from 'zod';
import { BoundedCache } from '../bounded-cache.js';
import type { CredentialSealer } from '../drivers/driver.js';
import { LatchkeyError } from '../errors.js';
import { decodeBase64Any, privateKeyFromRaw, publicKeyFromRaw, rawPublicKey } from './der.js';
import { SealedSchema, type Credentials, type Sealed } from './messages.js';

export const SEAL_ALG = 'X25519-HKDF-SHA256-A256GCM' as const;
export const SEAL_INFO = 'latchkey/seal/v1';

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

/**
 * Recipient keys already turned into key objects: building one costs more than the rest
 * of a seal, and a requester seals to the same key grant after grant. Bounded (the oldest
 * goes first); public keys only, so nothing secret is kept.
 */
const recipientCache = new BoundedCache<string, { key: KeyObject; raw: Buffer }>(256);

function recipientPublicKey(recipientKey: string): { key: KeyObject; raw: Buffer } {
  return recipientCache.get(recipientKey, parseRecipientPublicKey);
}

function parseRecipientPublicKey(recipientKey: string): { key: KeyObject; raw: Buffer } {
  if (!B64URL_32.test(recipientKey)) {
    throw new LatchkeyError(
      'E_INVALID',
      'recipientKey must be base64url of a 32-byte X25519 public key',
    );
  }
  const raw = Buffer.from(recipientKey, 'base64url');
  try {
    return { key: publicKeyFromRaw('x25519', raw), raw };
  } catch (err) {
    throw new LatchkeyError('E_INVALID', 'recipientKey is not a usable X25519 public key', {
      cause: err,
    });
  }
}

function deriveKey(shared: Buffer, epk: Buffer, recipientRaw: Buffer): Buffer {
  if (shared.every((b) => b === 0)) {
    throw new LatchkeyError('E_INVALID', 'recipientKey is a low-order X25519 point');
  }
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([epk, recipientRaw]), SEAL_INFO, 32));
}

/**
 * Seals `credentials` to `recipientKey` (base64url of 32 raw X25519 bytes).
 * @throws LatchkeyError E_INVALID for a malformed or unusable key.
 */
export function seal(recipientKey: string, credentials: Record<string, string>): Sealed {
  return sealWith(
    recipientKey,
    credentials,
    generateKeyPairSync('x25519').privateKey,
    randomBytes(12),
  );
}

/**
 * `seal` with a given ephemeral private key and iv. Only for published test vectors:
 * reusing an ephemeral key or an iv breaks the encryption.
 * @internal
 */
export function sealWith(
  recipientKey: string,
  credentials: Record<string, string>,
  ephemeralPrivateKey: KeyObject,
  iv: Buffer,
): Sealed {
  const recipient = recipientPublicKey(recipientKey);
  const epk = rawPublicKey(createPublicKey(ephemeralPrivateKey));
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: ephemeralPrivateKey, publicKey: recipient.key });
  } catch (err) {
    throw new LatchkeyError('E_INVALID', 'recipientKey is not a usable X25519 public key', {
      cause: err,
    });
  }
  const key = deriveKey(shared, epk, recipient.raw);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  cipher.setAAD(Buffer.from(SEAL_ALG, 'utf8'));
  const ct = Buffer.concat([cipher.update(JSON.stringify(credentials), 'utf8'), cipher.final()]);
  return {
    alg: SEAL_ALG,
    epk: epk.toString('base64url'),
    iv: iv.toString('base64url'),
    ct: ct.toString('base64url'),
    tag: cipher.getAuthTag().toString('base64url'),
  };
}

/** An X25519 private key from a KeyObject, PEM (PKCS#8) or base64url of the 32 raw bytes. */
export function parseRecipientPrivateKey(key: KeyObject | string): KeyObject {
  let obj: KeyObject;
  if (typeof key !== 'string') {
    obj = key;
  } else if (key.trim().startsWith('-----BEGIN')) {
    try {
      obj = createPrivateKey({ key: key.trim(), format: 'pem' });
    } catch (err) {
      throw new LatchkeyError(
        'E_INVALID',
        'recipient private key PEM cannot be read (expected PKCS#8)',
        {
          cause: err,
        },
      );
    }
  } else {
    const raw = decodeBase64Any(key);
    if (raw?.length !== 32) {
      throw new LatchkeyError(
        'E_INVALID',
        'recipient private key must be PEM (PKCS#8) or base64url of 32 raw X25519 bytes',
      );
    }
    obj = privateKeyFromRaw('x25519', raw);
  }
  if (obj.type !== 'private' || obj.asymmetricKeyType !== 'x25519') {
    throw new LatchkeyError('E_INVALID', 'recipient private key must be an X25519 private key');
  }
  return obj;
}

const CredentialRecordSchema = z.record(z.string(), z.string());

function field(value: string, name: string, length?: number): Buffer {
  const buf = /^[A-Za-z0-9_-]*$/.test(value) ? Buffer.from(value, 'base64url') : null;
  if (buf === null || (length !== undefined && buf.length !== length)) {
    throw new LatchkeyError('E_INVALID', `sealed.${name} is malformed`);
  }
  return buf;
}

/**
 * Opens sealed credentials with the recipient's X25519 private key.
 * @throws LatchkeyError E_INVALID when malformed, tampered with, or sealed to another key.
 */
export function open(
  recipientPrivateKey: KeyObject | string,
  sealed: Sealed,
): Record<string, string> {
  const parsed = SealedSchema.safeParse(sealed);
  if (!parsed.success) throw new LatchkeyError('E_INVALID', 'sealed credentials are malformed');
  const s = parsed.data;
  const privateKey = parseRecipientPrivateKey(recipientPrivateKey);
  const recipientRaw = rawPublicKey(createPublicKey(privateKey));
  const epk = field(s.epk, 'epk', 32);
  const iv = field(s.iv, 'iv', 12);
  const tag = field(s.tag, 'tag', 16);
  const ct = field(s.ct, 'ct');
  let plaintext: string;
  try {
    const shared = diffieHellman({ privateKey, publicKey: publicKeyFromRaw('x25519', epk) });
    const key = deriveKey(shared, epk, recipientRaw);
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
    decipher.setAAD(Buffer.from(s.alg, 'utf8'));
    decipher.setAuthTag(tag);
    plaintext = Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new LatchkeyError('E_INVALID', 'sealed credentials do not open: wrong key or tampered', {
      cause: err,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(plaintext);
  } catch {
    // No cause: a JSON SyntaxError quotes its input, which here is the credentials.
    throw new LatchkeyError('E_INVALID', 'sealed credentials are not JSON');
  }
  const creds = CredentialRecordSchema.safeParse(value);
  if (!creds.success) {
    throw new LatchkeyError('E_INVALID', 'sealed credentials are not an object of strings');
  }
  return creds.data;
}

/**
 * The `CredentialSealer` drivers get: seals when a `recipientKey` is given; without one,
 * returns plaintext only if the operator allowed it, else refuses with `E_INVALID`.
 */
export function createSealer(opts: { allowPlaintext: boolean }): CredentialSealer {
  return {
    seal(recipientKey: string | undefined, credentials: Record<string, string>): Credentials {
      if (recipientKey === undefined || recipientKey === '') {
        if (opts.allowPlaintext) return { plaintext: { ...credentials } };
        throw new LatchkeyError(
          'E_INVALID',
          'grant needs recipientKey to seal credentials (plaintext credentials are not allowed on this agent)',
        );
      }
      return { sealed: seal(recipientKey, credentials) };
    },
  };
}
