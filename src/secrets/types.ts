/**
 * Secret stores: where service-account credentials come from. See `SecretRef` in the
 * protocol for how an integration names its secret. Values never reach logs or the wire.
 */
import type { SecretRef } from '../protocol/messages.js';

/** A service-account secret. `username`/`password` always; connection hints when the store has them. */
export interface ServiceSecret {
  username: string;
  password: string;
  host?: string;
  port?: number;
  dbname?: string;
  /** Other string fields of the secret, untouched. */
  extra: Record<string, string>;
}

export interface SecretResolver {
  /** @throws LatchkeyError E_SECRET (missing, unreadable, malformed: the reason, never the value). */
  resolve(ref: SecretRef, signal?: AbortSignal): Promise<ServiceSecret>;
}
