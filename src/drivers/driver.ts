/**
 * The Driver interface: what every integration type implements.
 *
 * Glossary
 * - **driver**: the code for one integration type (`postgres`, `aws-iam`, …). One driver
 *   instance per type per agent; it serves every integration of that type and keeps its
 *   own per-integration resources (pools, clients) keyed by integration id.
 * - **integration**: one target (a database server, an AWS account) as named in a command
 *   envelope or in the local config file. Its `config` is parsed by the driver's own schema.
 * - **service account**: the identity the driver uses on the target (from a secret store,
 *   IAM auth, or the AWS credential chain). Never touched by revoke or cleanup.
 * - **managed**: carries Latchkey's marker (role comment, user attribute, policy name
 *   prefix). Only managed objects may be changed or dropped.
 * - **grant role / grant policy**: the per-grant object holding exactly one grant's
 *   privileges (`<prefix>g_<grantId>` role, or an inline policy named after the grant),
 *   so revoking one grant never takes away another's.
 * - **sweep**: periodic, local: revoke what has expired even if no revoke ever arrives.
 *
 * Rules for implementers
 * - Every method honours `ctx.signal` (deadline, cancel, shutdown) on every await that
 *   talks to the target.
 * - Every failure is a `LatchkeyError` with a code from the closed set; map native errors
 *   (SQLSTATE, errno, AWS error names) in one function per driver.
 * - Grant twice = granted once (`alreadyGranted: true`); revoke of something absent = ok
 *   (`alreadyRevoked: true`). Never half-applied: validate everything before the first change.
 * - A kind the driver cannot do throws `E_UNSUPPORTED`.
 * - Never log or return a secret; passwords leave only through `services.sealer`.
 */
import type { Logger } from 'pino';
import type {
  CheckOutput,
  CleanupOutput,
  CleanupParams,
  CommandKind,
  Credentials,
  DiscoverOutput,
  DiscoverParams,
  DiscoveredResource,
  GrantOutput,
  GrantParams,
  Integration,
  InventoryEntry,
  InventoryPrincipal,
  RevokeOutput,
  RevokeParams,
  RotateOutput,
  RotateParams,
  StandingCleanupParams,
} from '../protocol/messages.js';
import type { SecretResolver } from '../secrets/types.js';
import type { AwsClientFactory } from '../aws/types.js';

/** Seals credentials to a recipient key; plaintext only when the operator allowed it. */
export interface CredentialSealer {
  /**
   * @param recipientKey base64url X25519 public key from the command, if any.
   * @throws LatchkeyError E_INVALID when no key is given and plaintext is not allowed.
   */
  seal(recipientKey: string | undefined, credentials: Record<string, string>): Credentials;
}

/** Long-lived services a driver is built with (injected, never constructed inside methods). */
export interface DriverServices {
  logger: Logger;
  secrets: SecretResolver;
  aws: AwsClientFactory;
  sealer: CredentialSealer;
  /** Tag prefix for AWS tags (`<prefix>-connector-access`, …); default `latchkey`. */
  tagPrefix: string;
  /** Clock, injectable for tests. */
  now: () => Date;
  /**
   * PEM of `LATCHKEY_CA_BUNDLE_FILE`: extra CA certificates every database connection trusts
   * in addition to its own (see `drivers/sql/tls.ts`). Absent: none.
   */
  caBundle?: string;
}

/** Per-call context. */
export interface CallContext {
  commandId: string;
  integration: Integration;
  /** Aborted on deadline, cancel or forced shutdown. */
  signal: AbortSignal;
  logger: Logger;
  /**
   * Where a `discover` may write its large arrays page by page instead of returning them
   * (set by the agent when it spools results, `src/controlplane/spool.ts`). A driver that
   * uses it leaves those arrays out of (or empty in) what it returns; one that ignores it
   * returns everything as usual.
   */
  sink?: DiscoverSink;
}

/**
 * Pages of a `discover` output, written as they are produced (bounded memory). The calls
 * come in this order: `resources` pages, then `inventory` once, then its `entries`
 * pages; each resolves once the page is checked and written (await it: backpressure).
 */
export interface DiscoverSink {
  resources(page: readonly DiscoveredResource[]): Promise<void>;
  inventory(principals: readonly InventoryPrincipal[]): Promise<void>;
  entries(page: readonly InventoryEntry[]): Promise<void>;
}

export interface SweepReport {
  /** Grants revoked because they had expired (ids as the driver names them). */
  revoked: string[];
  /** Per-item problems; the sweep goes on past them. */
  errors: { item: string; code: string; message: string }[];
}

export interface Driver {
  readonly type: string;
  /** The command kinds this driver really serves (advertised in `hello`). */
  readonly kinds: readonly CommandKind[];
  /** `params.include` may ask for the access inventory; a driver without one ignores it
   * and the dispatcher adds a warning (see `inventory` in docs/protocol.md). */
  discover(ctx: CallContext, params?: DiscoverParams): Promise<DiscoverOutput>;
  grant(ctx: CallContext, params: GrantParams): Promise<GrantOutput>;
  revoke(ctx: CallContext, params: RevokeParams): Promise<RevokeOutput>;
  rotate(ctx: CallContext, params: RotateParams): Promise<RotateOutput>;
  cleanup(ctx: CallContext, params: CleanupParams): Promise<CleanupOutput>;
  /**
   * Remove standing access listed by the inventory (a `cleanup` with `standing`). Dry run
   * unless `params.apply`; never touches the service account, the connector's own role,
   * protected principals or the agent's own objects. Optional: absent → `E_UNSUPPORTED`.
   */
  removeStanding?(ctx: CallContext, params: StandingCleanupParams): Promise<CleanupOutput>;
  check(ctx: CallContext): Promise<CheckOutput>;
  /** Revoke expired grants of one integration. Optional. */
  sweep?(ctx: CallContext): Promise<SweepReport>;
  /** Release pools and clients (shutdown). */
  close(): Promise<void>;
}

export type DriverFactory = (services: DriverServices) => Driver;
