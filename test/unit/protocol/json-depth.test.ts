import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseControlPlaneFrame } from '../../../src/protocol/frame.js';
import {
  JsonTooDeepError,
  MAX_JSON_DEPTH,
  jsonDepthExceeds,
  parseJsonBounded,
} from '../../../src/protocol/json-depth.js';
import { grantEnvelope, makeSigner, signedCommand } from './helpers.js';

const MIB = 1024 * 1024;

function nested(depth: number, open = '[', close = ']'): string {
  return open.repeat(depth) + close.repeat(depth);
}

/** The worst frames under a 1 MiB limit: nothing but nesting. */
function worstFrames(): string[] {
  const half = MIB / 2 - 16;
  const objects = Math.floor(MIB / 6) - 16;
  return [
    nested(half),
    '{"a":'.repeat(objects) + '1' + '}'.repeat(objects),
    `{"type":"command","envelope":{"id":"cmd-1","params":${nested(half - 64)}}}`,
  ];
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('jsonDepthExceeds', () => {
  it('counts arrays and objects, and nothing inside strings', () => {
    expect(jsonDepthExceeds('1', 0)).toBe(false);
    expect(jsonDepthExceeds('[]', 0)).toBe(true);
    expect(jsonDepthExceeds('[]', 1)).toBe(false);
    expect(jsonDepthExceeds('{"a":[1,{"b":[]}]}', 3)).toBe(true);
    expect(jsonDepthExceeds('{"a":[1,{"b":[]}]}', 4)).toBe(false);
    // brackets in strings, escaped quotes and backslashes do not count
    expect(jsonDepthExceeds(JSON.stringify({ a: '[[[[{{{{' }), 1)).toBe(false);
    expect(jsonDepthExceeds(JSON.stringify({ a: 'x\\"[[[[', b: '\\' }), 1)).toBe(false);
    expect(jsonDepthExceeds(JSON.stringify(['"', '\\', '[[']), 1)).toBe(false);
    // siblings do not add up
    expect(jsonDepthExceeds('[' + '[],'.repeat(1000) + '[]]', 2)).toBe(false);
  });

  it('accepts exactly MAX_JSON_DEPTH levels and refuses one more', () => {
    expect(jsonDepthExceeds(nested(MAX_JSON_DEPTH))).toBe(false);
    expect(jsonDepthExceeds(nested(MAX_JSON_DEPTH + 1))).toBe(true);
    expect(parseJsonBounded(nested(MAX_JSON_DEPTH))).toBeInstanceOf(Array);
    expect(() => parseJsonBounded(nested(MAX_JSON_DEPTH + 1))).toThrow(JsonTooDeepError);
    expect(() => parseJsonBounded('{"a": ')).toThrow(SyntaxError);
  });

  it('scans the worst 1 MiB frame in well under 20 ms (JSON.parse takes hundreds)', () => {
    for (const text of worstFrames()) {
      // best of five: the machine is shared, a single run may be descheduled
      let best = Infinity;
      for (let i = 0; i < 5; i += 1) {
        const t0 = performance.now();
        expect(jsonDepthExceeds(text)).toBe(true);
        best = Math.min(best, performance.now() - t0);
      }
      expect(best).toBeLessThan(20);
    }
    // a deep frame that is refused is found at its first levels; a flat megabyte of
    // valid JSON is scanned whole, still fast
    const flat = JSON.stringify({ a: Array.from({ length: 100_000 }, (_, i) => `s${i}"[`) });
    expect(flat.length).toBeGreaterThan(MIB);
    let best = Infinity;
    for (let i = 0; i < 5; i += 1) {
      const t0 = performance.now();
      expect(jsonDepthExceeds(flat)).toBe(false);
      best = Math.min(best, performance.now() - t0);
    }
    expect(best).toBeLessThan(20);
  });
});

describe('parseControlPlaneFrame and nesting', () => {
  it('refuses a deeply nested frame under the size limit with E_SCHEMA without calling JSON.parse', () => {
    const parse = vi.spyOn(JSON, 'parse');
    for (const text of worstFrames()) {
      for (const data of [text, Buffer.from(text, 'utf8')]) {
        const out = parseControlPlaneFrame(data, MIB);
        expect(out.ok).toBe(false);
        if (!out.ok) {
          expect(out.error.code).toBe('E_SCHEMA');
          expect(out.error.message).toBe('frame nests arrays or objects deeper than 64 levels');
          expect(out.commandId).toBeNull();
        }
      }
    }
    expect(parse).not.toHaveBeenCalled();
  });

  it('still reads a valid command, and a frame nested up to the limit', () => {
    const cmd = JSON.stringify(signedCommand(grantEnvelope(), makeSigner()));
    expect(parseControlPlaneFrame(cmd, MIB).ok).toBe(true);
    const deepButAllowed = parseControlPlaneFrame(
      `{"type":"cancel","commandId":"c1","x":${nested(MAX_JSON_DEPTH - 1)}}`,
      MIB,
    );
    expect(deepButAllowed.ok).toBe(true);
  });
});
