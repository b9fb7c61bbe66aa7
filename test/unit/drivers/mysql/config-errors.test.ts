import { describe, expect, it } from 'vitest';
import { LatchkeyError } from '../../../../src/errors.js';
import { parseMysqlConfig, parseMysqlSettings } from '../../../../src/drivers/mysql/config.js';
import { mapMysqlError } from '../../../../src/drivers/mysql/errors.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof LatchkeyError ? err.code : 'other';
  }
}

describe('parseMysqlConfig', () => {
  it('applies the documented defaults and freezes the result', () => {
    const c = parseMysqlConfig({ host: 'db' });
    expect(c).toEqual({
      host: 'db',
      port: 3306,
      sslMode: 'prefer',
      caBundle: undefined,
      authType: 'user-password',
      region: undefined,
      username: undefined,
      flavor: 'auto',
      accountHost: '%',
      userPrefix: 'lk_',
      granteeAuth: 'password',
      metaDatabase: 'latchkey',
      showSystemSchemas: false,
      poolSize: 4,
      connectTimeoutMs: 10_000,
      lockTimeoutSeconds: 10,
      protectedAccounts: [],
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('iam-auth defaults to verify-full with the RDS bundle and refuses a plaintext mode', () => {
    const c = parseMysqlConfig({
      host: 'db',
      authType: 'iam-auth',
      region: 'eu-west-1',
      username: 'svc',
    });
    expect(c.sslMode).toBe('verify-full');
    expect(c.caBundle).toBe('aws-rds');
    expect(() =>
      parseMysqlConfig({
        host: 'db',
        authType: 'iam-auth',
        region: 'eu-west-1',
        sslMode: 'prefer',
      }),
    ).toThrow(/needs TLS/);
    expect(() => parseMysqlConfig({ host: 'db', authType: 'iam-auth' })).toThrow(/region/);
  });

  it('lists every problem at once as E_INVALID', () => {
    try {
      parseMysqlConfig({ port: 0, sslMode: 'sometimes', userPrefix: 'Bad-', extra: 1 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(LatchkeyError);
      const e = err as LatchkeyError;
      expect(e.code).toBe('E_INVALID');
      for (const field of ['host', 'port', 'sslMode', 'userPrefix'])
        expect(e.message).toContain(field);
    }
  });

  it('refuses a backtick in the account host', () => {
    expect(code(() => parseMysqlConfig({ host: 'db', accountHost: 'a`b' }))).toBe('E_INVALID');
  });

  it('settings: ownedObjects, or dropOwnedObjects as the DESIGN names it', () => {
    expect(parseMysqlSettings(undefined).ownedObjects).toBe('reassign');
    expect(parseMysqlSettings({ dropOwnedObjects: true }).ownedObjects).toBe('drop');
    expect(code(() => parseMysqlSettings({ nope: 1 }))).toBe('E_INVALID');
  });
});

describe('mapMysqlError', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ errno: 1045, code: 'ER_ACCESS_DENIED_ERROR' }, 'E_CONNECT'],
    [{ errno: 1227, code: 'ER_SPECIFIC_ACCESS_DENIED_ERROR' }, 'E_PRIVILEGE'],
    [{ errno: 1142 }, 'E_PRIVILEGE'],
    [{ errno: 1410 }, 'E_PRIVILEGE'],
    [{ errno: 1049 }, 'E_NOT_FOUND'],
    [{ errno: 1146 }, 'E_NOT_FOUND'],
    [{ errno: 1205 }, 'E_CONFLICT'],
    [{ errno: 1213 }, 'E_CONFLICT'],
    [{ errno: 1040 }, 'E_THROTTLED'],
    [{ errno: 3024 }, 'E_TIMEOUT'],
    [{ errno: 1470 }, 'E_INVALID'],
    [{ errno: -111, code: 'ECONNREFUSED' }, 'E_CONNECT'],
    [{ code: 'HANDSHAKE_NO_SSL_SUPPORT' }, 'E_CONNECT'],
    [{ code: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'E_CONNECT'],
    [{ errno: 1064, code: 'ER_PARSE_ERROR' }, 'E_INTERNAL'],
    [{ errno: 1927, code: 'ER_CONNECTION_KILLED' }, 'E_CONNECT'],
    [{ errno: 1053, code: 'ER_SERVER_SHUTDOWN' }, 'E_CONNECT'],
    [{ errno: 4031 }, 'E_CONNECT'],
    [{ code: 'PROTOCOL_CONNECTION_LOST', fatal: true }, 'E_CONNECT'],
  ];
  it.each(cases)('%o → %s', (err, expected) => {
    const e = mapMysqlError(Object.assign(new Error('server text'), err), 'doing it');
    expect(e.code).toBe(expected);
    expect(e.message.startsWith('doing it: ')).toBe(true);
  });

  it('never copies the server message (it can quote a password) into the wire message', () => {
    const err = Object.assign(new Error("You have an error near 'IDENTIFIED BY 'Sup3r-Secret''"), {
      errno: 1064,
      sqlMessage: "near 'IDENTIFIED BY 'Sup3r-Secret''",
    });
    const e = mapMysqlError(err, 'creating a user');
    expect(JSON.stringify(e.toWire())).not.toContain('Sup3r-Secret');
    expect(e.details).toEqual({ errno: 1064 });
  });

  it('a statement on a connection mysql2 knows is closed (no code) is E_CONNECT', () => {
    const e = mapMysqlError(
      new Error("Can't add new command when connection is in closed state"),
      'granting',
    );
    expect({ code: e.code, retryable: e.retryable }).toEqual({
      code: 'E_CONNECT',
      retryable: true,
    });
  });

  it('an aborted call is E_TIMEOUT for a timeout and E_CANCELLED otherwise', () => {
    const t = new AbortController();
    t.abort(new DOMException('late', 'TimeoutError'));
    expect(mapMysqlError(new Error('x'), 'op', t.signal).code).toBe('E_TIMEOUT');
    const c = new AbortController();
    c.abort();
    expect(mapMysqlError(new Error('x'), 'op', c.signal).code).toBe('E_CANCELLED');
  });
});
