/**
 * deploy/helm/latchkey/values.schema.json (issue 15): Helm validates values against it at
 * install, upgrade, lint and template, so values that cannot work (no trusted key, a
 * misspelled key, a ws:// URL) fail there instead of in a crash-looping pod. Here the schema
 * itself is checked with Ajv (draft-07, as Helm reads it) against values.yaml and against
 * what the templates use, with no binary; helm.test.ts has the same refusals through the real
 * Helm, and the rendered `helm test` pod.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';

const CHART = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../deploy/helm/latchkey',
);
const schema = z
  .object({ properties: z.record(z.string(), z.unknown()), required: z.array(z.string()) })
  .passthrough()
  .parse(JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8')));
const defaults = z
  .record(z.string(), z.unknown())
  .parse(parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')));
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

const installValues = {
  ...defaults,
  controlPlaneUrl: 'wss://control.example.com/v1/connect',
  connectorId: 'acme-prod-eu-west-1',
  trustedKeys: { 'cp-2026': 'MCowBQYDK2VwAyEAexamplekey' },
};

function errorsOf(values: unknown): string[] {
  return validate(values)
    ? []
    : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}

describe('the Helm chart values schema', () => {
  it('accepts the defaults plus the three required settings', () => {
    expect(errorsOf(installValues)).toEqual([]);
  });

  it('refuses an install without a trusted key, URL or connector id (the defaults alone)', () => {
    const errors = errorsOf(defaults);
    expect(errors.some((e) => e.startsWith('/trustedKeys'))).toBe(true);
    expect(errors.some((e) => e.startsWith('/controlPlaneUrl'))).toBe(true);
    expect(errors.some((e) => e.startsWith('/connectorId'))).toBe(true);
    expect(errorsOf({ ...installValues, trustedKeys: {} })).toEqual([
      '/trustedKeys must NOT have fewer than 1 properties',
    ]);
  });

  it('refuses a misspelled key, a plain ws:// URL and an out-of-range port', () => {
    expect(errorsOf({ ...installValues, replicas: 3 })).toEqual([
      '/ must NOT have additional properties',
    ]);
    expect(errorsOf({ ...installValues, controlPlaneUrl: 'ws://cp:8080' })).toHaveLength(1);
    expect(errorsOf({ ...installValues, http: { host: '::', port: 70000 } })).toHaveLength(1);
    expect(errorsOf({ ...installValues, http: { host: '::', port: 8080 } })).toEqual([]);
  });

  it('names every key of values.yaml and every .Values key the templates use', () => {
    const known = new Set(Object.keys(schema.properties));
    expect(Object.keys(defaults).filter((k) => !known.has(k))).toEqual([]);
    expect([...known].filter((k) => !(k in defaults))).toEqual([]);
    const dir = path.join(CHART, 'templates');
    const used = new Set<string>();
    for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
      if (!/\.(ya?ml|tpl|txt)$/.test(f)) continue;
      for (const m of readFileSync(path.join(dir, f), 'utf8').matchAll(/\.Values\.([A-Za-z]+)/g)) {
        if (m[1]) used.add(m[1]);
      }
    }
    expect([...used].filter((k) => !known.has(k))).toEqual([]);
  });
});
