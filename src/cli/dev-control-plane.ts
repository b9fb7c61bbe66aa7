/**
 * `latchkey dev-control-plane`: the reference control plane (`src/devcp/server.ts`) as a
 * process, for development and tests; and `latchkey dev-control-plane send`, a client of
 * its HTTP API.
 */
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { startDevControlPlane } from '../devcp/server.js';
import { createLogger } from '../observability/index.js';
import { generateSigningKeyPair, keyIdOf } from '../protocol/index.js';
import { CommandKindSchema, ResultSchema } from '../protocol/messages.js';
import { parseCommandArgs, UsageError, type CliIo } from './io.js';

export const DEV_CONTROL_PLANE_HELP = `Usage: latchkey dev-control-plane [options]
       latchkey dev-control-plane send --url <http-url> --kind <kind> --integration <file> [options]

Runs the reference control plane: agents connect over WebSocket, commands are signed
with an Ed25519 key and sent through a small HTTP API on the same port. For development,
demos and tests only: state is in memory and the HTTP API has no authentication, which
is why it listens on 127.0.0.1 by default.

Server options:
  --host <addr>          listen address (default 127.0.0.1)
  --port <n>             listen port (default 8787; 0 = any free port)
  --agent <id=token>     a connector allowed to connect (repeatable; also
                         LATCHKEY_DEVCP_AGENTS="id=token,id2=token2"). Default: one
                         connector "dev-connector" with a random token, printed.
  --signing-key <file>   Ed25519 private key (PKCS#8 PEM) that signs commands (also
                         LATCHKEY_SIGNING_PRIVATE_KEY with the PEM text). Default: a fresh
                         key; its public half is printed for LATCHKEY_TRUSTED_KEYS.
  --key-id <id>          key id of the signing key (also LATCHKEY_SIGNING_KEY_ID; default
                         derived from the public key, as 'latchkey keygen' does)
  --withhold-acks        never acknowledge results (to watch an agent's outbox)
  --ttl <ms>             lifetime of commands (default 300000)

HTTP API (same port):
  POST /commands                     {"connectorId","kind","integration","params","ttlMs"?,"id"?}
                                     → 201 {"commandId"}
  GET  /commands/<id>/result?waitMs= → 200 result, or 404 while there is none
  GET  /agents                       → connected agents [{"connectorId","instanceId"}]

Send options:
  --url <http-url>       the control plane's HTTP URL, e.g. http://127.0.0.1:8787
  --connector <id>       target connector (default: the only connected one)
  --kind <kind>          discover | grant | revoke | rotate | cleanup | check
  --integration <file>   integration JSON
  --params <file>        params JSON (default {})
  --ttl <ms>             command lifetime
  --wait                 wait for the result (up to 60 s) and print it; exit 1 if it is an error
  -h, --help             show this help`;

const AgentsSchema = z.array(z.object({ connectorId: z.string(), instanceId: z.string() }));

function parseAgents(list: readonly string[]): { connectorId: string; token: string }[] {
  return list.map((entry) => {
    const eq = entry.indexOf('=');
    if (eq <= 0 || eq === entry.length - 1)
      throw new UsageError(`--agent "${entry.split('=')[0] ?? ''}=…": expected id=token`);
    return { connectorId: entry.slice(0, eq), token: entry.slice(eq + 1) };
  });
}

function positiveInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`${name}: "${value}" is not a non-negative integer`);
  return n;
}

