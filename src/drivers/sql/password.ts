/**
 * Strong generated passwords (node:crypto only).
 *
 * 32 characters from letters, digits and the URL-unreserved symbols `-_.~`, with at
 * least one upper-case letter, one lower-case letter, one digit and one symbol, so the
 * result satisfies Redshift's rules (8–64 chars, upper, lower, digit, none of
 * `' " \ / @` or space) and common MySQL `validate_password` policies, and can be put in
 * a connection URL without escaping.
 */
import { randomInt } from 'node:crypto';

const UPPER = 'ABCDEFGHJKLMNPQRSTUVWXYZ';
const LOWER = 'abcdefghijkmnopqrstuvwxyz';
const DIGIT = '23456789';
const SYMBOL = '-_.~';
const ALL = UPPER + LOWER + DIGIT + SYMBOL;

export const PASSWORD_LENGTH = 32;

function pick(set: string): string {
  return set[randomInt(set.length)] ?? 'x';
}

export function generatePassword(length: number = PASSWORD_LENGTH): string {
  if (length < 12 || length > 64) throw new RangeError('password length must be 12..64');
  const chars = [pick(UPPER), pick(LOWER), pick(DIGIT), pick(SYMBOL)];
  while (chars.length < length) chars.push(pick(ALL));
  // Fisher–Yates with crypto randomness, then make sure it starts with a letter.
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    const a = chars[i] ?? 'x';
    chars[i] = chars[j] ?? 'x';
    chars[j] = a;
  }
  chars[0] = pick(UPPER + LOWER);
  // Re-check the classes after replacing the first character.
  const s = chars.join('');
  if (!/[A-Z]/.test(s) || !/[a-z]/.test(s) || !/[0-9]/.test(s) || !/[-_.~]/.test(s)) {
    return generatePassword(length);
  }
  return s;
}
