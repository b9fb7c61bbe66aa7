/**
 * Every AWS call goes through LATCHKEY_HTTPS_PROXY (issue 15): the SDK ignores
 * HTTPS_PROXY, so without our request handler a proxy-only VPC saw every AWS feature fail.
 *
 * A local CONNECT proxy records the targets it is asked for and tunnels each to a local
 * TLS server that answers as AWS would, with a certificate for `*.amazonaws.com` from a
 * private CA: the calls succeed only through the proxy, and only because the CA bundle
 * (LATCHKEY_CA_BUNDLE_FILE, as a TLS-inspecting proxy needs) is trusted.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { IAMClient, ListAccountAliasesCommand } from '@aws-sdk/client-iam';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClientFactory } from '../../../src/aws/index.js';
import { awsRequestHandler } from '../../../src/aws/proxy.js';
import { AgentEvents } from '../../../src/events.js';
import {
  makeTestCertificates,
  startConnectProxy,
  type TestCertificates,
} from '../../helpers/tls.js';

let certs: TestCertificates;
let caPem: string;
let certPem: string;
let keyPem: string;

beforeAll(() => {
  certs = makeTestCertificates(
    'Inspecting Proxy Test CA',
    'DNS:*.amazonaws.com,DNS:*.eu-west-1.amazonaws.com,DNS:*.us-east-1.amazonaws.com',
  );
  ({ caPem, certPem, keyPem } = certs);
});

afterAll(() => certs.remove());

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/';

/** A TLS server that answers the few AWS query-protocol actions these tests send. */
async function startFakeAws(): Promise<{ port: number; actions: string[] }> {
  const actions: string[] = [];
  const server: HttpsServer = createHttpsServer({ cert: certPem, key: keyPem }, (req, res) => {
    let body = '';
    req.on('data', (b: Buffer) => (body += b.toString()));
    req.on('end', () => {
      const action = new URLSearchParams(body).get('Action') ?? '?';
      actions.push(`${req.headers.host ?? '?'} ${action}`);
      const xml = (inner: string, ns = STS_NS): string =>
        `<${action}Response xmlns="${ns}"><${action}Result>${inner}</${action}Result>` +
        `<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></${action}Response>`;
      res.setHeader('content-type', 'text/xml');
      if (action === 'GetCallerIdentity') {
        res.end(
          xml(
            '<Arn>arn:aws:iam::123456789012:user/ops</Arn><UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account>',
          ),
        );
      } else if (action === 'AssumeRole') {
        const exp = new Date(Date.now() + 3_600_000).toISOString();
        res.end(
          xml(
            '<Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>s3cr3t</SecretAccessKey>' +
              `<SessionToken>tok</SessionToken><Expiration>${exp}</Expiration></Credentials>` +
              '<AssumedRoleUser><Arn>arn:aws:sts::210987654321:assumed-role/latchkey-member/s</Arn>' +
              '<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>',
          ),
        );
      } else if (action === 'ListAccountAliases') {
        res.end(
          xml(
            '<AccountAliases><member>member-account</member></AccountAliases><IsTruncated>false</IsTruncated>',
            'https://iam.amazonaws.com/doc/2010-05-08/',
          ),
        );
      } else {
        res.statusCode = 400;
        res.end('<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, actions };
}

/** A CONNECT proxy that records each target and tunnels it to the fake AWS. */
async function startProxy(fakePort: number): Promise<{ url: string; targets: string[] }> {
  const proxy = await startConnectProxy(() => ({ host: '127.0.0.1', port: fakePort }));
  cleanups.push(() => proxy.close());
  return proxy;
}

function factory(requestHandler: unknown) {
  const f = createAwsClientFactory({
    defaultRegion: 'eu-west-1',
    allowedRolePattern: 'latchkey-*',
    events: new AgentEvents(),
    logger: pino({ level: 'silent' }),
    baseCredentials: () =>
      Promise.resolve({ accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'base-secret' }),
    maxAttempts: 1,
    requestHandler,
  });
  cleanups.push(() => Promise.resolve(f.destroy()));
  return f;
}

describe('AWS calls and LATCHKEY_HTTPS_PROXY', () => {
  it('a client of the factory reaches AWS only through the proxy, trusting the CA bundle', async () => {
    const aws = await startFakeAws();
    const proxy = await startProxy(aws.port);
    const f = factory(awsRequestHandler({ proxyUrl: proxy.url, caBundle: caPem, noProxy: '' }));
    const out = await f
      .client(STSClient, { region: 'eu-west-1' })
      .send(new GetCallerIdentityCommand({}));
    expect(out.Account).toBe('123456789012');
    expect(proxy.targets).toEqual(['sts.eu-west-1.amazonaws.com:443']);
    expect(aws.actions).toEqual(['sts.eu-west-1.amazonaws.com GetCallerIdentity']);
  });

  it('assumed roles too: STS AssumeRole and the member-account call both go through the proxy', async () => {
    const aws = await startFakeAws();
    const proxy = await startProxy(aws.port);
    const f = factory(awsRequestHandler({ proxyUrl: proxy.url, caBundle: caPem, noProxy: '' }));
    const iam = f.client(IAMClient, {
      region: 'eu-west-1',
      assumeRoleArn: 'arn:aws:iam::210987654321:role/latchkey-member',
    });
    const out = await iam.send(new ListAccountAliasesCommand({}));
    expect(out.AccountAliases).toEqual(['member-account']);
    expect(aws.actions).toEqual([
      'sts.eu-west-1.amazonaws.com AssumeRole',
      'iam.amazonaws.com ListAccountAliases',
    ]);
    expect(new Set(proxy.targets)).toEqual(
      new Set(['sts.eu-west-1.amazonaws.com:443', 'iam.amazonaws.com:443']),
    );
  });

  it('without the CA bundle the re-signed certificate is refused (verification stays on)', async () => {
    const aws = await startFakeAws();
    const proxy = await startProxy(aws.port);
    const f = factory(awsRequestHandler({ proxyUrl: proxy.url, noProxy: '' }));
    await expect(
      f.client(STSClient, { region: 'eu-west-1' }).send(new GetCallerIdentityCommand({})),
    ).rejects.toThrow(/certificate/i);
    expect(proxy.targets).toEqual(['sts.eu-west-1.amazonaws.com:443']);
    expect(aws.actions).toEqual([]);
  });

  it('a host in NO_PROXY is reached directly, never through the proxy', async () => {
    const aws = await startFakeAws();
    const proxy = await startProxy(aws.port);
    const f = factory(
      awsRequestHandler({
        proxyUrl: proxy.url,
        caBundle: caPem,
        noProxy: 'localhost,.amazonaws.com',
      }),
    );
    // Directly, the real endpoint is not reachable from this machine: the call fails, and
    // the proxy saw nothing.
    await expect(
      f.client(STSClient, { region: 'eu-west-1' }).send(new GetCallerIdentityCommand({})),
    ).rejects.toThrow();
    expect(proxy.targets).toEqual([]);
  });

  it('no proxy and no CA bundle: the SDK keeps its own handler', () => {
    expect(awsRequestHandler({})).toBeUndefined();
  });
});
