/**
 * Protocol v1: every message between the agent and the control plane.
 *
 * Glossary
 * - **frame**: one WebSocket text frame, holding exactly one JSON message.
 * - **message**: an object with a `type` (`hello`, `command`, `result`, …).
 * - **envelope**: the signed part of a `command`: what to do (`kind`), where
 *   (`integration`), with what (`params`), for whom (`connectorId`) and when
 *   (`issuedAt`..`expiresAt`).
 * - **signature**: Ed25519 over the RFC 8785 canonical JSON of the envelope exactly as
 *   received, by a key the agent trusts under `keyId`.
 * - **integration**: one target system (a database, an AWS account) with its type,
 *   non-secret config and a reference to where its secret lives (never the secret).
 * - **grantee**: the person (by email) or AWS principal receiving access.
 * - **sealed**: encrypted to the requester's X25519 `recipientKey`; the control plane
 *   relays it but cannot read it.
 *
 * These zod schemas are the single source: the TypeScript types are inferred from them
 * and `docs/schema/protocol-v1.schema.json` is generated from them (`npm run schema`).
 */
import { z } from 'zod';
import { ERROR_CODE_LIST } from '../errors.js';

export const PROTOCOL_VERSION = 1;

export const COMMAND_KINDS = ['discover', 'grant', 'revoke', 'rotate', 'cleanup', 'check'] as const;
export const CommandKindSchema = z.enum(COMMAND_KINDS);
export type CommandKind = z.infer<typeof CommandKindSchema>;

/** An id safe to log and to use in names: letters, digits, `.`, `_`, `:`, `-`. */
const Id = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:-]+$/, 'only letters, digits and . _ : -');
/** RFC 3339 timestamp with offset, e.g. `2026-11-25T20:00:00.000Z`. */
const Timestamp = z.iso.datetime({ offset: true });

export const WireErrorSchema = z.object({
  code: z.enum(ERROR_CODE_LIST),
  message: z.string().max(2000),
  retryable: z.boolean(),
});

// ---------------------------------------------------------------------------------------
// Integration and secrets references

/** Where the service-account secret of an integration lives. Never the secret itself. */
export const SecretRefSchema = z.discriminatedUnion('store', [
  z.strictObject({
    store: z.literal('aws-secrets-manager'),
    /** Secret ARN or name. */
    secretId: z.string().min(1).max(2048),
    region: z.string().min(1).max(64).optional(),
    /**
     * Role assumed to read the secret (a database in an AWS Organization member account:
     * that account's member role, as aws-discovery emits it). Must match the agent's
     * allowed role pattern. Default: the agent's own identity.
     */
    assumeRoleArn: z
      .string()
      .regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/)
      .optional(),
    /** External id sent with `assumeRoleArn`. */
    externalId: z
      .string()
      .min(2)
      .max(1224)
      .regex(/^[\w+=,.@:/-]+$/)
      .optional(),
  }),
  z.strictObject({
    store: z.literal('kubernetes'),
    name: z.string().min(1).max(253),
    namespace: z.string().min(1).max(63).optional(),
  }),
  z.strictObject({
    /** A mounted directory with one file per field (`username`, `password`, …). */
    store: z.literal('file'),
    path: z.string().min(1).max(4096),
  }),
  z.strictObject({
    /** Environment variables `<prefix>USERNAME`, `<prefix>PASSWORD`, … (local use, demo). */
    store: z.literal('env'),
    prefix: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Z][A-Z0-9_]*$/),
  }),
  z.strictObject({
    /** HashiCorp Vault, KV version 2: `<mount>/data/<path>` (docs/secrets.md). */
    store: z.literal('vault'),
    path: z.string().min(1).max(1024),
    /** KV v2 mount; default the agent's `LATCHKEY_VAULT_KV_MOUNT` (`secret`). */
    mount: z.string().min(1).max(256).optional(),
    /** Vault Enterprise namespace; default the agent's `LATCHKEY_VAULT_NAMESPACE`. */
    namespace: z.string().min(1).max(256).optional(),
    version: z.number().int().positive().optional(),
  }),
]);
export type SecretRef = z.infer<typeof SecretRefSchema>;

