import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../../src/protocol/canonical.js';
import { LatchkeyError } from '../../../src/errors.js';

function expectSchemaError(fn: () => unknown): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(LatchkeyError);
  expect((caught as LatchkeyError).code).toBe('E_SCHEMA');
}

describe('canonicalJson (RFC 8785)', () => {
  it('reproduces the RFC 8785 section 3.2.4 example', () => {
    const input =
      '{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n' +
      '  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n' +
      '  "literals": [null, true, false]\n}';
    const expected =
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
      '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}';
    expect(canonicalJson(JSON.parse(input))).toBe(expected);
  });

  it('sorts keys by UTF-16 code units (RFC 8785 section 3.2.3)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    const out = canonicalJson(input);
    const keys = Object.keys(JSON.parse(out) as Record<string, string>);
    // JSON.parse keeps insertion order for non-integer keys; '1' is an integer key, so
    // compare the text order instead.
    expect(keys.sort()).toEqual(Object.keys(input).sort());
    const order = ['\\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'].map((k) =>
      out.indexOf(`"${k}":`),
    );
    expect(order.every((pos) => pos >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(out.startsWith('{"\\r":"Carriage Return","1":"One","\u0080":"Control"')).toBe(true);
  });

  it('formats numbers as ECMAScript shortest round-trip (RFC 8785 appendix B)', () => {
    const cases: [number, string][] = [
      [0, '0'],
      [-0, '0'],
      [5e-324, '5e-324'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [9007199254740992, '9007199254740992'],
      [295147905179352830000, '295147905179352830000'],
      [1e21, '1e+21'],
      [1e-7, '1e-7'],
      [0.000001, '0.000001'],
      [333333333.3333332, '333333333.3333332'],
      [1e23, '1e+23'],
      [-1.5, '-1.5'],
    ];
    for (const [value, text] of cases) {
      expect(canonicalJson([value])).toBe(`[${text}]`);
    }
    expect(canonicalJson(JSON.parse('[9007199254740993]'))).toBe('[9007199254740992]');
  });

  it('has no whitespace, sorts nested objects and keeps array order', () => {
    expect(canonicalJson({ b: [3, { z: 1, a: 2 }], a: { y: null, x: true } })).toBe(
      '{"a":{"x":true,"y":null},"b":[3,{"a":2,"z":1}]}',
    );
  });

  it('is independent of key insertion order', () => {
    expect(canonicalJson({ a: 1, b: { c: 2, d: 3 } })).toBe(
      canonicalJson({ b: { d: 3, c: 2 }, a: 1 }),
    );
  });

  it('rejects values without a JSON form with E_SCHEMA', () => {
    expectSchemaError(() => canonicalJson(undefined));
    expectSchemaError(() => canonicalJson(() => 1));
    expectSchemaError(() => canonicalJson({ a: Number.NaN }));
    expectSchemaError(() => canonicalJson([Number.POSITIVE_INFINITY]));
    expectSchemaError(() => canonicalJson({ a: 10n }));
    expectSchemaError(() => canonicalJson({ s: 'lone \ud800 surrogate' }));
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expectSchemaError(() => canonicalJson(cyclic));
  });

  it('treats what JSON text cannot hold as JSON.stringify does (same form as the round trip)', () => {
    const value = {
      fn: () => 1,
      undef: undefined,
      sym: Symbol('s'),
      list: [() => 1, undefined, Symbol('s'), 1],
      boxed: [Object(2) as unknown, Object('s') as unknown, Object(false) as unknown],
      date: new Date(0),
      custom: { toJSON: () => ({ b: 1, a: 2 }) },
      gone: { toJSON: () => undefined },
    };
    const out = canonicalJson(value);
    expect(out).toBe(
      '{"boxed":[2,"s",false],"custom":{"a":2,"b":1},"date":"1970-01-01T00:00:00.000Z",' +
        '"list":[null,null,null,1]}',
    );
    expect(canonicalJson(JSON.parse(JSON.stringify(value)))).toBe(out);
    // eslint-disable-next-line no-sparse-arrays
    expect(canonicalJson([1, , 3])).toBe('[1,null,3]');
    expectSchemaError(() => canonicalJson({ n: Object(Number.NaN) as unknown }));
  });

  it('walks deep nesting without overflowing the stack', () => {
    const depth = 20_000;
    const deep = JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown;
    expect(canonicalJson(deep)).toBe('['.repeat(depth) + ']'.repeat(depth));
  });
});
