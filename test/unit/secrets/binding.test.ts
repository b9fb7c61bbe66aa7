import { describe, expect, it } from 'vitest';
import { LatchkeyError } from '../../../src/errors.js';
import type { SecretRef } from '../../../src/protocol/messages.js';
import {
  DEFAULT_SECRET_BINDING,
  checkSecretBinding,
  parseUnboundStores,
  resolveBoundSecret,
} from '../../../src/secrets/binding.js';
import { createSecretResolver } from '../../../src/secrets/index.js';
import type { SecretResolver, ServiceSecret } from '../../../src/secrets/types.js';
import { DiscoveredPairings } from '../../../src/secrets/discovered.js';
import { testAwsFactory, testClock } from './aws-fixtures.js';

const PASSWORD = 'Prod-Service-Pa55word!';
const AWS_REF: SecretRef = {
  store: 'aws-secrets-manager',
  secretId: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/orders-db',
};
const K8S_REF: SecretRef = { store: 'kubernetes', name: 'orders-db' };
const ENV_REF: SecretRef = { store: 'env', prefix: 'LATCHKEY_SECRET_PG_' };
const FILE_REF: SecretRef = { store: 'file', path: '/run/secrets/orders-db' };

function secret(fields: Partial<ServiceSecret> = {}): ServiceSecret {
  return { username: 'svc', password: PASSWORD, extra: {}, ...fields };
}

function refusal(fn: () => unknown): LatchkeyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LatchkeyError);
    const e = err as LatchkeyError;
    expect(e.code).toBe('E_GUARDRAIL');
    expect(e.retryable).toBe(false);
    expect(e.message).not.toContain(PASSWORD);
    return e;
  }
  throw new Error('expected E_GUARDRAIL');
}

const PROD = { host: 'orders.cluster-abc.eu-west-1.rds.amazonaws.com', port: 5432 };

describe('checkSecretBinding', () => {
  it('refuses a secret bound to another host, naming the target and the field, never the secret', () => {
    const e = refusal(() =>
      checkSecretBinding(secret({ host: PROD.host, port: 5432 }), AWS_REF, {
        host: 'attacker.example',
        port: 5432,
      }),
    );
    expect(e.message).toContain('attacker.example');
    expect(e.message).toContain('another host');
    // The bound host is not echoed back to the control plane either.
    expect(e.message).not.toContain(PROD.host);
    expect(e.details).toMatchObject({ field: 'host', store: 'aws-secrets-manager' });
  });

  it('accepts the bound host case-insensitively, with a trailing dot or IPv6 brackets', () => {
    const bound = secret({ host: 'Orders.Cluster-ABC.eu-west-1.rds.amazonaws.com.', port: 5432 });
    expect(() => checkSecretBinding(bound, AWS_REF, PROD)).not.toThrow();
    expect(() =>
      checkSecretBinding(secret({ host: '[::1]' }), AWS_REF, { host: '::1', port: 5432 }),
    ).not.toThrow();
  });

  it('refuses another port when the secret names one; any port when it names none', () => {
    const e = refusal(() =>
      checkSecretBinding(secret({ host: PROD.host, port: 5432 }), AWS_REF, {
        host: PROD.host,
        port: 6432,
      }),
    );
    expect(e.details).toMatchObject({ field: 'port' });
    expect(e.message).toContain('6432');
    expect(() =>
      checkSecretBinding(secret({ host: PROD.host }), AWS_REF, { host: PROD.host, port: 6432 }),
    ).not.toThrow();
  });

  it('refuses another database when both the secret and the target name one', () => {
    const bound = secret({ host: PROD.host, dbname: 'orders' });
    const e = refusal(() => checkSecretBinding(bound, AWS_REF, { ...PROD, database: 'postgres' }));
    expect(e.details).toMatchObject({ field: 'dbname' });
    expect(() => checkSecretBinding(bound, AWS_REF, { ...PROD, database: 'orders' })).not.toThrow();
    // MySQL logs in to no database: the secret's dbname does not apply.
    expect(() => checkSecretBinding(bound, AWS_REF, PROD)).not.toThrow();
  });

  it('by default refuses unbound Secrets Manager and Kubernetes secrets, allows env and file', () => {
    for (const ref of [AWS_REF, K8S_REF]) {
      const e = refusal(() => checkSecretBinding(secret(), ref, PROD));
      expect(e.message).toContain('names no host');
      expect(e.message).toContain('LATCHKEY_ALLOW_UNBOUND_SECRETS');
      expect(e.details).toMatchObject({ reason: 'unbound' });
    }
    for (const ref of [ENV_REF, FILE_REF]) {
      expect(() => checkSecretBinding(secret(), ref, PROD)).not.toThrow();
    }
    expect(DEFAULT_SECRET_BINDING.allowUnbound).toEqual(['file', 'env']);
  });

  it('follows the policy given: none refuses even env, all allows every store', () => {
    refusal(() => checkSecretBinding(secret(), ENV_REF, PROD, { allowUnbound: [] }));
    expect(() =>
      checkSecretBinding(secret(), AWS_REF, PROD, { allowUnbound: ['aws-secrets-manager'] }),
    ).not.toThrow();
    // A host, once present, is always enforced whatever the policy.
    refusal(() =>
      checkSecretBinding(
        secret({ host: PROD.host }),
        ENV_REF,
        { host: 'evil', port: 5432 },
        {
          allowUnbound: ['aws-secrets-manager', 'kubernetes', 'file', 'env'],
        },
      ),
    );
  });
});

