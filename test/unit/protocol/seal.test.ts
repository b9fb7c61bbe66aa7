import {
  createCipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
} from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LatchkeyError } from '../../../src/errors.js';
import { privateKeyFromRaw } from '../../../src/protocol/der.js';
import { generateRecipientKeyPair } from '../../../src/protocol/keys.js';
import type { Sealed } from '../../../src/protocol/messages.js';
import {
  SEAL_ALG,
  SEAL_INFO,
  createSealer,
  open,
  seal,
  sealWith,
} from '../../../src/protocol/seal.js';
import {
  EPHEMERAL_PRIVATE_HEX,
  RECIPIENT_PRIVATE_HEX,
  RECIPIENT_PUBLIC_KEY,
  SEAL_IV_HEX,
  VECTOR_CREDENTIALS,
  VECTOR_SEALED,
} from './vectors.js';

const CREDS = { username: 'lk_ada', password: 'p@ss w0rd ✓' };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof LatchkeyError ? err.code : 'not-a-LatchkeyError';
  }
  return undefined;
}

/** Flips one bit in a base64url field. */
function flip(value: string, byte = 0): string {
  const buf = Buffer.from(value, 'base64url');
  buf[byte] = (buf[byte] ?? 0) ^ 0x01;
  return buf.toString('base64url');
}

