import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import type { PostgresConfig } from '../../../../src/drivers/postgres/config.js';
import type { DriverServices } from '../../../../src/drivers/driver.js';
import type { Integration } from '../../../../src/protocol/messages.js';
import { createSealer } from '../../../../src/protocol/seal.js';

const services: DriverServices = {
  logger: pino({ level: 'silent' }),
  secrets: { resolve: () => Promise.reject(new Error('unused')) },
  aws: {
    client: () => {
      throw new Error('unused');
    },
  },
  sealer: createSealer({ allowPlaintext: false }),
  tagPrefix: 'latchkey',
  now: () => new Date(),
};

class Exposed extends PostgresDriver {
  parses = 0;
  protected override parseConfig(integration: Integration): PostgresConfig {
    this.parses++;
    return super.parseConfig(integration);
  }
  config(integration: Integration): PostgresConfig {
    return this.configOf(integration);
  }
  key(integration: Integration, cfg: PostgresConfig, user: string): string {
    return this.specKey(integration, cfg, user);
  }
}

const integration = (config: Record<string, unknown>): Integration => ({
  id: 'pg-1',
  type: 'postgres',
  config: { host: 'db.internal', database: 'app', ...config },
  secret: { store: 'env', prefix: 'PG_' },
});

const drivers: PostgresDriver[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(drivers.splice(0).map((d) => d.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function driver(): Exposed {
  const d = new Exposed(services);
  drivers.push(d);
  return d;
}

describe('postgres driver: parsed configs kept by the integration text', () => {
  it('parses a config once per text; a changed config, secret or setting is parsed afresh', () => {
    const d = driver();
    const a = d.config(integration({ port: 5432 }));
    expect(d.config(integration({ port: 5432 }))).toBe(a);
    expect(d.parses).toBe(1);
    const b = d.config(integration({ port: 6432 }));
    expect(b.port).toBe(6432);
    const other = {
      ...integration({ port: 5432 }),
      secret: { store: 'env' as const, prefix: 'X_' },
    };
    expect(d.config(other)).not.toBe(a);
    const settings = { ...integration({ port: 5432 }), settings: { ownedObjects: 'drop' } };
    expect(d.config(settings).ownedObjects).toBe('drop');
    expect(d.parses).toBe(4);
  });

  it('keeps no invalid config: each command gets the error', () => {
    const d = driver();
    const bad = integration({ port: 'x' });
    expect(() => d.config(bad)).toThrow(/invalid postgres config/);
    expect(() => d.config(bad)).toThrow(/invalid postgres config/);
    expect(d.parses).toBe(2);
  });

  it('reads caBundleFile on every command, so a replaced bundle is used at once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lk-ca-'));
    dirs.push(dir);
    const file = join(dir, 'ca.pem');
    writeFileSync(file, 'first bundle');
    const d = driver();
    const withFile = integration({ sslMode: 'verify-full', caBundleFile: file });
    expect(d.config(withFile).ca).toBe('first bundle');
    writeFileSync(file, 'second bundle');
    expect(d.config(withFile).ca).toBe('second bundle');
  });

  it('gives the same connection key for the same text, another for another user or config', () => {
    const d = driver();
    const i = integration({ port: 5432 });
    const k = d.key(i, d.config(i), 'svc');
    expect(d.key(integration({ port: 5432 }), d.config(integration({ port: 5432 })), 'svc')).toBe(
      k,
    );
    expect(d.key(i, d.config(i), 'svc2')).not.toBe(k);
    const j = integration({ port: 6432 });
    expect(d.key(j, d.config(j), 'svc')).not.toBe(k);
    expect(k.startsWith('pg-1\u0000')).toBe(true);
  });
});
