/**
 * Canonical JSON (RFC 8785, "JSON Canonicalization Scheme"): the exact bytes that are
 * signed and digested. Object keys sorted by UTF-16 code units, no whitespace, numbers
 * in ECMAScript shortest form, strings escaped as `JSON.stringify` does.
 *
 * On the `canonicalize` library (v5; Node 20.19+ has the `String.prototype.isWellFormed` it
 * uses, though it declares Node 22). Values that JSON text cannot hold are treated as
 * `JSON.stringify` treats them, so that the canonical form of an object equals that of
 * its JSON round trip: a member whose value is undefined, a function or a symbol is left
 * out, such an array element is `null` (as is a hole), `toJSON` is honoured, and boxed
 * numbers, strings and booleans are their primitive values. The walk is iterative: no
 * nesting depth overflows the stack.
 */
import canonicalize from 'canonicalize';
import { LatchkeyError } from '../errors.js';

/**
 * RFC 8785 canonical JSON of `value`.
 * @throws LatchkeyError E_SCHEMA when the value has no JSON form (undefined or a function
 *   at the top, NaN/Infinity anywhere, a BigInt, a cycle, a lone surrogate).
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
