/**
 * `aws-lambda`: custom integrations. The connector invokes the customer's function with
 * `{event_type, params}` and validates every answer. Only a function tagged
 * `<tagPrefix>-connector-access=true` is ever invoked. See docs/drivers/aws-lambda.md.
 */
import { InvokeCommand, LambdaClient, ListTagsCommand } from '@aws-sdk/client-lambda';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { z } from 'zod';
import { LatchkeyError, type ErrorCode } from '../../errors.js';
import { awsSend } from '../../aws/call.js';
import { describeIssues, targetOf } from '../../aws/config.js';
import type {
  CheckOutput,
  CleanupOutput,
  CleanupParams,
  Credentials,
  DiscoverOutput,
  GrantOutput,
  GrantParams,
  RevokeOutput,
  RevokeParams,
  RotateOutput,
  RotateParams,
} from '../../protocol/messages.js';
import type { CallContext, Driver, DriverServices } from '../driver.js';
import { JsonTooDeepError, parseJsonBounded } from '../../protocol/json-depth.js';
import {
  functionArnOf,
  parseLambdaConfig,
  unqualifiedArn,
  type AwsLambdaConfig,
} from './config.js';
import {
  checkOrganization,
  discoverOrganization,
  grantOrganization,
  revokeOrganization,
} from './organization.js';
import { OrgScopeCache } from '../../aws/org-scope.js';
import {
  ANSWER_SCHEMAS,
  CREDENTIAL_EVENTS,
  FunctionErrorSchema,
  REMOTE_ERROR_CODES,
  answerCredentials,
  unreadCredentialFields,
  type AnswerOf,
  type EventType,
} from './protocol.js';

function short(text: string, max = 300): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 3)}...` : one;
}

/** The username sent to the function for a grantee: the lower-cased email. */
/** An error that comes from the function's answer (not from AWS). */
function remoteError(code: ErrorCode, message: string, eventType: EventType): LatchkeyError {
  return new LatchkeyError(code, message, { details: { eventType, remote: true } });
}

/** Rotate and cleanup name no resource, so no account: one integration per account serves them. */
function refuseInOrganization(cfg: AwsLambdaConfig, kind: string): void {
  if (cfg.organization === undefined) return;
  throw new LatchkeyError(
    'E_UNSUPPORTED',
    `aws-lambda in organization mode cannot ${kind}: it names no resource, so no account; use a single-account integration of that account's function`,
  );
}

export function usernameFor(email: string): string {
  return email.trim().toLowerCase();
}

export class AwsLambdaDriver implements Driver {
  readonly type = 'aws-lambda';
  readonly kinds = ['discover', 'grant', 'revoke', 'rotate', 'cleanup', 'check'] as const;
  /** Functions found tagged for the connector, with the time the check stops being trusted. */
  private readonly allowed = new Map<string, number>();
  /** ARNs of functions configured by name, by `name|region|role`. */
  private readonly arns = new Map<string, string>();
  readonly orgCache = new OrgScopeCache();

  constructor(readonly services: DriverServices) {}

  private client(cfg: AwsLambdaConfig): LambdaClient {
    return this.services.aws.client(LambdaClient, targetOf(cfg));
  }

  private get tagKey(): string {
    return `${this.services.tagPrefix}-connector-access`;
  }

  /**
   * The ARN of the configured function: `functionArn`, or for `functionName` the function
   * of that name in `region` of the account whose credentials the connector uses (the
   * account of `assumeRoleArn` when set), found once with `sts:GetCallerIdentity`.
   */
  async functionArn(cfg: AwsLambdaConfig, signal: AbortSignal): Promise<string> {
    if (cfg.functionArn !== undefined) return cfg.functionArn;
    const name = cfg.functionName ?? '';
    const key = `${name}|${cfg.region}|${cfg.assumeRoleArn ?? ''}`;
    const known = this.arns.get(key);
    if (known !== undefined) return known;
    const id = await awsSend({ service: 'sts', operation: 'GetCallerIdentity', signal }, (o) =>
      this.services.aws.client(STSClient, targetOf(cfg)).send(new GetCallerIdentityCommand({}), o),
    );
    const partition = /^arn:(aws[a-z-]*):/.exec(id.Arn ?? '')?.[1] ?? 'aws';
    if (id.Account === undefined || !/^\d{12}$/.test(id.Account)) {
      throw new LatchkeyError('E_INTERNAL', 'STS GetCallerIdentity returned no account');
    }
    const arn = functionArnOf(partition, cfg.region, id.Account, name);
    this.arns.set(key, arn);
    return arn;
  }

