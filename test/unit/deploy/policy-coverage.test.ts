/**
 * The connector's IAM policy must allow every AWS call the code makes: each SDK command
 * imported under src/ is mapped to its IAM action and looked up in
 * deploy/iam/connector-policy.json. A new call without its permission fails here, not in
 * a customer's account.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../../', import.meta.url).pathname;

/** IAM service prefix by SDK client package. */
const PREFIX: Record<string, string> = {
  dynamodb: 'dynamodb',
  ec2: 'ec2',
  eks: 'eks',
  iam: 'iam',
  identitystore: 'identitystore',
  kms: 'kms',
  lambda: 'lambda',
  organizations: 'organizations',
  rds: 'rds',
  redshift: 'redshift',
  'resource-explorer-2': 'resource-explorer-2',
  s3: 's3',
  'secrets-manager': 'secretsmanager',
  sns: 'sns',
  sqs: 'sqs',
  ssm: 'ssm',
  'sso-admin': 'sso',
  sts: 'sts',
};

/** Where the IAM action is not the command's name. */
const RENAMED: Record<string, string> = {
  's3:ListBuckets': 's3:ListAllMyBuckets',
  's3:GetBucketEncryption': 's3:GetEncryptionConfiguration',
  'lambda:Invoke': 'lambda:InvokeFunction',
};

/** Calls IAM does not authorize. */
const NO_PERMISSION_NEEDED = new Set(['sts:GetCallerIdentity']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

function actionsUsed(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const importRe = /import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*'@aws-sdk\/client-([a-z0-9-]+)'/g;
  for (const file of sourceFiles(join(ROOT, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(importRe)) {
      const pkg = m[2] ?? '';
      const prefix = PREFIX[pkg];
      if (prefix === undefined) throw new Error(`no IAM prefix known for @aws-sdk/client-${pkg}`);
      for (const raw of (m[1] ?? '').split(',')) {
        const name =
          raw
            .replace(/^\s*type\s+/, '')
            .split(/\s+as\s+/)[0]
            ?.trim() ?? '';
        if (!name.endsWith('Command')) continue;
        const action = `${prefix}:${name.slice(0, -'Command'.length)}`;
        const iamAction = RENAMED[action] ?? action;
        if (NO_PERMISSION_NEEDED.has(iamAction)) continue;
        const files = used.get(iamAction) ?? [];
        files.push(file.slice(ROOT.length));
        used.set(iamAction, files);
      }
    }
  }
  return used;
}

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
}

function allowedActions(): string[] {
  const policy = JSON.parse(
    readFileSync(join(ROOT, 'deploy/iam/connector-policy.json'), 'utf8'),
  ) as { Statement: Statement[] };
  return policy.Statement.filter((s) => s.Effect === 'Allow').flatMap((s) =>
    Array.isArray(s.Action) ? s.Action : [s.Action],
  );
}

function allows(patterns: string[], action: string): boolean {
  return patterns.some((p) =>
    new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i').test(
      action,
    ),
  );
}

describe('deploy/iam/connector-policy.json', () => {
  it('allows every AWS action the code calls', () => {
    const used = actionsUsed();
    expect(used.size).toBeGreaterThan(20);
    const allowed = allowedActions();
    const missing = [...used.entries()]
      .filter(([action]) => !allows(allowed, action))
      .map(([action, files]) => `${action} (${files.join(', ')})`);
    expect(missing).toEqual([]);
  });

  it('allows exactly the eks: actions the code calls, no more', () => {
    const used = [...actionsUsed().keys()].filter((a) => a.startsWith('eks:')).sort();
    const allowed = [...new Set(allowedActions().filter((a) => a.startsWith('eks:')))].sort();
    expect(used.length).toBeGreaterThan(0);
    expect(allowed).toEqual(used);
  });

  it('the CloudFormation template carries the same actions', () => {
    const cfn = readFileSync(join(ROOT, 'deploy/ecs/cloudformation.yaml'), 'utf8');
    const missing = [...new Set(allowedActions())].filter(
      (a) => !cfn.includes(a) && !cfn.includes(`'${a}'`),
    );
    expect(missing).toEqual([]);
  });
});
