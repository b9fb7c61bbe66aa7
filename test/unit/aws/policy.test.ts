import { describe, expect, it } from 'vitest';
import {
  grantPolicyName,
  parsePrincipal,
  policyExpiry,
  policySize,
  statement,
} from '../../../src/aws/policy.js';
import { LatchkeyError } from '../../../src/errors.js';

describe('inline policy helpers', () => {
  it('sorts and de-duplicates actions and resources, a single item as a string', () => {
    expect(statement(['b:X', 'a:Y', 'b:X'], ['r2', 'r1', 'r2'])).toEqual({
      Effect: 'Allow',
      Action: ['a:Y', 'b:X'],
      Resource: ['r1', 'r2'],
    });
    expect(statement(['a:Y'], ['r1'], {})).toEqual({
      Effect: 'Allow',
      Action: 'a:Y',
      Resource: 'r1',
    });
  });

  it('measures size without whitespace', () => {
    expect(policySize('{ "a" :\n\t"b c" }')).toBe('{"a":"bc"}'.length);
  });

  it('names grant policies, hashing ids IAM would refuse', () => {
    expect(grantPolicyName('latchkey', 'g-1')).toBe('latchkey-grant-g-1');
    expect(grantPolicyName('apono', 'g-1', 'ssm-')).toBe('apono-ssm-grant-g-1');
    const hashed = grantPolicyName('latchkey', 'tenant:g:1');
    expect(hashed).toMatch(/^latchkey-grant-h-[0-9a-f]{40}$/);
    expect(grantPolicyName('latchkey', 'tenant:g:1')).toBe(hashed);
    expect(grantPolicyName('latchkey', 'tenant:g:2')).not.toBe(hashed);
    expect(grantPolicyName('latchkey', 'x'.repeat(128)).length).toBeLessThanOrEqual(128);
  });

  it('parses role, user and assumed-role principals', () => {
    expect(parsePrincipal('arn:aws:iam::123456789012:role/team/data-analyst')).toMatchObject({
      kind: 'role',
      name: 'data-analyst',
      accountId: '123456789012',
    });
    expect(parsePrincipal('arn:aws:iam::123456789012:user/jane')).toMatchObject({
      kind: 'user',
      name: 'jane',
    });
    expect(
      parsePrincipal('arn:aws:sts::123456789012:assumed-role/data-analyst/jane@example.com'),
    ).toMatchObject({
      kind: 'role',
      name: 'data-analyst',
    });
    for (const bad of [
      undefined,
      'arn:aws:iam::123456789012:group/devs',
      'arn:aws:iam::123456789012:root',
    ]) {
      expect(() => parsePrincipal(bad)).toThrow(LatchkeyError);
    }
  });

  it('finds the expiry of a stored policy: the latest DateLessThan, none if any statement never expires', () => {
    const st = (t?: string) => ({
      Effect: 'Allow',
      Action: 'x:Y',
      Resource: '*',
      ...(t ? { Condition: { DateLessThan: { 'aws:CurrentTime': t } } } : {}),
    });
    const doc = (...s: object[]) => JSON.stringify({ Version: '2012-10-17', Statement: s });
    expect(
      policyExpiry(doc(st('2026-01-01T00:00:00Z'), st('2026-02-01T00:00:00Z')))?.toISOString(),
    ).toBe('2026-02-01T00:00:00.000Z');
    expect(policyExpiry(doc(st('2026-01-01T00:00:00Z'), st()))).toBeNull();
    expect(policyExpiry('not json')).toBeNull();
  });
});
