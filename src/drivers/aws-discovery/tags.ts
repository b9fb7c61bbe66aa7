/**
 * The tags that put a database under this connector, and their validation.
 *
 * | tag | required | value |
 * |---|---|---|
 * | `<prefix>-connector-id` | yes | this connector's id (`config.connectorId`); another value means "another connector's database" and it is skipped silently |
 * | `auth_type` | yes | `iam-auth` or `user-password` (also read as `<prefix>-auth-type`) |
 * | `<prefix>-secret` | with `user-password` | Secrets Manager secret ARN holding `{username, password}` of the service account |
 * | `<prefix>-username` | no | service-account user for `iam-auth` (default: the master username) |
 * | `<prefix>-database` | no | maintenance database the SQL driver connects to (postgres, redshift) |
 *
 * Pure functions: no AWS calls, so every rule is unit-testable.
 */

export type AuthType = 'iam-auth' | 'user-password';
export const AUTH_TYPES: readonly AuthType[] = ['iam-auth', 'user-password'];

/** AWS tag list (`[{Key, Value}]`) → record. */
export function tagRecord(
  tags: readonly { Key?: string | undefined; Value?: string | undefined }[] | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? '';
  return out;
}

export interface TagKeys {
  connectorId: string;
  authType: string;
  authTypeAlias: string;
  secret: string;
  username: string;
  database: string;
}

export function tagKeys(prefix: string): TagKeys {
  return {
    connectorId: `${prefix}-connector-id`,
    authType: 'auth_type',
    authTypeAlias: `${prefix}-auth-type`,
    secret: `${prefix}-secret`,
    username: `${prefix}-username`,
    database: `${prefix}-database`,
  };
}

export interface SecretArn {
  arn: string;
  region: string;
  accountId: string;
}

const SECRET_ARN =
  /^arn:(aws[a-z-]*):secretsmanager:([a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d):(\d{12}):secret:[\w/+=.@-]{1,512}$/;
const DB_USER = /^[A-Za-z_][A-Za-z0-9_$.@-]{0,62}$/;
const DB_NAME = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;

export function parseSecretArn(value: string): SecretArn | null {
  const m = SECRET_ARN.exec(value.trim());
  if (!m?.[2] || !m[3]) return null;
  return { arn: value.trim(), region: m[2], accountId: m[3] };
}

/** What the tags of one database say. */
export type TagVerdict =
  /** Not tagged for this connector (no connector id, or another connector's). */
  | { kind: 'not-ours'; otherConnector?: string }
  /** Meant for this connector but the tags are missing or malformed: one problem each. */
  | { kind: 'invalid'; problems: string[] }
  | {
      kind: 'ours';
      authType: AuthType;
      secret: SecretArn | undefined;
      username: string | undefined;
      database: string | undefined;
    };

/**
 * Read the connector tags of a database.
 *
 * A database without `<prefix>-connector-id` but with other `<prefix>-…` tags is reported
 * as invalid (someone tried to tag it for Latchkey and missed the id); one with no
 * `<prefix>-…` tag at all is simply not ours.
 */
export function readConnectorTags(
  tags: Readonly<Record<string, string>>,
  prefix: string,
  connectorId: string,
): TagVerdict {
  const k = tagKeys(prefix);
  const id = tags[k.connectorId]?.trim();
  if (id === undefined) {
    const ours = Object.keys(tags).filter((key) => key.startsWith(`${prefix}-`));
    if (ours.length === 0) return { kind: 'not-ours' };
    return {
      kind: 'invalid',
      problems: [
        `tag ${k.connectorId} is missing (the database has ${ours.sort().join(', ')}); set it to ${connectorId}`,
      ],
    };
  }
  if (id === '') {
    return {
      kind: 'invalid',
      problems: [`tag ${k.connectorId} is empty; set it to ${connectorId}`],
    };
  }
  if (id !== connectorId) return { kind: 'not-ours', otherConnector: id };

  const problems: string[] = [];
  const rawAuth = (tags[k.authType] ?? tags[k.authTypeAlias])?.trim();
  let authType: AuthType | undefined;
  if (rawAuth === undefined || rawAuth === '') {
    problems.push(`tag ${k.authType} is missing; set it to iam-auth or user-password`);
  } else {
    const normalized = rawAuth.toLowerCase().replace(/_/g, '-');
    if (normalized === 'iam-auth' || normalized === 'user-password') authType = normalized;
    else {
      problems.push(
        `tag ${k.authType} is '${printable(rawAuth)}'; it must be iam-auth or user-password`,
      );
    }
  }

  let secret: SecretArn | undefined;
  const rawSecret = tags[k.secret]?.trim();
  if (rawSecret !== undefined && rawSecret !== '') {
    const parsed = parseSecretArn(rawSecret);
    if (parsed === null) {
      problems.push(
        `tag ${k.secret} must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>), got '${printable(rawSecret)}'`,
      );
    } else secret = parsed;
  } else if (authType === 'user-password') {
    problems.push(
      `tag ${k.secret} is missing; auth_type user-password needs the ARN of the service account's secret`,
    );
  }

  const username = tags[k.username]?.trim();
  if (username !== undefined && !DB_USER.test(username)) {
    problems.push(`tag ${k.username} is not a valid database user name: '${printable(username)}'`);
  }
  const database = tags[k.database]?.trim();
  if (database !== undefined && !DB_NAME.test(database)) {
    problems.push(`tag ${k.database} is not a valid database name: '${printable(database)}'`);
  }

  if (problems.length > 0 || authType === undefined) return { kind: 'invalid', problems };
  return {
    kind: 'ours',
    authType,
    secret: authType === 'user-password' ? secret : undefined,
    username: username === '' ? undefined : username,
    database: database === '' ? undefined : database,
  };
}

/** Tag values are customer text: keep them short and on one line in messages. */
function printable(value: string): string {
  let one = '';
  for (const ch of value) {
    const c = ch.codePointAt(0) ?? 0;
    one += c < 0x20 || c === 0x7f ? '?' : ch;
  }
  return one.length > 80 ? `${one.slice(0, 77)}...` : one;
}
