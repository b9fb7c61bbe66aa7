/**
 * The `vault` secret store against a real HTTP server started here, speaking Vault's API
 * as far as the store uses it: KV v2 reads (`data.data`), token lookup and renewal,
 * Kubernetes and AWS IAM logins, namespaces, and Vault's error answers. No HTTP mock: the
 * store's own requests go over a socket to this server.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createVaultStore, type VaultStoreOptions } from '../../../src/secrets/vault.js';
import { createSecretResolver } from '../../../src/secrets/index.js';
import type { AwsClientFactory } from '../../../src/aws/types.js';
import { errorOf } from '../../helpers/errors.js';

const ROOT_TOKEN = 'hvs.root-token-of-the-test';
const PASSWORD = 'vault-Pa55word';
const JWT = 'eyJhbGciOiJSUzI1NiJ9.k8s-sa-token.sig';

interface Token {
  expiresAt: number | null;
  maxAt: number | null;
  lease: number;
  renewable: boolean;
  namespace: string;
}
interface Seen {
  method: string;
  url: string;
  token: string | undefined;
  namespace: string | undefined;
  body: Record<string, unknown> | null;
}

/** The fake Vault: its state, its clock (shared with the store under test), what it saw. */
const vault = {
  clock: Date.parse('2026-11-25T20:00:00.000Z'),
  tokens: new Map<string, Token>(),
  /** `<namespace>|<mount>/<path>` → versions (1-based; null = deleted). */
  secrets: new Map<string, (Record<string, unknown> | null)[]>(),
  seen: [] as Seen[],
  /** Force the next answer (status, body). */
  next: null as { status: number; body: unknown } | null,
  issued: 0,
};

function issue(lease: number, maxTtl: number | null, namespace: string): string {
  const token = `hvs.issued-${++vault.issued}`;
  vault.tokens.set(token, {
    expiresAt: vault.clock + lease * 1000,
    maxAt: maxTtl === null ? null : vault.clock + maxTtl * 1000,
    lease,
    renewable: true,
    namespace,
  });
  return token;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown> | null> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? null : (JSON.parse(text) as Record<string, unknown>);
}

