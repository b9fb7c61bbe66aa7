import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_DOC_PATH, withErrorCodeTable } from '../../../scripts/gen-schema.js';
import { HEADER_CONNECTOR_ID, HEADER_PROTOCOL } from '../../../src/controlplane/client.js';
import { ERROR_CODES, ERROR_CODE_LIST } from '../../../src/errors.js';
import {
  AgentMessageSchema,
  ControlPlaneMessageSchema,
  EnvelopeSchema,
  GrantParamsSchema,
  RevokeParamsSchema,
  RotateParamsSchema,
  CleanupParamsSchema,
  SealedSchema,
  PROTOCOL_VERSION,
} from '../../../src/protocol/messages.js';
import * as v from './vectors.js';

const doc = readFileSync(PROTOCOL_DOC_PATH, 'utf8');

function jsonBlocks(): unknown[] {
  return [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1] ?? '') as unknown);
}

describe('docs/protocol.md', () => {
  it('lists every error code with its retryable value', () => {
    for (const code of ERROR_CODE_LIST) {
      const row = new RegExp(
        `^\\| \`${code}\` +\\| ${ERROR_CODES[code].retryable ? 'yes' : 'no'} +\\|`,
        'm',
      );
      expect(doc, code).toMatch(row);
    }
  });

  it('has the error-code table as generated from src/errors.ts', () => {
    expect(withErrorCodeTable(doc)).toBe(doc);
  });

  it('names the upgrade headers the link sends', () => {
    const row = (name: string, value: string): RegExp =>
      new RegExp(`^ *\\| \`${name}\` +\\| ${value} +\\|`, 'm');
    expect(doc).toMatch(row(HEADER_CONNECTOR_ID, 'the connector id, e\\.g\\. `conn-eu-1`'));
    expect(doc).toMatch(row(HEADER_PROTOCOL, `\`${PROTOCOL_VERSION}\``));
    expect(doc).toMatch(row('Authorization', '`Bearer <connector token>`'));
  });

  it('quotes the signature test vector', () => {
    for (const value of [
      v.SIGNING_SEED,
      v.SIGNING_PUBLIC_KEY,
      v.SIGNING_KEY_ID,
      v.VECTOR_CANONICAL,
      v.VECTOR_SIGNATURE,
      v.VECTOR_DIGEST,
      Buffer.from(v.SIGNING_SEED, 'base64url').toString('hex'),
    ]) {
      expect(doc).toContain(value);
    }
    expect(doc).toContain(`one line, ${Buffer.byteLength(v.VECTOR_CANONICAL)} bytes`);
  });

  it('quotes the sealing test vector', () => {
    for (const value of [
      v.RECIPIENT_PRIVATE_HEX,
      v.RECIPIENT_PUBLIC_KEY,
      v.EPHEMERAL_PRIVATE_HEX,
      v.SHARED_SECRET_HEX,
      v.SEAL_KEY_HEX,
      v.SEAL_IV_HEX,
      Buffer.from(v.VECTOR_SEALED.epk, 'base64url').toString('hex'),
      JSON.stringify(v.VECTOR_CREDENTIALS),
    ]) {
      expect(doc).toContain(value);
    }
    const sealedBlocks = jsonBlocks().filter((b) => SealedSchema.safeParse(b).success);
    expect(sealedBlocks).toContainEqual(v.VECTOR_SEALED);
  });

  it('has JSON examples that match the schemas', () => {
    const blocks = jsonBlocks();
    const messages = blocks.filter(
      (b): b is { type: string } => typeof b === 'object' && b !== null && 'type' in b,
    );
    const types = new Set<string>();
    for (const msg of messages) {
      types.add(msg.type);
      const parsed = (
        msg.type === 'hello' ||
        msg.type === 'accepted' ||
        msg.type === 'rejected' ||
        msg.type === 'result' ||
        msg.type === 'result-chunk'
          ? AgentMessageSchema
          : ControlPlaneMessageSchema
      ).safeParse(msg);
      expect(parsed.success, JSON.stringify(msg)).toBe(true);
    }
    expect([...types].sort()).toEqual(
      [
        'accepted',
        'cancel',
        'command',
        'hello',
        'rejected',
        'result',
        'result-ack',
        'result-chunk',
        'result-chunk-ack',
        'welcome',
      ].sort(),
    );
    // the envelope example of section 3 is the signed test vector
    expect(blocks).toContainEqual(v.VECTOR_ENVELOPE);
    expect(EnvelopeSchema.safeParse(v.VECTOR_ENVELOPE).success).toBe(true);
    // params examples of section 4
    const list = blocks.find((b): b is { kind: string; params: unknown }[] => Array.isArray(b));
    expect(list).toBeDefined();
    const byKind = {
      grant: GrantParamsSchema,
      revoke: RevokeParamsSchema,
      rotate: RotateParamsSchema,
      cleanup: CleanupParamsSchema,
    } as const;
    for (const item of list ?? []) {
      const schema = byKind[item.kind as keyof typeof byKind];
      if (schema) expect(schema.safeParse(item.params).success, JSON.stringify(item)).toBe(true);
    }
  });
});
