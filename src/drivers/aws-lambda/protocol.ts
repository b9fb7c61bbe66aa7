/**
 * The contract between the connector and a customer function: what we send, what we
 * accept back. Every answer is parsed with these schemas; anything else is `E_REMOTE`.
 *
 * Request: `{ "event_type": <EventType>, "params": { … } }`.
 * Answer: a JSON object with the fields of its event type (snake_case) and an optional
 * `status`: absent, `"ok"` or `"success"` (and, for `get-status`, `"active"`) mean success;
 * on `"error"`, `message` says why and `error_code` may name one of `RemoteErrorCodes`.
 * This accepts functions written to the common custom-integration contract (answers without
 * `status`, resources typed from the `resource_type` parameter, `get-status` answering
 * `{"status":"active"}`, credentials in a `secret` field) as well as our own.
 *
 * Credentials are never dropped silently: `credentials` (a string map) and `secret` (a
 * string, or a string map) are read; any other field of an answer whose name looks like a
 * credential (`password`, `token`, `api_key`, …) makes the answer an error, and so does a
 * `secret` or `credentials` of another shape.
 */
import { z } from 'zod';

export const EVENT_TYPES = [
  'get-status',
  'list-resources',
  'grant-access',
  'revoke-access',
  'create-credentials',
  'reset-credentials',
  'delete-credentials',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Codes a function may put in `error_code`; anything else becomes E_REMOTE. */
export const REMOTE_ERROR_CODES = [
  'E_NOT_FOUND',
  'E_INVALID',
  'E_PRIVILEGE',
  'E_THROTTLED',
  'E_CONNECT',
  'E_CONFLICT',
  'E_NOT_MANAGED',
] as const;

const Credentials = z.record(z.string().max(256), z.string().max(8192));
/** The common contract's `secret`: one string (sealed as `{secret: …}`) or a string map. */
const Secret = z.union([z.string().min(1).max(8192), Credentials]);

const Base = z.object({
  status: z.enum(['ok', 'success', 'error']).optional(),
  message: z.string().max(4000).optional(),
  error_code: z.string().max(64).optional(),
});

export const ANSWER_SCHEMAS = {
  'get-status': Base.extend({
    status: z.enum(['ok', 'success', 'active', 'error']).optional(),
    version: z.string().max(256).optional(),
  }),
  'list-resources': Base.extend({
    resources: z
      .array(
        z.object({
          id: z.string().min(1).max(2048),
          name: z.string().max(2048).optional(),
          /** Absent: the `resource_type` sent with the request. */
          type: z.string().min(1).max(64).optional(),
          parent_id: z.string().max(2048).optional(),
          metadata: z.record(z.string(), z.unknown()).optional(),
        }),
      )
      .max(100_000)
      .default([]),
    permissions: z
      .array(z.object({ id: z.string().min(1).max(256), name: z.string().max(256).optional() }))
      .max(1000)
      .default([]),
  }),
  'grant-access': Base.extend({
    username: z.string().max(256).optional(),
    access: z.record(z.string(), z.unknown()).optional(),
    credentials: Credentials.optional(),
    secret: Secret.optional(),
    already_granted: z.boolean().optional(),
  }),
  'revoke-access': Base.extend({
    already_revoked: z.boolean().optional(),
    sessions_terminated: z.number().int().nonnegative().optional(),
  }),
  'create-credentials': Base.extend({
    username: z.string().max(256).optional(),
    credentials: Credentials.optional(),
    secret: Secret.optional(),
  }),
  'reset-credentials': Base.extend({
    username: z.string().max(256).optional(),
    credentials: Credentials.optional(),
    secret: Secret.optional(),
  }),
  'delete-credentials': Base.extend({
    deleted: z.boolean().optional(),
    reason: z.string().max(2000).optional(),
  }),
} as const satisfies Record<EventType, z.ZodType>;

export type AnswerOf<E extends EventType> = z.infer<(typeof ANSWER_SCHEMAS)[E]>;

/** Events whose answer may carry credentials. */
export const CREDENTIAL_EVENTS: ReadonlySet<EventType> = new Set([
  'grant-access',
  'create-credentials',
  'reset-credentials',
]);

/** Words of a field name that make it look like a credential (`credentials`/`secret` are read). */
const CREDENTIAL_WORDS: ReadonlySet<string> = new Set([
  'password',
  'passwd',
  'pass',
  'pwd',
  'secret',
  'token',
  'apikey',
  'credential',
  'credentials',
]);
const KEY_QUALIFIERS: ReadonlySet<string> = new Set(['api', 'access', 'private', 'secret']);
const READ_FIELDS: ReadonlySet<string> = new Set(['credentials', 'secret']);

/** `api_key`, `accessToken`, `db-password` → true; `passthrough`, `key_id` → false. */
function looksLikeCredential(field: string): boolean {
  const words = field
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w !== '');
  return words.some(
    (w, i) =>
      CREDENTIAL_WORDS.has(w) || (w === 'key' && i > 0 && KEY_QUALIFIERS.has(words[i - 1] ?? '')),
  );
}

/**
 * Names of top-level fields of a raw answer that look like credentials but are not read
 * (so an answer carrying them is refused instead of losing them). Names only, never values.
 */
export function unreadCredentialFields(raw: unknown): string[] {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return [];
  return Object.keys(raw).filter((k) => !READ_FIELDS.has(k) && looksLikeCredential(k));
}

/**
 * The credentials of an answer: `credentials` merged with `secret` (a string becomes
 * `{secret: …}`). Returns the names of fields present in both with different values as
 * `conflicts` (never the values).
 */
export function answerCredentials(answer: {
  credentials?: Record<string, string> | undefined;
  secret?: string | Record<string, string> | undefined;
}): { credentials: Record<string, string>; conflicts: string[] } {
  const fromSecret: Record<string, string> =
    answer.secret === undefined
      ? {}
      : typeof answer.secret === 'string'
        ? { secret: answer.secret }
        : answer.secret;
  const credentials: Record<string, string> = { ...(answer.credentials ?? {}) };
  const conflicts: string[] = [];
  for (const [k, v] of Object.entries(fromSecret)) {
    if (credentials[k] !== undefined && credentials[k] !== v) conflicts.push(k);
    credentials[k] = v;
  }
  return { credentials, conflicts };
}

/** The error a function returns with FunctionError set (Lambda's own shape). */
export const FunctionErrorSchema = z.object({
  errorType: z.string().max(256).optional(),
  errorMessage: z.string().optional(),
});
