/**
 * A `{username, password}` secret under any name, found through the `<prefix>-secret` tag
 * of a database: accepted by the secret binding for exactly that database's endpoint once
 * this agent's own discovery saw the tag (docs/secrets.md, "Secrets found by discovery").
 */
import 'aws-sdk-client-mock-vitest/extend';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { AwsDiscoveryDriver } from '../../../../src/drivers/aws-discovery/index.js';
import { LatchkeyError } from '../../../../src/errors.js';
import type { Integration, SecretRef } from '../../../../src/protocol/messages.js';
import { resolveBoundSecret, type SecretTarget } from '../../../../src/secrets/binding.js';
import { createSecretResolver } from '../../../../src/secrets/index.js';
import { makeCtx, makeServices } from '../../aws/helpers.js';
import { testClock } from '../../secrets/aws-fixtures.js';
import { HOME, allMocks, instance, ours, secretArn, serveWorld, type World } from './world.js';

const EU = 'eu-west-1';
const PASSWORD = 'Orders-Svc-Pa55word!';
const SECRET = secretArn(HOME, EU, 'team-a/orders-db-credentials');
const HOST = `orders-pg.abcdefghijkl.${EU}.rds.amazonaws.com`;
const DB_ARN = `arn:aws:rds:${EU}:${HOME}:db:orders-pg`;

const sm = mockClient(SecretsManagerClient);

const config = { connectorId: 'conn-7f3a', regions: [EU], useResourceExplorer: false };
const ctx = () => makeCtx({ id: 'aws-disc-1', type: 'aws-discovery', config });

/** One agent: its services (with a real secret resolver) and its aws-discovery driver. */
function agent(clock = testClock()) {
  const base = makeServices();
  const secrets = createSecretResolver({
    aws: base.aws,
    defaultRegion: EU,
    cacheTtlMs: 0,
    now: clock.now,
  });
  const driver = new AwsDiscoveryDriver(
    { ...base, secrets },
    { limiter: { concurrency: 16, perSecond: 100_000 } },
  );
  return { secrets, driver, clock };
}

function world(tags: Record<string, string>): World {
  return { [HOME]: { [EU]: { instances: [instance(HOME, EU, 'orders-pg', 'postgres', tags)] } } };
}

function refOf(i: Integration | undefined): SecretRef {
  if (i?.secret === undefined) throw new Error('expected a sub-integration with a secret');
  return i.secret;
}