function validToken(t: string | undefined): Token | null {
  if (t === undefined) return null;
  if (t === ROOT_TOKEN)
    return { expiresAt: null, maxAt: null, lease: 0, renewable: false, namespace: '' };
  const tok = vault.tokens.get(t);
  if (!tok) return null;
  if (tok.expiresAt !== null && vault.clock >= tok.expiresAt) return null;
  return tok;
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://vault');
  const token = req.headers['x-vault-token'] as string | undefined;
  const namespace = req.headers['x-vault-namespace'] as string | undefined;
  const body = await readBody(req);
  vault.seen.push({
    method: req.method ?? '',
    url: `${url.pathname}${url.search}`,
    token,
    namespace,
    body,
  });
  if (vault.next) {
    const n = vault.next;
    vault.next = null;
    send(res, n.status, n.body);
    return;
  }
  const denied = () => send(res, 403, { errors: ['permission denied'] });
  const p = url.pathname;
  if (p === '/v1/auth/token/lookup-self' && req.method === 'GET') {
    const t = validToken(token);
    if (!t) return denied();
    const ttl = t.expiresAt === null ? 0 : Math.round((t.expiresAt - vault.clock) / 1000);
    return send(res, 200, { data: { ttl, renewable: t.renewable } });
  }
  if (p === '/v1/auth/token/renew-self' && req.method === 'POST') {
    const t = validToken(token);
    if (!t || !t.renewable || token === undefined) return denied();
    let until = vault.clock + t.lease * 1000;
    if (t.maxAt !== null) until = Math.min(until, t.maxAt);
    if (until <= vault.clock) return send(res, 400, { errors: ['past max TTL'] });
    t.expiresAt = until;
    return send(res, 200, {
      auth: {
        client_token: token,
        lease_duration: Math.round((until - vault.clock) / 1000),
        renewable: true,
      },
    });
  }
  if (p === '/v1/auth/kubernetes/login' && req.method === 'POST') {
    if (body?.role !== 'latchkey' || body.jwt !== JWT)
      return send(res, 403, { errors: ['permission denied'] });
    const lease = 60;
    return send(res, 200, {
      auth: {
        client_token: issue(lease, 120, namespace ?? ''),
        lease_duration: lease,
        renewable: true,
      },
    });
  }
  if (p === '/v1/auth/aws-prod/login' && req.method === 'POST') {
    const decode = (k: string) => {
      const v = body?.[k];
      return Buffer.from(typeof v === 'string' ? v : '', 'base64').toString('utf8');
    };
    const headers = JSON.parse(decode('iam_request_headers') || '{}') as Record<string, string[]>;
    const ok =
      body?.role === 'latchkey' &&
      body.iam_http_request_method === 'POST' &&
      decode('iam_request_url') === 'https://sts.amazonaws.com/' &&
      decode('iam_request_body') === 'Action=GetCallerIdentity&Version=2011-06-15' &&
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20261125\/us-east-1\/sts\/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-vault-aws-iam-server-id, Signature=[0-9a-f]{64}$/.test(
        headers.authorization?.[0] ?? '',
      ) &&
      headers['x-vault-aws-iam-server-id']?.[0] === 'vault.example.com' &&
      headers['x-amz-security-token']?.[0] === 'session-token';
    if (!ok) return send(res, 400, { errors: ['error validating IAM request'] });
    return send(res, 200, {
      auth: {
        client_token: issue(300, null, namespace ?? ''),
        lease_duration: 300,
        renewable: true,
      },
    });
  }
  const kv = /^\/v1\/(.+?)\/data\/(.+)$/.exec(p);
  if (kv && req.method === 'GET') {
    const t = validToken(token);
    if (!t) return denied();
    const versions = vault.secrets.get(`${namespace ?? ''}|${kv[1]}/${kv[2]}`);
    if (!versions) return send(res, 404, { errors: [] });
    const v = Number(url.searchParams.get('version') ?? versions.length);
    const data = versions[v - 1];
    if (data === undefined) return send(res, 404, { errors: [] });
    return send(res, 200, {
      request_id: 'r',
      data: {
        data,
        metadata: { version: v, created_time: '2026-11-01T00:00:00Z', destroyed: false },
      },
    });
  }
  send(res, 404, { errors: [] });
}

