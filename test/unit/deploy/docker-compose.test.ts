/**
 * docker-compose.yml works as written (issue 15 item 10), checked by parsing it (there is
 * no Docker here): the databases match what the tests expect, and the agent service's
 * environment is one the agent accepts: every LATCHKEY_* name is a setting or an env secret
 * under an allowed prefix, and the two database secrets resolve through the env store
 * exactly as an integration would read them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { SETTINGS } from '../../../src/config/schema.js';
import { DEFAULT_SECRET_ENV_PREFIXES, readEnvSecret } from '../../../src/secrets/env.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const Service = z.object({
  image: z.string().optional(),
  environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  ports: z.array(z.string()).optional(),
  profiles: z.array(z.string()).optional(),
  read_only: z.boolean().optional(),
  user: z.string().optional(),
});
const Compose = z.object({ services: z.record(z.string(), Service) });

const compose = Compose.parse(parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')));
const service = (name: string): z.infer<typeof Service> => {
  const s = compose.services[name];
  if (!s) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
};

describe('docker-compose.yml', () => {
  it('the databases are the ones the tests and the demo expect, on loopback only', () => {
    expect(service('postgres').image).toBe('postgres:15');
    expect(service('postgres').ports).toEqual(['127.0.0.1:5432:5432']);
    expect(service('postgres').environment?.POSTGRES_HOST_AUTH_METHOD).toBe('trust');
    expect(service('mariadb').image).toBe('mariadb:10.11');
    expect(service('mariadb').ports).toEqual(['127.0.0.1:3306:3306']);
  });

  it('every LATCHKEY_* variable of the agent service is a setting or an allowed env secret', () => {
    const agent = service('latchkey');
    expect(agent.profiles).toEqual(['agent']);
    expect(agent.read_only).toBe(true);
    const known = new Set(SETTINGS.flatMap((s) => (s.env ? [s.env] : [])));
    const names = Object.keys(agent.environment ?? {}).filter((n) => n.startsWith('LATCHKEY_'));
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      const ok = known.has(name) || DEFAULT_SECRET_ENV_PREFIXES.some((p) => name.startsWith(p));
      expect(
        ok,
        `${name} is neither a setting nor under ${DEFAULT_SECRET_ENV_PREFIXES.join(', ')}`,
      ).toBe(true);
    }
  });

  it('the PostgreSQL and MariaDB service accounts resolve through the env store, as the agent reads them', () => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(service('latchkey').environment ?? {})) env[k] = String(v);
    const opts = { allowedPrefixes: DEFAULT_SECRET_ENV_PREFIXES };
    const pg = readEnvSecret({ store: 'env', prefix: 'LATCHKEY_SECRET_PG_' }, env, opts);
    expect(pg).toMatchObject({ username: 'postgres', host: 'postgres', port: 5432 });
    const my = readEnvSecret({ store: 'env', prefix: 'LATCHKEY_SECRET_MYSQL_' }, env, opts);
    expect(my).toMatchObject({ username: 'root', password: '', host: 'mariadb', port: 3306 });
  });
});
