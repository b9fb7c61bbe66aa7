/**
 * The identity-policy evaluator of the access inventory (src/aws/policy-eval.ts):
 * wildcards, NotAction/NotResource, explicit Deny, conditions reported not evaluated,
 * and levels reached per policy.
 */
import { describe, expect, it } from 'vitest';
import {
  decide,
  grantsOnResource,
  parsePolicyDocument,
  wildcardMatch,
  type IdentityPolicy,
  type LevelSpec,
} from '../../../src/aws/policy-eval.js';
import { isLatchkeyError } from '../../../src/errors.js';

const BUCKET = 'arn:aws:s3:::acme-reports';
const TABLE = 'arn:aws:dynamodb:eu-west-1:123456789012:table/orders';

function policy(...statements: Record<string, unknown>[]): IdentityPolicy {
  return {
    statements: parsePolicyDocument(
      JSON.stringify({ Version: '2012-10-17', Statement: statements }),
    ),
  };
}

describe('parsePolicyDocument', () => {
  it('reads single statements and strings, URL-encoded documents, and condition keys', () => {
    const doc = encodeURIComponent(
      JSON.stringify({
        Statement: {
          Effect: 'Allow',
          Action: 's3:GetObject',
          Resource: `${BUCKET}/*`,
          Condition: {
            IpAddress: { 'aws:SourceIp': '10.0.0.0/8' },
            Bool: { 'aws:SecureTransport': 'true' },
          },
        },
      }),
    );
    expect(parsePolicyDocument(doc)).toEqual([
      {
        effect: 'Allow',
        actions: ['s3:GetObject'],
        resources: [`${BUCKET}/*`],
        conditionKeys: ['aws:SecureTransport', 'aws:SourceIp'],
      },
    ]);
  });

  it('refuses what is not a policy', () => {
    for (const bad of ['not json', '{"Statement": [{"Effect": "Maybe"}]}', '[]']) {
      let code = '';
      try {
        parsePolicyDocument(bad);
      } catch (err) {
        code = isLatchkeyError(err) ? err.code : 'other';
      }
      expect(code).toBe('E_INVALID');
    }
  });
});

describe('wildcards', () => {
  it('matches * and ?, actions without regard to case, ARNs with', () => {
    expect(wildcardMatch('s3:Get*', 's3:getobject', true)).toBe(true);
    expect(wildcardMatch('s3:Get*', 's3:PutObject', true)).toBe(false);
    expect(wildcardMatch('s3:Get?bject', 's3:GetObject', true)).toBe(true);
    expect(wildcardMatch('s3:Get?bject', 's3:GetOObject', true)).toBe(false);
    expect(wildcardMatch('arn:aws:s3:::acme-*', BUCKET, false)).toBe(true);
    expect(wildcardMatch('arn:aws:s3:::ACME-*', BUCKET, false)).toBe(false);
    expect(wildcardMatch('arn:aws:s3:::acme.reports', 'arn:aws:s3:::acmeXreports', false)).toBe(
      false,
    );
    expect(wildcardMatch('*', 'anything:at:all', false)).toBe(true);
  });
});

