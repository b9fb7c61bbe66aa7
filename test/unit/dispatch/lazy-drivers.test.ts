import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Driver, DriverFactory } from '../../../src/drivers/driver.js';
import { lazyDriverFactory, productionDriverFactories } from '../../../src/drivers/registry.js';
import { ALL_KINDS, FakeDriver, OK_OUTPUT, services } from './fakes.js';

const MODULES: Record<string, () => Promise<{ driverFactory: DriverFactory }>> = {
  'aws-discovery': () => import('../../../src/drivers/aws-discovery/index.js'),
  'aws-eks': () => import('../../../src/drivers/aws-eks/index.js'),
  'aws-identity-center': () => import('../../../src/drivers/aws-identity-center/index.js'),
  'aws-iam': () => import('../../../src/drivers/aws-iam/index.js'),
  'aws-lambda': () => import('../../../src/drivers/aws-lambda/index.js'),
  'aws-ssm': () => import('../../../src/drivers/aws-ssm/index.js'),
  mysql: () => import('../../../src/drivers/mysql/index.js'),
  postgres: () => import('../../../src/drivers/postgres/index.js'),
  redshift: () => import('../../../src/drivers/redshift/index.js'),
};

describe('production drivers are loaded lazily', () => {
  it('every manifest says exactly what its real driver serves', async () => {
    expect(Object.keys(productionDriverFactories).sort()).toEqual(Object.keys(MODULES).sort());
    for (const [type, factory] of Object.entries(productionDriverFactories)) {
      const proxy = factory(services());
      const load = MODULES[type];
      if (!load) throw new Error(`no module listed for ${type}`);
      const real: Driver = (await load()).driverFactory(services());
      expect({ type: proxy.type, kinds: [...proxy.kinds].sort() }, type).toEqual({
        type: real.type,
        kinds: [...real.kinds].sort(),
      });
      expect(typeof proxy.sweep === 'function', `${type} sweeps`).toBe(
        typeof real.sweep === 'function',
      );
      await real.close();
      await proxy.close();
    }
  });

  it('the registry module imports no driver module statically', () => {
    const source = readFileSync(
      new URL('../../../src/drivers/registry.ts', import.meta.url),
      'utf8',
    );
    const staticImports = [...source.matchAll(/^import\s[^;]*from\s+'([^']+)'/gm)].map((m) => m[1]);
    expect(staticImports.filter((p) => p?.startsWith('./') && p !== './driver.js')).toEqual([]);
  });

  it('loads the module once, on first call, and delegates every call', async () => {
    let loads = 0;
    const real = new FakeDriver('fake', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    const factory = lazyDriverFactory('fake', { kinds: ALL_KINDS, sweeps: true }, () => {
      loads++;
      return Promise.resolve({ driverFactory: () => real });
    });
    const proxy = factory(services());
    expect(loads).toBe(0);
    const ctx = {
      commandId: 'c1',
      integration: { id: 'i', type: 'fake', config: {} },
      signal: new AbortController().signal,
      logger: services().logger,
    };
    await expect(proxy.check(ctx)).resolves.toEqual(OK_OUTPUT.check);
    await expect(proxy.discover(ctx)).resolves.toEqual(OK_OUTPUT.discover);
    expect(loads).toBe(1);
    await proxy.close();
    expect(real.closed).toBe(true);
  });

  it('a module building the wrong type fails the call instead of serving it', async () => {
    const other = new FakeDriver('other', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    const proxy = lazyDriverFactory('fake', { kinds: ALL_KINDS, sweeps: false }, () =>
      Promise.resolve({ driverFactory: () => other }),
    )(services());
    const ctx = {
      commandId: 'c1',
      integration: { id: 'i', type: 'fake', config: {} },
      signal: new AbortController().signal,
      logger: services().logger,
    };
    await expect(proxy.check(ctx)).rejects.toThrow('built a other driver');
    expect('sweep' in proxy).toBe(false);
  });
});

describe('lazy proxies and the access inventory (issue 13)', () => {
  const ctx = () => ({
    commandId: 'c1',
    integration: { id: 'i', type: 'fake', config: {} },
    signal: new AbortController().signal,
    logger: services().logger,
  });

  it('hands discover params and standing cleanups to the real driver', async () => {
    const seen: unknown[] = [];
    const fake = new FakeDriver('fake', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    const standing = { dropped: [], kept: [], standing: [], dryRun: true };
    const real: Driver = {
      type: fake.type,
      kinds: fake.kinds,
      discover: (c, params) => {
        seen.push(params);
        return fake.discover(c);
      },
      grant: (c) => fake.grant(c),
      revoke: (c) => fake.revoke(c),
      rotate: (c) => fake.rotate(c),
      cleanup: (c) => fake.cleanup(c),
      check: (c) => fake.check(c),
      removeStanding: (_c, params) => {
        seen.push(params);
        return Promise.resolve(standing);
      },
      close: () => fake.close(),
    };
    const proxy = lazyDriverFactory('fake', { kinds: ALL_KINDS, sweeps: false }, () =>
      Promise.resolve({ driverFactory: () => real }),
    )(services());
    await proxy.discover(ctx(), { include: ['privileges'] });
    const params = {
      standing: [
        { principalId: 'user:a@%', resourceId: '*', permission: 'admin', via: 'direct' as const },
      ],
    };
    await expect(proxy.removeStanding?.(ctx(), params)).resolves.toEqual(standing);
    expect(seen).toEqual([{ include: ['privileges'] }, params]);
  });

  it('a real driver without standing cleanup answers E_UNSUPPORTED through the proxy', async () => {
    const real = new FakeDriver('fake', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    const proxy = lazyDriverFactory('fake', { kinds: ALL_KINDS, sweeps: false }, () =>
      Promise.resolve({ driverFactory: () => real }),
    )(services());
    await expect(
      proxy.removeStanding?.(ctx(), {
        standing: [{ principalId: 'p', resourceId: 'r', permission: 'read', via: 'direct' }],
      }),
    ).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
  });
});