export const IntegrationSchema = z.strictObject({
  id: Id,
  /** Driver type: `postgres`, `mysql`, `redshift`, `aws-iam`, `aws-ssm`, `aws-lambda`, … */
  type: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[a-z0-9-]+$/),
  /** Non-secret, driver-specific connection config; validated by the driver's own schema. */
  config: z.record(z.string(), z.unknown()),
  secret: SecretRefSchema.optional(),
  /** Driver-specific behaviour settings (e.g. `dropOwnedObjects`); validated by the driver. */
  settings: z.record(z.string(), z.unknown()).optional(),
});
export type Integration = z.infer<typeof IntegrationSchema>;

// ---------------------------------------------------------------------------------------
// Command params per kind

export const GranteeSchema = z.strictObject({
  email: z.email().max(320),
  /** For AWS drivers: the IAM role or user ARN that receives the policy. */
  awsPrincipalArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/:-]+$/)
    .max(2048)
    .optional(),
});
export type Grantee = z.infer<typeof GranteeSchema>;

/** A resource as discovered: its `id` is the driver's stable id (e.g. `table:sales/public/orders`). */
export const ResourceRefSchema = z.strictObject({
  type: z.string().min(1).max(64),
  id: z.string().min(1).max(2048),
});
export type ResourceRef = z.infer<typeof ResourceRefSchema>;

/** Grant access to all resources carrying a tag instead of naming them (AWS drivers). */
export const TagScopeSchema = z.strictObject({
  resourceType: z.string().min(1).max(64),
  key: z.string().min(1).max(128),
  value: z.string().max(256),
});

/** An X25519 public key, base64url of its 32 raw bytes. */
export const RecipientKeySchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{43}$/, 'base64url of a 32-byte X25519 public key');

const Permission = z.string().min(1).max(256);

/** What a discover may return besides resources (issue 13). Unknown names are `E_SCHEMA`. */
export const DISCOVER_INCLUDES = ['privileges'] as const;
export const DiscoverParamsSchema = z.strictObject({
  /** `privileges`: also the access inventory (principals and who holds what, by which path). */
  include: z.array(z.enum(DISCOVER_INCLUDES)).max(DISCOVER_INCLUDES.length).optional(),
});
export const CheckParamsSchema = z.strictObject({});
export const GrantParamsSchema = z.strictObject({
  grantId: Id,
  grantee: GranteeSchema,
  resources: z.array(ResourceRefSchema).max(1000),
  tagScope: TagScopeSchema.optional(),
  permission: Permission,
  /** When the access ends even if no revoke arrives. */
  expiresAt: Timestamp.optional(),
  recipientKey: RecipientKeySchema.optional(),
});
export const RevokeParamsSchema = z.strictObject({
  grantId: Id,
  grantee: GranteeSchema,
  resources: z.array(ResourceRefSchema).max(1000),
  tagScope: TagScopeSchema.optional(),
  permission: Permission,
  /** End the grantee's open sessions (default true). */
  terminateSessions: z.boolean().optional(),
});
export const RotateParamsSchema = z.strictObject({
  target: z.union([
    z.strictObject({ grantee: GranteeSchema }),
    z.strictObject({ serviceAccount: z.literal(true) }),
  ]),
  recipientKey: RecipientKeySchema.optional(),
});
/** Cleanup of users the agent made (by username). */
export const UsernameCleanupParamsSchema = z.strictObject({
  usernames: z.array(z.string().min(1).max(128)).min(1).max(1000),
});

// ---------------------------------------------------------------------------------------
// Access inventory (issue 13): who holds what on an integration's resources, and how.

/** The kinds of principal an inventory names; each driver uses the ones its target has. */
export const PRINCIPAL_KINDS = [
  'user', // a database login role / account, an Identity Center user
  'role', // a database role (NOLOGIN), a MySQL/MariaDB role
  'group', // an Identity Center / IAM group
  'public', // PostgreSQL PUBLIC, MySQL anonymous account
  'iam-user',
  'iam-role',
] as const;
export const PrincipalKindSchema = z.enum(PRINCIPAL_KINDS);

