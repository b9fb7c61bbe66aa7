/**
 * Canonical JSON (RFC 8785, "JSON Canonicalization Scheme"): the exact bytes that are
 * signed and digested. Object keys sorted by UTF-16 code units, no whitespace, numbers
 * in ECMAScript shortest form, strings escaped as `JSON.stringify` does.
 */
import canonicalize from 'canonicalize';
import { LatchkeyError } from '../errors.js';

/**
 * RFC 8785 canonical JSON of `value`.
 * @throws LatchkeyError E_SCHEMA when the value has no JSON form (undefined, a function,
 *   NaN/Infinity, a BigInt, a cycle, a lone surrogate).
 */
export function canonicalJson(value: unknown): string {
  let out: string | undefined;
  try {
    out = canonicalize(value);
  } catch (err) {
    const reason = err instanceof Error ? err.message : 'unknown reason';
    throw new LatchkeyError('E_SCHEMA', `value cannot be canonicalized as JSON: ${reason}`, {
      cause: err,
    });
  }
  if (typeof out !== 'string') {
    throw new LatchkeyError(
      'E_SCHEMA',
      'value cannot be canonicalized as JSON: it has no JSON form',
    );
  }
  return out;
}