  /**
   * Refuse (E_PRIVILEGE) unless the function carries `<prefix>-connector-access=true`.
   * A positive answer is cached for `tagCacheSeconds`; a negative one never is.
   */
  async assertInvocable(cfg: AwsLambdaConfig, signal: AbortSignal): Promise<string> {
    const functionArn = await this.functionArn(cfg, signal);
    const key = `${functionArn}|${cfg.assumeRoleArn ?? ''}`;
    const now = this.services.now().getTime();
    const until = this.allowed.get(key);
    if (until !== undefined && until > now) return functionArn;
    this.allowed.delete(key);
    const resource = unqualifiedArn(functionArn);
    const out = await awsSend({ service: 'lambda', operation: 'ListTags', resource, signal }, (o) =>
      this.client(cfg).send(new ListTagsCommand({ Resource: resource }), o),
    );
    const value = out.Tags?.[this.tagKey];
    if (value?.toLowerCase() !== 'true') {
      throw new LatchkeyError(
        'E_PRIVILEGE',
        `function ${functionArn} is not tagged ${this.tagKey}=true (${value === undefined ? 'tag missing' : `tag is '${short(value, 40)}'`}); the connector only invokes functions so tagged`,
      );
    }
    if (cfg.tagCacheSeconds > 0) this.allowed.set(key, now + cfg.tagCacheSeconds * 1000);
    return functionArn;
  }

  /** Invoke the function with one event and return its validated answer. */
  async invoke<E extends EventType>(
    ctx: CallContext,
    cfg: AwsLambdaConfig,
    eventType: E,
    params: Record<string, unknown>,
  ): Promise<AnswerOf<E>> {
    const fn = await this.assertInvocable(cfg, ctx.signal);
    const payload = JSON.stringify({
      event_type: eventType,
      params: { ...params, request_id: ctx.commandId, custom_parameters: cfg.customParameters },
    });
    const out = await awsSend(
      {
        service: 'lambda',
        operation: 'Invoke',
        action: 'lambda:InvokeFunction',
        resource: fn,
        signal: ctx.signal,
      },
      (o) =>
        this.client(cfg).send(
          new InvokeCommand({
            FunctionName: fn,
            InvocationType: 'RequestResponse',
            Payload: new TextEncoder().encode(payload),
          }),
          o,
        ),
    );
    const bytes = out.Payload ? Buffer.from(out.Payload) : Buffer.alloc(0);
    if (bytes.length > cfg.maxResponseBytes) {
      throw remoteError(
        'E_REMOTE',
        `function ${fn} answered ${eventType} with ${bytes.length} bytes, over the ${cfg.maxResponseBytes}-byte limit`,
        eventType,
      );
    }
    const text = bytes.toString('utf8');
    if (out.FunctionError) {
      let detail = '';
      try {
        const e = FunctionErrorSchema.safeParse(parseJsonBounded(text));
        if (e.success)
          detail = `: ${e.data.errorType ?? 'Error'}: ${short(e.data.errorMessage ?? '', 200)}`;
      } catch {
        // not JSON: keep only the kind of failure
      }
      throw remoteError(
        'E_REMOTE',
        `function ${fn} failed on ${eventType} (${short(out.FunctionError, 40)})${detail}`,
        eventType,
      );
    }
    if (out.StatusCode !== undefined && out.StatusCode !== 200) {
      throw remoteError(
        'E_REMOTE',
        `function ${fn} answered ${eventType} with status ${out.StatusCode}`,
        eventType,
      );
    }
    let json: unknown;
    try {
      json = parseJsonBounded(text);
    } catch (err) {
      if (err instanceof JsonTooDeepError) {
        throw remoteError(
          'E_REMOTE',
          `function ${fn} answered ${eventType} with JSON nested deeper than ${err.maxDepth} levels`,
          eventType,
        );
      }
      throw remoteError(
        'E_REMOTE',
        `function ${fn} answered ${eventType} with something that is not JSON`,
        eventType,
      );
    }
    const parsed = (ANSWER_SCHEMAS[eventType] as z.ZodType).safeParse(json);
    if (!parsed.success) {
      throw remoteError(
        'E_REMOTE',
        `function ${fn} answered ${eventType} outside the contract: ${short(describeIssues(parsed.error), 500)}`,
        eventType,
      );
    }
    const answer = parsed.data as AnswerOf<E>;
    if (CREDENTIAL_EVENTS.has(eventType) && answer.status !== 'error') {
      const unread = unreadCredentialFields(json);
      if (unread.length > 0) {
        throw remoteError(
          'E_REMOTE',
          `function ${fn} answered ${eventType} with credentials in ${unread.map((f) => `'${short(f, 64)}'`).join(', ')}, which the contract does not read; return them in 'secret' (a string or a string map) or 'credentials' (a string map)`,
          eventType,
        );
      }
    }
    if (answer.status === 'error') {
      const code: ErrorCode = (REMOTE_ERROR_CODES as readonly string[]).includes(
        answer.error_code ?? '',
      )
        ? (answer.error_code as ErrorCode)
        : 'E_REMOTE';
      throw remoteError(
        code,
        `function ${fn} reported an error on ${eventType}: ${short(answer.message ?? 'no message')}`,
        eventType,
      );
    }
    return answer;
  }

