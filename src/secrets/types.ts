/**
 * Secret stores: where service-account credentials come from. See `SecretRef` in the
 * protocol for how an integration names its secret. Values never reach logs or the wire.
 */
import type { SecretRef } from '../protocol/messages.js';
import type { DiscoveredPairings } from './discovered.js';

/** A service-account secret. `username`/`password` always; connection hints when the store has them. */
export interface ServiceSecret {
  username: string;
  password: string;
  host?: string;
  port?: number;
  dbname?: string;
  /** Other string fields of the secret, untouched. */
  extra: Record<string, string>;
  /**
   * Tags of the secret in its store, when the store has them and the secret names no `host`
   * (Secrets Manager `DescribeSecret`): what binding by tag reads (`./binding.ts`).
   */
  tags?: Record<string, string>;
}

/** A pending (not yet promoted) version of a secret, as found in the store. */
export type PendingServiceSecret = ServiceSecret & { versionId: string };

/**
 * Two-phase rotation of a service-account secret (stores that can be written: today only
 * `aws-secrets-manager`; other stores throw `E_UNSUPPORTED`). See docs/secrets.md.
 */
export interface SecretRotation {
  /** Stores `value` as the AWSPENDING version; AWSCURRENT is untouched. */
  putPendingSecret(
    ref: SecretRef,
    value: ServiceSecret,
    signal?: AbortSignal,
  ): Promise<{ versionId: string }>;
  /** The AWSPENDING version if there is one that is not also AWSCURRENT; else null. */
  getPendingSecret(ref: SecretRef, signal?: AbortSignal): Promise<PendingServiceSecret | null>;
  /** Moves AWSCURRENT to `versionId` (idempotent) and drops the cached value. */
  promotePendingSecret(ref: SecretRef, versionId: string, signal?: AbortSignal): Promise<void>;
}

export interface SecretResolver {
  /** @throws LatchkeyError E_SECRET (missing, unreadable, malformed: the reason, never the value). */
  resolve(ref: SecretRef, signal?: AbortSignal): Promise<ServiceSecret>;
  /** Drops any cached value of `ref` (e.g. after a login with it failed). */
  invalidate?(ref: SecretRef): void;
  /** Two-phase rotation of the service account, when the resolver supports it. */
  rotation?: SecretRotation;
  /**
   * Which secrets may be used against which target (see `src/secrets/binding.ts`);
   * `DEFAULT_SECRET_BINDING` when absent.
   */
  binding?: SecretBindingPolicy;
}

/** The operator's rules for secrets that name no `host` (see `src/secrets/binding.ts`). */
export interface SecretBindingPolicy {
  /** Stores whose secrets may be used although they name no `host`. */
  readonly allowUnbound: readonly SecretRef['store'][];
  /**
   * Tag prefix of binding by tag (`<prefix>-connector-read`, `<prefix>-connector-target`);
   * absent: `latchkey`.
   */
  readonly tagPrefix?: string;
  /**
   * Secret ↔ database pairings this agent's own `aws-discovery` found through the
   * `<prefix>-secret` tag of a database (`./discovered.ts`): such a Secrets Manager secret
   * is accepted for exactly that database's host and port. Absent: none.
   */
  readonly discovered?: DiscoveredPairings;
}
