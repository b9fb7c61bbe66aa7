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

function actionsUsed(files: string[] = sourceFiles(join(ROOT, 'src'))): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const importRe = /import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*'@aws-sdk\/client-([a-z0-9-]+)'/g;
  for (const file of files) {
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

// ---------------------------------------------------------------------------------------
// The member-account role (organization mode, issue 12)

/**
 * Code that runs with a member account's role: the organization-capable drivers, what
 * their grants and sweeps call, the secrets and IAM-auth signing of discovered databases,
 * and the region listing of the organization scope. Organizations itself is only ever
 * called from the home account.
 */
const MEMBER_SCOPE = [
  'src/drivers/aws-iam',
  'src/drivers/aws-ssm',
  'src/drivers/aws-lambda',
  'src/drivers/aws-eks',
  'src/drivers/aws-discovery/discover.ts',
  'src/drivers/redshift',
  'src/aws/policy.ts',
  'src/aws/org-scope.ts',
  'src/secrets/aws-secrets-manager.ts',
  'src/secrets/iam-auth.ts',
];
const HOME_ONLY = /^(organizations|sts):/;
/** Actions no SDK command names (signing, KMS behind Secrets Manager). */
const NOT_SDK_COMMANDS = new Set(['rds-db:connect', 'kms:Decrypt', 'kms:GenerateDataKey']);

function memberScopeFiles(): string[] {
  return MEMBER_SCOPE.flatMap((rel) => {
    const path = join(ROOT, rel);
    try {
      return statSync(path).isDirectory() ? sourceFiles(path) : [path];
    } catch {
      return []; // a driver not in this tree (yet)
    }
  });
}

interface PolicyDoc {
  Version: string;
  Statement: (Statement & { Resource?: unknown; Condition?: unknown })[];
}

function readJson<T>(rel: string): T {
  return JSON.parse(readFileSync(join(ROOT, rel), 'utf8')) as T;
}

describe('deploy/member-role (the role assumed in member accounts)', () => {
  const policy = readJson<PolicyDoc>('deploy/member-role/member-policy.json');
  const allowed = policy.Statement.filter((s) => s.Effect === 'Allow').flatMap((s) =>
    Array.isArray(s.Action) ? s.Action : [s.Action],
  );

  it('allows every AWS action the member-account code calls', () => {
    const used = actionsUsed(memberScopeFiles());
    expect(used.size).toBeGreaterThan(20);
    const missing = [...used.entries()]
      .filter(([action]) => !HOME_ONLY.test(action) && !allows(allowed, action))
      .map(([action, files]) => `${action} (${files.join(', ')})`);
    expect(missing).toEqual([]);
  });

  it('allows nothing the member-account code does not call (least privilege)', () => {
    const used = new Set(actionsUsed(memberScopeFiles()).keys());
    const unused = allowed.filter((a) => !used.has(a) && !NOT_SDK_COMMANDS.has(a));
    expect(unused).toEqual([]);
    expect(allowed.some((a) => a.includes('*'))).toBe(false);
    expect(allowed.some((a) => HOME_ONLY.test(a))).toBe(false);
  });

  it('has one statement per feature, each with its own Sid, and never lets grants touch latchkey-* roles', () => {
    const sids = policy.Statement.map((s) => s.Sid);
    expect(new Set(sids).size).toBe(sids.length);
    expect(sids.every((s) => typeof s === 'string' && /^[A-Za-z0-9]+$/.test(s))).toBe(true);
    const deny = policy.Statement.find((s) => s.Effect === 'Deny');
    expect(deny?.Resource).toEqual([
      'arn:aws:iam::*:role/latchkey-*',
      'arn:aws:iam::*:user/latchkey-*',
    ]);
  });

  it('the StackSet template carries exactly that policy and trusts only the connector role', () => {
    const tpl = readJson<{
      Parameters: Record<string, { Default?: string }>;
      Resources: Record<
        string,
        {
          Type: string;
          Properties: {
            AssumeRolePolicyDocument: PolicyDoc;
            Policies: { PolicyDocument: PolicyDoc }[];
          };
        }
      >;
    }>('deploy/member-role/stackset.json');
    const roles = Object.values(tpl.Resources).filter((r) => r.Type === 'AWS::IAM::Role');
    expect(roles).toHaveLength(1);
    const role = roles[0]!;
    expect(role.Properties.Policies.map((p) => p.PolicyDocument)).toEqual([policy]);
    const trust = role.Properties.AssumeRolePolicyDocument.Statement;
    expect(trust).toHaveLength(1);
    expect(trust[0]).toMatchObject({
      Effect: 'Allow',
      Principal: { AWS: { Ref: 'ConnectorRoleArn' } },
      Action: ['sts:AssumeRole', 'sts:TagSession'],
    });
    // Both branches (with and without external id) pin the principal ARN.
    const cond = JSON.stringify(trust[0]?.Condition);
    expect(cond.match(/"aws:PrincipalArn":\{"Ref":"ConnectorRoleArn"\}/g)).toHaveLength(2);
    // The default name is one the connector's default allowed role pattern accepts.
    expect(tpl.Parameters.MemberRoleName?.Default).toMatch(/^latchkey-/);
  });

  it('the Terraform module uses the same policy file and trusts only the connector role', () => {
    const tf = readFileSync(join(ROOT, 'deploy/member-role/terraform/main.tf'), 'utf8');
    expect(tf).toContain('policy = file("${path.module}/../member-policy.json")');
    expect(tf).toContain('Principal = { AWS = var.connector_role_arn }');
    expect(tf).toContain('"aws:PrincipalArn" = var.connector_role_arn');
  });

  it('the connector may assume the member role and list the organization (ListParents for grants)', () => {
    const connector = allowedActions();
    expect(allows(connector, 'sts:AssumeRole')).toBe(true);
    expect(allows(connector, 'organizations:ListParents')).toBe(true);
  });
});
