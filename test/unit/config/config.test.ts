import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadConfig } from '../../../src/config/load.js';
import { SETTINGS } from '../../../src/config/schema.js';
import { CONFIG_DOCS_PATH, generateConfigDocs } from '../../../scripts/gen-config-docs.js';

const dir = mkdtempSync(join(tmpdir(), 'latchkey-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function rawKey(): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  return publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64url');
}
function pemKey(): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  return publicKey.export({ format: 'pem', type: 'spki' }).toString();
}

const KEY1 = rawKey();
const KEY2 = rawKey();
const TOKEN = 'lk_tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0';

function baseEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return {
    LATCHKEY_CONTROL_PLANE_URL: 'wss://cp.example.com/connect',
    LATCHKEY_CONNECTOR_ID: 'acme-prod',
    LATCHKEY_CONNECTOR_TOKEN: TOKEN,
    LATCHKEY_TRUSTED_KEYS: `k1=${KEY1}`,
    ...extra,
  };
}

function writeFile(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({ env: baseEnv() });
    expect(c.controlPlaneUrl).toBe('wss://cp.example.com/connect');
    expect(c.connectorToken).toBe(TOKEN);
    expect(c.trustedKeys).toEqual({ k1: KEY1 });
    expect(c.maxClockSkewMs).toBe(30_000);
    expect(c.maxCommandLifetimeMs).toBe(15 * 60_000);
    expect(c.concurrency).toEqual({ global: 16, perIntegration: 4, perAwsService: 4 });
    expect(c.queueSize).toBe(1000);
    expect(c.timeoutsMs).toEqual({
      discover: 300_000,
      grant: 60_000,
      revoke: 60_000,
      rotate: 60_000,
      cleanup: 60_000,
      check: 30_000,
    });
    expect(c.heartbeat).toEqual({ intervalMs: 15_000, timeoutMs: 45_000 });
    expect(c.reconnect).toEqual({ initialMs: 500, maxMs: 30_000, stableAfterMs: 60_000 });
    expect(c.maxFrameBytes).toBe(1024 * 1024);
    expect(c.httpHost).toBe('0.0.0.0');
    expect(c.httpPort).toBe(8080);
    expect(c.logLevel).toBe('info');
    expect(c.stateDir).toBeUndefined();
    expect(c.httpsProxy).toBeUndefined();
    expect(c.tagPrefix).toBe('latchkey');
    expect(c.shutdownGraceMs).toBe(30_000);
    expect(c.sweepIntervalMs).toBe(60_000);
    expect(c.allowPlaintextCredentials).toBe(false);
    expect(c.secretCacheTtlMs).toBe(60_000);
    expect(c.aws).toEqual({ defaultRegion: undefined, assumeRolePattern: 'latchkey-*' });
    expect(c.integrations).toEqual([]);
  });

  it('returns a deeply frozen object', () => {
    const c = loadConfig({ env: baseEnv() });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.concurrency)).toBe(true);
    expect(Object.isFrozen(c.trustedKeys)).toBe(true);
    expect(() => {
      (c.concurrency as { global: number }).global = 99;
    }).toThrow(TypeError);
  });

  it('refuses a duration without a unit (30 would have been 30 ms), except 0; a JSON number in the file is milliseconds', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: baseEnv({ LATCHKEY_SHUTDOWN_GRACE: '30', LATCHKEY_HEARTBEAT_INTERVAL: ' 5 ' }),
      }),
    );
    expect(problems).toContain(
      'LATCHKEY_SHUTDOWN_GRACE (shutdownGraceMs): "30" has no unit: write it with one, e.g. 30s, 30m or 30ms (a bare number other than 0 is refused)',
    );
    expect(
      problems.some(
        (p) => p.startsWith('LATCHKEY_HEARTBEAT_INTERVAL') && p.includes('"5" has no unit'),
      ),
    ).toBe(true);
    expect(loadConfig({ env: baseEnv({ LATCHKEY_SHUTDOWN_GRACE: '0' }) }).shutdownGraceMs).toBe(0);
    expect(loadConfig({ env: baseEnv({ LATCHKEY_SHUTDOWN_GRACE: '30s' }) }).shutdownGraceMs).toBe(
      30_000,
    );
    const file = writeFile('grace.json', JSON.stringify({ shutdownGraceMs: 30 }));
    expect(loadConfig({ env: baseEnv(), configFile: file }).shutdownGraceMs).toBe(30);
  });

  it('parses durations, sizes, booleans and numbers from the environment', () => {
    const c = loadConfig({
      env: baseEnv({
        LATCHKEY_MAX_CLOCK_SKEW: '5s',
        LATCHKEY_MAX_COMMAND_LIFETIME: '5m',
        LATCHKEY_TIMEOUT_GRANT: '90s',
        LATCHKEY_HEARTBEAT_INTERVAL: '10s',
        LATCHKEY_HEARTBEAT_TIMEOUT: '1m',
        LATCHKEY_RECONNECT_INITIAL: '250ms',
        LATCHKEY_MAX_FRAME_BYTES: '512KiB',
        LATCHKEY_ALLOW_PLAINTEXT_CREDENTIALS: 'true',
        LATCHKEY_CONCURRENCY_GLOBAL: '32',
        LATCHKEY_HTTP_PORT: '9464',
        LATCHKEY_LOG_LEVEL: 'DEBUG',
        LATCHKEY_SWEEP_INTERVAL: '0',
      }),
    });
    expect(c.maxClockSkewMs).toBe(5000);
    expect(c.maxCommandLifetimeMs).toBe(300_000);
    expect(c.timeoutsMs.grant).toBe(90_000);
    expect(c.heartbeat).toEqual({ intervalMs: 10_000, timeoutMs: 60_000 });
    expect(c.reconnect.initialMs).toBe(250);
    expect(c.maxFrameBytes).toBe(512 * 1024);
    expect(c.allowPlaintextCredentials).toBe(true);
    expect(c.concurrency.global).toBe(32);
    expect(c.httpPort).toBe(9464);
    expect(c.logLevel).toBe('debug');
    expect(c.sweepIntervalMs).toBe(0);
  });

  it('accepts trusted keys as a JSON object (several for rotation, PEM or raw)', () => {
    const pem = pemKey();
    const c = loadConfig({
      env: baseEnv({ LATCHKEY_TRUSTED_KEYS: JSON.stringify({ old: KEY1, new: KEY2, pem }) }),
    });
    expect(Object.keys(c.trustedKeys).sort()).toEqual(['new', 'old', 'pem']);
    const c2 = loadConfig({ env: baseEnv({ LATCHKEY_TRUSTED_KEYS: `a=${KEY1}, b=${KEY2}` }) });
    expect(c2.trustedKeys).toEqual({ a: KEY1, b: KEY2 });
  });

  it('reads the token from a file (trimmed)', () => {
    const file = writeFile('token', `${TOKEN}\n`);
    const c = loadConfig({
      env: baseEnv({ LATCHKEY_CONNECTOR_TOKEN: undefined, LATCHKEY_CONNECTOR_TOKEN_FILE: file }),
    });
    expect(c.connectorToken).toBe(TOKEN);
    expect(c.connectorTokenFile).toBe(file);
  });

  it('requires exactly one of token and token file', () => {
    const file = writeFile('token2', TOKEN);
    expect(
      problemsOf(() => loadConfig({ env: baseEnv({ LATCHKEY_CONNECTOR_TOKEN_FILE: file }) })).join(
        '\n',
      ),
    ).toMatch(/LATCHKEY_CONNECTOR_TOKEN and LATCHKEY_CONNECTOR_TOKEN_FILE.*only one/);
    expect(
      problemsOf(() => loadConfig({ env: baseEnv({ LATCHKEY_CONNECTOR_TOKEN: undefined }) })).join(
        '\n',
      ),
    ).toMatch(/LATCHKEY_CONNECTOR_TOKEN or LATCHKEY_CONNECTOR_TOKEN_FILE.*required/);
    expect(
      problemsOf(() =>
        loadConfig({
          env: baseEnv({
            LATCHKEY_CONNECTOR_TOKEN: undefined,
            LATCHKEY_CONNECTOR_TOKEN_FILE: join(dir, 'missing'),
          }),
        }),
      ).join('\n'),
    ).toMatch(/LATCHKEY_CONNECTOR_TOKEN_FILE.*cannot read.*ENOENT/);
  });

  it('lists every invalid setting at once, naming the environment variables', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: {
          LATCHKEY_CONTROL_PLANE_URL: 'https://cp.example.com',
          LATCHKEY_CONNECTOR_ID: 'bad id with spaces',
          LATCHKEY_CONNECTOR_TOKEN: TOKEN,
          LATCHKEY_TRUSTED_KEYS: 'k1=notakey',
          LATCHKEY_HTTP_PORT: '70000',
          LATCHKEY_MAX_CLOCK_SKEW: 'soon',
          LATCHKEY_LOG_LEVEL: 'loud',
          LATCHKEY_ALLOW_PLAINTEXT_CREDENTIALS: 'perhaps',
          LATCHKEY_CONCURRENCY_GLOBAL: '0',
          LATCHKEY_AWS_REGION: 'Europe',
          LATCHKEY_HEARTBEAT_INTERVAL: '30s',
          LATCHKEY_HEARTBEAT_TIMEOUT: '20s',
        },
      }),
    );
    const text = problems.join('\n');
    for (const name of [
      'LATCHKEY_CONTROL_PLANE_URL',
      'LATCHKEY_CONNECTOR_ID',
      'LATCHKEY_TRUSTED_KEYS',
      'LATCHKEY_HTTP_PORT',
      'LATCHKEY_MAX_CLOCK_SKEW',
      'LATCHKEY_LOG_LEVEL',
      'LATCHKEY_ALLOW_PLAINTEXT_CREDENTIALS',
      'LATCHKEY_CONCURRENCY_GLOBAL',
      'LATCHKEY_AWS_REGION',
      'LATCHKEY_HEARTBEAT_TIMEOUT',
    ]) {
      expect(text).toContain(name);
    }
    expect(problems.length).toBeGreaterThanOrEqual(10);
    expect(text).toContain('(got "70000")');
  });

  it('reports missing required settings together', () => {
    const problems = problemsOf(() => loadConfig({ env: {} }));
    const text = problems.join('\n');
    expect(text).toMatch(/LATCHKEY_CONTROL_PLANE_URL.*required/);
    expect(text).toMatch(/LATCHKEY_CONNECTOR_ID.*required/);
    expect(text).toMatch(/LATCHKEY_TRUSTED_KEYS.*at least one/);
    expect(text).toMatch(/LATCHKEY_CONNECTOR_TOKEN or LATCHKEY_CONNECTOR_TOKEN_FILE/);
  });

  it('never puts a secret value in an error', () => {
    const secretToken = 'sup3r-s3cret token-with-space';
    const proxySecret = 'Pr0xyPassw0rd';
    const tokenFile = writeFile('badtoken', 'tok en-S3CRETFILEVALUE\n');
    const file = writeFile(
      'secret.json',
      JSON.stringify({
        connectorToken: 'FILE-TOKEN-SECRET',
        httpsProxy: `ftp://u:${proxySecret}@x`,
      }),
    );
    const problems1 = problemsOf(() =>
      loadConfig({
        env: baseEnv({ LATCHKEY_CONNECTOR_TOKEN: secretToken }),
        configFile: file,
      }),
    );
    const problems2 = problemsOf(() =>
      loadConfig({
        env: baseEnv({
          LATCHKEY_CONNECTOR_TOKEN: undefined,
          LATCHKEY_CONNECTOR_TOKEN_FILE: tokenFile,
          LATCHKEY_HTTPS_PROXY: `gopher://user:${proxySecret}@proxy`,
        }),
      }),
    );
    const err = (() => {
      try {
        loadConfig({ env: baseEnv({ LATCHKEY_CONNECTOR_TOKEN: secretToken }), configFile: file });
      } catch (e) {
        return e as Error;
      }
      return new Error('none');
    })();
    const all = [...problems1, ...problems2, err.message, String(err.stack)].join('\n');
    expect(all).toContain('LATCHKEY_CONNECTOR_TOKEN');
    expect(all).toContain('LATCHKEY_HTTPS_PROXY');
    expect(all).toContain('connectorToken in');
    for (const secret of ['sup3r', 'FILE-TOKEN-SECRET', proxySecret, 'S3CRETFILEVALUE']) {
      expect(all).not.toContain(secret);
    }
  });

  it('reads a JSON file, and the environment overrides it', () => {
    const file = writeFile(
      'cfg.json',
      JSON.stringify({
        controlPlaneUrl: 'wss://file.example.com',
        connectorId: 'from-file',
        trustedKeys: { f1: KEY2 },
        concurrency: { global: 8 },
        httpPort: 9000,
        timeoutsMs: { discover: '10m' },
      }),
    );
    const c = loadConfig({
      env: {
        LATCHKEY_CONFIG_FILE: file,
        LATCHKEY_CONNECTOR_TOKEN: TOKEN,
        LATCHKEY_HTTP_PORT: '9100',
        LATCHKEY_CONNECTOR_ID: '',
      },
    });
    expect(c.configFile).toBe(file);
    expect(c.controlPlaneUrl).toBe('wss://file.example.com');
    expect(c.connectorId).toBe('from-file'); // empty env var counts as unset
    expect(c.trustedKeys).toEqual({ f1: KEY2 });
    expect(c.concurrency).toEqual({ global: 8, perIntegration: 4, perAwsService: 4 });
    expect(c.httpPort).toBe(9100);
    expect(c.timeoutsMs.discover).toBe(600_000);
  });

  it('refuses unknown keys, wrong shapes and invalid integrations in the file', () => {
    const file = writeFile(
      'bad.json',
      JSON.stringify({
        concurency: { global: 8 },
        concurrency: 3,
        aws: { region: 'eu-west-1' },
        integrations: [{ id: 'x', type: 'Postgres!', config: {} }, { id: 'y' }],
      }),
    );
    const text = problemsOf(() => loadConfig({ env: baseEnv(), configFile: file })).join('\n');
    expect(text).toMatch(/concurency in .*unknown setting/);
    expect(text).toMatch(/concurrency in .*must be an object/);
    expect(text).toMatch(/aws\.region in .*unknown setting/);
    expect(text).toMatch(/integrations \(config file\): \[0\]\.type/);
    expect(text).toMatch(/integrations \(config file\): \[1\]\.type/);
    expect(text).toMatch(/integrations \(config file\): \[1\]\.config/);
  });

  it('reports an unreadable or non-JSON config file', () => {
    const bad = writeFile('notjson.json', '{ "connectorId": S3CRET ');
    const text = problemsOf(() => loadConfig({ env: baseEnv(), configFile: bad })).join('\n');
    expect(text).toMatch(/LATCHKEY_CONFIG_FILE: .* is not valid JSON/);
    expect(text).not.toContain('S3CRET');
    expect(
      problemsOf(() => loadConfig({ env: baseEnv(), configFile: join(dir, 'nope.json') })).join(),
    ).toMatch(/LATCHKEY_CONFIG_FILE: cannot read/);
  });

  it('falls back to HTTPS_PROXY and AWS_REGION only when unset', () => {
    const c = loadConfig({
      env: baseEnv({ https_proxy: 'http://proxy:3128', AWS_REGION: 'eu-central-1' }),
    });
    expect(c.httpsProxy).toBe('http://proxy:3128');
    expect(c.aws.defaultRegion).toBe('eu-central-1');
    const c2 = loadConfig({
      env: baseEnv({
        HTTPS_PROXY: 'http://generic:3128',
        LATCHKEY_HTTPS_PROXY: 'http://ours:3128',
        AWS_REGION: 'eu-central-1',
        LATCHKEY_AWS_REGION: 'us-east-2',
      }),
    });
    expect(c2.httpsProxy).toBe('http://ours:3128');
    expect(c2.aws.defaultRegion).toBe('us-east-2');
  });

  it('reads the CA bundle and refuses a file without certificates', () => {
    const pem = writeFile(
      'ca.pem',
      '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    );
    expect(loadConfig({ env: baseEnv({ LATCHKEY_CA_BUNDLE_FILE: pem }) }).caBundle).toContain(
      'BEGIN CERTIFICATE',
    );
    const notPem = writeFile('ca.txt', 'hello');
    expect(
      problemsOf(() => loadConfig({ env: baseEnv({ LATCHKEY_CA_BUNDLE_FILE: notPem }) })).join(),
    ).toMatch(/LATCHKEY_CA_BUNDLE_FILE.*no PEM certificate/);
  });

  it('describeConfig hides the token and proxy credentials', () => {
    const c = loadConfig({
      env: baseEnv({ LATCHKEY_HTTPS_PROXY: 'http://user:hunter2pass@proxy:3128' }),
    });
    const text = JSON.stringify(describeConfig(c));
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain('hunter2pass');
    expect(text).toContain('proxy:3128');
  });
});

