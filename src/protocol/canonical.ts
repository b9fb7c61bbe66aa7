/**
 * Canonical JSON (RFC 8785, "JSON Canonicalization Scheme"): the exact bytes that are
 * signed and digested. Object keys sorted by UTF-16 code units, no whitespace, numbers
 * in ECMAScript shortest form, strings escaped as `JSON.stringify` does.
 *
 * Written here rather than taken from the `canonicalize` package (which gives the same
 * bytes, `test/unit/protocol/canonical.test.ts` compares them) because it runs for every
 * command: one string built as it goes, no per-key `Set` or intermediate arrays.
 */
import { LatchkeyError } from '../errors.js';

/**
 * RFC 8785 canonical JSON of `value`.
 * @throws LatchkeyError E_SCHEMA when the value has no JSON form (undefined, a function,
 *   NaN/Infinity, a BigInt, a cycle, a lone surrogate).
 */
export function canonicalJson(value: unknown): string {
  return write(value, []);
}

function noJson(reason: string): LatchkeyError {
  return new LatchkeyError('E_SCHEMA', `value cannot be canonicalized as JSON: ${reason}`);
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function str(s: string): string {
  if (LONE_SURROGATE.test(s)) throw noJson('Lone surrogate is not allowed');
  return JSON.stringify(s);
}

/** @param open the objects and arrays being written (to refuse a cycle) */
function write(value: unknown, open: object[]): string {
  switch (typeof value) {
    case 'string':
      return str(value);
    case 'number':
      if (!Number.isFinite(value)) {
        throw noJson(Number.isNaN(value) ? 'NaN is not allowed' : 'Infinity is not allowed');
      }
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    case 'bigint':
      throw noJson('a BigInt has no JSON form');
    default:
      throw noJson('it has no JSON form');
  }
  if (value === null) return 'null';
  if (open.includes(value)) throw noJson('Circular reference detected');
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    open.push(value);
    const out = write(toJSON.call(value) as unknown, open);
    open.pop();
    return out;
  }
  open.push(value);
  let out: string;
  if (Array.isArray(value)) {
    out = '[';
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (i > 0) out += ',';
      out += item === undefined || typeof item === 'symbol' ? 'null' : write(item, open);
    }
    out += ']';
  } else {
    const obj = value as Record<string, unknown>;
    const keys = sortKeys(Object.keys(obj));
    out = '{';
    let first = true;
    for (const key of keys) {
      const item = obj[key];
      if (item === undefined || typeof item === 'symbol') continue;
      out += first ? str(key) : `,${str(key)}`;
      out += ':';
      out += write(item, open);
      first = false;
    }
    out += '}';
  }
  open.pop();
  return out;
}

/**
 * Sorts keys by UTF-16 code units, as `Array.prototype.sort` does by default: an
 * insertion sort in place for the few keys of an object of the protocol (V8's sort
 * allocates a work array on every call), the built-in sort for more.
 */
function sortKeys(keys: string[]): string[] {
  if (keys.length > 16) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i] as string;
    let j = i - 1;
    while (j >= 0 && (keys[j] as string) > key) {
      keys[j + 1] = keys[j] as string;
      j--;
    }
    keys[j + 1] = key;
  }
  return keys;
}
