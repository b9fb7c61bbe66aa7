/**
 * The one local HTTP port: `/metrics` (Prometheus text), `/healthz` (the process is
 * alive: always 200) and `/readyz` (200 when ready, else 503, with the reasons as JSON).
 * Nothing else is served; only GET and HEAD are allowed.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Readiness {
  ready: boolean;
  reasons: string[];
}

export interface HttpServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  registry: Registry;
  readiness: () => Readiness;
}

export interface RunningHttpServer {
  port: number;
  close(): Promise<void>;
}

function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  head: boolean,
): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : body);
}

function json(res: ServerResponse, status: number, value: unknown, head: boolean): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`, head);
}

async function handle(
  opts: HttpServerOptions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    res.setHeader('allow', 'GET, HEAD');
    json(res, 405, { error: 'method not allowed' }, head);
    return;
  }
  const path = (req.url ?? '/').split('?')[0];
  switch (path) {
    case '/metrics': {
      const body = await opts.registry.metrics();
      send(res, 200, opts.registry.contentType, body, head);
      return;
    }
    case '/healthz':
      json(res, 200, { status: 'alive' }, head);
      return;
    case '/readyz': {
      let state: Readiness;
      try {
        state = opts.readiness();
      } catch {
        state = { ready: false, reasons: ['readiness check failed'] };
      }
      json(
        res,
        state.ready ? 200 : 503,
        { status: state.ready ? 'ready' : 'not ready', reasons: state.reasons },
        head,
      );
      return;
    }
    default:
      json(res, 404, { error: 'not found' }, head);
  }
}

export function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  const server = createServer((req, res) => {
    handle(opts, req, res).catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'internal error' }, false);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      resolve({
        port,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            server.closeAllConnections();
          }),
      });
    });
  });
}
