/**
 * The engine-neutral SQL access flows: grant, revoke, rotate, cleanup, sweep, over a
 * `SqlDialect` and a `SqlScope`. Drivers (postgres, redshift, mysql) build the scope
 * (connections, service account) and call these; they never re-implement the flows.
 *
 * Every flow:
 * - validates everything (username, grant role name, permission, resources) before the
 *   first change;
 * - changes a user only under the engine lock on its username (`withUserLock`);
 * - treats "already granted" and "already revoked" as success;
 * - maps native errors once, through `dialect.mapError`.
 */
import { LatchkeyError, isLatchkeyError } from '../../errors.js';
import type { CredentialSealer } from '../driver.js';
import type {
  CleanupOutput,
  Credentials,
  GrantOutput,
  GrantParams,
  Phase,
  RevokeOutput,
  RotateOutput,
} from '../../protocol/messages.js';
import type { GrantRecord, SqlDialect, SqlScope } from './dialect.js';
import { generatePassword } from './password.js';
import { databasesOf, parsePermission, parseResource, validateGrantShape } from './resources.js';
import { deriveUsername, grantRoleName } from './username.js';

/** Options of the core flows, fixed per integration. */
export interface SqlCoreOptions {
  dialect: SqlDialect;
  /** IAM database authentication: users get no password (`rds_iam` membership instead). */
  iamAuth: boolean;
  /** What cleanup does with objects a user owns. */
  ownedObjects: 'reassign' | 'drop';
  sealer: CredentialSealer;
  now: () => Date;
  /** How grantees reach the target (host, port, …), merged into `GrantOutput.access`. */
  access: { host: string; port: number; defaultDatabase?: string } & Record<
    string,
    string | number | undefined
  >;
}

/** Runs `fn`, turning any native error into a LatchkeyError (once) and honouring the signal. */
export async function mapped<T>(
  dialect: SqlDialect,
  signal: AbortSignal,
  fn: () => Promise<T>,
): Promise<T> {
  throwIfAborted(signal);
  try {
    return await fn();
  } catch (err) {
    if (signal.aborted && !isLatchkeyError(err)) throw abortError(signal);
    throw isLatchkeyError(err) ? err : dialect.mapError(err);
  }
}

export function abortError(signal: AbortSignal): LatchkeyError {
  const reason: unknown = signal.reason;
  if (isLatchkeyError(reason)) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new LatchkeyError('E_TIMEOUT', 'deadline exceeded', { cause: reason });
  }
  return new LatchkeyError('E_CANCELLED', 'cancelled', { cause: reason });
}