  private seal(
    recipientKey: string | undefined,
    creds: Record<string, string> | undefined,
  ): Credentials | undefined {
    if (creds === undefined || Object.keys(creds).length === 0) return undefined;
    return this.services.sealer.seal(recipientKey, creds);
  }

  /** `credentials` and `secret` of an answer, merged; the same name with two values is an error. */
  private credentialsOf(
    fn: string,
    eventType: EventType,
    answer: Parameters<typeof answerCredentials>[0],
  ): Record<string, string> {
    const { credentials, conflicts } = answerCredentials(answer);
    if (conflicts.length > 0) {
      throw remoteError(
        'E_REMOTE',
        `function ${fn} answered ${eventType} with two different values of ${conflicts.map((c) => `'${short(c, 64)}'`).join(', ')} in 'credentials' and 'secret'`,
        eventType,
      );
    }
    return credentials;
  }

  private grantPayload(params: GrantParams | RevokeParams) {
    const types = [...new Set(params.resources.map((r) => r.type))];
    if (types.length > 1) {
      throw new LatchkeyError(
        'E_INVALID',
        `a custom-integration grant covers one resource type, got ${types.join(', ')}`,
      );
    }
    return {
      grant_id: params.grantId,
      username: usernameFor(params.grantee.email),
      email: params.grantee.email,
      resource_type: types[0] ?? null,
      resources: params.resources.map((r) => r.id),
      permission: params.permission,
    };
  }

  async grant(ctx: CallContext, params: GrantParams): Promise<GrantOutput> {
    const cfg = parseLambdaConfig(ctx.integration.config);
    if (cfg.organization) return grantOrganization(this, ctx, cfg, params);
    return this.grantWith(ctx, cfg, params);
  }

  /** A grant through one function (in organization mode: the account's own). */
  async grantWith(
    ctx: CallContext,
    cfg: AwsLambdaConfig,
    params: GrantParams,
  ): Promise<GrantOutput> {
    const base = {
      ...this.grantPayload(params),
      ...(params.expiresAt ? { expires_at: params.expiresAt } : {}),
    };
    const created = await this.invoke(ctx, cfg, 'create-credentials', {
      username: base.username,
      email: base.email,
      grant_id: base.grant_id,
      resource_type: base.resource_type,
    });
    const fn = await this.functionArn(cfg, ctx.signal);
    const createdCreds = this.credentialsOf(fn, 'create-credentials', created);
    const granted = await this.invoke(ctx, cfg, 'grant-access', {
      ...base,
      username: created.username ?? base.username,
    });
    const creds = { ...createdCreds, ...this.credentialsOf(fn, 'grant-access', granted) };
    const credentials = this.seal(params.recipientKey, creds);
    return {
      username: granted.username ?? created.username ?? base.username,
      access: { functionArn: fn, ...(granted.access ?? {}) },
      ...(credentials ? { credentials } : {}),
      alreadyGranted: granted.already_granted ?? false,
      ...(params.expiresAt ? { expiresAt: params.expiresAt } : {}),
    };
  }

  async revoke(ctx: CallContext, params: RevokeParams): Promise<RevokeOutput> {
    const cfg = parseLambdaConfig(ctx.integration.config);
    if (cfg.organization) return revokeOrganization(this, ctx, cfg, params);
    return this.revokeWith(ctx, cfg, params);
  }

  /** A revoke through one function (in organization mode: the account's own). */
  async revokeWith(
    ctx: CallContext,
    cfg: AwsLambdaConfig,
    params: RevokeParams,
  ): Promise<RevokeOutput> {
    const base = this.grantPayload(params);
    try {
      const out = await this.invoke(ctx, cfg, 'revoke-access', {
        ...base,
        terminate_sessions: params.terminateSessions ?? true,
      });
      const already = out.already_revoked ?? false;
      return {
        username: base.username,
        revoked: already ? [] : [params.grantId],
        phases: [{ phase: 'revoke-access', status: already ? 'skipped' : 'done' }],
        sessionsTerminated: out.sessions_terminated ?? 0,
        alreadyRevoked: already,
      };
    } catch (err) {
      if (
        err instanceof LatchkeyError &&
        err.code === 'E_NOT_FOUND' &&
        err.details?.remote === true
      ) {
        return {
          username: base.username,
          revoked: [],
          phases: [
            { phase: 'revoke-access', status: 'skipped', detail: 'not found by the function' },
          ],
          sessionsTerminated: 0,
          alreadyRevoked: true,
        };
      }
      throw err;
    }
  }