async function serve(argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    host: { type: 'string' },
    port: { type: 'string' },
    agent: { type: 'string', multiple: true },
    'signing-key': { type: 'string' },
    'key-id': { type: 'string' },
    'withhold-acks': { type: 'boolean' },
    ttl: { type: 'string' },
  });
  if (values.help === true) {
    io.out(DEV_CONTROL_PLANE_HELP);
    return 0;
  }
  const env = process.env;
  let agents = parseAgents(values.agent ?? []);
  if (agents.length === 0 && env.LATCHKEY_DEVCP_AGENTS) {
    agents = parseAgents(
      env.LATCHKEY_DEVCP_AGENTS.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
  }
  let printToken = false;
  if (agents.length === 0) {
    agents = [{ connectorId: 'dev-connector', token: randomBytes(24).toString('base64url') }];
    printToken = true;
  }

  let privateKeyPem: string;
  let generated = false;
  if (values['signing-key'] !== undefined) {
    privateKeyPem = await readFile(values['signing-key'], 'utf8').catch(() => {
      throw new UsageError(`cannot read --signing-key file ${values['signing-key'] ?? ''}`);
    });
  } else if (env.LATCHKEY_SIGNING_PRIVATE_KEY) {
    privateKeyPem = env.LATCHKEY_SIGNING_PRIVATE_KEY;
  } else {
    privateKeyPem = generateSigningKeyPair().privateKeyPem;
    generated = true;
  }
  let publicKey;
  try {
    publicKey = createPublicKey(createPrivateKey({ key: privateKeyPem, format: 'pem' }));
  } catch {
    throw new UsageError('the signing key is not a PKCS#8 PEM private key');
  }
  if (publicKey.asymmetricKeyType !== 'ed25519')
    throw new UsageError('the signing key must be Ed25519');
  const keyId = values['key-id'] ?? env.LATCHKEY_SIGNING_KEY_ID ?? keyIdOf(publicKey);
  const publicRaw = Buffer.from(
    (publicKey.export({ format: 'jwk' }) as { x?: string }).x ?? '',
    'base64url',
  ).toString('base64url');

  const cp = await startDevControlPlane({
    host: values.host ?? '127.0.0.1',
    port: positiveInt(values.port, '--port') ?? 8787,
    agents,
    signingKey: { keyId, privateKeyPem },
    withholdAcks: values['withhold-acks'] === true,
    ...(values.ttl === undefined ? {} : { defaultTtlMs: positiveInt(values.ttl, '--ttl') ?? 0 }),
    logger: createLogger({ level: env.LATCHKEY_LOG_LEVEL ?? 'info', destination: process.stderr }),
  });

  io.out(`dev control plane listening`);
  io.out(`  agents connect to   ${cp.url}`);
  io.out(
    `  HTTP API            ${cp.httpUrl}  (POST /commands, GET /commands/<id>/result, GET /agents)`,
  );
  io.out(
    `  signing key id      ${keyId}${generated ? ' (fresh key, lives as long as this process)' : ''}`,
  );
  io.out('Agent settings:');
  io.out(`  LATCHKEY_CONTROL_PLANE_URL=${cp.url}`);
  io.out(`  LATCHKEY_TRUSTED_KEYS='${JSON.stringify({ [keyId]: publicRaw })}'`);
  for (const a of agents) {
    io.out(
      `  LATCHKEY_CONNECTOR_ID=${a.connectorId}${printToken ? `  LATCHKEY_CONNECTOR_TOKEN=${a.token}` : ''}`,
    );
  }
  io.out('Stop with Ctrl-C.');

  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await cp.close();
  return 0;
}

async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new UsageError(`cannot read ${what} file ${path}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`${what} file ${path} is not JSON`);
  }
}

async function send(argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    url: { type: 'string' },
    connector: { type: 'string' },
    kind: { type: 'string' },
    integration: { type: 'string' },
    params: { type: 'string' },
    ttl: { type: 'string' },
    wait: { type: 'boolean' },
  });
  if (values.help === true) {
    io.out(DEV_CONTROL_PLANE_HELP);
    return 0;
  }
  if (values.url === undefined) throw new UsageError('--url is required');
  const kind = CommandKindSchema.safeParse(values.kind);
  if (!kind.success)
    throw new UsageError(`--kind must be one of ${CommandKindSchema.options.join(', ')}`);
  if (values.integration === undefined) throw new UsageError('--integration <file> is required');
  const base = values.url.replace(/\/+$/, '');
  const integration = await readJsonFile(values.integration, 'integration');
  const params = values.params === undefined ? {} : await readJsonFile(values.params, 'params');
  let connectorId = values.connector;
  if (connectorId === undefined) {
    const res = await fetch(`${base}/agents`);
    const agents = AgentsSchema.parse(await res.json());
    const ids = [...new Set(agents.map((a) => a.connectorId))];
    if (ids.length !== 1 || ids[0] === undefined) {
      throw new UsageError(
        `--connector is required (${ids.length} connectors connected: ${ids.join(', ') || 'none'})`,
      );
    }
    connectorId = ids[0];
  }
  const ttlMs = positiveInt(values.ttl, '--ttl');
  const res = await fetch(`${base}/commands`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      connectorId,
      kind: kind.data,
      integration,
      params,
      ...(ttlMs === undefined ? {} : { ttlMs }),
    }),
  });
  const body: unknown = await res.json();
  if (res.status !== 201) {
    io.err(`control plane refused the command (HTTP ${res.status}): ${JSON.stringify(body)}`);
    return 1;
  }
  const { commandId } = z.object({ commandId: z.string() }).parse(body);
  if (values.wait !== true) {
    io.out(JSON.stringify({ commandId }));
    return 0;
  }
  const r = await fetch(`${base}/commands/${encodeURIComponent(commandId)}/result?waitMs=60000`);
  if (r.status !== 200) {
    io.err(`no result for ${commandId} within 60 s (it may have been rejected: see the agent log)`);
    return 1;
  }
  const result = ResultSchema.parse(await r.json());
  io.out(JSON.stringify(result, null, 2));
  return result.status === 'ok' ? 0 : 1;
}

export async function devControlPlaneCommand(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv[0] === 'send') return send(argv.slice(1), io);
  return serve(argv, io);
}