/**
 * Races a driver call with the call's AbortSignal. `onAbort` runs once when the signal
 * wins (end the connection, cancel the statement); the losing call's later rejection is
 * swallowed.
 */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal, onAbort: () => void): Promise<T> {
  if (signal.aborted) {
    onAbort();
    p.catch(() => undefined);
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const listener = (): void => {
      onAbort();
      p.catch(() => undefined);
      reject(abortError(signal));
    };
    signal.addEventListener('abort', listener, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', listener);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', listener);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortError(signal);
}

export function usernameFor(opts: SqlCoreOptions, scope: SqlScope, email: string): string {
  return deriveUsername(email, { prefix: scope.prefix, maxLength: opts.dialect.maxUsernameLength });
}

/** The login's expiry: the latest expiry among live grants, or null when one has none. */
export function loginExpiry(grants: readonly GrantRecord[]): Date | null {
  let latest: Date | null = null;
  for (const g of grants) {
    if (g.expiresAt === undefined) return null;
    const d = new Date(g.expiresAt);
    if (latest === null || d > latest) latest = d;
  }
  return latest;
}

async function applyLoginExpiry(
  opts: SqlCoreOptions,
  scope: SqlScope,
  username: string,
): Promise<void> {
  const { dialect } = opts;
  if (!dialect.setLoginExpiry) return;
  const grants = await dialect.listGrantRoles(scope, { username });
  if (grants.length === 0) return;
  await dialect.setLoginExpiry(scope, username, loginExpiry(grants));
}

function seal(
  opts: SqlCoreOptions,
  recipientKey: string | undefined,
  fields: Record<string, string>,
): Credentials {
  return opts.sealer.seal(recipientKey, fields);
}

// ---------------------------------------------------------------------------------------
// grant

/**
 * Grants `params` to its grantee. Safe to re-run after a crash at any point: the dialect
 * creates a user and its marker atomically (or marks first and reports a half-created
 * user `incomplete`, finished here), every other step is idempotent, and each password
 * change records the grant whose result carries it (`passwordIssuedFor`). A re-run of the
 * grant the current password was issued for cannot know whether the earlier result was
 * delivered, so it issues a fresh password in this result (the earlier one stops
 * working). See docs/drivers/sql-access-model.md, "A crash in the middle of a grant".
 */
export async function grantFlow(
  opts: SqlCoreOptions,
  scope: SqlScope,
  params: GrantParams,
): Promise<GrantOutput> {
  const { dialect } = opts;
  return mapped(dialect, scope.signal, async () => {
    const permission = parsePermission(params.permission);
    const resources = validateGrantShape(
      permission,
      params.resources.map((r) => parseResource(r, dialect.hasSchemas)),
    );
    const username = usernameFor(opts, scope, params.grantee.email);
    const role = grantRoleName(params.grantId, {
      prefix: scope.prefix,
      maxLength: dialect.maxUsernameLength,
    });
    if (username === scope.serviceAccount) {
      throw new LatchkeyError('E_GUARDRAIL', 'the grantee maps to the service account');
    }
    let expiresAt: string | undefined;
    if (params.expiresAt !== undefined) {
      const d = new Date(params.expiresAt);
      if (d.getTime() <= opts.now().getTime())
        throw new LatchkeyError('E_INVALID', 'expiresAt is in the past');
      expiresAt = d.toISOString();
    }
    const record: GrantRecord = {
      grantId: params.grantId,
      role,
      username,
      permission,
      resources,
      ...(expiresAt === undefined ? {} : { expiresAt }),
    };
    await dialect.validateGrant(scope, record);
    const outside = databasesOf(resources).filter(
      (d) => scope.databases && !scope.databases.includes(d),
    );
    if (outside.length > 0) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `database ${JSON.stringify(outside[0])} is not among the databases this integration may touch`,
      );
    }
    // Without a recipient key, find out before any change whether plaintext is allowed
    // (cheap: no crypto). A key that cannot be sealed to fails inside the lock below and
    // what this call created is undone.
    if (!opts.iamAuth && params.recipientKey === undefined)
      opts.sealer.seal(undefined, { check: 'x' });
    const database = databasesOf(resources)[0] ?? opts.access.defaultDatabase;
    const credentialsFor = (password: string): Credentials => {
      const fields: Record<string, string> = {
        username,
        password,
        host: opts.access.host,
        port: String(opts.access.port),
      };
      if (database !== undefined) fields.database = database;
      return seal(opts, params.recipientKey, fields);
    };

    const outcome = await dialect.withUserLock(scope, username, async () => {
      let password: string | null = null;
      let createdUser = false;
      let expirySet = false;
      // The user and the grant role in one round trip where the dialect can.
      const read = await dialect.readUserAndGrant?.(scope, username, role, { grants: false });
      const user = read ? read.user : await dialect.getUser(scope, username);
      if (user === null || user.incomplete === true) {
        // A new user, or one whose creation a crash interrupted (never delivered): create
        // or finish it, recording that this grant's result carries the password.
        password = opts.iamAuth ? null : generatePassword();
        // A user that did not exist, for a grant whose role does not exist either (read
        // together): this grant will be its only one, so its login expires with it.
        const onlyGrant = read !== undefined && user === null && !read.role.exists;
        expirySet =
          (await dialect.createUser(scope, {
            username,
            password,
            iamAuth: opts.iamAuth,
            issuedFor: opts.iamAuth ? null : params.grantId,
            known: user,
            ...(onlyGrant ? { loginExpiry: loginExpiry([record]) } : {}),
          })) === true;
        createdUser = true;
      } else if (!user.managed) {
        throw new LatchkeyError(
          'E_NOT_MANAGED',
          `user ${username} exists but was not created by Latchkey`,
        );
      }
      let createdRole = false;
      try {
        // Read before createUser when combined: creating the user changes no grant role.
        const state = read ? read.role : await dialect.getGrantRole(scope, role);
        if (state.exists && !state.managed) {
          throw new LatchkeyError(
            'E_NOT_MANAGED',
            `role ${role} exists but was not created by Latchkey`,
          );
        }
        if (state.exists && state.record.username !== username) {
          throw new LatchkeyError(
            'E_INVALID',
            `grant ${params.grantId} already belongs to another grantee`,
          );
        }
        const alreadyGranted = state.exists;
        if (!state.exists) {
          await dialect.createGrantRole(scope, record);
          createdRole = true;
        } else if (state.record.expiresAt !== record.expiresAt) {
          await dialect.updateGrantRecord(scope, { ...state.record, ...pickExpiry(record) });
        }
        const privileges = state.exists ? { ...state.record, ...pickExpiry(record) } : record;
        if (dialect.grantPrivilegesAndRole) {
          await dialect.grantPrivilegesAndRole(scope, privileges, record);
        } else {
          await dialect.grantPrivileges(scope, privileges);
          await dialect.grantRoleToUser(scope, record);
        }
        if (!createdUser && user !== null && !user.canLogin) {
          // No live grant before this one: fresh password, then let the login back in.
          if (!opts.iamAuth) {
            password = generatePassword();
            await dialect.setPassword(scope, username, password, params.grantId);
          }
          await dialect.setLogin(scope, username, true);
        } else if (!createdUser && !opts.iamAuth && user?.passwordIssuedFor === params.grantId) {
          // The current password was issued for this very grant: this is a re-delivery (or a
          // re-run after a crash) of a grant whose result may never have reached anyone.
          // Returning nothing would leave a user nobody can log in as: issue a fresh
          // password in this result instead (the earlier one stops working).
          password = generatePassword();
          await dialect.setPassword(scope, username, password, params.grantId);
        }
        if (user === null && createdRole) {
          // A user this call created holds no grant but this new one (it did not exist, so
          // no role was granted to it): the login expires with this grant, no list needed.
          if (!expirySet) await dialect.setLoginExpiry?.(scope, username, loginExpiry([record]));
        } else {
          await applyLoginExpiry(opts, scope, username);
        }
        const credentials = password === null ? undefined : credentialsFor(password);
        return { credentials, alreadyGranted };
      } catch (err) {
        // Never half-applied: undo what this call created, then report the first error.
        if (createdRole) await dialect.revokePrivileges(scope, record).catch(() => undefined);
        if (createdRole) await dialect.dropGrantRole(scope, record).catch(() => undefined);
        if (createdUser) {
          await dialect.dropUser(scope, username, { ownedObjects: 'drop' }).catch(() => undefined);
        }
        throw err;
      }
    });

    const access: Record<string, unknown> = { ...stripUndefined(opts.access), username };
    delete access.defaultDatabase;
    if (database !== undefined) access.database = database;
    access.authType = opts.iamAuth ? 'iam-auth' : 'user-password';
    const out: GrantOutput = { username, access, alreadyGranted: outcome.alreadyGranted };
    if (expiresAt !== undefined) out.expiresAt = expiresAt;
    if (outcome.credentials !== undefined) out.credentials = outcome.credentials;
    return out;
  });
}

