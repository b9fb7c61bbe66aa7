import { describe, expect, it } from 'vitest';
import { decodeBase64Any } from '../../../src/protocol/der.js';

describe('decodeBase64Any', () => {
  const bytes = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 251) % 256));

  it('reads standard base64 and base64url, padded or not, and a mix of both alphabets', () => {
    const std = bytes.toString('base64');
    const url = bytes.toString('base64url');
    expect(std).toMatch(/[+/]/);
    expect(url).toMatch(/[-_]/);
    for (const text of [std, std.replace(/=+$/, ''), url, `${url}==`, ` ${url}\n`]) {
      expect(decodeBase64Any(text)?.equals(bytes)).toBe(true);
    }
    // each of '+' '-' is 62 and each of '/' '_' is 63, wherever they appear
    expect(decodeBase64Any('ab-_cd+/ef')?.toString('hex')).toBe('69bfbf71dfbf79');
    expect(decodeBase64Any('ab+/cd-_ef')?.toString('hex')).toBe('69bfbf71dfbf79');
  });

  it('refuses what is not base64 of either alphabet', () => {
    for (const text of ['', '   ', 'abc$', 'ab=c', 'abc===', 'a b', 'ab\u00e9']) {
      expect(decodeBase64Any(text)).toBeNull();
    }
  });
});
