/**
 * The connector's IAM policy must allow every AWS call the code makes: each SDK command
 * imported under src/ is mapped to its IAM action and looked up in
 * deploy/iam/connector-policy.json. A new call without its permission fails here, not in
 * a customer's account.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCloudFormation, resolveCfn } from '../../helpers/cloudformation.js';

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

/**
 * The IAM action of every SDK command the code imports, by `<prefix>:<Command>` (the
 * command's name without `Command`). Most are the command's name; where they differ the
 * table says so explicitly, checked against the Service Authorization Reference (the
 * "Minimum permissions" of each API page): no guessing from the name. `null` = a call IAM
 * does not authorize. A command not listed fails the test: look it up and add it.
 */
const SAME_NAME: Record<string, string[]> = {
  dynamodb: ['ListTables', 'ListTagsOfResource'],
  ec2: ['DescribeInstances', 'DescribeRegions'],
  eks: [
    'AssociateAccessPolicy',
    'CreateAccessEntry',
    'DeleteAccessEntry',
    'DescribeAccessEntry',
    'DescribeCluster',
    'DisassociateAccessPolicy',
    'ListAccessEntries',
    'ListAssociatedAccessPolicies',
    'ListClusters',
    'TagResource',
    'UntagResource',
  ],
  iam: [
    'DeleteRolePermissionsBoundary',
    'DeleteRolePolicy',
    'DeleteUserPermissionsBoundary',
    'DeleteUserPolicy',
    'DetachRolePolicy',
    'DetachUserPolicy',
    'GetAccountAuthorizationDetails',
    'GetPolicy',
    'GetPolicyVersion',
    'GetRole',
    'GetRolePolicy',
    'GetUser',
    'GetUserPolicy',
    'ListRolePolicies',
    'ListRoleTags',
    'ListRoles',
    'ListUserPolicies',
    'ListUsers',
    'PutRolePermissionsBoundary',
    'PutRolePolicy',
    'PutUserPermissionsBoundary',
    'PutUserPolicy',
    'RemoveUserFromGroup',
    'SimulatePrincipalPolicy',
    'TagRole',
    'TagUser',
    'UntagRole',
    'UntagUser',
  ],
  identitystore: [
    'CreateGroup',
    'CreateGroupMembership',
    'DeleteGroup',
    'DeleteGroupMembership',
    'DescribeGroup',
    'DescribeUser',
    'GetGroupId',
    'GetGroupMembershipId',
    'GetUserId',
    'ListGroupMemberships',
    'ListGroups',
    'ListUsers',
  ],
  kms: ['DescribeKey', 'ListAliases'],
  lambda: ['ListFunctions', 'ListTags'],
  organizations: [
    'DescribeOrganization',
    'ListAccounts',
    'ListAccountsForParent',
    'ListOrganizationalUnitsForParent',
    'ListParents',
    'ListRoots',
  ],
  rds: ['DescribeDBClusters', 'DescribeDBInstances', 'ListTagsForResource'],
  redshift: ['DescribeClusters', 'DescribeTags', 'GetClusterCredentials'],
  'resource-explorer-2': ['GetDefaultView', 'ListIndexes'],
  s3: ['GetBucketLocation', 'GetBucketTagging'],
  secretsmanager: [
    'DescribeSecret',
    'GetSecretValue',
    'ListSecrets',
    'PutSecretValue',
    'UpdateSecretVersionStage',
  ],
  sns: ['ListTagsForResource', 'ListTopics'],
  sqs: ['ListQueueTags', 'ListQueues'],
  ssm: ['DescribeInstanceInformation', 'DescribeSessions', 'TerminateSession'],
  sso: [
    'AttachCustomerManagedPolicyReferenceToPermissionSet',
    'AttachManagedPolicyToPermissionSet',
    'CreateAccountAssignment',
    'CreatePermissionSet',
    'DeleteAccountAssignment',
    'DeletePermissionSet',
    'DescribeAccountAssignmentCreationStatus',
    'DescribeAccountAssignmentDeletionStatus',
    'DescribePermissionSet',
    'DescribePermissionSetProvisioningStatus',
    'GetInlinePolicyForPermissionSet',
    'GetPermissionsBoundaryForPermissionSet',
    'ListAccountAssignments',
    'ListAccountAssignmentsForPrincipal',
    'ListAccountsForProvisionedPermissionSet',
    'ListCustomerManagedPolicyReferencesInPermissionSet',
    'ListInstances',
    'ListManagedPoliciesInPermissionSet',
    'ListPermissionSets',
    'ProvisionPermissionSet',
    'PutInlinePolicyToPermissionSet',
    'PutPermissionsBoundaryToPermissionSet',
  ],
  sts: ['AssumeRole'],
};