function pickExpiry(record: GrantRecord): Pick<GrantRecord, 'expiresAt'> {
  return { expiresAt: record.expiresAt };
}

function stripUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

// ---------------------------------------------------------------------------------------
// revoke

export interface RevokeTarget {
  grantId: string;
  username: string;
  /** End the user's open sessions (default true). */
  terminateSessions?: boolean;
}

/** Revoke by email (the protocol's revoke). */
export async function revokeFlow(
  opts: SqlCoreOptions,
  scope: SqlScope,
  params: { grantId: string; grantee: { email: string }; terminateSessions?: boolean },
): Promise<RevokeOutput> {
  const username = mapSync(opts, () => usernameFor(opts, scope, params.grantee.email));
  return revokeByUsername(opts, scope, {
    grantId: params.grantId,
    username,
    ...(params.terminateSessions === undefined
      ? {}
      : { terminateSessions: params.terminateSessions }),
  });
}

function mapSync<T>(opts: SqlCoreOptions, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw isLatchkeyError(err) ? err : opts.dialect.mapError(err);
  }
}

/**
 * Revoke in phases, each reported:
 * 1. `lock-login`: when no other grant is left, block new logins (committed at once);
 *    otherwise recompute the login expiry over the remaining grants;
 * 2. `terminate-sessions`: end the user's open sessions;
 * 3. `drop-grant-role`: take back the grant's privileges and drop its role.
 */
