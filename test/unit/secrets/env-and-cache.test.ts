import { describe, expect, it } from 'vitest';
import { LatchkeyError } from '../../../src/errors.js';
import { SecretCache } from '../../../src/secrets/cache.js';
import { readEnvSecret } from '../../../src/secrets/env.js';
import { createSecretResolver } from '../../../src/secrets/index.js';
import { testAwsFactory, testClock } from './aws-fixtures.js';

describe('env secret store', () => {
  it('reads <prefix>USERNAME, PASSWORD, HOST, PORT, DBNAME and nothing else', () => {
    const secret = readEnvSecret(
      { store: 'env', prefix: 'LATCHKEY_PG_' },
      {
        LATCHKEY_PG_USERNAME: 'postgres',
        LATCHKEY_PG_PASSWORD: 'pw',
        LATCHKEY_PG_HOST: '127.0.0.1',
        LATCHKEY_PG_PORT: '5432',
        LATCHKEY_PG_DBNAME: 'postgres',
        LATCHKEY_PG_CONNECTOR_TOKEN: 'must-not-be-read',
      },
    );
    expect(secret).toEqual({
      username: 'postgres',
      password: 'pw',
      host: '127.0.0.1',
      port: 5432,
      dbname: 'postgres',
      extra: {},
    });
  });

  it('names the missing variable (E_SECRET)', () => {
    let caught: unknown;
    try {
      readEnvSecret({ store: 'env', prefix: 'PG_' }, { PG_USERNAME: 'u' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(LatchkeyError);
    expect((caught as LatchkeyError).code).toBe('E_SECRET');
    expect((caught as LatchkeyError).message).toBe('environment variable PG_PASSWORD is not set');
    expect(() => readEnvSecret({ store: 'env', prefix: 'PG_' }, { PG_PASSWORD: 'p' })).toThrow(
      'environment variable PG_USERNAME is not set or empty',
    );
  });

  it('accepts a set but empty password (local servers without one)', () => {
    const secret = readEnvSecret(
      { store: 'env', prefix: 'MY_' },
      { MY_USERNAME: 'root', MY_PASSWORD: '' },
    );
    expect(secret).toEqual({ username: 'root', password: '', extra: {} });
  });

  it('refuses a port that is not a port', () => {
    expect(() =>
      readEnvSecret(
        { store: 'env', prefix: 'PG_' },
        { PG_USERNAME: 'u', PG_PASSWORD: 'p', PG_PORT: '70000' },
      ),
    ).toThrow(/"port" is not a TCP port/);
  });
});

describe('SecretCache', () => {
  const value = { username: 'u', password: 'cached-password', extra: { a: 'b' } };

  it('zeroes the bytes of an entry when its TTL passes', () => {
    const clock = testClock();
    const cache = new SecretCache(1000, clock.now);
    cache.set('k', value);
    const bytes = cache.rawBytes('k');
    expect(bytes?.toString('utf8')).toContain('cached-password');

    clock.advance(1000);
    expect(cache.get('k')).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(bytes?.every((b) => b === 0)).toBe(true);
  });

  it('zeroes on delete, deleteWhere and clear, and keeps nothing with a TTL of 0', () => {
    const cache = new SecretCache(60_000);
    cache.set('a', value);
    cache.set('b', value);
    cache.set('c', value);
    const [a, b, c] = ['a', 'b', 'c'].map((k) => cache.rawBytes(k));
    cache.delete('a');
    cache.deleteWhere((k) => k === 'b');
    expect(cache.size).toBe(1);
    cache.clear();
    for (const bytes of [a, b, c]) expect(bytes?.every((x) => x === 0)).toBe(true);

    const off = new SecretCache(0);
    off.set('a', value);
    expect(off.get('a')).toBeUndefined();
  });

  it('replacing an entry zeroes the old bytes', () => {
    const cache = new SecretCache(60_000);
    cache.set('k', value);
    const old = cache.rawBytes('k');
    cache.set('k', { ...value, password: 'next' });
    expect(old?.every((x) => x === 0)).toBe(true);
    expect(cache.get('k')?.password).toBe('next');
  });
});

describe('env store prefix confinement (resolver)', () => {
  const env = {
    LATCHKEY_SECRET_PG_USERNAME: 'svc',
    LATCHKEY_SECRET_PG_PASSWORD: 'svc-pw',
    PGUSERNAME: 'other-app',
    PGPASSWORD: 'Other-App-Pa55',
    LATCHKEY_CONNECTOR_USERNAME: 'x',
    LATCHKEY_CONNECTOR_PASSWORD: 'Connector-Pa55',
    TEAM_DB_USERNAME: 'team',
    TEAM_DB_PASSWORD: 'team-pw',
  };
  const base = { aws: testAwsFactory(), defaultRegion: 'eu-west-1', cacheTtlMs: 0, env };

  it('reads prefixes under LATCHKEY_SECRET_ by default, refuses any other (E_GUARDRAIL)', async () => {
    const r = createSecretResolver(base);
    expect((await r.resolve({ store: 'env', prefix: 'LATCHKEY_SECRET_PG_' })).password).toBe(
      'svc-pw',
    );
    for (const prefix of ['PG', 'LATCHKEY_CONNECTOR_', 'LATCHKEY_', 'TEAM_DB_']) {
      const err = await r.resolve({ store: 'env', prefix }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, prefix).toBeInstanceOf(LatchkeyError);
      expect((err as LatchkeyError).code).toBe('E_GUARDRAIL');
      expect((err as LatchkeyError).message).toContain('LATCHKEY_SECRET_ENV_PREFIXES');
      expect((err as LatchkeyError).message).not.toMatch(/Pa55/);
    }
  });

  it('follows a configured allow-list', async () => {
    const r = createSecretResolver({ ...base, envPrefixes: ['TEAM_'] });
    expect((await r.resolve({ store: 'env', prefix: 'TEAM_DB_' })).username).toBe('team');
    await expect(r.resolve({ store: 'env', prefix: 'LATCHKEY_SECRET_PG_' })).rejects.toMatchObject({
      code: 'E_GUARDRAIL',
    });
  });
});