describe('stateDir: on by default', () => {
  it('auto resolves to $XDG_STATE_HOME/latchkey, else ~/.local/state/latchkey, else off', () => {
    const xdg = loadConfig({ env: baseEnv({ XDG_STATE_HOME: '/xdg', HOME: '/home/a' }) });
    expect([xdg.stateDir, xdg.stateDirSource]).toEqual(['/xdg/latchkey', 'default']);
    const home = loadConfig({ env: baseEnv({ HOME: '/home/a' }) });
    expect(home.stateDir).toBe('/home/a/.local/state/latchkey');
    const none = loadConfig({ env: baseEnv({ HOME: undefined, XDG_STATE_HOME: undefined }) });
    expect([none.stateDir, none.stateDirSource]).toEqual([undefined, 'off']);
  });

  it('a named directory is used as given; off, or an empty variable, disables state', () => {
    const named = loadConfig({
      env: baseEnv({ LATCHKEY_STATE_DIR: '/var/lib/latchkey', HOME: '/h' }),
    });
    expect([named.stateDir, named.stateDirSource]).toEqual(['/var/lib/latchkey', 'configured']);
    for (const off of ['off', 'OFF', '']) {
      const c = loadConfig({ env: baseEnv({ LATCHKEY_STATE_DIR: off, HOME: '/h' }) });
      expect([c.stateDir, c.stateDirSource], JSON.stringify(off)).toEqual([undefined, 'off']);
    }
  });
});

