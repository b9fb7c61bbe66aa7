/**
 * `latchkey keygen`: a fresh Ed25519 signing pair (the control plane signs commands with
 * the private key; the agent trusts the public key under its key id) and a fresh X25519
 * recipient pair (the requester opens sealed credentials with the private key).
 */
import { generateRecipientKeyPair, generateSigningKeyPair } from '../protocol/index.js';
import { parseCommandArgs, type CliIo } from './io.js';

export const KEYGEN_HELP = `Usage: latchkey keygen [--json]

Generates a new Ed25519 signing key pair and a new X25519 recipient key pair and prints
them. The private keys are secrets: store them in your secret manager, not in a shell
history or a repository.

  Signing pair    the control plane keeps the private key and signs every command with
                  it; the agent trusts the public key under its key id
                  (LATCHKEY_TRUSTED_KEYS).
  Recipient pair  the requester (or the control plane's UI on its behalf) keeps the
                  private key; grants carry the public key as "recipientKey" and the
                  agent seals credentials to it.

Options:
  --json        print one JSON object instead of env-var lines
  -h, --help    show this help`;

/** Shell-quotes a value for a single-quoted env assignment. */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

export function keygenCommand(argv: readonly string[], io: CliIo): number {
  const { values } = parseCommandArgs(argv, { json: { type: 'boolean' } });
  if (values.help === true) {
    io.out(KEYGEN_HELP);
    return 0;
  }
  const signing = generateSigningKeyPair();
  const recipient = generateRecipientKeyPair();
  if (values.json === true) {
    io.out(
      JSON.stringify(
        {
          signing: {
            alg: 'ed25519',
            keyId: signing.keyId,
            publicKey: signing.publicKey,
            publicKeyPem: signing.publicKeyPem,
            privateKeyPem: signing.privateKeyPem,
          },
          recipient: {
            alg: 'x25519',
            publicKey: recipient.publicKey,
            privateKeyPem: recipient.privateKeyPem,
          },
        },
        null,
        2,
      ),
    );
    return 0;
  }
  const trusted = JSON.stringify({ [signing.keyId]: signing.publicKey });
  io.out('# Ed25519 signing pair');
  io.out(`# key id: ${signing.keyId}`);
  io.out('# Agent side (public, safe to share):');
  io.out(`LATCHKEY_TRUSTED_KEYS=${shellQuote(trusted)}`);
  io.out('# Control-plane side (SECRET):');
  io.out(`LATCHKEY_SIGNING_KEY_ID=${shellQuote(signing.keyId)}`);
  io.out(`LATCHKEY_SIGNING_PRIVATE_KEY=${shellQuote(signing.privateKeyPem.trim())}`);
  io.out('');
  io.out('# X25519 recipient pair');
  io.out('# Put the public key in a grant as "recipientKey":');
  io.out(`LATCHKEY_RECIPIENT_PUBLIC_KEY=${shellQuote(recipient.publicKey)}`);
  io.out('# Requester side (SECRET), opens sealed credentials:');
  io.out(`LATCHKEY_RECIPIENT_PRIVATE_KEY=${shellQuote(recipient.privateKeyPem.trim())}`);
  return 0;
}
