/**
 * A cheap nesting-depth guard for JSON that comes from outside the agent.
 *
 * `JSON.parse` of a deeply nested text (a megabyte of `[[[[…` is under the frame limit)
 * blocks the event loop for hundreds of milliseconds before any schema check can refuse
 * it, and the recursive walks after it (canonical JSON, the `__proto__` check, zod) pay
 * again. `jsonDepthExceeds` counts bracket nesting outside strings in one linear pass
 * (about a millisecond per MiB) so such a text is refused without ever being parsed.
 *
 * Glossary:
 * - depth: the number of arrays and objects open at a point of the text; a scalar
 *   document has depth 0, `{}` and `[]` have 1, `{"a":[1]}` has 2.
 * - the scan does not validate JSON: for a malformed text it may count a bracket that
 *   `JSON.parse` would have refused earlier; either way the text is refused.
 *
 * Use `parseJsonBounded` at every point where text from outside (control-plane frames,
 * AWS Lambda answers, secret values, markers and policies read from a target) is parsed.
 */

/**
 * Deepest nesting accepted from outside. Every message of the protocol nests less than
 * 10 levels; driver configs, outputs and secrets are far below 64.
 */
export const MAX_JSON_DEPTH = 64;

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const CLOSE_OBJECT = 0x7d; // }
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/** True when `text` opens more than `maxDepth` arrays/objects at once (outside strings). */
export function jsonDepthExceeds(text: string, maxDepth: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i += 1) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Skip the string: to the next quote that is not escaped.
      i += 1;
      while (i < n) {
        const s = text.charCodeAt(i);
        if (s === BACKSLASH) i += 2;
        else if (s === QUOTE) break;
        else i += 1;
      }
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth += 1;
      if (depth > maxDepth) return true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth -= 1;
    }
  }
  return false;
}

/** Thrown by `parseJsonBounded` for a text nested deeper than allowed (never parsed). */
export class JsonTooDeepError extends SyntaxError {
  constructor(readonly maxDepth: number) {
    super(`JSON nested deeper than ${maxDepth} levels`);
    this.name = 'JsonTooDeepError';
  }
}

/**
 * `JSON.parse` behind the depth guard.
 * @throws JsonTooDeepError when nested deeper than `maxDepth` (checked before parsing)
 * @throws SyntaxError when not JSON
 */
export function parseJsonBounded(text: string, maxDepth: number = MAX_JSON_DEPTH): unknown {
  if (jsonDepthExceeds(text, maxDepth)) throw new JsonTooDeepError(maxDepth);
  return JSON.parse(text) as unknown;
}