describe('config.example.json', () => {
  const examplePath = join(import.meta.dirname, '..', '..', '..', 'config.example.json');

  it('validates (with its files pointed at real ones)', () => {
    const tokenFile = writeFile('example-token', TOKEN);
    const ca = writeFile(
      'example-ca.pem',
      '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n',
    );
    const c = loadConfig({
      env: { LATCHKEY_CONNECTOR_TOKEN_FILE: tokenFile, LATCHKEY_CA_BUNDLE_FILE: ca },
      configFile: examplePath,
    });
    expect(c.connectorToken).toBe(TOKEN);
    expect(c.integrations.length).toBeGreaterThan(0);
    expect(Object.keys(c.trustedKeys).length).toBeGreaterThanOrEqual(2);
  });

  it('holds every file-settable key', () => {
    const json = JSON.parse(readFileSync(examplePath, 'utf8')) as Record<string, unknown>;
    for (const s of SETTINGS.filter((x) => !x.envOnly)) {
      let node: unknown = json;
      for (const part of s.path.split('.')) {
        node = (node as Record<string, unknown> | undefined)?.[part];
      }
      expect(node, s.path).toBeDefined();
    }
  });
});

describe('docs/configuration.md', () => {
  it('is exactly what scripts/gen-config-docs.ts generates', async () => {
    expect(readFileSync(CONFIG_DOCS_PATH, 'utf8')).toBe(await generateConfigDocs());
  });

  it('has a row for every setting, with its env var and file key', () => {
    const docs = readFileSync(CONFIG_DOCS_PATH, 'utf8');
    for (const s of SETTINGS) {
      const row = docs
        .split('\n')
        .find(
          (l) =>
            l.startsWith('|') && (s.env ? l.includes(`\`${s.env}\``) : l.includes(`\`${s.path}\``)),
        );
      expect(row, s.path).toBeDefined();
      if (!s.envOnly) expect(row).toContain(`\`${s.path}\``);
    }
  });
});

