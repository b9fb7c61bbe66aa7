/**
 * Misspelled LATCHKEY_* variables are reported with the closest known name; secrets of
 * the env store, the tools' own variables and known settings are not.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { editDistance, unknownEnvNames } from '../../../src/config/env-names.js';
import { loadConfig } from '../../../src/config/load.js';
import { warnUnknownEnv } from '../../../src/cli/run.js';
import { checkCommand } from '../../../src/cli/check.js';

describe('unknown LATCHKEY_ variables', () => {
  it('names the closest known variable for a misspelling, and nothing for unrelated names', () => {
    const found = unknownEnvNames({
      LATCHKEY_SHUTDOWN_GRAEC: '30s',
      LATCHKEY_CONECTOR_ID: 'x',
      LATCHKEY_HEARTBEAT_INTERVALL: '5s',
      LATCHKEY_SHUTDOWN_GRACE_PERIOD: '60s',
      LATCHKEY_COMPLETELY_DIFFERENT_THING_HERE: '1',
      LATCHKEY_SHUTDOWN_GRACE: '30s',
      LATCHKEY_CONFIG_FILE: '/etc/latchkey/config.json',
      LATCHKEY_SECRET_PG_PASSWORD: 'not reported',
      LATCHKEY_DEMO_PG_URL: 'postgres://',
      LATCHKEY_DEVCP_AGENTS: 'a:b',
      HOME: '/root',
    });
    expect(found).toEqual([
      { name: 'LATCHKEY_COMPLETELY_DIFFERENT_THING_HERE' },
      { name: 'LATCHKEY_CONECTOR_ID', closest: 'LATCHKEY_CONNECTOR_ID' },
      { name: 'LATCHKEY_HEARTBEAT_INTERVALL', closest: 'LATCHKEY_HEARTBEAT_INTERVAL' },
      { name: 'LATCHKEY_SHUTDOWN_GRACE_PERIOD', closest: 'LATCHKEY_SHUTDOWN_GRACE' },
      { name: 'LATCHKEY_SHUTDOWN_GRAEC', closest: 'LATCHKEY_SHUTDOWN_GRACE' },
    ]);
  });

  it('honours the configured secret prefixes', () => {
    expect(
      unknownEnvNames({ LATCHKEY_SECRET_X: '1', LATCHKEY_CREDS_DB: '1' }, ['LATCHKEY_CREDS_']),
    ).toEqual([{ name: 'LATCHKEY_SECRET_X' }]);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('warns at start with the variable and its closest name, never its value', () => {
    const env = {
      LATCHKEY_CONTROL_PLANE_URL: 'wss://cp.example.com/connect',
      LATCHKEY_CONNECTOR_ID: 'acme-prod',
      LATCHKEY_CONNECTOR_TOKEN: 'lk_tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0',
      LATCHKEY_TRUSTED_KEYS: 'k1=11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo',
      LATCHKEY_CONECTOR_TOKEN: 'secret-value-must-not-be-logged',
    };
    const config = loadConfig({ env });
    const warnings: { obj: object; msg: string }[] = [];
    warnUnknownEnv(env, config, { warn: (obj, msg) => warnings.push({ obj, msg }) });
    expect(warnings).toEqual([
      {
        obj: { variable: 'LATCHKEY_CONECTOR_TOKEN', closest: 'LATCHKEY_CONNECTOR_TOKEN' },
        msg: 'unknown environment variable LATCHKEY_CONECTOR_TOKEN is ignored; did you mean LATCHKEY_CONNECTOR_TOKEN?',
      },
    ]);
    expect(JSON.stringify(warnings)).not.toContain('secret-value');
  });

  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('latchkey check lists them under the configuration', async () => {
    for (const [k, v] of Object.entries({
      LATCHKEY_CONTROL_PLANE_URL: 'wss://cp.example.com/connect',
      LATCHKEY_CONNECTOR_ID: 'acme-prod',
      LATCHKEY_CONNECTOR_TOKEN: 'lk_tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0',
      LATCHKEY_TRUSTED_KEYS: 'k1=11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo',
      LATCHKEY_STATE_DIR: 'off',
      LATCHKEY_SHUTDOWN_GRAEC: '30s',
    }))
      vi.stubEnv(k, v);
    const out: string[] = [];
    const code = await checkCommand(['--skip-control-plane'], {
      out: (l) => out.push(l),
      err: (l) => out.push(l),
    });
    expect(code).toBe(0);
    expect(out).toContain(
      '         ignored: unknown variable LATCHKEY_SHUTDOWN_GRAEC (did you mean LATCHKEY_SHUTDOWN_GRACE?)',
    );
  });
});
