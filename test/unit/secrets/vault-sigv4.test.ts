/**
 * The SigV4 signature of Vault's AWS IAM login (`signedGetCallerIdentity`) against a known
 * answer: the expected signature was computed independently with the AWS SDK's signer
 * (`@smithy/signature-v4`, `applyChecksum: false`) for the same request, credentials and time.
 */
import { describe, expect, it } from 'vitest';
import { signedGetCallerIdentity } from '../../../src/secrets/vault.js';

const decode = (v: string | undefined) => Buffer.from(v ?? '', 'base64').toString('utf8');

describe('signedGetCallerIdentity', () => {
  it('signs sts:GetCallerIdentity exactly as the AWS SDK does', () => {
    const fields = signedGetCallerIdentity(
      {
        accessKeyId: 'AKIDEXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
        sessionToken: 'session-token',
      },
      { awsServerId: 'vault.example.com' },
      new Date('2026-11-25T20:00:00.000Z'),
    );
    expect(fields.iam_http_request_method).toBe('POST');
    expect(decode(fields.iam_request_url)).toBe('https://sts.amazonaws.com/');
    expect(decode(fields.iam_request_body)).toBe('Action=GetCallerIdentity&Version=2011-06-15');
    expect(JSON.parse(decode(fields.iam_request_headers))).toEqual({
      'content-type': ['application/x-www-form-urlencoded; charset=utf-8'],
      host: ['sts.amazonaws.com'],
      'x-amz-date': ['20261125T200000Z'],
      'x-amz-security-token': ['session-token'],
      'x-vault-aws-iam-server-id': ['vault.example.com'],
      authorization: [
        'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sts/aws4_request, ' +
          'SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-vault-aws-iam-server-id, ' +
          'Signature=a2b3db0591409cd6958a825d2e8ccecef9d045de0c4685eb1a8162232358069d',
      ],
    });
  });
});