/** Commands whose IAM action is not their name (null: IAM does not authorize the call). */
const DIFFERENT: Record<string, string | null> = {
  's3:ListBuckets': 's3:ListAllMyBuckets',
  's3:GetBucketEncryption': 's3:GetEncryptionConfiguration',
  'lambda:Invoke': 'lambda:InvokeFunction',
  // API reference, ListResources, "Minimum permissions": resource-explorer-2:Search.
  'resource-explorer-2:ListResources': 'resource-explorer-2:Search',
  'sts:GetCallerIdentity': null,
};

/** The IAM action of an SDK command, from the tables above; throws for a command not listed. */
function iamActionOf(prefix: string, command: string): string | null {
  const key = `${prefix}:${command}`;
  if (key in DIFFERENT) return DIFFERENT[key] ?? null;
  if (SAME_NAME[prefix]?.includes(command)) return key;
  throw new Error(
    `no IAM action known for ${key}Command: look it up in the Service Authorization Reference and add it to SAME_NAME or DIFFERENT`,
  );
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/**
 * The IAM actions of the SDK commands each file uses, in every form the code imports them:
 * - named: `import { XCommand } from '@aws-sdk/client-…'`, or destructured from a dynamic
 *   import, `const { XCommand } = await import('@aws-sdk/client-…')`;
 * - through a module loaded on first use (the agent's lazy loading of the SDK): a namespace
 *   (`import type * as Sdk from …`, or `import('@aws-sdk/client-…')` kept whole), used as
 *   `new sdk.XCommand(…)` or destructured from a loader, `const { XCommand } = await load()`.
 *   Such a name is looked up among the commands of the clients the file loads that way
 *   (`dist-types/commands/<Name>.d.ts` of the installed package).
 */
function actionsUsed(files: string[] = sourceFiles(join(ROOT, 'src'))): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const add = (pkg: string, command: string, file: string): void => {
    const prefix = PREFIX[pkg];
    if (prefix === undefined) throw new Error(`no IAM prefix known for @aws-sdk/client-${pkg}`);
    const iamAction = iamActionOf(prefix, command);
    if (iamAction === null) return;
    const list = used.get(iamAction) ?? [];
    list.push(file.slice(ROOT.length));
    used.set(iamAction, list);
  };
  const commandsIn = (list: string): string[] =>
    list
      .split(',')
      .map(
        (raw) =>
          raw
            .replace(/^\s*type\s+/, '')
            .split(/\s*(?:\bas\b|:)\s*/)[0]
            ?.trim() ?? '',
      )
      .filter((name) => name.endsWith('Command'))
      .map((name) => name.slice(0, -'Command'.length));
  const named =
    /(?:import\s*(?:type\s*)?\{([^{}]*)\}\s*from\s*|\{([^{}]*)\}\s*=\s*await\s+import\(\s*)'@aws-sdk\/client-([a-z0-9-]+)'/g;
  const whole =
    /(?:import\s+(?:type\s+)?\*\s+as\s+\w+\s+from\s+|(?<![{}]\s*=\s*await\s+)import\(\s*)'@aws-sdk\/client-([a-z0-9-]+)'/g;
  const viaModule = /(?:\b\w+\.([A-Z]\w*)Command\b|\{([^{}]*)\}\s*=\s*await\s+\w+\(\))/g;
  for (const file of files) {
    const code = readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    for (const m of code.matchAll(named)) {
      for (const command of commandsIn(m[1] ?? m[2] ?? '')) add(m[3] ?? '', command, file);
    }
    const modules = new Set([...code.matchAll(whole)].map((m) => m[1] ?? ''));
    if (modules.size === 0) continue;
    const names = new Set(
      [...code.matchAll(viaModule)].flatMap((m) =>
        m[1] !== undefined ? [m[1]] : commandsIn(m[2] ?? ''),
      ),
    );
    for (const name of names) {
      const owners = [...modules].filter((pkg) =>
        existsSync(
          join(
            ROOT,
            'node_modules/@aws-sdk',
            `client-${pkg}`,
            'dist-types/commands',
            `${name}Command.d.ts`,
          ),
        ),
      );
      if (owners.length > 1) {
        throw new Error(`${file}: ${name}Command is in ${owners.join(' and ')}: import it by name`);
      }
      for (const pkg of owners) add(pkg, name, file);
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

  it('allows nothing the code does not call (least privilege)', () => {
    const used = new Set(actionsUsed().keys());
    const unused = [...new Set(allowedActions())].filter(
      (a) => !used.has(a) && !NOT_SDK_COMMANDS.has(a),
    );
    expect(unused).toEqual([]);
  });

  it('allows exactly the eks: actions the code calls, no more', () => {
    const used = [...actionsUsed().keys()].filter((a) => a.startsWith('eks:')).sort();
    const allowed = [...new Set(allowedActions().filter((a) => a.startsWith('eks:')))].sort();
    expect(used.length).toBeGreaterThan(0);
    expect(allowed).toEqual(used);
  });

  it('maps each SDK command to its IAM action through the explicit table', () => {
    expect(iamActionOf('resource-explorer-2', 'ListResources')).toBe('resource-explorer-2:Search');
    expect(iamActionOf('s3', 'ListBuckets')).toBe('s3:ListAllMyBuckets');
    expect(iamActionOf('iam', 'PutRolePolicy')).toBe('iam:PutRolePolicy');
    expect(iamActionOf('sts', 'GetCallerIdentity')).toBeNull();
    expect(() => iamActionOf('iam', 'CreateUser')).toThrow(/no IAM action known/);
  });

  it('names no SDK command whose IAM action has another name (not an IAM action)', () => {
    const allowed = new Set(allowedActions());
    const commandNames = Object.entries(DIFFERENT)
      .filter(([command, action]) => action !== null && action !== command)
      .map(([command]) => command);
    expect(commandNames.filter((c) => allowed.has(c))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------
// The ECS task role: CloudFormation and Terraform carry the connector policy

/**
 * The task role's policy as CloudFormation renders it: the parameters' defaults and
 * `overrides`, partition aws, and account `*` (the shipped JSON is not scoped to an
 * account; the template scopes to its own account where it can).
 */
function cfnTaskRolePolicy(overrides: Record<string, string> = {}): PolicyDoc {
  const tpl = parseCloudFormation(
    readFileSync(join(ROOT, 'deploy/ecs/cloudformation.yaml'), 'utf8'),
  );
  const vars: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::AccountId': '*',
    'AWS::Region': 'eu-west-1',
  };
  for (const [name, p] of Object.entries(tpl.Parameters)) {
    if (p.Default !== undefined) vars[name] = String(p.Default);
  }
  Object.assign(vars, overrides);
  const role = tpl.Resources.TaskRole;
  expect(role?.Type).toBe('AWS::IAM::Role');
  const policies = role?.Properties.Policies as { PolicyDocument: unknown }[];
  expect(policies).toHaveLength(1);
  const doc = resolveCfn(policies[0]?.PolicyDocument, vars);
  return (typeof doc === 'string' ? JSON.parse(doc) : doc) as PolicyDoc;
}

/** Statement by statement, with Action and Resource as sorted sets. */
function normalized(policy: PolicyDoc): unknown[] {
  const set = (v: unknown): string[] =>
    [...new Set(Array.isArray(v) ? (v as string[]) : [v as string])].sort();
  return policy.Statement.map((s) => ({
    Sid: s.Sid,
    Effect: s.Effect,
    Action: set(s.Action),
    Resource: set(s.Resource),
    Condition: s.Condition,
  }));
}

/** The condition keys that name a tag (`…ResourceTag/<key>`), in statement order. */
function tagConditionKeys(policy: PolicyDoc): string[] {
  return policy.Statement.flatMap((s) =>
    Object.values((s.Condition ?? {}) as Record<string, Record<string, unknown>>).flatMap((op) =>
      Object.keys(op).filter((k) => k.includes('Tag/')),
    ),
  );
}

describe('deploy/ecs/cloudformation.yaml (task role)', () => {
  const shipped = readJson<PolicyDoc>('deploy/iam/connector-policy.json');

  it('carries deploy/iam/connector-policy.json statement by statement (actions, resources, conditions)', () => {
    const cfn = cfnTaskRolePolicy();
    expect(cfn.Version).toBe(shipped.Version);
    expect(normalized(cfn)).toEqual(normalized(shipped));
  });

  it('puts TagPrefix into every tag key of its conditions', () => {
    const apono = cfnTaskRolePolicy({ TagPrefix: 'apono' });
    const keys = tagConditionKeys(apono);
    expect(keys.filter((k) => k.includes('latchkey-'))).toEqual([]);
    expect(JSON.stringify(apono.Statement.map((s) => s.Condition ?? null))).not.toMatch(
      /Tag\/latchkey-/,
    );
    expect(keys).toEqual(
      tagConditionKeys(shipped).map((k) => k.replace('Tag/latchkey-', 'Tag/apono-')),
    );
    expect(keys).toEqual(
      expect.arrayContaining([
        'aws:ResourceTag/apono-protected',
        'aws:ResourceTag/apono-connector-access',
        'secretsmanager:ResourceTag/apono-connector-read',
      ]),
    );
  });

  it('scopes the task role to its own account and partition', () => {
    const own = cfnTaskRolePolicy({ 'AWS::Partition': 'aws-cn', 'AWS::AccountId': '123456789012' });
    const resources = own.Statement.flatMap((s) =>
      Array.isArray(s.Resource) ? (s.Resource as string[]) : [s.Resource as string],
    );
    expect(resources.filter((r) => r.startsWith('arn:aws:'))).toEqual([]);
    const iamGrants = own.Statement.find((s) => s.Sid === 'IamGrants');
    expect(iamGrants?.Resource).toEqual([
      'arn:aws-cn:iam::123456789012:role/*',
      'arn:aws-cn:iam::123456789012:user/*',
    ]);
  });
});

/** A policy `.json.tftpl` as Terraform's templatefile() renders it with these variables. */
function renderPolicyTemplate(
  template: string,
  tagPrefix: string,
  partition = 'aws',
  secretPrefix = 'latchkey/',
): PolicyDoc {
  return JSON.parse(
    template
      .replaceAll('${tag_prefix}', tagPrefix)
      .replaceAll('${partition}', partition)
      .replaceAll('${secret_name_prefix}', secretPrefix),
  ) as PolicyDoc;
}

describe('deploy/ecs/terraform (task role)', () => {
  const TEMPLATE = 'deploy/ecs/terraform/connector-policy.json.tftpl';
  const template = readFileSync(join(ROOT, TEMPLATE), 'utf8');
  const render = (tagPrefix: string, partition?: string, secretPrefix?: string): PolicyDoc =>
    renderPolicyTemplate(template, tagPrefix, partition, secretPrefix);

  it('is self-contained: its own policy template, through templatefile() with the tag prefix', () => {
    const main = readFileSync(join(ROOT, 'deploy/ecs/terraform/main.tf'), 'utf8');
    expect(main).toMatch(
      /policy = templatefile\("\$\{path\.module\}\/connector-policy\.json\.tftpl", \{\s+tag_prefix\s+= var\.tag_prefix\s+partition\s+= data\.aws_partition\.current\.partition\s+secret_name_prefix = var\.secret_name_prefix\s+\}\)/,
    );
    expect(main).not.toContain('../');
    // templatefile() interpolates ${…} and %{…}: only the tag prefix, the partition and
    // the secret name prefix.
    expect(new Set([...template.matchAll(/[$%]\{[^}]*\}/g)].map((m) => m[0]))).toEqual(
      new Set(['${tag_prefix}', '${partition}', '${secret_name_prefix}']),
    );
  });

  it('renders to deploy/iam/connector-policy.json with the default prefix and partition', () => {
    expect(render('latchkey')).toEqual(readJson<PolicyDoc>('deploy/iam/connector-policy.json'));
    expect(JSON.stringify(render('latchkey', 'aws-cn'))).not.toContain('arn:aws:');
  });

  it('scopes secret rotation to secret_name_prefix', () => {
    const rotate = render('latchkey', 'aws', 'prod/db/').Statement.find(
      (st) => st.Sid === 'SecretsRotate',
    );
    expect(rotate?.Resource).toBe('arn:aws:secretsmanager:*:*:secret:prod/db/*');
  });

  it('puts tag_prefix into every tag key of its conditions', () => {
    const apono = render('apono');
    expect(tagConditionKeys(apono).filter((k) => k.includes('latchkey-'))).toEqual([]);
    expect(tagConditionKeys(apono)).toEqual(
      tagConditionKeys(readJson<PolicyDoc>('deploy/iam/connector-policy.json')).map((k) =>
        k.replace('Tag/latchkey-', 'Tag/apono-'),
      ),
    );
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

  interface StackSet {
    Parameters: Record<string, { Default?: string; AllowedPattern?: string }>;
    Resources: Record<
      string,
      {
        Type: string;
        Properties: {
          Tags: { Key: unknown; Value: string }[];
          AssumeRolePolicyDocument: PolicyDoc;
          Policies: { PolicyDocument: unknown }[];
        };
      }
    >;
  }
  const stackSet = readJson<StackSet>('deploy/member-role/stackset.json');
  const memberRole = (): StackSet['Resources'][string] => {
    const roles = Object.values(stackSet.Resources).filter((r) => r.Type === 'AWS::IAM::Role');
    expect(roles).toHaveLength(1);
    return roles[0]!;
  };
  /** The StackSet's policy as CloudFormation renders it with these parameters. */
  const stackSetPolicy = (overrides: Record<string, string> = {}): PolicyDoc => {
    const vars: Record<string, string> = { 'AWS::Partition': 'aws' };
    for (const [name, p] of Object.entries(stackSet.Parameters)) {
      if (p.Default !== undefined) vars[name] = p.Default;
    }
    Object.assign(vars, overrides);
    const policies = memberRole().Properties.Policies;
    expect(policies).toHaveLength(1);
    const doc = resolveCfn(policies[0]?.PolicyDocument, vars);
    return (typeof doc === 'string' ? JSON.parse(doc) : doc) as PolicyDoc;
  };

  it('the StackSet template carries exactly that policy and trusts only the connector role', () => {
    expect(stackSetPolicy()).toEqual(policy);
    const role = memberRole();
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
    expect(stackSet.Parameters.MemberRoleName?.Default).toMatch(/^latchkey-/);
    // The same prefix patterns as the ECS template and the Terraform modules.
    expect(stackSet.Parameters.TagPrefix?.AllowedPattern).toBe('^[A-Za-z0-9_.:/=+@-]{1,64}$');
  });

  it('reads database secrets by tag, as the connector role does, and rotates only under the name prefix', () => {
    const read = policy.Statement.find((s) => s.Sid === 'DatabaseSecretsRead');
    const connectorRead = readJson<PolicyDoc>('deploy/iam/connector-policy.json').Statement.find(
      (s) => s.Sid === 'SecretsRead',
    );
    expect(read?.Condition).toEqual(connectorRead?.Condition);
    expect(read?.Resource).toBe('arn:aws:secretsmanager:*:*:secret:*');
    const rotate = stackSetPolicy({ SecretNamePrefix: 'prod/db/' }).Statement.find(
      (s) => s.Sid === 'DatabaseSecretsRotate',
    );
    expect(rotate?.Resource).toBe('arn:aws:secretsmanager:*:*:secret:prod/db/*');
  });

  it('the StackSet puts TagPrefix into every tag key, its own protection tag included, and follows the partition', () => {
    const apono = stackSetPolicy({ TagPrefix: 'apono' });
    expect(JSON.stringify(apono)).not.toMatch(/Tag\/latchkey-/);
    expect(tagConditionKeys(apono)).toEqual(
      tagConditionKeys(policy).map((k) => k.replace('Tag/latchkey-', 'Tag/apono-')),
    );
    expect(tagConditionKeys(apono)).toEqual(
      expect.arrayContaining([
        'aws:ResourceTag/apono-protected',
        'aws:ResourceTag/apono-connector-access',
        'secretsmanager:ResourceTag/apono-connector-read',
      ]),
    );
    expect(resolveCfn(memberRole().Properties.Tags, { TagPrefix: 'apono' })).toEqual([
      { Key: 'apono-protected', Value: 'true' },
    ]);
    expect(JSON.stringify(stackSetPolicy({ 'AWS::Partition': 'aws-cn' }))).not.toContain(
      'arn:aws:',
    );
  });

  describe('the Terraform module', () => {
    const main = readFileSync(join(ROOT, 'deploy/member-role/terraform/main.tf'), 'utf8');
    const template = readFileSync(
      join(ROOT, 'deploy/member-role/terraform/member-policy.json.tftpl'),
      'utf8',
    );
    const render = (tagPrefix: string, partition?: string, secretPrefix?: string): PolicyDoc =>
      renderPolicyTemplate(template, tagPrefix, partition, secretPrefix);

    it('is self-contained: its own policy template through templatefile(), no file outside it', () => {
      expect(main).toMatch(
        /policy = templatefile\("\$\{path\.module\}\/member-policy\.json\.tftpl", \{\s+tag_prefix\s+= var\.tag_prefix\s+partition\s+= data\.aws_partition\.current\.partition\s+secret_name_prefix = var\.secret_name_prefix\s+\}\)/,
      );
      expect(main).not.toContain('../');
      expect(new Set([...template.matchAll(/[$%]\{[^}]*\}/g)].map((m) => m[0]))).toEqual(
        new Set(['${tag_prefix}', '${partition}', '${secret_name_prefix}']),
      );
    });

    it('renders to member-policy.json with the defaults, and follows prefix and partition', () => {
      expect(render('latchkey')).toEqual(policy);
      expect(JSON.stringify(render('latchkey', 'aws-cn'))).not.toContain('arn:aws:');
      expect(tagConditionKeys(render('apono'))).toEqual(
        tagConditionKeys(policy).map((k) => k.replace('Tag/latchkey-', 'Tag/apono-')),
      );
      expect(
        render('latchkey', 'aws', 'prod/db/').Statement.find(
          (s) => s.Sid === 'DatabaseSecretsRotate',
        )?.Resource,
      ).toBe('arn:aws:secretsmanager:*:*:secret:prod/db/*');
    });

    it('trusts only the connector role and tags the role protected under the prefix', () => {
      expect(main).toContain('Principal = { AWS = var.connector_role_arn }');
      expect(main).toContain('"aws:PrincipalArn" = var.connector_role_arn');
      expect(main).toContain('merge(var.tags, { "${var.tag_prefix}-protected" = "true" })');
    });
  });

  it('the connector may assume the member role and list the organization (ListParents for grants)', () => {
    const connector = allowedActions();
    expect(allows(connector, 'sts:AssumeRole')).toBe(true);
    expect(allows(connector, 'organizations:ListParents')).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------
// The ECS templates' other IAM statements: the execution role (connector token, config
// parameters) and the metrics sidecar's remote write. Nothing else may appear; their
// rendered contents are checked in ecs-files-metrics.test.ts.

/** Sid → actions of every statement in `node` (trust policies as `trust`). */
function statementsIn(node: unknown, out: Record<string, string[]> = {}): Record<string, string[]> {
  if (Array.isArray(node)) {
    for (const n of node) statementsIn(n, out);
  } else if (node !== null && typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    if ('Action' in obj && 'Effect' in obj) {
      const sid = typeof obj.Sid === 'string' ? obj.Sid : 'trust';
      const actions = Array.isArray(obj.Action) ? (obj.Action as string[]) : [String(obj.Action)];
      out[sid] = [...(out[sid] ?? []), ...actions].sort();
    }
    for (const v of Object.values(obj)) statementsIn(v, out);
  }
  return out;
}

const ECS_OTHER_STATEMENTS = {
  trust: ['sts:AssumeRole', 'sts:AssumeRole'],
  ConnectorToken: ['secretsmanager:GetSecretValue'],
  ConfigParameters: ['ssm:GetParameters'],
  ConfigParametersKey: ['kms:Decrypt'],
  MetricsRemoteWrite: ['aps:RemoteWrite'],
};

describe('deploy/ecs (IAM besides the connector policy)', () => {
  it('CloudFormation: the execution role reads the token and the config parameters, the sidecar remote-writes', () => {
    const tpl = parseCloudFormation(
      readFileSync(join(ROOT, 'deploy/ecs/cloudformation.yaml'), 'utf8'),
    );
    const { TaskRole, ...others } = tpl.Resources;
    const { Policies: connectorPolicy, ...taskRoleRest } = TaskRole?.Properties ?? {};
    expect((connectorPolicy as { PolicyName: string }[]).map((p) => p.PolicyName)).toEqual([
      'latchkey-connector',
    ]);
    expect(statementsIn([others, taskRoleRest])).toEqual(ECS_OTHER_STATEMENTS);
    expect(tpl.Resources.MetricsRemoteWritePolicy?.Properties.RoleName).toEqual({
      Ref: 'TaskRole',
    });
  });

  it('Terraform: the same statements', () => {
    const main = readFileSync(join(ROOT, 'deploy/ecs/terraform/main.tf'), 'utf8');
    const found: Record<string, string[]> = {};
    for (const m of main.matchAll(/Sid\s+= "(\w+)"\s+Effect\s+= "Allow"\s+Action\s+= "([^"]+)"/g)) {
      found[m[1] ?? ''] = [...(found[m[1] ?? ''] ?? []), m[2] ?? ''];
    }
    // One trust document (sts:AssumeRole), used by both roles.
    expect([...main.matchAll(/actions = \["([^"]+)"\]/g)].map((m) => m[1])).toEqual([
      'sts:AssumeRole',
    ]);
    const trust = [
      ...main.matchAll(
        /assume_role_policy = data\.aws_iam_policy_document\.ecs_tasks_assume\.json/g,
      ),
    ].map(() => 'sts:AssumeRole');
    expect({ trust, ...found }).toEqual(ECS_OTHER_STATEMENTS);
    // Every Action in main.tf is one of those (the connector policy is the .tftpl file).
    expect([...main.matchAll(/\bAction\s+=/g)]).toHaveLength(4);
    expect(main).toMatch(
      /role\s+= aws_iam_role\.task\.id\s+policy = jsonencode\(\{[^}]*Sid\s+= "MetricsRemoteWrite"/,
    );
  });
});