async function guardrail(p: Promise<unknown>): Promise<LatchkeyError> {
  const err = await p.then(
    () => {
      throw new Error('expected E_GUARDRAIL');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LatchkeyError);
  const e = err as LatchkeyError;
  expect(e.code).toBe('E_GUARDRAIL');
  expect(e.message).not.toContain(PASSWORD);
  return e;
}

const REF: SecretRef = { store: 'aws-secrets-manager', secretId: SECRET, region: EU };
const TARGET: SecretTarget = { host: HOST, port: 5432 };

describe('secrets found through a database tag by this agent’s aws-discovery', () => {
  beforeEach(() => {
    for (const m of [...allMocks, sm]) m.reset();
    // A plain {username, password} secret: no host, no latchkey-connector-* tags.
    sm.on(GetSecretValueCommand, { SecretId: SECRET }).resolves({
      ARN: SECRET,
      Name: 'team-a/orders-db-credentials',
      VersionId: 'v1',
      SecretString: JSON.stringify({ username: 'orders_svc', password: PASSWORD }),
      VersionStages: ['AWSCURRENT'],
    });
    sm.on(DescribeSecretCommand, { SecretId: SECRET }).resolves({
      ARN: SECRET,
      Tags: [{ Key: 'team', Value: 'a' }],
    });
  });
  afterAll(() => {
    for (const m of [...allMocks, sm]) m.restore();
  });

  it('accepts the secret for the discovered database endpoint, and only there', async () => {
    const { secrets, driver } = agent();
    serveWorld(world(ours('user-password', SECRET)));

    // Before discovery: refused, saying how to allow it.
    const before = await guardrail(resolveBoundSecret(secrets, REF, TARGET));
    expect(before.message).toContain("tag the database latchkey-secret=<this secret's ARN>");
    expect(before.message).toContain(`no pairing of this secret with ${HOST}:5432`);

    const out = await driver.discover(ctx());
    const ref = refOf(out.integrations?.[0]);
    expect(ref).toEqual(REF);
    expect(out.integrations?.[0]?.config).toMatchObject({ host: HOST, port: 5432 });

    const secret = await resolveBoundSecret(secrets, ref, TARGET);
    expect(secret.username).toBe('orders_svc');
    // Same host as AWS wrote it, in another spelling: still that host.
    await resolveBoundSecret(secrets, ref, { host: `${HOST.toUpperCase()}.`, port: 5432 });
    expect(sm).toHaveReceivedCommandWith(GetSecretValueCommand, { SecretId: SECRET });
    expect(sm).toHaveReceivedCommandWith(DescribeSecretCommand, { SecretId: SECRET });

    // Never for another host, another port, or another secret.
    await guardrail(resolveBoundSecret(secrets, ref, { host: 'attacker.example', port: 5432 }));
    await guardrail(
      resolveBoundSecret(secrets, ref, {
        host: `billing.abcdefghijkl.${EU}.rds.amazonaws.com`,
        port: 5432,
      }),
    );
    await guardrail(resolveBoundSecret(secrets, ref, { host: HOST, port: 5433 }));
    const other = secretArn(HOME, EU, 'team-b/other');
    sm.on(GetSecretValueCommand, { SecretId: other }).resolves({
      ARN: other,
      SecretString: JSON.stringify({ username: 'x', password: PASSWORD }),
    });
    sm.on(DescribeSecretCommand, { SecretId: other }).resolves({ ARN: other, Tags: [] });
    await guardrail(
      resolveBoundSecret(
        secrets,
        { store: 'aws-secrets-manager', secretId: other, region: EU },
        TARGET,
      ),
    );
  });

  it('refuses when the tag was not found by this agent (another agent, or a database not ours)', async () => {
    const discovering = agent();
    const bystander = agent();
    serveWorld(world(ours('user-password', SECRET)));
    await discovering.driver.discover(ctx());
    await resolveBoundSecret(discovering.secrets, REF, TARGET);
    await guardrail(resolveBoundSecret(bystander.secrets, REF, TARGET));

    // The secret tag on a database of another connector is not this agent's pairing.
    const fresh = agent();
    serveWorld(world({ 'latchkey-connector-id': 'someone-else', 'latchkey-secret': SECRET }));
    const out = await fresh.driver.discover(ctx());
    expect(out.integrations).toEqual([]);
    await guardrail(resolveBoundSecret(fresh.secrets, REF, TARGET));
  });

  it('drops the pairing when a later discovery no longer sees the tag, and after the TTL', async () => {
    const a = agent();
    serveWorld(world(ours('user-password', SECRET)));
    await a.driver.discover(ctx());
    await resolveBoundSecret(a.secrets, REF, TARGET);

    for (const m of allMocks) m.reset();
    serveWorld(world(ours('iam-auth')));
    await a.driver.discover(ctx());
    await guardrail(resolveBoundSecret(a.secrets, REF, TARGET));

    // Tagged again, then handed to another connector (skipped), then misconfigured (a warning).
    for (const next of [
      { tags: ours('user-password', SECRET), accepted: true },
      {
        tags: { 'latchkey-connector-id': 'someone-else', 'latchkey-secret': SECRET },
        accepted: false,
      },
      { tags: ours('user-password', SECRET), accepted: true },
      {
        tags: { 'latchkey-connector-id': 'conn-7f3a', 'latchkey-secret': SECRET },
        accepted: false,
      },
    ]) {
      for (const m of allMocks) m.reset();
      serveWorld(world(next.tags));
      await a.driver.discover(ctx());
      if (next.accepted) await resolveBoundSecret(a.secrets, REF, TARGET);
      else await guardrail(resolveBoundSecret(a.secrets, REF, TARGET));
    }

    const b = agent();
    serveWorld(world(ours('user-password', SECRET)));
    await b.driver.discover(ctx());
    b.clock.advance(23 * 3600_000);
    await resolveBoundSecret(b.secrets, REF, TARGET);
    b.clock.advance(2 * 3600_000);
    const e = await guardrail(resolveBoundSecret(b.secrets, REF, TARGET));
    expect(e.message).toContain('discovered by this agent within 24 h');
  });

  it('check says which secrets are accepted through a discovered pairing', async () => {
    const { driver } = agent();
    serveWorld(world(ours('user-password', SECRET)));
    const before = (await driver.check(ctx())).checks.find((c) => c.name === 'discovered-secrets');
    expect(before).toEqual({
      name: 'discovered-secrets',
      ok: true,
      detail: expect.stringContaining(
        'no secret is accepted through a discovered pairing',
      ) as string,
    });
    await driver.discover(ctx());
    const after = (await driver.check(ctx())).checks.find((c) => c.name === 'discovered-secrets');
    expect(after?.ok).toBe(true);
    expect(after?.detail).toBe(
      "1 secret pairing(s) found by this agent's discovery within 24 h; each secret is " +
        `accepted for its database's endpoint only: ${SECRET} for ${HOST}:5432 (tag on ${DB_ARN})`,
    );
    expect(after?.detail).not.toContain(PASSWORD);
  });
});