/** One step of the path a privilege comes through, outermost (the principal's own) first. */
export const PRIVILEGE_VIA = [
  'direct', // granted to the principal itself
  'role', // through role membership; `chain` lists the roles from the principal outwards
  'group', // through a group
  'policy', // through an IAM policy (inline name or managed ARN in `source`)
  'public', // through PUBLIC / anonymous
  'default-privileges', // ALTER DEFAULT PRIVILEGES that will apply to future objects
  'assignment', // an Identity Center account assignment (permission set in `source`)
  'attribute', // an attribute of the principal itself (SUPERUSER, global ALL, AdministratorAccess)
] as const;
export const PrivilegeViaSchema = z.enum(PRIVILEGE_VIA);

export const InventoryPrincipalSchema = z.object({
  /** Stable within the integration: `<kind>:<name>` (e.g. `user:alice`, `iam-role:arn:aws:iam::1:role/x`). */
  id: z.string().max(2048),
  kind: PrincipalKindSchema,
  name: z.string().max(2048),
  /** Can sign in (LOGIN, an account with a password or plugin, an IAM user with keys/console, …). */
  canLogin: z.boolean().optional(),
  /** Made by this agent (carries its marker); then `grantId` names the grant when known. */
  managedByAgent: z.boolean(),
  grantId: z.string().optional(),
  /** Dangerous or notable attributes: `superuser`, `createrole`, `bypassrls`, `replication`,
   * `anonymous`, `service-account`, `protected`, `admin`, … (driver-specific, documented per driver). */
  flags: z.array(z.string().max(64)),
});

export const InventoryEntrySchema = z.object({
  /** `InventoryPrincipalSchema.id` of the holder. */
  principalId: z.string().max(2048),
  /** The same ids grants use (`table:db/schema/t`, an ARN, `account:123…`); `*` scoped ids allowed. */
  resourceId: z.string().max(2048),
  /** `connect`/`read`/`write`/`admin` or the driver's own level names. */
  permission: z.string().max(256),
  /** The engine's own privilege names behind it (`SELECT`, `s3:GetObject`, …). */
  privileges: z.array(z.string().max(256)),
  via: PrivilegeViaSchema,
  /** For `role`/`group`: the memberships from the principal outwards, ending at the holder of the privilege. */
  chain: z.array(z.string().max(2048)).optional(),
  /** Policy name/ARN, permission set ARN, grant statement's grantor, … */
  source: z.string().max(2048).optional(),
  /** Condition keys present but not evaluated (AWS). */
  conditions: z.array(z.string().max(256)).optional(),
  /** True when the agent made this access (a grant's role/policy/assignment). */
  managedByAgent: z.boolean(),
  grantId: z.string().optional(),
});

export const InventorySchema = z.object({
  principals: z.array(InventoryPrincipalSchema),
  entries: z.array(InventoryEntrySchema),
});
export type InventoryPrincipal = z.infer<typeof InventoryPrincipalSchema>;
export type InventoryEntry = z.infer<typeof InventoryEntrySchema>;
export type Inventory = z.infer<typeof InventorySchema>;

/** One standing privilege to remove, named as the inventory listed it. */
export const StandingTargetSchema = z.strictObject({
  principalId: z.string().min(1).max(2048),
  resourceId: z.string().min(1).max(2048),
  permission: z.string().min(1).max(256),
  via: PrivilegeViaSchema,
  /** As listed (the policy, the role granted, …); must match the inventory's. */
  source: z.string().max(2048).optional(),
});
export type StandingTarget = z.infer<typeof StandingTargetSchema>;

/** Cleanup of standing access (convert to just-in-time). Dry run unless `apply` is true. */
export const StandingCleanupParamsSchema = z.strictObject({
  standing: z.array(StandingTargetSchema).min(1).max(100),
  apply: z.boolean().optional(),
});
export type StandingCleanupParams = z.infer<typeof StandingCleanupParamsSchema>;

export const CleanupParamsSchema = z.union([
  UsernameCleanupParamsSchema,
  StandingCleanupParamsSchema,
]);

