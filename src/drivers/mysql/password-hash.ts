/**
 * Password hashes in the servers' own stored formats, computed locally with node:crypto,
 * so that `CREATE USER`/`ALTER USER` never carry a grantee's password in clear (it would
 * show in the general log, `SHOW PROCESSLIST` and the binary log), as the PostgreSQL
 * driver sends only SCRAM verifiers.
 *
 * - MariaDB: `mysql_native_password`, `*` + upper-case hex of SHA1(SHA1(password)), sent as
 *   `IDENTIFIED BY PASSWORD '<hash>'`.
 * - MySQL 8: `caching_sha2_password`, `$A$005$<20-char salt><43-char digest>`: SHA-256
 *   crypt (Drepper's algorithm) with 5 × 1000 rounds and a 20-character salt, as MySQL's
 *   `mysys/crypt_genhash_impl.cc` computes it; sent as
 *   `IDENTIFIED WITH caching_sha2_password AS '<hash>'`.
 */
import { createHash, randomInt } from 'node:crypto';

/** `*` + HEX(SHA1(SHA1(password))), the `mysql_native_password` authentication string. */
export function mysqlNativePasswordHash(password: string): string {
  const inner = createHash('sha1').update(password, 'utf8').digest();
  return `*${createHash('sha1').update(inner).digest('hex').toUpperCase()}`;
}

/** The crypt(3) base-64 alphabet. */
const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Drepper's byte order of the digest text, three bytes per four characters. */
const DIGEST_ORDER: readonly (readonly [number, number, number])[] = [
  [0, 10, 20],
  [21, 1, 11],
  [12, 22, 2],
  [3, 13, 23],
  [24, 4, 14],
  [15, 25, 5],
  [6, 16, 26],
  [27, 7, 17],
  [18, 28, 8],
  [9, 19, 29],
];

export const CACHING_SHA2_SALT_LENGTH = 20;
/** MySQL stores the round count in thousands, as three digits (`005` = 5000 rounds). */
export const CACHING_SHA2_ITERATIONS = 5;

function sha256(...parts: Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `len` bytes of `block` repeated. */
function repeatTo(block: Buffer, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i += block.length)
    block.copy(out, i, 0, Math.min(block.length, len - i));
  return out;
}

/**
 * SHA-256 crypt of `password` with `salt` (used whole, not cut to 16 characters as in
 * `$5$`: MySQL uses 20) and `rounds`; returns the 43-character digest text.
 */
export function sha256CryptDigest(password: string, salt: string, rounds: number): string {
  const p = Buffer.from(password, 'utf8');
  const s = Buffer.from(salt, 'utf8');
  const b = sha256(p, s, p);
  const a = createHash('sha256').update(p).update(s);
  let n = p.length;
  for (; n > 32; n -= 32) a.update(b);
  a.update(b.subarray(0, n));
  for (let i = p.length; i > 0; i >>= 1) a.update(i & 1 ? b : p);
  let c = a.digest();
  const dp = createHash('sha256');
  for (let i = 0; i < p.length; i++) dp.update(p);
  const pSeq = repeatTo(dp.digest(), p.length);
  const ds = createHash('sha256');
  for (let i = 0; i < 16 + (c[0] ?? 0); i++) ds.update(s);
  const sSeq = repeatTo(ds.digest(), s.length);
  for (let r = 0; r < rounds; r++) {
    const h = createHash('sha256');
    h.update(r & 1 ? pSeq : c);
    if (r % 3 !== 0) h.update(sSeq);
    if (r % 7 !== 0) h.update(pSeq);
    h.update(r & 1 ? c : pSeq);
    c = h.digest();
  }
  const at = (i: number): number => c[i] ?? 0;
  let out = '';
  const emit = (b2: number, b1: number, b0: number, count: number): void => {
    let w = (b2 << 16) | (b1 << 8) | b0;
    for (let i = 0; i < count; i++) {
      out += ITOA64[w & 0x3f] ?? '.';
      w >>= 6;
    }
  };
  for (const [x, y, z] of DIGEST_ORDER) emit(at(x), at(y), at(z), 4);
  emit(0, at(31), at(30), 3);
  return out;
}

/** A random salt from the crypt alphabet (no `$`, quote, backslash or NUL). */
export function cachingSha2Salt(): string {
  let s = '';
  while (s.length < CACHING_SHA2_SALT_LENGTH) s += ITOA64[randomInt(ITOA64.length)] ?? '.';
  return s;
}

/** The `caching_sha2_password` authentication string `$A$005$<salt><digest>`. */
export function cachingSha2PasswordHash(
  password: string,
  salt: string = cachingSha2Salt(),
): string {
  if (Buffer.byteLength(salt, 'utf8') !== CACHING_SHA2_SALT_LENGTH) {
    throw new RangeError(`caching_sha2_password salt must be ${CACHING_SHA2_SALT_LENGTH} bytes`);
  }
  const rounds = CACHING_SHA2_ITERATIONS * 1000;
  const digest = sha256CryptDigest(password, salt, rounds);
  return `$A$${String(CACHING_SHA2_ITERATIONS).padStart(3, '0')}$${salt}${digest}`;
}
