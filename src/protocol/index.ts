/** The protocol layer: message schemas, canonical JSON, signatures, verification, sealing. */
export * from './messages.js';
export { canonicalJson } from './canonical.js';
export {
  parsePublicKey,
  parsePrivateKey,
  signEnvelope,
  verifyEnvelopeSignature,
  type EnvelopeSignature,
} from './signing.js';
export { parseControlPlaneFrame, type FrameOutcome } from './frame.js';
export {
  createCommandVerifier,
  envelopeDigest,
  type CommandVerifier,
  type VerifierOptions,
  type VerifyOutcome,
} from './verify.js';
export { seal, open, createSealer, parseRecipientPrivateKey, SEAL_ALG, SEAL_INFO } from './seal.js';
export {
  generateSigningKeyPair,
  generateRecipientKeyPair,
  keyIdOf,
  type SigningKeyPair,
  type RecipientKeyPair,
} from './keys.js';