describe('seal / open', () => {
  const recipient = generateRecipientKeyPair();

  it('round-trips with the PEM, a KeyObject or the raw base64url private key', () => {
    const sealed = seal(recipient.publicKey, CREDS);
    expect(sealed.alg).toBe('X25519-HKDF-SHA256-A256GCM');
    expect(Buffer.from(sealed.epk, 'base64url')).toHaveLength(32);
    expect(Buffer.from(sealed.iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(sealed.tag, 'base64url')).toHaveLength(16);
    expect(JSON.stringify(sealed)).not.toContain('p@ss');
    expect(open(recipient.privateKeyPem, sealed)).toEqual(CREDS);
    const kp = generateKeyPairSync('x25519');
    const pub = kp.publicKey
      .export({ format: 'der', type: 'spki' })
      .subarray(-32)
      .toString('base64url');
    const rawPriv = kp.privateKey
      .export({ format: 'der', type: 'pkcs8' })
      .subarray(-32)
      .toString('base64url');
    const s2 = seal(pub, CREDS);
    expect(open(kp.privateKey, s2)).toEqual(CREDS);
    expect(open(rawPriv, s2)).toEqual(CREDS);
  });

  it('uses a fresh ephemeral key and iv each time', () => {
    const a = seal(recipient.publicKey, CREDS);
    const b = seal(recipient.publicKey, CREDS);
    expect(a.epk).not.toBe(b.epk);
    expect(a.iv).not.toBe(b.iv);
    expect(a.ct).not.toBe(b.ct);
  });

  it('fails with E_INVALID when the ciphertext, tag, epk or iv was tampered with', () => {
    const sealed = seal(recipient.publicKey, CREDS);
    const variants: Sealed[] = [
      { ...sealed, ct: flip(sealed.ct) },
      { ...sealed, tag: flip(sealed.tag, 15) },
      { ...sealed, epk: flip(sealed.epk, 3) },
      { ...sealed, iv: flip(sealed.iv) },
      { ...sealed, ct: sealed.ct.slice(0, -2) },
    ];
    for (const v of variants) {
      expect(codeOf(() => open(recipient.privateKeyPem, v))).toBe('E_INVALID');
    }
    expect(codeOf(() => open(recipient.privateKeyPem, { ...sealed, tag: 'AAAA' }))).toBe(
      'E_INVALID',
    );
    expect(codeOf(() => open(recipient.privateKeyPem, { ...sealed, epk: '***' }))).toBe(
      'E_INVALID',
    );
  });

  it('fails with E_INVALID for another recipient', () => {
    const sealed = seal(recipient.publicKey, CREDS);
    const other = generateRecipientKeyPair();
    expect(codeOf(() => open(other.privateKeyPem, sealed))).toBe('E_INVALID');
  });

  it('refuses malformed and low-order recipient keys with E_INVALID', () => {
    expect(codeOf(() => seal('short', CREDS))).toBe('E_INVALID');
    expect(codeOf(() => seal(`${recipient.publicKey}=`, CREDS))).toBe('E_INVALID');
    expect(codeOf(() => seal(Buffer.alloc(32).toString('base64url'), CREDS))).toBe('E_INVALID');
    const ed = generateKeyPairSync('ed25519');
    expect(codeOf(() => open(ed.privateKey, seal(recipient.publicKey, CREDS)))).toBe('E_INVALID');
  });

  it('seals to each of many recipients, again and again (recipient keys are cached, bounded)', () => {
    const many = Array.from({ length: 300 }, () => generateRecipientKeyPair());
    for (const round of [0, 1]) {
      for (const r of many) {
        const creds = { ...CREDS, username: `lk_${round}` };
        expect(open(r.privateKeyPem, seal(r.publicKey, creds))).toEqual(creds);
      }
    }
    // The oldest left the cache long ago: sealing to it still works, to it alone.
    const first = many[0]!;
    expect(codeOf(() => open(many[1]!.privateKeyPem, seal(first.publicKey, CREDS)))).toBe(
      'E_INVALID',
    );
    // A refused key is refused every time (never remembered as usable).
    const zero = Buffer.alloc(32).toString('base64url');
    expect(codeOf(() => seal(zero, CREDS))).toBe('E_INVALID');
    expect(codeOf(() => seal(zero, CREDS))).toBe('E_INVALID');
  });

  it('reproduces the published sealing test vector (docs/protocol.md)', () => {
    const eph = privateKeyFromRaw('x25519', Buffer.from(EPHEMERAL_PRIVATE_HEX, 'hex'));
    const sealed = sealWith(
      RECIPIENT_PUBLIC_KEY,
      VECTOR_CREDENTIALS,
      eph,
      Buffer.from(SEAL_IV_HEX, 'hex'),
    );
    expect(sealed).toEqual(VECTOR_SEALED);
    const bob = Buffer.from(RECIPIENT_PRIVATE_HEX, 'hex').toString('base64url');
    expect(open(bob, VECTOR_SEALED)).toEqual(VECTOR_CREDENTIALS);
  });
});

describe('createSealer', () => {
  const recipient = generateRecipientKeyPair();

  it('seals when a recipientKey is given', () => {
    const out = createSealer({ allowPlaintext: false }).seal(recipient.publicKey, CREDS);
    if (!('sealed' in out)) throw new Error('expected sealed credentials');
    expect(open(recipient.privateKeyPem, out.sealed)).toEqual(CREDS);
    const lenient = createSealer({ allowPlaintext: true }).seal(recipient.publicKey, CREDS);
    expect('sealed' in lenient).toBe(true);
  });

  it('refuses without a recipientKey unless plaintext is allowed', () => {
    const strict = createSealer({ allowPlaintext: false });
    try {
      strict.seal(undefined, CREDS);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(LatchkeyError);
      expect((err as LatchkeyError).code).toBe('E_INVALID');
      expect((err as Error).message).toMatch(/^grant needs recipientKey/);
      expect((err as Error).message).not.toContain(CREDS.password);
    }
    expect(createSealer({ allowPlaintext: true }).seal(undefined, CREDS)).toEqual({
      plaintext: CREDS,
    });
  });

  it('refuses an invalid recipientKey with E_INVALID', () => {
    expect(codeOf(() => createSealer({ allowPlaintext: true }).seal('not-a-key', CREDS))).toBe(
      'E_INVALID',
    );
  });
});

describe('open: errors never carry the plaintext', () => {
  it('a decrypted payload that is not JSON fails without a cause quoting it', () => {
    const recipient = generateRecipientKeyPair();
    const secret = 'pw=Pl4nted-S3cret-not-json';
    // Sealed by hand exactly as `seal` does, but over non-JSON bytes.
    const eph = generateKeyPairSync('x25519');
    const recipientRaw = Buffer.from(recipient.publicKey, 'base64url');
    const recipientKey = createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), recipientRaw]),
      format: 'der',
      type: 'spki',
    });
    const epk = eph.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: recipientKey });
    const key = Buffer.from(
      hkdfSync('sha256', shared, Buffer.concat([epk, recipientRaw]), SEAL_INFO, 32),
    );
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(SEAL_ALG, 'utf8'));
    const ct = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    const sealed: Sealed = {
      alg: SEAL_ALG,
      epk: epk.toString('base64url'),
      iv: iv.toString('base64url'),
      ct: ct.toString('base64url'),
      tag: cipher.getAuthTag().toString('base64url'),
    };
    let caught: unknown;
    try {
      open(recipient.privateKeyPem, sealed);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(LatchkeyError);
    const e = caught as LatchkeyError;
    expect(e.code).toBe('E_INVALID');
    const everything = `${e.message} ${String((e.cause as Error | undefined)?.message)} ${e.stack}`;
    expect(everything).not.toContain('Pl4nted');
  });
});
