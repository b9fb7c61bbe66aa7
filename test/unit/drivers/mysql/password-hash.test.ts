/**
 * Password hashes in the servers' stored formats, against published vectors: Drepper's
 * SHA-256 crypt reference, MySQL's `caching_sha2_password` (TiDB's vector for "foobar",
 * which its tests check against MySQL), and `mysql_native_password`.
 */
import { describe, expect, it } from 'vitest';
import {
  cachingSha2PasswordHash,
  cachingSha2Salt,
  mysqlNativePasswordHash,
  sha256CryptDigest,
} from '../../../../src/drivers/mysql/password-hash.js';

describe('password hashes', () => {
  it('SHA-256 crypt matches the reference vectors', () => {
    expect(sha256CryptDigest('Hello world!', 'saltstring', 5000)).toBe(
      '5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5',
    );
    expect(sha256CryptDigest('Hello world!', 'saltstringsaltst', 10000)).toBe(
      '3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA',
    );
  });

  it('caching_sha2_password: $A$005$ + 20-byte salt + digest, as MySQL stores it', () => {
    const stored = Buffer.from(
      '24412430303524031A69251C34295C4B35167C7F1E5A7B63091349503974624D34504B5A424679354856336868686F52485A736E4A733368786E427575516C73446469496537',
      'hex',
    ).toString('latin1');
    expect(cachingSha2PasswordHash('foobar', stored.slice(7, 27))).toBe(stored);
    const salt = cachingSha2Salt();
    expect(salt).toMatch(/^[./0-9A-Za-z]{20}$/);
    expect(cachingSha2PasswordHash('x', salt)).toMatch(/^\$A\$005\$[./0-9A-Za-z]{63}$/);
    expect(() => cachingSha2PasswordHash('x', 'short')).toThrow(RangeError);
  });

  it('mysql_native_password: * + HEX(SHA1(SHA1(password)))', () => {
    expect(mysqlNativePasswordHash('password')).toBe('*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19');
  });
});