export type GrantParams = z.infer<typeof GrantParamsSchema>;
export type RevokeParams = z.infer<typeof RevokeParamsSchema>;
export type RotateParams = z.infer<typeof RotateParamsSchema>;
/** The username form: what `Driver.cleanup` receives. */
export type CleanupParams = z.infer<typeof UsernameCleanupParamsSchema>;
export type AnyCleanupParams = z.infer<typeof CleanupParamsSchema>;
export type DiscoverParams = z.infer<typeof DiscoverParamsSchema>;

const envelopeBase = {
  id: Id,
  connectorId: Id,
  issuedAt: Timestamp,
  expiresAt: Timestamp,
  integration: IntegrationSchema,
};

/** The signed part of a command. Strict: an unknown field is `E_SCHEMA`, so what is used is what was signed. */
export const EnvelopeSchema = z.discriminatedUnion('kind', [
  z.strictObject({ ...envelopeBase, kind: z.literal('discover'), params: DiscoverParamsSchema }),
  z.strictObject({ ...envelopeBase, kind: z.literal('grant'), params: GrantParamsSchema }),
  z.strictObject({ ...envelopeBase, kind: z.literal('revoke'), params: RevokeParamsSchema }),
  z.strictObject({ ...envelopeBase, kind: z.literal('rotate'), params: RotateParamsSchema }),
  z.strictObject({ ...envelopeBase, kind: z.literal('cleanup'), params: CleanupParamsSchema }),
  z.strictObject({ ...envelopeBase, kind: z.literal('check'), params: CheckParamsSchema }),
]);
export type Envelope = z.infer<typeof EnvelopeSchema>;
export type EnvelopeOf<K extends CommandKind> = Extract<Envelope, { kind: K }>;

export const SignatureSchema = z.strictObject({
  alg: z.literal('ed25519'),
  keyId: z.string().min(1).max(128),
  /** base64 (standard or url-safe) of the 64-byte signature. */
  value: z.string().min(1).max(256),
});

// ---------------------------------------------------------------------------------------
// Outputs per kind

/** Credentials sealed to a recipient X25519 key: ephemeral ECDH + HKDF-SHA256 + AES-256-GCM. */
export const SealedSchema = z.strictObject({
  alg: z.literal('X25519-HKDF-SHA256-A256GCM'),
  /** Ephemeral public key, base64url of 32 raw bytes. */
  epk: z.string(),
  /** 12-byte GCM nonce, base64url. */
  iv: z.string(),
  /** Ciphertext of the UTF-8 JSON of the credentials, base64url. */
  ct: z.string(),
  /** 16-byte GCM tag, base64url. */
  tag: z.string(),
});
export type Sealed = z.infer<typeof SealedSchema>;

/** Credentials are either sealed or, only when the operator allows it, plain. */
export const CredentialsSchema = z.union([
  z.strictObject({ sealed: SealedSchema }),
  z.strictObject({ plaintext: z.record(z.string(), z.string()) }),
]);

export const WarningSchema = z.object({
  resourceId: z.string().optional(),
  code: z.enum(ERROR_CODE_LIST),
  message: z.string(),
});

export const DiscoveredResourceSchema = z.object({
  id: z.string(),
  name: z.string(),
  type: z.string(),
  parentId: z.string().optional(),
  metadata: z.record(z.string(), z.unknown()),
});

export type DiscoveredResource = z.infer<typeof DiscoveredResourceSchema>;

export const DiscoverOutputSchema = z.object({
  resources: z.array(DiscoveredResourceSchema),
  permissions: z.array(z.object({ id: z.string(), name: z.string() })),
  warnings: z.array(WarningSchema),
  /** For AWS discovery: integrations found (databases tagged for this connector). */
  integrations: z.array(IntegrationSchema).optional(),
  /** Only when `params.include` has `privileges`. */
  inventory: InventorySchema.optional(),
});

export const GrantOutputSchema = z.object({
  username: z.string(),
  /** How to reach what was granted: host, port, database, account, … */
  access: z.record(z.string(), z.unknown()),
  credentials: CredentialsSchema.optional(),
  /** True when the grant already existed (idempotent retry). */
  alreadyGranted: z.boolean(),
  expiresAt: Timestamp.optional(),
});

export const PhaseSchema = z.object({
  phase: z.string(),
  status: z.enum(['done', 'skipped', 'failed']),
  detail: z.string().optional(),
});