let server: Server;
let address: string;
let dir: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    handle(req, res).catch(() => send(res, 500, { errors: ['test server failure'] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dir = await mkdtemp(path.join(tmpdir(), 'latchkey-vault-'));
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  vault.tokens.clear();
  vault.secrets.clear();
  vault.seen = [];
  vault.next = null;
  vault.secrets.set('|secret/latchkey/orders-db', [
    { username: 'latchkey', password: 'old', host: 'orders.internal' },
    {
      username: 'latchkey',
      password: PASSWORD,
      host: 'orders.internal',
      port: 5432,
      dbname: 'orders',
    },
  ]);
  vault.secrets.set('team-a|kv/db/sales', [{ username: 'sales_admin', password: PASSWORD }]);
});

function store(over: Partial<VaultStoreOptions> = {}) {
  return createVaultStore({
    address,
    authMethod: 'token',
    token: ROOT_TOKEN,
    now: () => new Date(vault.clock),
    ...over,
  });
}

describe('vault secret store (real HTTP server speaking the Vault API)', () => {
  it('reads the latest KV v2 version from data.data, or a pinned version', async () => {
    const s = store();
    await expect(s.resolve({ store: 'vault', path: 'latchkey/orders-db' })).resolves.toEqual({
      username: 'latchkey',
      password: PASSWORD,
      host: 'orders.internal',
      port: 5432,
      dbname: 'orders',
      extra: {},
    });
    const v1 = await s.resolve({ store: 'vault', path: 'latchkey/orders-db', version: 1 });
    expect(v1.password).toBe('old');
    const reads = vault.seen.filter((r) => r.url.includes('/data/'));
    expect(reads.map((r) => r.url)).toEqual([
      '/v1/secret/data/latchkey/orders-db',
      '/v1/secret/data/latchkey/orders-db?version=1',
    ]);
    expect(reads.every((r) => r.token === ROOT_TOKEN && r.namespace === undefined)).toBe(true);
  });

  it('sends the namespace (the store’s, or the reference’s own) and the mount', async () => {
    const s = store({ namespace: 'team-a', kvMount: 'kv' });
    const out = await s.resolve({ store: 'vault', path: 'db/sales' });
    expect(out.username).toBe('sales_admin');
    const err = await errorOf(s.resolve({ store: 'vault', path: 'db/sales', namespace: 'team-b' }));
    expect(err.code).toBe('E_SECRET');
    expect(err.message).toContain('not found');
    expect(vault.seen.filter((r) => r.url.includes('/data/')).map((r) => r.namespace)).toEqual([
      'team-a',
      'team-b',
    ]);
  });

  it('maps Vault’s answers to the closed set, naming no token or value', async () => {
    const wrong = store({ token: 'hvs.wrong-token' });
    const denied = await errorOf(wrong.resolve({ store: 'vault', path: 'latchkey/orders-db' }));
    expect(denied.code).toBe('E_SECRET');
    expect(denied.message).toContain('permission denied');
    expect(denied.message).not.toContain('hvs.');

    const s = store();
    const missing = await errorOf(s.resolve({ store: 'vault', path: 'latchkey/nope' }));
    expect(missing.code).toBe('E_SECRET');
    expect(missing.message).toContain('secret/latchkey/nope: not found');

    vault.next = { status: 200, body: { data: { username: 'u', password: PASSWORD } } }; // KV v1 shape
    const v1 = await errorOf(s.resolve({ store: 'vault', path: 'latchkey/orders-db' }));
    expect(v1.code).toBe('E_SECRET');
    expect(v1.message).toContain('KV version 2');
    expect(v1.message).not.toContain(PASSWORD);

    vault.next = { status: 429, body: { errors: ['rate limited'] } };
    expect((await errorOf(s.resolve({ store: 'vault', path: 'latchkey/orders-db' }))).code).toBe(
      'E_THROTTLED',
    );
    vault.next = { status: 503, body: { errors: ['Vault is sealed'] } };
    expect((await errorOf(s.resolve({ store: 'vault', path: 'latchkey/orders-db' }))).code).toBe(
      'E_CONNECT',
    );
    vault.next = { status: 200, body: { data: { data: { username: 'u' } } } };
    const noPassword = await errorOf(s.resolve({ store: 'vault', path: 'latchkey/orders-db' }));
    expect(noPassword.code).toBe('E_SECRET');
    expect(noPassword.message).toContain('password');

    const bad = await errorOf(s.resolve({ store: 'vault', path: '../sys/raw' }));
    expect(bad.code).toBe('E_SECRET');

    const down = createVaultStore({
      address: 'http://127.0.0.1:9',
      authMethod: 'token',
      token: ROOT_TOKEN,
    });
    expect((await errorOf(down.resolve({ store: 'vault', path: 'x' }))).code).toBe('E_CONNECT');
  });

  it('kubernetes auth: logs in with the ServiceAccount token, renews at two thirds of the lease, logs in again past the max TTL', async () => {
    const jwtFile = path.join(dir, 'sa-token');
    await writeFile(jwtFile, `${JWT}\n`);
    const s = store({
      authMethod: 'kubernetes',
      token: undefined,
      role: 'latchkey',
      kubernetesTokenFile: jwtFile,
    });
    vault.tokens.clear();
    vault.secrets.set('|secret/latchkey/orders-db', [{ username: 'latchkey', password: PASSWORD }]);
    await s.resolve({ store: 'vault', path: 'latchkey/orders-db' });
    const login = vault.seen.find((r) => r.url === '/v1/auth/kubernetes/login');
    expect(login?.body).toEqual({ role: 'latchkey', jwt: JWT });
    const first = vault.seen.at(-1)?.token;
    expect(first).toBe('hvs.issued-' + String(vault.issued));

    vault.clock += 30_000; // within 2/3 of 60 s: the same token, no renewal
    await s.resolve({ store: 'vault', path: 'latchkey/orders-db' });
    expect(vault.seen.filter((r) => r.url.includes('renew-self'))).toHaveLength(0);

    vault.clock += 15_000; // 45 s: renewed
    await s.resolve({ store: 'vault', path: 'latchkey/orders-db' });
    expect(vault.seen.filter((r) => r.url.includes('renew-self'))).toHaveLength(1);
    expect(vault.seen.at(-1)?.token).toBe(first);

    vault.clock += 80_000; // past the max TTL (120 s): renewal refused, a new login
    await s.resolve({ store: 'vault', path: 'latchkey/orders-db' });
    expect(vault.seen.filter((r) => r.url === '/v1/auth/kubernetes/login')).toHaveLength(2);
    expect(vault.seen.at(-1)?.token).not.toBe(first);

    // A token revoked behind our back: 403, one fresh login, one retry.
    vault.tokens.clear();
    await expect(s.resolve({ store: 'vault', path: 'latchkey/orders-db' })).resolves.toMatchObject({
      password: PASSWORD,
    });
    expect(vault.seen.filter((r) => r.url === '/v1/auth/kubernetes/login')).toHaveLength(3);
  });

  it('kubernetes auth with a wrong role is E_SECRET', async () => {
    const jwtFile = path.join(dir, 'sa-token-2');
    await writeFile(jwtFile, JWT);
    const s = store({ authMethod: 'kubernetes', role: 'other', kubernetesTokenFile: jwtFile });
    const err = await errorOf(s.resolve({ store: 'vault', path: 'latchkey/orders-db' }));
    expect(err.code).toBe('E_SECRET');
    expect(err.message).toContain('kubernetes login');
    expect(err.message).not.toContain(JWT);
  });

  it('aws auth: a signed sts:GetCallerIdentity request with the server id header, in the namespace', async () => {
    const s = store({
      authMethod: 'aws',
      role: 'latchkey',
      authMount: 'aws-prod',
      awsServerId: 'vault.example.com',
      namespace: 'team-a',
      kvMount: 'kv',
      awsCredentials: () =>
        Promise.resolve({
          accessKeyId: 'AKIDEXAMPLE',
          secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
          sessionToken: 'session-token',
        }),
    });
    await expect(s.resolve({ store: 'vault', path: 'db/sales' })).resolves.toMatchObject({
      username: 'sales_admin',
    });
    const login = vault.seen.find((r) => r.url === '/v1/auth/aws-prod/login');
    expect(login?.namespace).toBe('team-a');
    expect(vault.seen.at(-1)?.token).toMatch(/^hvs\.issued-/);
  });

  it('a given token that expires cannot be replaced: E_SECRET saying so', async () => {
    const token = issue(60, 60, '');
    const s = store({ token });
    await s.resolve({ store: 'vault', path: 'latchkey/orders-db' });
    expect(vault.seen[0]?.url).toBe('/v1/auth/token/lookup-self');
    vault.clock += 61_000;
    const err = await errorOf(s.resolve({ store: 'vault', path: 'latchkey/orders-db' }));
    expect(err.code).toBe('E_SECRET');
    expect(err.message).toContain('expired');
  });

  it('through the resolver: cached, and refused when no Vault is configured', async () => {
    const aws = {
      client: () => {
        throw new Error('no AWS here');
      },
    } as unknown as AwsClientFactory;
    const resolver = createSecretResolver({
      aws,
      defaultRegion: 'eu-west-1',
      cacheTtlMs: 60_000,
      now: () => new Date(vault.clock),
      vault: { address, authMethod: 'token', token: ROOT_TOKEN, now: () => new Date(vault.clock) },
    });
    const ref = { store: 'vault' as const, path: 'latchkey/orders-db' };
    await resolver.resolve(ref);
    await resolver.resolve(ref);
    expect(vault.seen.filter((r) => r.url.includes('/data/'))).toHaveLength(1);
    resolver.invalidate(ref);
    await resolver.resolve(ref);
    expect(vault.seen.filter((r) => r.url.includes('/data/'))).toHaveLength(2);

    const none = createSecretResolver({ aws, defaultRegion: 'eu-west-1', cacheTtlMs: 0 });
    const err = await errorOf(none.resolve(ref));
    expect(err.code).toBe('E_SECRET');
    expect(err.message).toContain('LATCHKEY_VAULT_ADDR');
  });
});
