import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { LatchkeyError } from '../../../src/errors.js';
import { createSecretResolver } from '../../../src/secrets/index.js';
import type { KubernetesSecretsApi } from '../../../src/secrets/index.js';
import type { SecretRef } from '../../../src/protocol/messages.js';
import { testAwsFactory, testClock } from './aws-fixtures.js';

const sm = mockClient(SecretsManagerClient);
const b64 = (s: string): string => Buffer.from(s).toString('base64');

function k8sApi() {
  let reads = 0;
  const api: KubernetesSecretsApi = {
    readNamespacedSecret: () => {
      reads += 1;
      return Promise.resolve({ data: { username: b64('k'), password: b64('kp') } });
    },
  };
  return { api, reads: () => reads };
}

function resolverWith(kubernetes?: KubernetesSecretsApi) {
  const clock = testClock();
  const resolver = createSecretResolver({
    aws: testAwsFactory(),
    defaultRegion: 'eu-central-1',
    cacheTtlMs: 10_000,
    now: clock.now,
    env: {
      LATCHKEY_SECRET_DEMO_PG_USERNAME: 'demo',
      LATCHKEY_SECRET_DEMO_PG_PASSWORD: 'demo-pw',
    },
    ...(kubernetes ? { kubernetes, kubernetesNamespace: 'latchkey' } : {}),
  });
  return { resolver, clock };
}

beforeEach(() => {
  sm.reset();
});

describe('createSecretResolver', () => {
  it('dispatches on the store of the ref', async () => {
    sm.on(GetSecretValueCommand).resolves({
      SecretString: JSON.stringify({ username: 'a', password: 'ap' }),
      $metadata: {},
    });
    const k8s = k8sApi();
    const { resolver } = resolverWith(k8s.api);

    expect(
      (await resolver.resolve({ store: 'aws-secrets-manager', secretId: 'latchkey/pg' })).username,
    ).toBe('a');
    expect((await resolver.resolve({ store: 'kubernetes', name: 'pg' })).username).toBe('k');
    expect(
      (await resolver.resolve({ store: 'env', prefix: 'LATCHKEY_SECRET_DEMO_PG_' })).password,
    ).toBe('demo-pw');
  });

  it('caches kubernetes values for the TTL; invalidate() drops them', async () => {
    const k8s = k8sApi();
    const { resolver, clock } = resolverWith(k8s.api);
    const ref: SecretRef = { store: 'kubernetes', name: 'pg' };
    await resolver.resolve(ref);
    await resolver.resolve(ref);
    expect(k8s.reads()).toBe(1);
    clock.advance(10_000);
    await resolver.resolve(ref);
    expect(k8s.reads()).toBe(2);
    resolver.invalidate(ref);
    await resolver.resolve(ref);
    expect(k8s.reads()).toBe(3);
    resolver.clear();
    await resolver.resolve(ref);
    expect(k8s.reads()).toBe(4);
  });

  it('refuses a malformed ref with E_SECRET', async () => {
    const { resolver } = resolverWith();
    const bad = { store: 'env', prefix: 'lower_case' } as SecretRef;
    await expect(resolver.resolve(bad)).rejects.toSatisfy(
      (err: unknown) => err instanceof LatchkeyError && err.code === 'E_SECRET',
    );
  });

  it('offers rotation for aws-secrets-manager only', async () => {
    const { resolver } = resolverWith();
    await expect(
      resolver.rotation.getPendingSecret({ store: 'file', path: '/run/secrets/pg' }),
    ).rejects.toSatisfy(
      (err: unknown) => err instanceof LatchkeyError && err.code === 'E_UNSUPPORTED',
    );
  });
});
