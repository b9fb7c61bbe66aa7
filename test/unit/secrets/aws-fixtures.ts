/** Shared fixtures of the secrets unit tests: an AWS client factory and AWS-shaped errors. */
import type { AwsClientFactory, AwsTarget } from '../../../src/aws/types.js';

/** A tiny factory building real SDK clients (whose `send` aws-sdk-client-mock replaces). */
export function testAwsFactory(): AwsClientFactory & { targets: AwsTarget[] } {
  const targets: AwsTarget[] = [];
  return {
    targets,
    client(cls, target) {
      targets.push(target);
      return new cls({
        region: target.region,
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'test-secret-key' },
      });
    },
  };
}

/** An error as the SDK throws for an unmodelled AWS error name. */
export function awsError(name: string, httpStatusCode: number, message = name): Error {
  return Object.assign(new Error(message), {
    name,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode, requestId: '11111111-2222-3333-4444-555555555555' },
  });
}

/** A mutable clock for TTL tests. */
export function testClock(start = '2026-11-25T20:00:00.000Z'): {
  now: () => Date;
  advance: (ms: number) => void;
} {
  let t = Date.parse(start);
  return { now: () => new Date(t), advance: (ms) => void (t += ms) };
}
