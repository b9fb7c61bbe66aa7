import { describe, expect, it } from 'vitest';
import {
  ClientException,
  InvalidParameterException,
  ResourceInUseException,
  ResourceLimitExceededException,
  ResourcePropagationDelayException,
  ServerException,
} from '@aws-sdk/client-eks';
import { eksSend } from '../../../../src/drivers/aws-eks/errors.js';
import { rejection } from '../../aws/helpers.js';

const meta = { $metadata: { httpStatusCode: 400 } };
const send = (err: Error) =>
  rejection(
    eksSend({ operation: 'AssociateAccessPolicy', resource: 'prod' }, () => Promise.reject(err)),
  );

describe('aws-eks error mapping', () => {
  it('maps the EKS-only names, then everything else as every AWS driver does', async () => {
    const cases: [Error, string][] = [
      [new ResourceInUseException({ message: 'updating', ...meta }), 'E_CONFLICT'],
      [new ResourcePropagationDelayException({ message: 'not yet', ...meta }), 'E_CONFLICT'],
      [new ResourceLimitExceededException({ message: 'quota', ...meta }), 'E_INVALID'],
      [new ClientException({ message: 'bad', ...meta }), 'E_INVALID'],
      [new ServerException({ message: 'down', $metadata: { httpStatusCode: 500 } }), 'E_CONNECT'],
      [new InvalidParameterException({ message: 'bad arn', ...meta }), 'E_INVALID'],
    ];
    for (const [err, code] of cases) {
      const got = await send(err);
      expect([
        got.code,
        got.message.includes('eks:AssociateAccessPolicy') || got.message.includes('eks'),
      ]).toEqual([code, true]);
    }
    expect((await send(new ResourceInUseException({ message: 'x', ...meta }))).retryable).toBe(
      true,
    );
  });
});