export async function revokeByUsername(
  opts: SqlCoreOptions,
  scope: SqlScope,
  target: RevokeTarget,
): Promise<RevokeOutput> {
  const { dialect } = opts;
  return mapped(dialect, scope.signal, async () => {
    const { username, grantId } = target;
    const role = grantRoleName(grantId, {
      prefix: scope.prefix,
      maxLength: dialect.maxUsernameLength,
    });
    if (username === scope.serviceAccount) {
      throw new LatchkeyError('E_NOT_MANAGED', 'the service account is never revoked');
    }
    const phases: Phase[] = [];

    const first = await dialect.withUserLock(scope, username, async () => {
      // The user, the grant role and the user's grants in one round trip where the dialect can.
      const read = await dialect.readUserAndGrant?.(scope, username, role, { grants: true });
      const user = read ? read.user : await dialect.getUser(scope, username);
      if (user !== null && !user.managed) {
        throw new LatchkeyError('E_NOT_MANAGED', `user ${username} was not created by Latchkey`);
      }
      const state = read ? read.role : await dialect.getGrantRole(scope, role);
      if (state.exists && !state.managed) {
        throw new LatchkeyError('E_NOT_MANAGED', `role ${role} was not created by Latchkey`);
      }
      if (state.exists && state.record.username !== username) {
        throw new LatchkeyError('E_INVALID', `grant ${grantId} belongs to another grantee`);
      }
      const remaining =
        user === null
          ? []
          : (read?.grants ?? (await dialect.listGrantRoles(scope, { username }))).filter(
              (g) => g.role !== role,
            );
      if (user !== null && remaining.length === 0) {
        if (user.canLogin) {
          await dialect.setLogin(scope, username, false);
          phases.push({
            phase: 'lock-login',
            status: 'done',
            detail: 'no grant left: new logins blocked',
          });
        } else {
          phases.push({ phase: 'lock-login', status: 'skipped', detail: 'login already blocked' });
        }
      } else if (user !== null) {
        if (dialect.setLoginExpiry)
          await dialect.setLoginExpiry(scope, username, loginExpiry(remaining));
        phases.push({
          phase: 'lock-login',
          status: 'skipped',
          detail: `${remaining.length} other grant(s) keep the login`,
        });
      } else {
        phases.push({ phase: 'lock-login', status: 'skipped', detail: 'user does not exist' });
      }
      return { record: state.exists ? state.record : null, userExists: user !== null };
    });

    let sessionsTerminated = 0;
    if (!first.userExists) {
      phases.push({
        phase: 'terminate-sessions',
        status: 'skipped',
        detail: 'user does not exist',
      });
    } else if (target.terminateSessions === false) {
      phases.push({ phase: 'terminate-sessions', status: 'skipped', detail: 'not requested' });
    } else {
      try {
        sessionsTerminated = await dialect.terminateSessions(scope, username);
        phases.push({
          phase: 'terminate-sessions',
          status: 'done',
          detail: `${sessionsTerminated} session(s) ended`,
        });
      } catch (err) {
        const e = isLatchkeyError(err) ? err : dialect.mapError(err);
        if (scope.signal.aborted) throw abortError(scope.signal);
        phases.push({
          phase: 'terminate-sessions',
          status: 'failed',
          detail: `${e.code}: ${e.message}`,
        });
      }
    }

    if (first.record === null) {
      phases.push({
        phase: 'drop-grant-role',
        status: 'skipped',
        detail: 'grant role already gone',
      });
      return { username, revoked: [], phases, sessionsTerminated, alreadyRevoked: true };
    }
    const record = first.record;
    const lateLock = await dialect.withUserLock(scope, username, async () => {
      // Under the user lock nothing else changes the user: where the dialect reads both in
      // one round trip, the user read here is the one after the drop below.
      const read = await dialect.readUserAndGrant?.(scope, username, role, { grants: false });
      const again = read ? read.role : await dialect.getGrantRole(scope, role);
      if (again.exists) {
        if (dialect.revokeAndDropGrantRole) {
          await dialect.revokeAndDropGrantRole(scope, record);
        } else {
          await dialect.revokePrivileges(scope, record);
          await dialect.dropGrantRole(scope, record);
        }
      }
      // A concurrent revoke of the user's other grant may have seen this one still live
      // in its first phase: whoever drops the last grant role makes sure the login is locked.
      const user = read ? read.user : await dialect.getUser(scope, username);
      if (user?.managed !== true || !user.canLogin) return false;
      if ((await dialect.listGrantRoles(scope, { username })).length > 0) return false;
      await dialect.setLogin(scope, username, false);
      return true;
    });
    phases.push({ phase: 'drop-grant-role', status: 'done', detail: `role ${role} dropped` });
    if (lateLock) {
      phases.push({
        phase: 'lock-login',
        status: 'done',
        detail: 'last grant gone: new logins blocked',
      });
      if (target.terminateSessions !== false) {
        const n = await dialect.terminateSessions(scope, username);
        sessionsTerminated += n;
        phases.push({
          phase: 'terminate-sessions',
          status: 'done',
          detail: `${n} session(s) ended`,
        });
      }
    }
    return { username, revoked: [grantId], phases, sessionsTerminated, alreadyRevoked: false };
  });
}

