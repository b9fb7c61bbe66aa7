import { afterEach, describe, expect, it } from 'vitest';
import { AgentEvents } from '../../../src/events.js';
import { createMetrics } from '../../../src/observability/metrics.js';
import { startHttpServer, type RunningHttpServer } from '../../../src/observability/http.js';

let server: RunningHttpServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('startHttpServer (real HTTP on a free port)', () => {
  it('serves /metrics, /healthz and /readyz', async () => {
    const events = new AgentEvents();
    const { registry } = createMetrics(events);
    let state = { ready: false, reasons: ['not connected to the control plane'] };
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      registry,
      readiness: () => state,
    });
    expect(server.port).toBeGreaterThan(0);
    const base = `http://127.0.0.1:${server.port}`;

    events.emit('command:rejected', { commandId: 'x', code: 'E_EXPIRED' });
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    const body = await metrics.text();
    expect(body).toContain('latchkey_rejections_total{code="E_EXPIRED"} 1');
    expect(body).toContain('# TYPE latchkey_commands_total counter');

    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);

    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({
      status: 'not ready',
      reasons: ['not connected to the control plane'],
    });

    state = { ready: true, reasons: [] };
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', reasons: [] });

    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('answers 503 when the readiness check throws', async () => {
    const { registry } = createMetrics(new AgentEvents());
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      registry,
      readiness: () => {
        throw new Error('boom');
      },
    });
    const res = await fetch(`http://127.0.0.1:${server.port}/readyz`);
    expect(res.status).toBe(503);
  });

  it('close() frees the port', async () => {
    const { registry } = createMetrics(new AgentEvents());
    const s = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      registry,
      readiness: () => ({ ready: true, reasons: [] }),
    });
    await s.close();
    await expect(fetch(`http://127.0.0.1:${s.port}/healthz`)).rejects.toThrow();
  });
});