  async rotate(ctx: CallContext, params: RotateParams): Promise<RotateOutput> {
    const cfg = parseLambdaConfig(ctx.integration.config);
    refuseInOrganization(cfg, 'rotate');
    if (!('grantee' in params.target)) {
      throw new LatchkeyError('E_UNSUPPORTED', 'aws-lambda has no service account to rotate');
    }
    const username = usernameFor(params.target.grantee.email);
    const out = await this.invoke(ctx, cfg, 'reset-credentials', {
      username,
      email: params.target.grantee.email,
      resource_type: cfg.resourceType,
    });
    const fn = await this.functionArn(cfg, ctx.signal);
    const creds = this.credentialsOf(fn, 'reset-credentials', out);
    if (Object.keys(creds).length === 0) {
      throw remoteError(
        'E_REMOTE',
        `function ${fn} answered reset-credentials without credentials (no 'secret' or 'credentials')`,
        'reset-credentials',
      );
    }
    const credentials = this.seal(params.recipientKey, creds);
    return {
      username: out.username ?? username,
      ...(credentials ? { credentials } : {}),
      phases: [{ phase: 'reset-credentials', status: 'done' }],
    };
  }

  async cleanup(ctx: CallContext, params: CleanupParams): Promise<CleanupOutput> {
    const cfg = parseLambdaConfig(ctx.integration.config);
    refuseInOrganization(cfg, 'cleanup');
    await this.assertInvocable(cfg, ctx.signal);
    const result: CleanupOutput = { dropped: [], kept: [] };
    for (const username of params.usernames) {
      try {
        const out = await this.invoke(ctx, cfg, 'delete-credentials', { username });
        if (out.deleted === false) {
          result.kept.push({
            username,
            reason: out.reason ?? 'kept by the function',
            code: 'E_NOT_MANAGED',
          });
        } else {
          result.dropped.push(username);
        }
      } catch (err) {
        if (
          !(err instanceof LatchkeyError) ||
          err.code === 'E_CANCELLED' ||
          err.details?.remote !== true
        )
          throw err;
        result.kept.push({ username, reason: err.message, code: err.code });
      }
    }
    return result;
  }

  async discover(ctx: CallContext): Promise<DiscoverOutput> {
    const cfg = parseLambdaConfig(ctx.integration.config);
    if (cfg.organization) return discoverOrganization(this, ctx, cfg);
    return this.discoverWith(ctx, cfg);
  }

  /** list-resources of one function (in organization mode: one account and region). */
  async discoverWith(ctx: CallContext, cfg: AwsLambdaConfig): Promise<DiscoverOutput> {
    const out = await this.invoke(ctx, cfg, 'list-resources', {
      resource_type: cfg.resourceType,
    });
    return {
      resources: out.resources.map((r) => ({
        id: r.id,
        name: r.name ?? r.id,
        type: r.type ?? cfg.resourceType,
        ...(r.parent_id !== undefined ? { parentId: r.parent_id } : {}),
        metadata: r.metadata ?? {},
      })),
      permissions: out.permissions.map((p) => ({ id: p.id, name: p.name ?? p.id })),
      warnings: [],
    };
  }

  async check(ctx: CallContext): Promise<CheckOutput> {
    const cfg = parseLambdaConfig(ctx.integration.config);
    const checks: CheckOutput['checks'] = [];
    try {
      await this.assertInvocable(cfg, ctx.signal);
      checks.push({ name: 'function-tag', ok: true, detail: `${this.tagKey}=true` });
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
      checks.push({
        name: 'function-tag',
        ok: false,
        detail: err instanceof LatchkeyError ? err.message : 'internal error',
      });
      return { ok: false, checks };
    }
    try {
      const out = await this.invoke(ctx, cfg, 'get-status', {});
      checks.push({ name: 'get-status', ok: true, detail: out.message ?? out.status ?? 'ok' });
      if (cfg.organization) await checkOrganization(this, cfg, checks, ctx.signal);
      return {
        ok: checks.every((c) => c.ok),
        ...(out.version ? { serverVersion: out.version } : {}),
        checks,
      };
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
      checks.push({
        name: 'get-status',
        ok: false,
        detail: err instanceof LatchkeyError ? err.message : 'internal error',
      });
      return { ok: false, checks };
    }
  }

  close(): Promise<void> {
    this.allowed.clear();
    this.arns.clear();
    return Promise.resolve();
  }
}
