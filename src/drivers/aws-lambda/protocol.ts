/**
 * The contract between the connector and a customer function: what we send, what we
 * accept back. Every answer is parsed with these schemas; anything else is `E_REMOTE`.
 *
 * Request: `{ "event_type": <EventType>, "params": { … } }`.
 * Answer: a JSON object with at least `status` (`"ok"`, `"success"` or `"error"`), plus the
 * fields of its event type (snake_case). On `"error"`, `message` says why and `error_code`
 * may name one of `RemoteErrorCodes`.
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

const Base = z.object({
  status: z.enum(['ok', 'success', 'error']),
  message: z.string().max(4000).optional(),
  error_code: z.string().max(64).optional(),
});

export const ANSWER_SCHEMAS = {
  'get-status': Base.extend({ version: z.string().max(256).optional() }),
  'list-resources': Base.extend({
    resources: z
      .array(
        z.object({
          id: z.string().min(1).max(2048),
          name: z.string().max(2048).optional(),
          type: z.string().min(1).max(64),
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
    already_granted: z.boolean().optional(),
  }),
  'revoke-access': Base.extend({
    already_revoked: z.boolean().optional(),
    sessions_terminated: z.number().int().nonnegative().optional(),
  }),
  'create-credentials': Base.extend({
    username: z.string().max(256).optional(),
    credentials: Credentials.optional(),
  }),
  'reset-credentials': Base.extend({
    username: z.string().max(256).optional(),
    credentials: Credentials.optional(),
  }),
  'delete-credentials': Base.extend({
    deleted: z.boolean().optional(),
    reason: z.string().max(2000).optional(),
  }),
} as const satisfies Record<EventType, z.ZodType>;

export type AnswerOf<E extends EventType> = z.infer<(typeof ANSWER_SCHEMAS)[E]>;

/** The error a function returns with FunctionError set (Lambda's own shape). */
export const FunctionErrorSchema = z.object({
  errorType: z.string().max(256).optional(),
  errorMessage: z.string().optional(),
});
