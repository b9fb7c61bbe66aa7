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

/**
 * The real drivers, by integration type. Filled in by the lead as drivers land; a test
 * driver must never appear here.
 */
export const productionDriverFactories: Readonly<Record<string, DriverFactory>> = Object.freeze({});