describe('binding by tag (Secrets Manager secrets stored as {username, password})', () => {
  const target = { host: 'orders.abc123.eu-west-1.rds.amazonaws.com', port: 5432 };
  const tagged = (tags: Record<string, string>) => secret({ tags });

  it('a secret tagged connector-read=true and connector-target=<host> is usable on that host only', () => {
    const s = tagged({
      'latchkey-connector-read': 'true',
      'latchkey-connector-target': 'Orders.abc123.eu-west-1.rds.amazonaws.com.',
    });
    expect(() => checkSecretBinding(s, AWS_REF, target)).not.toThrow();
    const other = refusal(() =>
      checkSecretBinding(s, AWS_REF, { host: 'attacker.example', port: 5432 }),
    );
    expect(other.message).toContain(
      'is bound by its tag latchkey-connector-target to another server than the integration',
    );
    expect(other.details).toMatchObject({ reason: 'tag-target' });
  });

  it('<host>:<port> in the target tag binds the port too', () => {
    const s = tagged({
      'latchkey-connector-read': 'TRUE',
      'latchkey-connector-target': `${target.host}:5432`,
    });
    expect(() => checkSecretBinding(s, AWS_REF, target)).not.toThrow();
    refusal(() => checkSecretBinding(s, AWS_REF, { ...target, port: 5433 }));
  });

  it('refuses, and says which tag to add, when a tag is missing or malformed', () => {
    const cases: [Record<string, string> | undefined, string][] = [
      [{}, ''],
      [
        { 'latchkey-connector-read': 'true' },
        'it has latchkey-connector-read=true but no latchkey-connector-target',
      ],
      [{ 'latchkey-connector-target': target.host }, 'but not latchkey-connector-read=true'],
      [
        { 'latchkey-connector-read': 'true', 'latchkey-connector-target': 'a b' },
        'latchkey-connector-target is not <host> or <host>:<port>',
      ],
      [undefined, 'its tags could not be read'],
    ];
    for (const [tags, problem] of cases) {
      const e = refusal(() => checkSecretBinding(secret(tags ? { tags } : {}), AWS_REF, target));
      expect(e.message).toContain(
        `or tag the secret latchkey-connector-read=true and latchkey-connector-target=${target.host}`,
      );
      expect(e.message).toContain(problem);
    }
  });

  it('the target tag may name the RDS identifier only when the connector looked the host up from it', () => {
    const s = tagged({ 'latchkey-connector-read': 'true', 'latchkey-connector-target': 'Orders' });
    expect(() => checkSecretBinding(s, AWS_REF, { ...target, rdsId: 'orders' })).not.toThrow();
    refusal(() => checkSecretBinding(s, AWS_REF, target));
    refusal(() => checkSecretBinding(s, AWS_REF, { ...target, rdsId: 'billing' }));
  });

  it('uses the policy tag prefix (apono-connector-read …)', () => {
    const s = tagged({ 'apono-connector-read': 'true', 'apono-connector-target': target.host });
    refusal(() => checkSecretBinding(s, AWS_REF, target));
    expect(() =>
      checkSecretBinding(s, AWS_REF, target, { allowUnbound: [], tagPrefix: 'apono' }),
    ).not.toThrow();
  });

  it('a host in the secret still decides over its tags', () => {
    const s = secret({
      host: 'other.internal',
      tags: { 'latchkey-connector-read': 'true', 'latchkey-connector-target': target.host },
    });
    refusal(() => checkSecretBinding(s, AWS_REF, target));
  });
});