// ---------------------------------------------------------------------------------------
// rotate (grantee)

export async function rotateGranteeFlow(
  opts: SqlCoreOptions,
  scope: SqlScope,
  params: { email: string; recipientKey?: string },
): Promise<RotateOutput> {
  const { dialect } = opts;
  return mapped(dialect, scope.signal, async () => {
    if (opts.iamAuth) {
      throw new LatchkeyError(
        'E_UNSUPPORTED',
        'users of an IAM-auth integration have no password to rotate',
      );
    }
    const username = usernameFor(opts, scope, params.email);
    if (username === scope.serviceAccount) {
      throw new LatchkeyError(
        'E_NOT_MANAGED',
        'rotate the service account with target serviceAccount',
      );
    }
    if (params.recipientKey === undefined) opts.sealer.seal(undefined, { check: 'x' });
    const password = generatePassword();
    await dialect.withUserLock(scope, username, async () => {
      const user = await dialect.getUser(scope, username);
      if (user === null) throw new LatchkeyError('E_NOT_FOUND', `user ${username} does not exist`);
      if (!user.managed)
        throw new LatchkeyError('E_NOT_MANAGED', `user ${username} was not created by Latchkey`);
      await dialect.setPassword(scope, username, password, null);
    });
    const credentials = seal(opts, params.recipientKey, {
      username,
      password,
      host: opts.access.host,
      port: String(opts.access.port),
    });
    return {
      username,
      credentials,
      phases: [
        {
          phase: 'set-password',
          status: 'done',
          detail: 'new password set; the old one no longer works',
        },
      ],
    };
  });
}

// ---------------------------------------------------------------------------------------
// rotate (service account), two-phase through a secret store

/** Steps of a two-phase service-account rotation, provided by the driver. */
export interface ServiceRotationSteps {
  /** Username of the service account. */
  username: string;
  /** Stores the new password as pending (Secrets Manager `AWSPENDING`). Resolves with an opaque token. */
  putPending(password: string): Promise<string>;
  /** Reads a pending password left by an earlier, interrupted rotation, if any. */
  getPending?(): Promise<{ token: string; password: string } | null>;
  /** Changes the password on the target (`ALTER ROLE … PASSWORD`). */
  setPassword(password: string): Promise<void>;
  /** Opens a fresh connection with the password. @throws when it does not work */
  verifyLogin(password: string): Promise<void>;
  /** Promotes the pending version to current (`AWSCURRENT`). */
  promote(token: string): Promise<void>;
  /** Called after promotion (drop pooled connections with the old password). */
  afterPromote?(): Promise<void>;
}

/**
 * AWSPENDING → set password → verify login → AWSCURRENT. A crash at any step leaves a
 * password that works: before the ALTER, the current secret still works; after it, the
 * pending secret works and a re-run finds and finishes it.
 */