export const RevokeOutputSchema = z.object({
  username: z.string().optional(),
  revoked: z.array(z.string()),
  phases: z.array(PhaseSchema),
  sessionsTerminated: z.number().int().nonnegative(),
  /** True when there was nothing left to revoke (idempotent retry). */
  alreadyRevoked: z.boolean(),
});

export const RotateOutputSchema = z.object({
  username: z.string(),
  credentials: CredentialsSchema.optional(),
  phases: z.array(PhaseSchema),
});

export const StandingOutcomeSchema = z.object({
  target: StandingTargetSchema,
  /** `planned` in a dry run; `removed` when applied; `refused` (with `code`) when not allowed. */
  status: z.enum(['planned', 'removed', 'refused', 'absent']),
  /** Exactly the statements or API calls made (or that would be made), values redacted. */
  actions: z.array(z.string()),
  code: z.enum(ERROR_CODE_LIST).optional(),
  reason: z.string().optional(),
});
export type StandingOutcome = z.infer<typeof StandingOutcomeSchema>;

export const CleanupOutputSchema = z.object({
  dropped: z.array(z.string()),
  kept: z.array(
    z.object({ username: z.string(), reason: z.string(), code: z.enum(ERROR_CODE_LIST) }),
  ),
  /** Only for a standing cleanup. */
  standing: z.array(StandingOutcomeSchema).optional(),
  dryRun: z.boolean().optional(),
});

export const CheckOutputSchema = z.object({
  ok: z.boolean(),
  serverVersion: z.string().optional(),
  checks: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string() })),
});

export const OUTPUT_SCHEMAS = {
  discover: DiscoverOutputSchema,
  grant: GrantOutputSchema,
  revoke: RevokeOutputSchema,
  rotate: RotateOutputSchema,
  cleanup: CleanupOutputSchema,
  check: CheckOutputSchema,
} as const;

export type DiscoverOutput = z.infer<typeof DiscoverOutputSchema>;
export type GrantOutput = z.infer<typeof GrantOutputSchema>;
export type RevokeOutput = z.infer<typeof RevokeOutputSchema>;
export type RotateOutput = z.infer<typeof RotateOutputSchema>;
export type CleanupOutput = z.infer<typeof CleanupOutputSchema>;
export type CheckOutput = z.infer<typeof CheckOutputSchema>;
export type Phase = z.infer<typeof PhaseSchema>;
export type Credentials = z.infer<typeof CredentialsSchema>;
export interface OutputOf {
  discover: DiscoverOutput;
  grant: GrantOutput;
  revoke: RevokeOutput;
  rotate: RotateOutput;
  cleanup: CleanupOutput;
  check: CheckOutput;
}

// ---------------------------------------------------------------------------------------
// Messages, agent → control plane

export const HelloSchema = z.object({
  type: z.literal('hello'),
  protocol: z.literal(PROTOCOL_VERSION),
  connectorId: Id,
  instanceId: z.string().min(1).max(128),
  version: z.string(),
  capabilities: z.object({
    kinds: z.array(CommandKindSchema),
    integrationTypes: z.array(z.string()),
    /**
     * The agent can deliver a result too large for one frame as `result-chunk` frames
     * (docs/protocol.md, "Chunked results"); no frame it sends exceeds `maxFrameBytes`.
     * Used only when the control plane answers `welcome.resultChunks: true`.
     */
    resultChunks: z.object({ maxFrameBytes: z.int().positive() }).optional(),
  }),
  /**
   * Optional: asks the control plane to prove its command-signing key in `welcome`
   * (`src/protocol/key-proof.ts`). `nonce` is base64url of 32 random bytes, new for
   * each connection. A control plane that does not know this field ignores it.
   */
  keyProof: z
    .object({ nonce: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'base64url of 32 bytes') })
    .optional(),
});

export const AcceptedSchema = z.object({
  type: z.literal('accepted'),
  commandId: z.string(),
});

export const RejectedSchema = z.object({
  type: z.literal('rejected'),
  /** Null when the frame was too broken to read an id from. */
  commandId: z.string().nullable(),
  error: WireErrorSchema,
});

