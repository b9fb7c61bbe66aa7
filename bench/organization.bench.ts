/**
 * Organization benchmark (issue 12): `aws-ssm` discover over a faked AWS Organization of
 * 500 member accounts × 4 regions, through the real client factory (one assumed member
 * role per account, real SDK clients) and the organization scope's bounded fan-out.
 *
 * AWS is faked by replacing `send` of the four SDK client classes with a hand-written
 * handler per command, with a small latency per call so concurrency shows. Not
 * `aws-sdk-client-mock`: its sinon stub records every call with its `this` (the SDK
 * client), so every client the factory evicted stayed reachable and the heap grew with the
 * number of accounts (~170 MiB at 500, ~338 MiB at 1000) — the mock's history, not ours.
 *
 * Reported: wall time, AWS calls (total and per account: min/max), resources found, peak
 * RSS (VmHWM), RSS/heap after the run, and the heap after a full GC while the driver and
 * the client factory are still alive (what our code keeps). Peak RSS still rises with the
 * number of accounts because V8 lets the heap grow before collecting garbage; with
 * `node --max-old-space-size=80` 2000 accounts × 4 regions run within ~210 MiB RSS.
 *
 * `node --import tsx bench/organization.bench.ts [accounts] [regions] [latencyMs]`
 * (default 500 4 5); under `npm run bench -- organization` use BENCH_ORG_ACCOUNTS,
 * BENCH_ORG_REGIONS, BENCH_ORG_LATENCY_MS. BENCH_ORG_CONCURRENCY sets
 * `organization.concurrency` (default 16).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { ListAccountsCommand, OrganizationsClient } from '@aws-sdk/client-organizations';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { DescribeInstanceInformationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { pino } from 'pino';
import { createAwsClientFactory } from '../src/aws/index.js';
import { AgentEvents } from '../src/events.js';
import { driverFactory } from '../src/drivers/aws-ssm/index.js';
import { LatchkeyError } from '../src/errors.js';
import type { DriverServices } from '../src/drivers/driver.js';
import type { DiscoverOutput } from '../src/protocol/messages.js';

const env = process.env;
const ACCOUNTS = Number(process.argv[2] ?? env.BENCH_ORG_ACCOUNTS ?? 500);
const REGIONS = ['eu-west-1', 'us-east-1', 'eu-central-1', 'ap-southeast-2'].slice(
  0,
  Number(process.argv[3] ?? env.BENCH_ORG_REGIONS ?? 4),
);
const LATENCY_MS = Number(process.argv[4] ?? env.BENCH_ORG_LATENCY_MS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_ORG_CONCURRENCY ?? 16);
const HOME = '100000000000';

const accounts = Array.from({ length: ACCOUNTS }, (_, i) => String(200000000000 + i));
const calls = new Map<string, number>();
const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));

type FakeClient = { config: { credentials: () => Promise<{ accessKeyId: string }> } };

async function accountOf(c: FakeClient): Promise<string> {
  const key = (await c.config.credentials()).accessKeyId;
  const account = /^ASIA(\d{12})$/.exec(key)?.[1] ?? HOME;
  calls.set(account, (calls.get(account) ?? 0) + 1);
  return account;
}

/**
 * Replace `send` of an SDK client class: each command class → its handler, called with the
 * command's input and the client it was sent with. Nothing is recorded.
 */
function fake(
  cls: { prototype: object },
  handlers: [
    abstract new (...args: never[]) => unknown,
    (input: never, client: FakeClient) => Promise<unknown>,
  ][],
): void {
  const byCommand = new Map(handlers);
  Object.defineProperty(cls.prototype, 'send', {
    configurable: true,
    value: function send(this: FakeClient, command: { input: never }): Promise<unknown> {
      const handler = byCommand.get(command.constructor as abstract new () => unknown);
      if (!handler) return Promise.reject(new Error(`no fake for ${command.constructor.name}`));
      return handler(command.input, this);
    },
  });
}

