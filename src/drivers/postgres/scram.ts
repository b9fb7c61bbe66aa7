/**
 * SCRAM-SHA-256 password verifiers (RFC 5802/7677, PostgreSQL's stored format), computed
 * locally so that `CREATE ROLE … PASSWORD '<verifier>'` never carries the plaintext
 * password to the server (and so never into its statement log).
 */
import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);
export const SCRAM_ITERATIONS = 4096;

/** `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64). ASCII passwords only. */
export async function scramVerifier(
  password: string,
  iterations = SCRAM_ITERATIONS,
  salt: Buffer = randomBytes(16),
): Promise<string> {
  if (!/^[\x20-\x7e]+$/.test(password)) {
    // SASLprep of non-ASCII input is not implemented; our generated passwords are ASCII.
    throw new RangeError('SCRAM verifier: password must be printable ASCII');
  }
  const salted = await pbkdf2Async(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