describe('loadConfig: control-plane URL transport', () => {
  it('refuses ws:// to a non-loopback host unless explicitly allowed', () => {
    for (const url of ['ws://cp.example.com/connect', 'ws://10.0.0.5:8080/', 'ws://[fd00::1]/']) {
      const problems = problemsOf(() =>
        loadConfig({ env: baseEnv({ LATCHKEY_CONTROL_PLANE_URL: url }) }),
      );
      expect(problems.join('\n'), url).toMatch(/LATCHKEY_CONTROL_PLANE_URL.*ws:\/\/.*in clear/);
      expect(problems.join('\n')).not.toContain(TOKEN);
    }
    const allowed = loadConfig({
      env: baseEnv({
        LATCHKEY_CONTROL_PLANE_URL: 'ws://cp.example.com/connect',
        LATCHKEY_ALLOW_INSECURE_CONTROL_PLANE: 'true',
      }),
    });
    expect(allowed.controlPlaneUrl).toBe('ws://cp.example.com/connect');
    expect(allowed.allowInsecureControlPlane).toBe(true);
  });

  it('accepts ws:// for loopback hosts and wss:// anywhere', () => {
    for (const url of [
      'ws://127.0.0.1:8080/',
      'ws://localhost:8080/',
      'ws://[::1]:8080/',
      'wss://cp.example.com/',
    ]) {
      const c = loadConfig({ env: baseEnv({ LATCHKEY_CONTROL_PLANE_URL: url }) });
      expect(c.controlPlaneUrl).toBe(url);
      expect(c.allowInsecureControlPlane).toBe(false);
    }
  });

  it('reads a token file with a trailing newline as the bare token', () => {
    const path = writeFile('token-nl', `${TOKEN}\n`);
    const c = loadConfig({
      env: baseEnv({ LATCHKEY_CONNECTOR_TOKEN: undefined, LATCHKEY_CONNECTOR_TOKEN_FILE: path }),
    });
    expect(c.connectorToken).toBe(TOKEN);
  });
});