fake(OrganizationsClient, [
  [
    ListAccountsCommand,
    async (input: { NextToken?: string }) => {
      await sleep(LATENCY_MS);
      const start = Number(input.NextToken ?? 0);
      const page = accounts.slice(start, start + 20);
      return {
        Accounts: page.map((Id) => ({ Id, Name: `acct-${Id.slice(-4)}`, State: 'ACTIVE' })),
        ...(start + 20 < accounts.length ? { NextToken: String(start + 20) } : {}),
      };
    },
  ],
]);
fake(STSClient, [
  [
    AssumeRoleCommand,
    async (input: { RoleArn: string }) => {
      await sleep(LATENCY_MS);
      const account = /::(\d{12}):/.exec(input.RoleArn)?.[1] ?? '';
      calls.set(account, (calls.get(account) ?? 0) + 1);
      return {
        Credentials: {
          AccessKeyId: `ASIA${account}`,
          SecretAccessKey: 's',
          SessionToken: 't',
          Expiration: new Date(Date.now() + 3600_000),
        },
      };
    },
  ],
]);
fake(SSMClient, [
  [
    DescribeInstanceInformationCommand,
    async (_input: unknown, client) => {
      const account = await accountOf(client);
      await sleep(LATENCY_MS);
      return {
        InstanceInformationList: [1, 2, 3].map((n) => ({
          InstanceId: `i-0${account.slice(-8)}${n}0000000`,
          PingStatus: 'Online',
        })),
      };
    },
  ],
]);
fake(EC2Client, [
  [
    DescribeInstancesCommand,
    async (input: { InstanceIds: string[] }, client) => {
      await accountOf(client);
      await sleep(LATENCY_MS);
      return {
        Reservations: [
          {
            Instances: input.InstanceIds.map((InstanceId) => ({
              InstanceId,
              Tags: [{ Key: 'Name', Value: 'web' }],
            })),
          },
        ],
      };
    },
  ],
]);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function hwmKb(): { rss: number; hwm: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}
const mib = (kb: number): string => `${(kb / 1024).toFixed(1)} MiB`;

const logger = pino({ level: 'silent' });
const events = new AgentEvents();
const aws = createAwsClientFactory({
  defaultRegion: 'eu-west-1',
  events,
  logger,
  baseCredentials: () => Promise.resolve({ accessKeyId: 'AKIAHOME', secretAccessKey: 'home' }),
  maxAttempts: 1,
});
const services: DriverServices = {
  logger,
  aws,
  secrets: { resolve: () => Promise.reject(new LatchkeyError('E_SECRET', 'none')) },
  sealer: {
    seal: () => {
      throw new LatchkeyError('E_INTERNAL', 'unused');
    },
  },
  tagPrefix: 'latchkey',
  now: () => new Date(),
};
const driver = driverFactory(services);
const before = hwmKb();
const started = performance.now();
let out: DiscoverOutput | null = await driver.discover({
  commandId: 'bench',
  integration: {
    id: 'org-bench',
    type: 'aws-ssm',
    config: {
      accountId: HOME,
      regions: REGIONS,
      organization: { memberRoleName: 'latchkey-member', concurrency: CONCURRENCY },
    },
  },
  signal: new AbortController().signal,
  logger,
});
const elapsed = performance.now() - started;
const after = hwmKb();
const perAccount = accounts.map((a) => calls.get(a) ?? 0);
const total = [...calls.values()].reduce((a, b) => a + b, 0);
const instances = out.resources.filter((r) => r.type === 'ec2-instance').length;
const warnings = out.warnings.length;

console.log(
  `organization discover (aws-ssm): ${ACCOUNTS} accounts × ${REGIONS.length} regions, ${LATENCY_MS} ms per AWS call, concurrency ${CONCURRENCY}`,
);
console.log(`  time                : ${(elapsed / 1000).toFixed(2)} s`);
console.log(`  resources           : ${instances} instances, ${warnings} warnings`);
console.log(
  `  AWS calls           : ${total} (per member account min ${Math.min(...perAccount)}, max ${Math.max(...perAccount)}; expected ${1 + 2 * REGIONS.length})`,
);
console.log(`  RSS before          : ${mib(before.rss)}`);
console.log(`  peak RSS (VmHWM)    : ${mib(after.hwm)}`);
console.log(
  `  RSS / heap after    : ${mib(after.rss)} / ${mib(process.memoryUsage().heapUsed / 1024)}`,
);
gc();
const heldMib = mib(process.memoryUsage().heapUsed / 1024);
out = null;
gc();
console.log(
  `  heap after full GC  : ${heldMib} with the result held, ${mib(process.memoryUsage().heapUsed / 1024)} without (driver and client factory alive)`,
);
aws.destroy();
if (instances !== ACCOUNTS * REGIONS.length * 3 || warnings > 0) {
  console.error('organization bench: unexpected result');
  process.exitCode = 1;
}
