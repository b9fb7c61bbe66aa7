import { describe, expect, it } from 'vitest';
import { LatchkeyError } from '../../../src/errors.js';
import { createLogger, REDACTED, scrubSecrets } from '../../../src/observability/logger.js';

const SECRET = 'Pl4nted-S3cret-7f3a9c';

function capture(level = 'trace'): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const logger = createLogger({
    level,
    destination: { write: (s: string) => void lines.push(s) },
  });
  return { lines, logger };
}

describe('createLogger', () => {
  it('writes JSON lines with level label, time and message', () => {
    const { lines, logger } = capture('info');
    logger.info({ commandId: 'c1' }, 'hello');
    logger.debug('not written at info');
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 'info',
      msg: 'hello',
      commandId: 'c1',
      service: 'latchkey',
    });
    expect(typeof line.time).toBe('string');
  });

  it('never writes a planted secret, whatever the shape', () => {
    const { lines, logger } = capture();
    const shapes: Record<string, unknown>[] = [
      { password: SECRET },
      { token: SECRET },
      { connectorToken: SECRET },
      { secret: SECRET },
      { privateKey: SECRET },
      { plaintext: { password: SECRET } },
      { credentials: { username: 'u', password: SECRET } },
      { authorization: `Bearer ${SECRET}` },
      { headers: { authorization: `Bearer ${SECRET}` } },
      { req: { headers: { Authorization: `Bearer ${SECRET}`, cookie: SECRET } } },
      { config: { password: SECRET } },
      { integration: { config: { password: SECRET } } },
      { a: { b: { c: { password: SECRET } } } },
      { a: { b: { c: { d: { e: { f: { password: SECRET } } } } } } },
      { users: [{ name: 'x', password: SECRET }] },
      { nested: { list: [{ token: SECRET }] } },
      { secretString: SECRET, SecretString: SECRET },
      { aws: { SecretAccessKey: SECRET, SessionToken: SECRET } },
      { output: { credentials: { plaintext: { password: SECRET } } } },
      { Password: SECRET, PASSWORD: SECRET, PassWord: SECRET },
      { apiKey: SECRET, 'x-api-key': SECRET },
      { connectionString: `postgres://u:${SECRET}@h/db` },
      { httpsProxy: `http://u:${SECRET}@proxy:3128` },
    ];
    for (const shape of shapes) logger.info(shape, 'shape');
    // Child bindings and error details too.
    logger.child({ password: SECRET, ctx: { token: SECRET } }).warn('child');
    logger.error(
      { err: new LatchkeyError('E_SECRET', 'bad secret', { details: { password: SECRET } }) },
      'err',
    );
    const out = lines.join('');
    expect(lines.length).toBe(shapes.length + 2);
    expect(out).not.toContain(SECRET);
    expect(out).toContain(REDACTED);
  });

  it('keeps non-secret fields and does not change the logged object', () => {
    const { lines, logger } = capture();
    const obj = { user: 'alice', password: SECRET, nested: { host: 'db', token: SECRET } };
    logger.info(obj, 'x');
    const line = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    expect(line.user).toBe('alice');
    expect(line.nested).toEqual({ host: 'db', token: REDACTED });
    expect(obj.password).toBe(SECRET);
    expect(obj.nested.token).toBe(SECRET);
  });
});

describe('scrubSecrets', () => {
  it('censors secret keys at any depth without mutating', () => {
    const input = { a: [{ b: { Password: SECRET } }], ok: 1 };
    const out = scrubSecrets(input) as typeof input;
    expect(JSON.stringify(out)).not.toContain(SECRET);
    expect(out.ok).toBe(1);
    expect(input.a[0]?.b.Password).toBe(SECRET);
  });
});
