import { describe, expect, it } from 'vitest';
import { LatchkeyError } from '../../../src/errors.js';
import {
  routeProcessWarnings,
  createLogger,
  REDACTED,
  scrubSecrets,
  scrubText,
} from '../../../src/observability/logger.js';

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

describe('createLogger: errors and free text', () => {
  /** A mysql2 error as the driver raises it for a bad CREATE USER. */
  function mysqlError(): Error {
    return Object.assign(
      new Error(
        `You have an error in your SQL syntax; check the manual near 'IDENTIFIED BY '${SECRET}'' at line 1`,
      ),
      {
        code: 'ER_PARSE_ERROR',
        errno: 1064,
        sqlState: '42000',
        sql: `CREATE USER 'lk_alice'@'%' IDENTIFIED BY '${SECRET}'`,
        sqlMessage: `near 'IDENTIFIED BY '${SECRET}'' at line 1`,
      },
    );
  }
  /** A pg error with the query and its bound values attached (as pg wrappers do). */
  function pgError(): Error {
    return Object.assign(new Error(`syntax error at or near "PASSWORD '${SECRET}'"`), {
      code: '42601',
      severity: 'ERROR',
      query: `ALTER ROLE lk_alice PASSWORD '${SECRET}'`,
      parameters: [SECRET],
    });
  }
  /** An AWS SDK v3 service exception with its raw response. */
  function awsError(): Error {
    return Object.assign(new Error('User is not authorized'), {
      name: 'AccessDeniedException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400, requestId: 'req-1', attempts: 1 },
      $response: {
        statusCode: 400,
        headers: { 'x-amz-security-token': SECRET },
        body: `{"SecretString":"${SECRET}"}`,
      },
    });
  }

  it('never writes SQL text, bound values, raw responses or secret literals of errors', () => {
    const { lines, logger } = capture();
    logger.error({ err: mysqlError() }, 'mysql');
    logger.error({ err: pgError() }, 'pg');
    logger.error({ err: awsError() }, 'aws');
    logger.error({ error: pgError() }, 'error key');
    logger.error(mysqlError()); // message taken from the error
    logger.error({ err: mysqlError() }); // message taken from err
    logger.error({ cause: pgError(), nested: { err: mysqlError() } }, 'elsewhere');
    // Wrapped, with a cause chain several levels deep.
    const wrapped = new LatchkeyError('E_INTERNAL', 'grant failed', {
      cause: new LatchkeyError('E_PRIVILEGE', 'mid', {
        cause: new AggregateError([pgError(), mysqlError()], 'both', { cause: awsError() }),
      }),
      details: { a: { b: { c: { d: { e: { password: SECRET } } } } } },
    });
    logger.error({ err: wrapped }, 'wrapped');
    logger.warn(
      `statement failed: ALTER USER x IDENTIFIED WITH mysql_native_password BY '${SECRET}'`,
    );
    logger.warn({ url: `postgres://svc:${SECRET}@db:5432/app` }, 'connecting');
    logger.warn({ header: `Bearer ${SECRET}` }, 'header');
    const out = lines.join('');
    expect(lines).toHaveLength(11);
    expect(out).not.toContain(SECRET);
    // What is useful for an operator stays.
    const first = JSON.parse(lines[0] ?? '') as { err: Record<string, unknown> };
    expect(first.err).toMatchObject({ code: 'ER_PARSE_ERROR', errno: 1064, sql: REDACTED });
    expect(String(first.err.message)).toContain('You have an error in your SQL syntax');
    const aws = JSON.parse(lines[2] ?? '') as { err: Record<string, unknown> };
    expect(aws.err).toMatchObject({ $metadata: { requestId: 'req-1' }, $response: REDACTED });
    const chain = JSON.parse(lines[7] ?? '') as {
      err: { message: string; cause: { message: string; cause: { errors: unknown[] } } };
    };
    expect(chain.err.message).toBe('grant failed');
    expect(chain.err.cause.message).toBe('mid');
    expect(chain.err.cause.cause.errors).toHaveLength(2);
  });

  it('censors password literals, URL passwords and bearer tokens in free text', () => {
    const cases = [
      `CREATE USER 'a'@'%' IDENTIFIED BY '${SECRET}'`,
      `ALTER USER 'a'@'%' IDENTIFIED WITH caching_sha2_password BY '${SECRET}'`,
      `CREATE ROLE a LOGIN PASSWORD '${SECRET}' VALID UNTIL 'infinity'`,
      `ALTER ROLE a WITH ENCRYPTED PASSWORD "${SECRET}"`,
      `SET PASSWORD FOR 'a'@'%' = '${SECRET}'`,
      `SET PASSWORD = PASSWORD('${SECRET}')`,
      `near 'IDENTIFIED BY '${SECRET}`,
      `mysql://root:${SECRET}@127.0.0.1:3306/x`,
      `Authorization: Bearer ${SECRET}`,
      `IDENTIFIED BY 'it''s-${SECRET}'`,
    ];
    for (const c of cases) {
      const out = scrubText(c);
      expect(out, c).not.toContain(SECRET);
      expect(out).toContain(REDACTED);
    }
    expect(scrubText('GRANT SELECT ON db.t TO lk_alice')).toBe('GRANT SELECT ON db.t TO lk_alice');
  });

  it('never throws from a log call, even for objects whose getters throw', () => {
    const { lines, logger } = capture();
    const hostile = Object.defineProperty(new Error('boom'), 'sql', {
      enumerable: true,
      get() {
        throw new Error(`getter with ${SECRET}`);
      },
    });
    const obj = Object.defineProperty({}, 'field', {
      enumerable: true,
      get() {
        throw new Error('nope');
      },
    });
    expect(() => logger.error({ err: hostile }, 'a')).not.toThrow();
    expect(() => logger.error({ nested: obj }, 'b')).not.toThrow();
    expect(lines).toHaveLength(2);
    expect(lines.join('')).not.toContain(SECRET);
  });

  it('stays linear on long strings that look like URL schemes (no ReDoS from logged data)', () => {
    // Quadratic patterns take minutes on these; linear ones milliseconds.
    for (const unit of ['a.', 'a+', 'a-', 'x://u:']) {
      const text = unit.repeat(400_000 / unit.length);
      expect(scrubText(text)).toBe(text);
    }
  });
});

describe('routeProcessWarnings', () => {
  it('turns process warnings into JSON log lines instead of plain text on stderr', async () => {
    const { lines, logger } = capture('info');
    const stderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    const restore = routeProcessWarnings(logger);
    process.stderr.write = (chunk: string | Uint8Array) => {
      stderr.push(String(chunk));
      return true;
    };
    try {
      process.emitWarning(`could not reach https://user:${SECRET}@proxy.internal:3128`, {
        type: 'NodeDeprecationWarning',
        code: 'SDK_NODE',
      });
      // Warnings are emitted on the next tick.
      await new Promise((r) => setImmediate(r));
    } finally {
      process.stderr.write = write;
      restore();
    }
    expect(stderr.join('')).toBe('');
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const entry = entries.find((e) => e.msg === 'process warning');
    expect(entry).toMatchObject({
      level: 'warn',
      warning: { name: 'NodeDeprecationWarning', code: 'SDK_NODE' },
    });
    expect(JSON.stringify(entry)).not.toContain(SECRET);
  });
});