export async function rotateServiceAccountFlow(
  dialect: SqlDialect,
  signal: AbortSignal,
  steps: ServiceRotationSteps,
): Promise<RotateOutput> {
  return mapped(dialect, signal, async () => {
    const phases: Phase[] = [];
    const leftover = steps.getPending ? await steps.getPending() : null;
    let token: string;
    let password: string;
    if (leftover !== null) {
      token = leftover.token;
      password = leftover.password;
      phases.push({
        phase: 'put-pending',
        status: 'skipped',
        detail: 'finishing an interrupted rotation',
      });
    } else {
      password = generatePassword();
      token = await steps.putPending(password);
      phases.push({
        phase: 'put-pending',
        status: 'done',
        detail: 'new password stored as AWSPENDING',
      });
    }
    throwIfAborted(signal);
    await steps.setPassword(password);
    phases.push({ phase: 'set-password', status: 'done' });
    throwIfAborted(signal);
    try {
      await steps.verifyLogin(password);
    } catch (err) {
      throw new LatchkeyError(
        'E_CONNECT',
        'login with the new service-account password failed; AWSCURRENT unchanged',
        {
          cause: err,
        },
      );
    }
    phases.push({ phase: 'verify-login', status: 'done' });
    await steps.promote(token);
    phases.push({ phase: 'promote', status: 'done', detail: 'AWSPENDING promoted to AWSCURRENT' });
    if (steps.afterPromote) await steps.afterPromote();
    return { username: steps.username, phases };
  });
}

// ---------------------------------------------------------------------------------------
// cleanup

export async function cleanupFlow(
  opts: SqlCoreOptions,
  scope: SqlScope,
  params: { usernames: string[] },
): Promise<CleanupOutput> {
  const { dialect } = opts;
  const out: CleanupOutput = { dropped: [], kept: [] };
  for (const username of params.usernames) {
    throwIfAborted(scope.signal);
    if (username === scope.serviceAccount) {
      out.kept.push({
        username,
        reason: 'the service account is never cleaned up',
        code: 'E_NOT_MANAGED',
      });
      continue;
    }
    try {
      const result = await mapped(dialect, scope.signal, () =>
        dialect.withUserLock(scope, username, async () => {
          const user = await dialect.getUser(scope, username);
          if (user === null) return { dropped: true as const };
          if (!user.managed) {
            return {
              dropped: false as const,
              reason: 'not created by Latchkey (no marker)',
              code: 'E_NOT_MANAGED' as const,
            };
          }
          const grants = await dialect.listGrantRoles(scope, { username });
          if (grants.length > 0) {
            return {
              dropped: false as const,
              reason: `${grants.length} live grant(s); revoke them first`,
              code: 'E_GUARDRAIL' as const,
            };
          }
          await dialect.setLogin(scope, username, false);
          await dialect.terminateSessions(scope, username);
          await dialect.dropUser(scope, username, { ownedObjects: opts.ownedObjects });
          return { dropped: true as const };
        }),
      );
      if (result.dropped) out.dropped.push(username);
      else out.kept.push({ username, reason: result.reason, code: result.code });
    } catch (err) {
      const e = isLatchkeyError(err) ? err : dialect.mapError(err);
      if (e.code === 'E_CANCELLED' || e.code === 'E_TIMEOUT') throw e;
      out.kept.push({ username, reason: e.message, code: e.code });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// sweep

export interface SqlSweepReport {
  revoked: string[];
  errors: { item: string; code: string; message: string }[];
}

/** Revokes every managed grant whose expiry has passed. */
export async function sweepFlow(opts: SqlCoreOptions, scope: SqlScope): Promise<SqlSweepReport> {
  const { dialect } = opts;
  const grants = await mapped(dialect, scope.signal, () => dialect.listGrantRoles(scope, {}));
  const now = opts.now().getTime();
  const report: SqlSweepReport = { revoked: [], errors: [] };
  for (const g of grants) {
    if (g.expiresAt === undefined || new Date(g.expiresAt).getTime() > now) continue;
    try {
      const r = await revokeByUsername(opts, scope, { grantId: g.grantId, username: g.username });
      if (!r.alreadyRevoked) report.revoked.push(g.grantId);
    } catch (err) {
      const e = isLatchkeyError(err) ? err : dialect.mapError(err);
      if (e.code === 'E_CANCELLED' || e.code === 'E_TIMEOUT') throw e;
      report.errors.push({ item: g.grantId, code: e.code, message: e.message });
    }
  }
  return report;
}
