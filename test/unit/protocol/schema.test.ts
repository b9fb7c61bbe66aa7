import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SCHEMA_PATH, generateProtocolSchema } from '../../../scripts/gen-schema.js';
import { ERROR_CODES, ERROR_CODE_LIST } from '../../../src/errors.js';
import { COMMAND_KINDS } from '../../../src/protocol/messages.js';

describe('docs/schema/protocol-v1.schema.json', () => {
  const generated = generateProtocolSchema();

  it('is current (run `npm run schema` after changing src/protocol/messages.ts)', () => {
    expect(readFileSync(SCHEMA_PATH, 'utf8')).toBe(generated);
  });

  it('is deterministic', () => {
    expect(generateProtocolSchema()).toBe(generated);
  });

  it('names every message, envelope, output and error code in $defs', () => {
    const doc = JSON.parse(generated) as {
      $defs: Record<string, { oneOf?: { const?: string; 'x-retryable'?: boolean }[] }>;
    };
    const defs = Object.keys(doc.$defs);
    for (const name of [
      'Hello',
      'Accepted',
      'Rejected',
      'Result',
      'Welcome',
      'CommandMessage',
      'ResultAck',
      'Cancel',
    ]) {
      expect(defs).toContain(name);
    }
    for (const kind of COMMAND_KINDS) {
      const pascal = kind.charAt(0).toUpperCase() + kind.slice(1);
      expect(defs).toContain(`${pascal}Envelope`);
      expect(defs).toContain(`${pascal}Params`);
      expect(defs).toContain(`${pascal}Output`);
    }
    const codes = doc.$defs.ErrorCode?.oneOf ?? [];
    expect(codes.map((c) => c.const)).toEqual(ERROR_CODE_LIST);
    for (const c of codes) {
      expect(c['x-retryable']).toBe(ERROR_CODES[c.const as keyof typeof ERROR_CODES].retryable);
    }
  });
});
