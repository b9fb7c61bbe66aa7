/**
 * The one AWS client factory interface. Drivers get clients from it and never construct
 * them; tests mock at the SDK command level with `aws-sdk-client-mock`.
 */
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

export interface AwsTarget {
  region: string;
  /** Role to assume in another account; must match the configured allowed pattern. */
  assumeRoleArn?: string;
  externalId?: string;
}

/** Any AWS SDK v3 client class. */
export type AwsClientClass<C> = new (config: {
  region?: string;
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  retryMode?: string;
  maxAttempts?: number;
}) => C;

export interface AwsClientFactory {
  client<C>(cls: AwsClientClass<C>, target: AwsTarget): C;
  /**
   * The credentials a target's clients sign with (assumed-role ones cached per role); for
   * signers that are not SDK clients (RDS IAM auth tokens). Optional for test factories.
   */
  credentials?(target: AwsTarget): AwsCredentialIdentityProvider;
}