describe('decide', () => {
  it('allows through an Action/Resource wildcard and names the policy', () => {
    const d = decide(
      [policy({ Effect: 'Allow', Action: 'dynamodb:*', Resource: '*' })],
      'dynamodb:GetItem',
      [TABLE],
    );
    expect(d).toEqual({ denied: false, allowedBy: [0], conditionKeys: new Map([[0, []]]) });
  });

  it('NotAction allows everything but the listed actions', () => {
    const p = [
      policy({ Effect: 'Allow', NotAction: ['iam:*', 'dynamodb:Delete*'], Resource: '*' }),
    ];
    expect(decide(p, 'dynamodb:GetItem', [TABLE]).allowedBy).toEqual([0]);
    expect(decide(p, 'dynamodb:DeleteItem', [TABLE]).allowedBy).toEqual([]);
    expect(decide(p, 'iam:CreateUser', ['*']).allowedBy).toEqual([]);
  });

  it('NotResource allows everywhere but the listed resources', () => {
    const p = [
      policy({ Effect: 'Allow', Action: 's3:GetObject', NotResource: 'arn:aws:s3:::acme-*/*' }),
    ];
    expect(decide(p, 's3:GetObject', [`${BUCKET}/*`]).allowedBy).toEqual([]);
    expect(decide(p, 's3:GetObject', ['arn:aws:s3:::other/*']).allowedBy).toEqual([0]);
  });

  it('an explicit Deny in any policy wins; a conditional Deny is reported, not applied', () => {
    const allow = policy({ Effect: 'Allow', Action: 's3:*', Resource: '*' });
    const deny = policy({ Effect: 'Deny', Action: 's3:PutObject', Resource: `${BUCKET}/*` });
    expect(decide([allow, deny], 's3:PutObject', [`${BUCKET}/*`]).denied).toBe(true);
    expect(decide([allow, deny], 's3:GetObject', [`${BUCKET}/*`]).denied).toBe(false);
    // A Deny of one s3 action also takes away "all of s3".
    expect(decide([allow, deny], 's3:*', [`${BUCKET}/*`]).denied).toBe(true);
    const conditional = policy({
      Effect: 'Deny',
      Action: 's3:*',
      Resource: '*',
      Condition: { Bool: { 'aws:MultiFactorAuthPresent': 'false' } },
    });
    const d = decide([allow, conditional], 's3:GetObject', [`${BUCKET}/*`]);
    expect(d.denied).toBe(false);
    expect(d.conditionKeys.get(0)).toEqual(['aws:MultiFactorAuthPresent']);
  });

  it('a Deny with NotAction denies what it does not list', () => {
    const allow = policy({ Effect: 'Allow', Action: '*', Resource: '*' });
    const deny = policy({ Effect: 'Deny', NotAction: 's3:Get*', Resource: '*' });
    expect(decide([allow, deny], 's3:GetObject', [`${BUCKET}/*`]).denied).toBe(false);
    expect(decide([allow, deny], 's3:PutObject', [`${BUCKET}/*`]).denied).toBe(true);
  });
});

describe('grantsOnResource', () => {
  const levels: LevelSpec[] = [
    {
      level: 'read',
      actions: [
        { action: 's3:ListBucket', arns: [BUCKET] },
        { action: 's3:GetObject', arns: [`${BUCKET}/*`] },
      ],
    },
    {
      level: 'write',
      actions: [
        { action: 's3:ListBucket', arns: [BUCKET] },
        { action: 's3:GetObject', arns: [`${BUCKET}/*`] },
        { action: 's3:PutObject', arns: [`${BUCKET}/*`] },
      ],
    },
    {
      level: 'admin',
      actions: [
        { action: 's3:*', arns: [BUCKET] },
        { action: 's3:*', arns: [`${BUCKET}/*`] },
      ],
    },
  ];

  it('gives each policy the highest level it covers in full, partial otherwise, with conditions', () => {
    const grants = grantsOnResource(
      [
        policy({
          Effect: 'Allow',
          Action: ['s3:ListBucket', 's3:GetObject'],
          Resource: [BUCKET, `${BUCKET}/*`],
        }),
        policy({
          Effect: 'Allow',
          Action: 's3:PutObject',
          Resource: `${BUCKET}/*`,
          Condition: { StringEquals: { 's3:x-amz-acl': 'private' } },
        }),
        policy({ Effect: 'Allow', Action: 's3:*', Resource: BUCKET }),
        policy({ Effect: 'Allow', Action: 'sqs:*', Resource: '*' }),
      ],
      levels,
    );
    expect(grants).toEqual([
      {
        policy: 0,
        permission: 'read',
        privileges: ['s3:GetObject', 's3:ListBucket'],
        conditions: [],
      },
      {
        policy: 1,
        permission: 'partial',
        privileges: ['s3:PutObject'],
        conditions: ['s3:x-amz-acl'],
      },
      // Bucket only, not its objects: every bucket action, no object one.
      { policy: 2, permission: 'partial', privileges: ['s3:*', 's3:ListBucket'], conditions: [] },
    ]);
  });

  it('AdministratorAccess is admin; a Deny elsewhere lowers it', () => {
    const admin = policy({ Effect: 'Allow', Action: '*', Resource: '*' });
    expect(grantsOnResource([admin], levels).map((g) => g.permission)).toEqual(['admin']);
    const noWrite = policy({ Effect: 'Deny', Action: 's3:PutObject', Resource: '*' });
    expect(grantsOnResource([admin, noWrite], levels)).toEqual([
      {
        policy: 0,
        permission: 'read',
        privileges: ['s3:GetObject', 's3:ListBucket'],
        conditions: [],
      },
    ]);
  });
});
