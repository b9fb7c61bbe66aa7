/**
 * The EKS token is checked against an independent SigV4 computation (node:crypto, written
 * from the SigV4 specification), and the real `@kubernetes/client-node` lister is run
 * against a local fake Kubernetes API that demands the token and pages its answer.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TOKEN_PREFIX,
  eksToken,
  kubernetesNamespaceLister,
} from '../../../../src/drivers/aws-eks/kubernetes.js';
import { rejection } from '../../aws/helpers.js';

const CREDS = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'session/token+with=odd chars',
};
const NOW = new Date('2026-11-25T20:00:00.000Z');

const rfc3986 = (s: string): string =>
  encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
const hmac = (key: Buffer | string, data: string): Buffer =>
  createHmac('sha256', key).update(data, 'utf8').digest();
const sha256 = (data: string): string => createHash('sha256').update(data, 'utf8').digest('hex');

/** The SigV4 signature of a presigned GET with headers host and x-k8s-aws-id. */
function expectedSignature(url: URL, clusterName: string, secret: string): string {
  const params = [...url.searchParams].filter(([k]) => k !== 'X-Amz-Signature');
  const query = params
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonical = [
    'GET',
    '/',
    query,
    `host:${url.hostname}\nx-k8s-aws-id:${clusterName}\n`,
    'host;x-k8s-aws-id',
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  ].join('\n');
  const amzDate = url.searchParams.get('X-Amz-Date') ?? '';
  const scope = (url.searchParams.get('X-Amz-Credential') ?? '').split('/').slice(1).join('/');
  const [date, region, service] = scope.split('/');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const key = hmac(
    hmac(hmac(hmac(`AWS4${secret}`, date ?? ''), region ?? ''), service ?? ''),
    'aws4_request',
  );
  return createHmac('sha256', key).update(toSign, 'utf8').digest('hex');
}

function decode(token: string): URL {
  expect(token.startsWith(TOKEN_PREFIX)).toBe(true);
  const b64 = token.slice(TOKEN_PREFIX.length);
  expect(b64).toMatch(/^[A-Za-z0-9_-]+$/);
  return new URL(Buffer.from(b64, 'base64url').toString('utf8'));
}

describe('EKS token', () => {
  it('is a presigned STS GetCallerIdentity whose signature covers x-k8s-aws-id', async () => {
    const token = await eksToken({
      clusterName: 'prod',
      region: 'eu-west-1',
      partition: 'aws',
      credentials: CREDS,
      now: NOW,
    });
    const url = decode(token);
    expect(url.origin).toBe('https://sts.eu-west-1.amazonaws.com');
    expect(
      Object.fromEntries([...url.searchParams].filter(([k]) => k !== 'X-Amz-Signature')),
    ).toEqual({
      Action: 'GetCallerIdentity',
      Version: '2011-06-15',
      'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
      'X-Amz-Credential': 'AKIDEXAMPLE/20261125/eu-west-1/sts/aws4_request',
      'X-Amz-Date': '20261125T200000Z',
      'X-Amz-Expires': '60',
      'X-Amz-SignedHeaders': 'host;x-k8s-aws-id',
      'X-Amz-Security-Token': CREDS.sessionToken,
    });
    const signature = url.searchParams.get('X-Amz-Signature');
    expect(signature).toBe(expectedSignature(url, 'prod', CREDS.secretAccessKey));
    // Presented for another cluster, the signature does not hold.
    expect(signature).not.toBe(expectedSignature(url, 'stage', CREDS.secretAccessKey));
  });

  it('uses the China partition host for aws-cn', async () => {
    const url = decode(
      await eksToken({
        clusterName: 'c',
        region: 'cn-north-1',
        partition: 'aws-cn',
        credentials: CREDS,
        now: NOW,
      }),
    );
    expect(url.hostname).toBe('sts.cn-north-1.amazonaws.com.cn');
  });
});

const TLS = new URL('../../../fixtures/tls/', import.meta.url);
const read = (name: string): string => readFileSync(new URL(name, TLS), 'utf8');
/** DescribeCluster's `certificateAuthority.data`: base64 of the PEM. */
const caData = Buffer.from(read('ca.pem')).toString('base64');

describe('namespace listing with @kubernetes/client-node over TLS', () => {
  let server: Server;
  let endpoint = '';
  const seen: { auth: string | undefined; url: string | undefined }[] = [];

  beforeAll(async () => {
    server = createServer({ cert: read('server.pem'), key: read('server-key.pem') }, (req, res) => {
      seen.push({ auth: req.headers.authorization, url: req.url });
      if (req.headers.authorization !== 'Bearer k8s-aws-v1.good') {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', code: 401, message: 'Unauthorized' }));
        return;
      }
      const u = new URL(req.url ?? '/', 'http://x');
      const second = u.searchParams.get('continue') === 'c1';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'NamespaceList',
          apiVersion: 'v1',
          metadata: second ? {} : { continue: 'c1' },
          items: second
            ? [{ metadata: { name: 'dev' } }]
            : [{ metadata: { name: 'default' } }, { metadata: { name: 'kube-system' } }],
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sends the token and follows continue tokens', async () => {
    seen.length = 0;
    const names = await kubernetesNamespaceLister().listNamespaces(
      { endpoint, caData, token: 'k8s-aws-v1.good' },
      new AbortController().signal,
    );
    expect(names).toEqual(['default', 'kube-system', 'dev']);
    expect(seen.map((s) => s.auth)).toEqual(['Bearer k8s-aws-v1.good', 'Bearer k8s-aws-v1.good']);
    expect(seen[0]?.url).toBe('/api/v1/namespaces?limit=500');
    expect(seen[1]?.url).toBe('/api/v1/namespaces?continue=c1&limit=500');
  });

  it('a server whose certificate is not signed by the cluster CA is refused', async () => {
    const other = Buffer.from(read('server.pem')).toString('base64');
    const err = await rejection(
      kubernetesNamespaceLister().listNamespaces(
        { endpoint, caData: other, token: 'k8s-aws-v1.good' },
        new AbortController().signal,
      ),
    );
    expect(err.code).toBe('E_CONNECT');
  });

  it('a refused token is E_PRIVILEGE', async () => {
    const err = await rejection(
      kubernetesNamespaceLister().listNamespaces(
        { endpoint, caData, token: 'k8s-aws-v1.bad' },
        new AbortController().signal,
      ),
    );
    expect(err.code).toBe('E_PRIVILEGE');
    expect(err.message).not.toContain('k8s-aws-v1');
  });
});
