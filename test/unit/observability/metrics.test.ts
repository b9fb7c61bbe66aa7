import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as prom from 'prom-client';
import { AgentEvents } from '../../../src/events.js';
import { createMetrics } from '../../../src/observability/metrics.js';

async function value(registry: prom.Registry, name: string, labels: Record<string, string> = {}) {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const data = await metric.get();
  const match = data.values.find(
    (v) =>
      Object.entries(labels).every(([k, l]) => v.labels[k] === l) &&
      (!('metricName' in v) || v.metricName === undefined || v.metricName === name),
  );
  return match?.value;
}

describe('createMetrics', () => {
  it('uses its own registry with default metrics, not the global one', async () => {
    const { registry } = createMetrics(new AgentEvents());
    expect(registry).not.toBe(prom.register);
    const text = await registry.metrics();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(prom.register.getSingleMetric('latchkey_commands_total')).toBeUndefined();
    // Two instances do not clash (each test or agent gets its own).
    expect(() => createMetrics(new AgentEvents())).not.toThrow();
  });

  it('counts every event into its metric', async () => {
    const events = new AgentEvents();
    const { registry } = createMetrics(events);
    events.emit('command:finished', {
      commandId: 'a',
      kind: 'grant',
      integrationType: 'postgres',
      outcome: 'ok',
      durationMs: 1500,
    });
    events.emit('command:finished', {
      commandId: 'b',
      kind: 'grant',
      integrationType: 'postgres',
      outcome: 'error',
      code: 'E_CONNECT',
      durationMs: 20,
    });
    events.emit('command:started', {
      commandId: 'a',
      kind: 'grant',
      integrationType: 'postgres',
      waitMs: 250,
    });
    events.emit('queue:depth', { depth: 7, running: 3 });
    events.emit('link:connected', { url: 'wss://x' });
    events.emit('link:reconnect-scheduled', { attempt: 1, delayMs: 500 });
    events.emit('link:reconnect-scheduled', { attempt: 2, delayMs: 1000 });
    events.emit('command:rejected', { commandId: null, code: 'E_SIGNATURE' });
    events.emit('command:duplicate', { commandId: 'a', state: 'done' });
    events.emit('outbox:size', { size: 4 });
    events.emit('sweep:finished', {
      integrationId: 'i',
      integrationType: 'mysql',
      revoked: 2,
      errors: 1,
      durationMs: 10,
    });
    events.emit('aws:call', { service: 'iam', operation: 'PutRolePolicy', outcome: 'throttled' });

    expect(
      await value(registry, 'latchkey_commands_total', {
        kind: 'grant',
        integration_type: 'postgres',
        outcome: 'ok',
        code: '',
      }),
    ).toBe(1);
    expect(
      await value(registry, 'latchkey_commands_total', { outcome: 'error', code: 'E_CONNECT' }),
    ).toBe(1);
    const text = await registry.metrics();
    expect(text).toMatch(
      /latchkey_command_duration_seconds_sum\{kind="grant",integration_type="postgres"\} 1\.52/,
    );
    expect(text).toMatch(/latchkey_queue_wait_seconds_sum 0\.25/);
    expect(await value(registry, 'latchkey_queue_depth')).toBe(7);
    expect(await value(registry, 'latchkey_queue_running')).toBe(3);
    expect(await value(registry, 'latchkey_connected')).toBe(1);
    events.emit('link:disconnected', { code: 1006, reason: '' });
    expect(await value(registry, 'latchkey_connected')).toBe(0);
    expect(await value(registry, 'latchkey_reconnects_total')).toBe(2);
    expect(await value(registry, 'latchkey_rejections_total', { code: 'E_SIGNATURE' })).toBe(1);
    expect(await value(registry, 'latchkey_duplicates_total')).toBe(1);
    expect(await value(registry, 'latchkey_outbox_size')).toBe(4);
    expect(await value(registry, 'latchkey_sweeps_total', { integration_type: 'mysql' })).toBe(1);
    expect(await value(registry, 'latchkey_sweep_revoked_total')).toBe(2);
    expect(await value(registry, 'latchkey_sweep_errors_total')).toBe(1);
    expect(
      await value(registry, 'latchkey_aws_calls_total', {
        service: 'iam',
        operation: 'PutRolePolicy',
        outcome: 'throttled',
      }),
    ).toBe(1);
  });

  it('counts commands between scrapes once each, per series', async () => {
    const events = new AgentEvents();
    const { registry } = createMetrics(events);
    const finished = (outcome: 'ok' | 'error', code?: 'E_CONNECT'): void =>
      events.emit('command:finished', {
        commandId: 'x',
        kind: 'revoke',
        integrationType: 'mysql',
        outcome,
        ...(code === undefined ? {} : { code }),
        durationMs: 100,
      });
    const ok = { kind: 'revoke', integration_type: 'mysql', outcome: 'ok', code: '' };
    const failed = {
      kind: 'revoke',
      integration_type: 'mysql',
      outcome: 'error',
      code: 'E_CONNECT',
    };
    finished('ok');
    finished('ok');
    expect(await value(registry, 'latchkey_commands_total', ok)).toBe(2);
    expect(await value(registry, 'latchkey_commands_total', ok)).toBe(2); // a scrape adds nothing
    finished('ok');
    finished('error', 'E_CONNECT');
    expect(await value(registry, 'latchkey_commands_total', ok)).toBe(3);
    expect(await value(registry, 'latchkey_commands_total', failed)).toBe(1);
    const text = await registry.metrics();
    expect(text).toContain(
      'latchkey_commands_total{kind="revoke",integration_type="mysql",outcome="ok",code=""} 3',
    );
    expect(text).toMatch(
      /latchkey_command_duration_seconds_count\{kind="revoke",integration_type="mysql"\} 4/,
    );
  });

  it('stop() unsubscribes', async () => {
    const events = new AgentEvents();
    const metrics = createMetrics(events);
    metrics.stop();
    events.emit('command:duplicate', { commandId: 'a', state: 'running' });
    expect(await value(metrics.registry, 'latchkey_duplicates_total')).toBe(0);
  });
});

describe('docs/observability.md', () => {
  it('documents every latchkey_ metric', async () => {
    const docs = readFileSync(
      join(import.meta.dirname, '..', '..', '..', 'docs', 'observability.md'),
      'utf8',
    );
    const { registry } = createMetrics(new AgentEvents());
    const names = (await registry.getMetricsAsJSON())
      .map((m) => m.name)
      .filter((n) => n.startsWith('latchkey_'));
    expect(names.length).toBeGreaterThanOrEqual(14);
    for (const name of names) expect(docs).toContain(`\`${name}\``);
  });
});
