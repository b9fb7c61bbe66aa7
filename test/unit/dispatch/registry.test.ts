import { describe, expect, it } from 'vitest';
import type { DriverFactory } from '../../../src/drivers/driver.js';
import { createDriverRegistry, productionDriverFactories } from '../../../src/drivers/registry.js';
import { ALL_KINDS, FakeDriver, OK_OUTPUT, services } from './fakes.js';

describe('createDriverRegistry', () => {
  it('builds each driver lazily, once, and knows its types', () => {
    let built = 0;
    const factory: DriverFactory = () => {
      built++;
      return new FakeDriver('fake', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    };
    const registry = createDriverRegistry({ fake: factory, other: factory }, services());
    expect(built).toBe(0);
    expect(registry.types()).toEqual(['fake', 'other']);
    const a = registry.get('fake');
    const b = registry.get('fake');
    expect(a).toBe(b);
    expect(built).toBe(1);
    expect(registry.get('nosuch')).toBeUndefined();
    expect(registry.get('toString')).toBeUndefined();
    expect(registry.get('__proto__')).toBeUndefined();
  });

  it('closes every built driver, even when one fails to close', async () => {
    const good = new FakeDriver('good', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    const bad = new FakeDriver('bad', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    bad.close = () => Promise.reject(new Error('close failed'));
    const registry = createDriverRegistry({ good: () => good, bad: () => bad }, services());
    registry.get('good');
    registry.get('bad');
    await expect(registry.closeAll()).resolves.toBeUndefined();
    expect(good.closed).toBe(true);
  });

  it('the production map holds no test driver', () => {
    expect(Object.keys(productionDriverFactories)).not.toContain('test');
    expect(Object.keys(productionDriverFactories)).not.toContain('fake');
    expect(Object.isFrozen(productionDriverFactories)).toBe(true);
  });
});
