/**
 * A fake HTTP transport for AWS SDK clients: the whole SDK stack runs (retry, signing,
 * deserialization, our middleware); only the network is replaced by canned responses
 * shaped like AWS's real ones. Used where `aws-sdk-client-mock` cannot help because it
 * replaces `send` and so skips the middleware stack (retries, the `aws:call` metric).
 */
import { Readable } from 'node:stream';

export interface FakeResponse {
  statusCode: number;
  headers?: Record<string, string>;
  body: string;
}

export interface SeenRequest {
  method: string;
  hostname: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

export class FakeHttpHandler {
  readonly requests: SeenRequest[] = [];
  private readonly queue: FakeResponse[];
  private readonly fallback: FakeResponse | undefined;

  constructor(responses: FakeResponse[], fallback?: FakeResponse) {
    this.queue = [...responses];
    this.fallback = fallback;
  }

  handle(request: {
    method: string;
    hostname: string;
    path: string;
    headers: Record<string, string>;
    body?: unknown;
  }): Promise<{
    response: { statusCode: number; headers: Record<string, string>; body: Readable };
  }> {
    const rawBody = request.body;
    const body =
      rawBody instanceof Uint8Array
        ? new TextDecoder().decode(rawBody)
        : typeof rawBody === 'string'
          ? rawBody
          : '';
    this.requests.push({
      method: request.method,
      hostname: request.hostname,
      path: request.path,
      headers: request.headers,
      body,
    });
    const next = this.queue.shift() ?? this.fallback;
    if (!next) return Promise.reject(new Error('FakeHttpHandler: no response left'));
    return Promise.resolve({
      response: {
        statusCode: next.statusCode,
        headers: { 'x-amzn-requestid': 'req-1', ...(next.headers ?? {}) },
        body: Readable.from([Buffer.from(next.body, 'utf8')]),
      },
    });
  }

  updateHttpClientConfig(): void {}

  httpHandlerConfigs(): Record<string, never> {
    return {};
  }

  destroy(): void {}
}

/** An IAM (query protocol, XML) error body. */
export function iamError(code: string, message: string, status = 400): FakeResponse {
  return {
    statusCode: status,
    headers: { 'content-type': 'text/xml' },
    body:
      `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>` +
      `<Code>${code}</Code><Message>${message}</Message></Error>` +
      `<RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId></ErrorResponse>`,
  };
}

/** An IAM response with `result` inside `<XResult>`. */
export function iamOk(operation: string, result: string): FakeResponse {
  return {
    statusCode: 200,
    headers: { 'content-type': 'text/xml' },
    body:
      `<${operation}Response xmlns="https://iam.amazonaws.com/doc/2010-05-08/">` +
      `<${operation}Result>${result}</${operation}Result>` +
      `<ResponseMetadata><RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId></ResponseMetadata>` +
      `</${operation}Response>`,
  };
}

/** An awsJson1_1 (SSM, …) error. */
export function jsonError(type: string, message: string, status = 400): FakeResponse {
  return {
    statusCode: status,
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type },
    body: JSON.stringify({ __type: type, message }),
  };
}

export function jsonOk(body: unknown): FakeResponse {
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/x-amz-json-1.1' },
    body: JSON.stringify(body),
  };
}

/** A restJson1 (Lambda) error. */
export function restJsonError(type: string, message: string, status: number): FakeResponse {
  return {
    statusCode: status,
    headers: { 'content-type': 'application/json', 'x-amzn-errortype': type },
    body: JSON.stringify({ Type: 'User', message }),
  };
}

export const STATIC_CREDENTIALS = () =>
  Promise.resolve({ accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'test-secret-key' });
