import { describe, expect, it } from 'vitest';
import { readConnectorTags, tagKeys } from '../../../../src/drivers/aws-discovery/tags.js';
import { engineType, subIntegrationId } from '../../../../src/drivers/aws-discovery/discover.js';
import { parseDiscoveryConfig } from '../../../../src/drivers/aws-discovery/config.js';

const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/pg-AbCdEf';

describe('aws-discovery tags', () => {
  it('names the tags after the prefix', () => {
    expect(tagKeys('apono')).toEqual({
      connectorId: 'apono-connector-id',
      authType: 'auth_type',
      authTypeAlias: 'apono-auth-type',
      secret: 'apono-secret',
      username: 'apono-username',
      database: 'apono-database',
    });
  });

  it('accepts valid tags, normalizing the auth type spelling', () => {
    expect(
      readConnectorTags(
        { 'latchkey-connector-id': ' c-1 ', auth_type: 'USER_PASSWORD', 'latchkey-secret': SECRET },
        'latchkey',
        'c-1',
      ),
    ).toEqual({
      kind: 'ours',
      authType: 'user-password',
      secret: { arn: SECRET, region: 'eu-west-1', accountId: '123456789012' },
      username: undefined,
      database: undefined,
    });
    // iam-auth: a secret tag is not needed and not used; the alias tag works.
    expect(
      readConnectorTags(
        { 'apono-connector-id': 'c-1', 'apono-auth-type': 'iam-auth', 'apono-username': 'svc' },
        'apono',
        'c-1',
      ),
    ).toEqual({
      kind: 'ours',
      authType: 'iam-auth',
      secret: undefined,
      username: 'svc',
      database: undefined,
    });
  });

  it('tells not-ours from meant-for-us-but-broken', () => {
    expect(readConnectorTags({ team: 'x' }, 'latchkey', 'c-1')).toEqual({ kind: 'not-ours' });
    expect(readConnectorTags({ 'latchkey-connector-id': 'c-2' }, 'latchkey', 'c-1')).toEqual({
      kind: 'not-ours',
      otherConnector: 'c-2',
    });
    const empty = readConnectorTags({ 'latchkey-connector-id': '' }, 'latchkey', 'c-1');
    expect(empty).toEqual({
      kind: 'invalid',
      problems: ['tag latchkey-connector-id is empty; set it to c-1'],
    });
    const many = readConnectorTags(
      {
        'latchkey-connector-id': 'c-1',
        auth_type: 'user-password',
        'latchkey-username': 'bad name;',
        'latchkey-database': 'x\u0000y',
      },
      'latchkey',
      'c-1',
    );
    expect(many.kind).toBe('invalid');
    expect(many.kind === 'invalid' && many.problems).toEqual([
      "tag latchkey-secret is missing; auth_type user-password needs the ARN of the service account's secret",
      "tag latchkey-username is not a valid database user name: 'bad name;'",
      "tag latchkey-database is not a valid database name: 'x?y'",
    ]);
  });

  it('maps engines to drivers and builds deterministic ids', () => {
    expect(engineType('aurora-postgresql')).toEqual({ type: 'postgres', defaultPort: 5432 });
    expect(engineType('mariadb')).toEqual({ type: 'mysql', flavor: 'mariadb', defaultPort: 3306 });
    expect(engineType('sqlserver-ee')).toBeNull();
    expect(
      subIntegrationId({
        accountId: '123456789012',
        region: 'eu-west-1',
        kind: 'rds-cluster',
        identifier: 'shop',
      }),
    ).toBe('aws:123456789012:eu-west-1:rds-cluster:shop');
  });

  it('parses the config with defaults', () => {
    expect(
      parseDiscoveryConfig({ connectorId: 'c-1', regions: ['eu-west-1', 'eu-west-1'] }),
    ).toEqual({
      connectorId: 'c-1',
      regions: ['eu-west-1'],
      useResourceExplorer: true,
      concurrency: 4,
    });
    expect(() =>
      parseDiscoveryConfig({
        connectorId: 'c-1',
        regions: ['eu-west-1'],
        organization: { enabled: true, memberRoleName: 'r', excludedOuIds: ['sandbox'] },
        extra: 1,
      }),
    ).toThrow(/organization\.excludedOuIds\.0.*|extra/);
  });
});