describe('binding through a pairing found by this agent’s aws-discovery', () => {
  const target = { host: 'orders.abc123.eu-west-1.rds.amazonaws.com', port: 5432 };
  const DB = 'arn:aws:rds:eu-west-1:123456789012:db:orders';
  const arn = AWS_REF.store === 'aws-secrets-manager' ? AWS_REF.secretId : '';
  function policyWith(clock = testClock()) {
    const discovered = new DiscoveredPairings({ now: clock.now, ttlMs: 60_000 });
    return { policy: { allowUnbound: [], discovered }, discovered, clock };
  }

  it('accepts a plain secret for the recorded host and port only, within the TTL', () => {
    const { policy, discovered, clock } = policyWith();
    refusal(() => checkSecretBinding(secret(), AWS_REF, target, policy));
    discovered.record({ databaseArn: DB, secretArn: arn, host: target.host, port: 5432 });
    expect(() => checkSecretBinding(secret(), AWS_REF, target, policy)).not.toThrow();
    refusal(() =>
      checkSecretBinding(secret(), AWS_REF, { host: 'attacker.example', port: 5432 }, policy),
    );
    refusal(() => checkSecretBinding(secret(), AWS_REF, { ...target, port: 5433 }, policy));
    // Only Secrets Manager references: another store's secret spelled like the ARN is not it.
    const vaultRef: SecretRef = { store: 'vault', path: arn };
    refusal(() => checkSecretBinding(secret(), vaultRef, target, policy));
    clock.advance(60_001);
    const e = refusal(() => checkSecretBinding(secret(), AWS_REF, target, policy));
    expect(e.message).toContain('was discovered by this agent within 1 min');
  });

  it('a newer discovery of the database replaces or drops its pairing', () => {
    const { policy, discovered } = policyWith();
    discovered.record({ databaseArn: DB, secretArn: arn, host: target.host, port: 5432 });
    discovered.record({ databaseArn: DB, secretArn: `${arn}-new`, host: target.host, port: 5432 });
    refusal(() => checkSecretBinding(secret(), AWS_REF, target, policy));
    discovered.record({ databaseArn: DB, secretArn: arn, host: target.host, port: 5432 });
    discovered.forget(DB);
    refusal(() => checkSecretBinding(secret(), AWS_REF, target, policy));
    expect(discovered.list()).toEqual([]);
  });

  it("the secret's own target tag still decides when it names another server", () => {
    const { policy, discovered } = policyWith();
    discovered.record({ databaseArn: DB, secretArn: arn, host: target.host, port: 5432 });
    const s = secret({
      tags: { 'latchkey-connector-read': 'true', 'latchkey-connector-target': 'other.internal' },
    });
    refusal(() => checkSecretBinding(s, AWS_REF, target, policy));
    // and a host in the secret decides over everything.
    refusal(() => checkSecretBinding(secret({ host: 'other.internal' }), AWS_REF, target, policy));
  });
});

describe('resolveBoundSecret', () => {
  const fixed = (value: ServiceSecret, binding?: SecretResolver['binding']): SecretResolver => ({
    resolve: () => Promise.resolve(value),
    ...(binding ? { binding } : {}),
  });

  it("uses the resolver's policy, else the default", async () => {
    await expect(resolveBoundSecret(fixed(secret()), AWS_REF, PROD)).rejects.toMatchObject({
      code: 'E_GUARDRAIL',
    });
    const allowed = fixed(secret(), { allowUnbound: ['aws-secrets-manager'] });
    expect((await resolveBoundSecret(allowed, AWS_REF, PROD)).username).toBe('svc');
  });

  it('createSecretResolver exposes its policy (default file,env; or as configured)', () => {
    const base = { aws: testAwsFactory(), defaultRegion: 'eu-west-1', cacheTtlMs: 0 };
    expect(createSecretResolver(base).binding.allowUnbound).toEqual(['file', 'env']);
    expect(
      createSecretResolver({ ...base, allowUnbound: ['kubernetes'] }).binding.allowUnbound,
    ).toEqual(['kubernetes']);
  });
});

describe('parseUnboundStores', () => {
  it('reads store lists, all/true and none/false; refuses unknown stores', () => {
    expect(parseUnboundStores(['env', ' FILE ', 'env'])).toEqual({ stores: ['env', 'file'] });
    expect(parseUnboundStores(['all'])).toEqual({
      stores: ['aws-secrets-manager', 'kubernetes', 'file', 'env', 'vault'],
    });
    expect(parseUnboundStores(['true'])).toEqual(parseUnboundStores(['all']));
    expect(parseUnboundStores(['none'])).toEqual({ stores: [] });
    expect(parseUnboundStores(['false'])).toEqual({ stores: [] });
    expect(parseUnboundStores(['env', 'hashicorp'])).toMatchObject({
      problem: expect.stringContaining('"hashicorp"') as unknown,
    });
    expect('problem' in parseUnboundStores(['all', 'env'])).toBe(true);
  });
});
