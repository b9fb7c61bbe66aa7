/**
 * Key proof at `welcome` (optional, backward compatible): the agent puts a fresh random
 * nonce in `hello.keyProof`; a control plane that supports it answers with
 * `welcome.keyProof` = an Ed25519 signature, by its command-signing key, of
 *
 *     "latchkey/welcome-key-proof/v1\n" + connectorId + "\n" + nonce      (UTF-8)
 *
 * The agent checks it against its trusted keys as it would a command's signature, so a
 * wrong trusted key shows at connect time (`latchkey check`, the agent's log), not as
 * `E_SIGNATURE` on every command. The context prefix keeps such a signature from ever
 * being a command signature: a command's signing input is canonical JSON, which starts
 * with `{`.
 *
 * Glossary
 * - **proved**: the welcome carries a proof that verifies under a trusted key id.
 * - **failed**: it carries one that does not (unknown key id, bad signature).
 * - **not-offered**: the welcome carries none (a control plane without key proof).
 */
import { randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { decodeBase64Any } from './der.js';

export const KEY_PROOF_CONTEXT = 'latchkey/welcome-key-proof/v1';

export type KeyProofStatus =
  | { status: 'proved'; keyId: string }
  | { status: 'failed'; keyId: string; detail: string }
  | { status: 'not-offered' };

/** A fresh nonce: base64url (no padding) of 32 random bytes, 43 characters. */
export function newKeyProofNonce(): string {
  return randomBytes(32).toString('base64url');
}

/** The bytes the control plane signs. */
export function keyProofInput(connectorId: string, nonce: string): Buffer {
  return Buffer.from(`${KEY_PROOF_CONTEXT}\n${connectorId}\n${nonce}`, 'utf8');
}

/** Control plane side: `welcome.keyProof` for a hello's nonce. */
export function signKeyProof(
  connectorId: string,
  nonce: string,
  privateKey: KeyObject,
  keyId: string,
): { keyId: string; value: string } {
  return {
    keyId,
    value: sign(null, keyProofInput(connectorId, nonce), privateKey).toString('base64url'),
  };
}

/** Agent side: what a welcome's proof says about the control plane's key. Never throws. */
export function checkKeyProof(
  proof: { keyId: string; value: string } | undefined,
  connectorId: string,
  nonce: string,
  trustedKeys: ReadonlyMap<string, KeyObject>,
): KeyProofStatus {
  if (proof === undefined) return { status: 'not-offered' };
  const key = trustedKeys.get(proof.keyId);
  if (key?.asymmetricKeyType !== 'ed25519') {
    return {
      status: 'failed',
      keyId: proof.keyId,
      detail: `the control plane signs with key id "${proof.keyId}", which is not among this agent's trusted keys (${[...trustedKeys.keys()].join(', ') || 'none'})`,
    };
  }
  const sig = decodeBase64Any(proof.value);
  let ok = false;
  if (sig?.length === 64) {
    try {
      ok = verify(null, keyProofInput(connectorId, nonce), key, sig);
    } catch {
      ok = false;
    }
  }
  return ok
    ? { status: 'proved', keyId: proof.keyId }
    : {
        status: 'failed',
        keyId: proof.keyId,
        detail: `the control plane's proof does not verify with the trusted key "${proof.keyId}" (the trusted public key is not the control plane's)`,
      };
}
