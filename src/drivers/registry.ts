/**
 * The driver registry: a static map from integration type to driver factory.
 *
 * Drivers are built lazily, once per type, on the first `get` of that type, with the
 * agent's long-lived services. `closeAll` releases every driver that was built (pools,
 * clients) and is safe to call twice.
 *
 * `productionDriverFactories` is the only map the agent binary uses; test drivers live
 * under `test/` and are never added to it, so no production configuration can reach them.
 */
import { LatchkeyError } from '../errors.js';
import type { CommandKind } from '../protocol/messages.js';
import type { Driver, DriverFactory, DriverServices } from './driver.js';

export interface DriverRegistry {
  /** The driver for `type`, built on first use; `undefined` when the type is unknown. */
  get(type: string): Driver | undefined;
  /** Every integration type this registry can serve, sorted. */
  types(): string[];
  /** Close every driver built so far; errors are logged, never thrown. */
  closeAll(): Promise<void>;
}

export function createDriverRegistry(
  factories: Readonly<Record<string, DriverFactory>>,
  services: DriverServices,
): DriverRegistry {
  const built = new Map<string, Driver>();
  return {
    get(type: string): Driver | undefined {
      if (!Object.prototype.hasOwnProperty.call(factories, type)) return undefined;
      const existing = built.get(type);
      if (existing) return existing;
      const factory = factories[type];
      if (factory === undefined) return undefined;
      const driver = factory(services);
      built.set(type, driver);
      return driver;
    },
    types(): string[] {
      return Object.keys(factories).sort();
    },
    async closeAll(): Promise<void> {
      const drivers = [...built.entries()];
      built.clear();
      await Promise.all(
        drivers.map(async ([type, driver]) => {
          try {
            await driver.close();
          } catch (err) {
            services.logger.error({ err, integrationType: type }, 'driver close failed');
          }
        }),
      );
    },
  };
}

/** What the agent knows of a driver without loading its module (announced in `hello`). */
export interface DriverManifest {
  readonly kinds: readonly CommandKind[];
  /** The driver implements `sweep` (expiry enforced locally). */
  readonly sweeps: boolean;
}

/**
 * A factory whose driver module is imported on first use. Until then the agent knows
 * the driver only by its manifest: most deployments use one or two integration types,
 * and the AWS SDK clients behind the others cost tens of MiB each. A test checks every
 * manifest against its real driver.
 */
export function lazyDriverFactory(
  type: string,
  manifest: DriverManifest,
  load: () => Promise<{ driverFactory: DriverFactory }>,
): DriverFactory {
  return (services) => {
    let real: Promise<Driver> | undefined;
    const driver = (): Promise<Driver> =>
      (real ??= load().then(({ driverFactory }) => {
        const built = driverFactory(services);
        if (built.type !== type) {
          throw new Error(`driver module for ${type} built a ${built.type} driver`);
        }
        return built;
      }));
    const proxy: Driver = {
      type,
      kinds: manifest.kinds,
      discover: async (ctx, params) => (await driver()).discover(ctx, params),
      grant: async (ctx, params) => (await driver()).grant(ctx, params),
      revoke: async (ctx, params) => (await driver()).revoke(ctx, params),
      rotate: async (ctx, params) => (await driver()).rotate(ctx, params),
      cleanup: async (ctx, params) => (await driver()).cleanup(ctx, params),
      check: async (ctx) => (await driver()).check(ctx),
      // A standing cleanup (issue 13) goes to the real driver, which may not have one.
      removeStanding: async (ctx, params) => {
        const d = await driver();
        if (!d.removeStanding) {
          throw new LatchkeyError(
            'E_UNSUPPORTED',
            `the ${type} driver cannot remove standing access`,
          );
        }
        return d.removeStanding(ctx, params);
      },
      close: async () => {
        if (real) await (await real).close();
      },
    };
    if (manifest.sweeps) {
      proxy.sweep = async (ctx) => {
        const d = await driver();
        return d.sweep ? d.sweep(ctx) : { revoked: [], errors: [] };
      };
    }
    return proxy;
  };
}

const ALL_KINDS: readonly CommandKind[] = [
  'discover',
  'grant',
  'revoke',
  'rotate',
  'cleanup',
  'check',
];
const ACCESS_KINDS: readonly CommandKind[] = ['discover', 'grant', 'revoke', 'check'];
/** Access drivers that also remove standing access (`cleanup` with `standing`, issue 13). */
const STANDING_KINDS: readonly CommandKind[] = [...ACCESS_KINDS, 'cleanup'];

/** The real drivers, by integration type. A test driver must never appear here. */
export const productionDriverFactories: Readonly<Record<string, DriverFactory>> = Object.freeze({
  'aws-discovery': lazyDriverFactory(
    'aws-discovery',
    { kinds: ['discover', 'check'], sweeps: false },
    () => import('./aws-discovery/index.js'),
  ),
  'aws-eks': lazyDriverFactory(
    'aws-eks',
    { kinds: ACCESS_KINDS, sweeps: true },
    () => import('./aws-eks/index.js'),
  ),
  'aws-identity-center': lazyDriverFactory(
    'aws-identity-center',
    { kinds: STANDING_KINDS, sweeps: true },
    () => import('./aws-identity-center/index.js'),
  ),
  'aws-iam': lazyDriverFactory(
    'aws-iam',
    { kinds: STANDING_KINDS, sweeps: true },
    () => import('./aws-iam/index.js'),
  ),
  'aws-lambda': lazyDriverFactory(
    'aws-lambda',
    { kinds: ALL_KINDS, sweeps: false },
    () => import('./aws-lambda/index.js'),
  ),
  'aws-ssm': lazyDriverFactory(
    'aws-ssm',
    { kinds: STANDING_KINDS, sweeps: true },
    () => import('./aws-ssm/index.js'),
  ),
  mysql: lazyDriverFactory(
    'mysql',
    { kinds: ALL_KINDS, sweeps: true },
    () => import('./mysql/index.js'),
  ),
  postgres: lazyDriverFactory(
    'postgres',
    { kinds: ALL_KINDS, sweeps: true },
    () => import('./postgres/index.js'),
  ),
  redshift: lazyDriverFactory(
    'redshift',
    { kinds: ALL_KINDS, sweeps: true },
    () => import('./redshift/index.js'),
  ),
});
