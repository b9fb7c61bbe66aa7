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
import type { Driver, DriverFactory, DriverServices } from './driver.js';
import { driverFactory as awsDiscoveryDriver } from './aws-discovery/index.js';
import { driverFactory as awsIamDriver } from './aws-iam/index.js';
import { driverFactory as awsLambdaDriver } from './aws-lambda/index.js';
import { driverFactory as awsSsmDriver } from './aws-ssm/index.js';
import { driverFactory as mysqlDriver } from './mysql/index.js';
import { driverFactory as postgresDriver } from './postgres/index.js';
import { driverFactory as redshiftDriver } from './redshift/index.js';

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

/** The real drivers, by integration type. A test driver must never appear here. */
export const productionDriverFactories: Readonly<Record<string, DriverFactory>> = Object.freeze({
  'aws-discovery': awsDiscoveryDriver,
  'aws-iam': awsIamDriver,
  'aws-lambda': awsLambdaDriver,
  'aws-ssm': awsSsmDriver,
  mysql: mysqlDriver,
  postgres: postgresDriver,
  redshift: redshiftDriver,
});
