import { describe, expect, it } from 'vitest';
import { LatchkeyError } from '../../../src/errors.js';
import {
  createKubernetesSecretStore,
  runningInKubernetes,
} from '../../../src/secrets/kubernetes.js';
import type { KubernetesSecretsApi } from '../../../src/secrets/kubernetes.js';
import { errorOf } from '../../helpers/errors.js';

const PASSWORD = 'k8s-Pa55word/+=';
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** A fake of CoreV1Api's readNamespacedSecret that records calls and fails like the real one. */
function fakeApi(secrets: Record<string, Record<string, string>>) {
  const calls: { name: string; namespace: string }[] = [];
  const api: KubernetesSecretsApi = {
    readNamespacedSecret(param) {
      calls.push(param);
      const data = secrets[`${param.namespace}/${param.name}`];
      if (!data) {
        return Promise.reject(
          Object.assign(new Error('HTTP-Code: 404 Message: secrets "x" not found'), { code: 404 }),
        );
      }
      return Promise.resolve({ data });
    },
  };
  return { api, calls };
}

function failingApi(code: number): KubernetesSecretsApi {
  return {
    readNamespacedSecret: () =>
      Promise.reject(Object.assign(new Error(`HTTP-Code: ${code}`), { code })),
  };
}

describe('kubernetes secret store (API)', () => {
  it('decodes the base64 data fields of the secret', async () => {
    const { api, calls } = fakeApi({
      'db/pg-admin': {
        username: b64('latchkey_admin'),
        password: b64(PASSWORD),
        host: b64('pg.db.svc'),
        port: b64('5432'),
        dbname: b64('app'),
        sslrootcert: b64('-----BEGIN CERTIFICATE-----'),
      },
    });
    const store = createKubernetesSecretStore({ api });
    const secret = await store.resolve({ store: 'kubernetes', name: 'pg-admin', namespace: 'db' });
    expect(secret).toEqual({
      username: 'latchkey_admin',
      password: PASSWORD,
      host: 'pg.db.svc',
      port: 5432,
      dbname: 'app',
      extra: { sslrootcert: '-----BEGIN CERTIFICATE-----' },
    });
    expect(calls).toEqual([{ name: 'pg-admin', namespace: 'db' }]);
  });

  it('uses the configured default namespace when the ref names none', async () => {
    const { api, calls } = fakeApi({
      'latchkey/pg': { username: b64('u'), password: b64(PASSWORD) },
    });
    const store = createKubernetesSecretStore({ api, defaultNamespace: 'latchkey' });
    await store.resolve({ store: 'kubernetes', name: 'pg' });
    expect(calls).toEqual([{ name: 'pg', namespace: 'latchkey' }]);
  });

  it('a missing secret or field is E_SECRET naming it, never the value', async () => {
    const { api } = fakeApi({ 'db/no-pass': { username: b64('u'), token: b64(PASSWORD) } });
    const store = createKubernetesSecretStore({ api });

    const missing = await errorOf(
      store.resolve({ store: 'kubernetes', name: 'x', namespace: 'db' }),
    );
    expect(missing.code).toBe('E_SECRET');
    expect(missing.message).toBe('kubernetes secret db/x not found');

    const noPass = await errorOf(
      store.resolve({ store: 'kubernetes', name: 'no-pass', namespace: 'db' }),
    );
    expect(noPass.code).toBe('E_SECRET');
    expect(noPass.message).toBe('kubernetes secret db/no-pass: field "password" is missing');
    expect(noPass.message).not.toContain(PASSWORD);
  });

  it('a field that is not base64 is E_SECRET', async () => {
    const { api } = fakeApi({ 'db/bad': { username: b64('u'), password: 'not base64!' } });
    const err = await errorOf(
      createKubernetesSecretStore({ api }).resolve({
        store: 'kubernetes',
        name: 'bad',
        namespace: 'db',
      }),
    );
    expect(err.code).toBe('E_SECRET');
    expect(err.message).toMatch(/"password" is not base64/);
  });

  it.each([
    [403, 'E_SECRET', /ServiceAccount needs "get"/],
    [401, 'E_SECRET', /not readable/],
    [429, 'E_THROTTLED', /throttled/],
    [503, 'E_CONNECT', /unreachable/],
  ] as const)('HTTP %i from the API is %s', async (status, code, message) => {
    const store = createKubernetesSecretStore({ api: failingApi(status) });
    const err = await errorOf(store.resolve({ store: 'kubernetes', name: 's', namespace: 'n' }));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it('outside a cluster and without an injected API, it says so (E_SECRET)', async () => {
    const store = createKubernetesSecretStore({ env: {}, defaultNamespace: 'default' });
    const err = await errorOf(store.resolve({ store: 'kubernetes', name: 's' }));
    expect(err.code).toBe('E_SECRET');
    expect(err.message).toMatch(/KUBERNETES_SERVICE_HOST is not set/);
    expect(runningInKubernetes({ KUBERNETES_SERVICE_HOST: '10.0.0.1' })).toBe(true);
    expect(runningInKubernetes({})).toBe(false);
  });

  it('an abort while the API call runs ends the wait with the abort reason', async () => {
    const ctl = new AbortController();
    const api: KubernetesSecretsApi = {
      readNamespacedSecret: () => {
        queueMicrotask(() => ctl.abort(new LatchkeyError('E_TIMEOUT', 'deadline exceeded')));
        return new Promise(() => undefined);
      },
    };
    const err = await errorOf(
      createKubernetesSecretStore({ api }).resolve(
        { store: 'kubernetes', name: 's', namespace: 'n' },
        ctl.signal,
      ),
    );
    expect(err.code).toBe('E_TIMEOUT');
  });
});