export const TimingsSchema = z.object({
  receivedAt: Timestamp,
  startedAt: Timestamp.optional(),
  finishedAt: Timestamp,
  queueMs: z.number().nonnegative(),
  runMs: z.number().nonnegative(),
});

export const ResultSchema = z.object({
  type: z.literal('result'),
  commandId: z.string(),
  kind: CommandKindSchema,
  status: z.enum(['ok', 'error']),
  output: z.record(z.string(), z.unknown()).optional(),
  error: WireErrorSchema.optional(),
  timings: TimingsSchema,
});

/**
 * One piece of a result too large for one frame (only on a link whose `welcome` accepted
 * result chunks). The result's frame text (the JSON of its `result` message) is cut into
 * pieces at character boundaries; `data` is one piece, starting at UTF-8 byte `offset` of
 * that text. Concatenating the `data` of offsets 0…`size` gives the text back.
 */
export const ResultChunkSchema = z.object({
  type: z.literal('result-chunk'),
  commandId: z.string(),
  /** UTF-8 byte offset of `data` in the result's frame text. */
  offset: z.int().nonnegative(),
  /** UTF-8 bytes of the whole result's frame text. */
  size: z.int().positive(),
  /** SHA-256 (lower-case hex) of the whole text's UTF-8 bytes. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** The piece: at least one character, never half of one. */
  data: z.string().min(1),
});

export const AgentMessageSchema = z.discriminatedUnion('type', [
  HelloSchema,
  AcceptedSchema,
  RejectedSchema,
  ResultSchema,
  ResultChunkSchema,
]);

// ---------------------------------------------------------------------------------------
// Messages, control plane → agent

export const WelcomeSchema = z.object({
  type: z.literal('welcome'),
  serverTime: Timestamp,
  /**
   * Optional answer to `hello.keyProof`: the Ed25519 signature (base64url) by the key
   * `keyId` of `"latchkey/welcome-key-proof/v1\n" + connectorId + "\n" + nonce`.
   */
  keyProof: z
    .object({ keyId: z.string().min(1).max(128), value: z.string().min(1).max(256) })
    .optional(),
  /** True: this control plane takes `result-chunk` frames (answer to `hello.capabilities.resultChunks`). */
  resultChunks: z.boolean().optional(),
});

export const CommandMessageSchema = z.object({
  type: z.literal('command'),
  /** Parsed strictly by `EnvelopeSchema` only after the frame is read; kept raw here for the signature. */
  envelope: z.record(z.string(), z.unknown()),
  signature: SignatureSchema,
});

export const ResultAckSchema = z.object({
  type: z.literal('result-ack'),
  commandId: z.string(),
});

export const CancelSchema = z.object({
  type: z.literal('cancel'),
  commandId: z.string(),
});

/**
 * The control plane holds the first `next` bytes of a chunked result (cumulative: every
 * chunk up to there is stored). The agent sends on from `next`; a `next` lower than before
 * (the control plane lost them) makes it send again from there.
 */
export const ResultChunkAckSchema = z.object({
  type: z.literal('result-chunk-ack'),
  commandId: z.string(),
  next: z.int().nonnegative(),
});

export const ControlPlaneMessageSchema = z.discriminatedUnion('type', [
  WelcomeSchema,
  CommandMessageSchema,
  ResultAckSchema,
  CancelSchema,
  ResultChunkAckSchema,
]);

export type Hello = z.infer<typeof HelloSchema>;
export type Accepted = z.infer<typeof AcceptedSchema>;
export type Rejected = z.infer<typeof RejectedSchema>;
export type Result = z.infer<typeof ResultSchema>;
export type ResultChunk = z.infer<typeof ResultChunkSchema>;
export type ResultChunkAck = z.infer<typeof ResultChunkAckSchema>;
export type AgentMessage = z.infer<typeof AgentMessageSchema>;
export type Welcome = z.infer<typeof WelcomeSchema>;
export type CommandMessage = z.infer<typeof CommandMessageSchema>;
export type ResultAck = z.infer<typeof ResultAckSchema>;
export type Cancel = z.infer<typeof CancelSchema>;
export type ControlPlaneMessage = z.infer<typeof ControlPlaneMessageSchema>;
