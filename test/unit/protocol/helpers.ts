/** Builders for signed command frames used by the protocol tests. */
import type { KeyObject } from 'node:crypto';
import { generateSigningKeyPair } from '../../../src/protocol/keys.js';
import { parsePrivateKey, parsePublicKey, signEnvelope } from '../../../src/protocol/signing.js';

export const NOW = new Date('2026-11-25T20:00:30.000Z');
export const CONNECTOR_ID = 'conn-eu-1';

export interface TestSigner {
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function makeSigner(): TestSigner {
  const kp = generateSigningKeyPair();
  return {
    keyId: kp.keyId,
    privateKey: parsePrivateKey(kp.privateKeyPem),
    publicKey: parsePublicKey(kp.publicKeyPem),
  };
}

export function grantEnvelope(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'cmd-1',
    kind: 'grant',
    connectorId: CONNECTOR_ID,
    issuedAt: '2026-11-25T20:00:00.000Z',
    expiresAt: '2026-11-25T20:05:00.000Z',
    integration: {
      id: 'pg-sales',
      type: 'postgres',
      config: { host: 'sales.db.internal', port: 5432, database: 'sales' },
    },
    params: {
      grantId: 'g-1',
      grantee: { email: 'ada@example.com' },
      resources: [{ type: 'database', id: 'database:sales' }],
      permission: 'read',
    },
    ...overrides,
  };
}

/** A `command` message (as parsed by the frame stage) signed by `signer`. */
export function signedCommand(
  envelope: Record<string, unknown>,
  signer: TestSigner,
  keyId = signer.keyId,
): {
  type: 'command';
  envelope: Record<string, unknown>;
  signature: { alg: 'ed25519'; keyId: string; value: string };
} {
  const signature = signEnvelope(envelope, signer.privateKey, keyId);
  return { type: 'command', envelope, signature };
}
